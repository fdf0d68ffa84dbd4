/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_STATES_H
#define TCPSCOPE_STATES_H

/* One TCP state change. */
struct state_event {
	__u64 ts_ns;       /* CLOCK_MONOTONIC */
	__u64 skaddr;
	__u64 delta_ns;    /* time in oldstate; 0: not observed */
	__u8 laddr[16];
	__u8 raddr[16];
	__u32 pid;         /* owner */
	__u32 cpu_pid;     /* whoever was on-CPU */
	__u32 netns;
	__s32 oldstate;
	__s32 newstate;
	__u16 lport;
	__u16 rport;
	__u16 family;
	__u8 owner;        /* enum owner_kind */
	char comm[16];
	char cpu_comm[16];
};

#endif
