/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_LIFE_H
#define TCPSCOPE_LIFE_H

/* One closed TCP session. */
struct life_event {
	__u64 ts_ns;    /* CLOCK_MONOTONIC at close */
	__u64 span_ns;  /* from birth (connect or SYN received) to close */
	__u64 tx_bytes; /* payload acked by the peer */
	__u64 rx_bytes; /* payload received */
	struct owner_id owner;
	struct task_id cpu; /* whoever was on-CPU at the close */
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
};

#endif
