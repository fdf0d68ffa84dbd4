/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_LIFE_H
#define TCPSCOPE_LIFE_H

/* One closed TCP session. */
struct life_event {
	__u64 ts_ns;       /* CLOCK_MONOTONIC at close */
	__u64 span_ns;     /* from birth (connect or SYN received) to close */
	__u64 tx_bytes;
	__u64 rx_bytes;
	__u8 laddr[16];
	__u8 raddr[16];
	__u32 pid;
	__u32 netns;
	__u16 lport;
	__u16 rport;
	__u16 family;
	__u8 owner;        /* enum owner_kind */
	char comm[16];
};

#endif
