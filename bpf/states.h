/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_STATES_H
#define TCPSCOPE_STATES_H

/* One TCP state change. */
struct state_event {
	__u64 ts_ns;    /* CLOCK_MONOTONIC */
	__u64 delta_ns; /* time in oldstate; 0: not observed */
	__u64 skaddr;
	__s32 oldstate;
	__s32 newstate;
	struct owner_id owner;
	struct task_id cpu; /* whoever was on-CPU */
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
};

#endif
