/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_SYNACK_H
#define TCPSCOPE_SYNACK_H

/* One retransmitted SYN-ACK: a connection the listener has not seen completed. */
struct synack_event {
	__u64 ts_ns;
	__u32 backlog;     /* the listener's accept queue, now */
	__u32 max_backlog; /* and its limit */
	__u32 retrans;     /* how many times this SYN-ACK was retransmitted before */
	struct owner_id owner; /* the listener's */
	struct task_id cpu;
	struct sock_id sock;   /* the connection: local is the listener's address */
	__u16 lport;
	__u16 rport;
};

/* Per-listener counts, for -c, are keyed by struct listener_key. */
struct counter {
	__u64 value;
};

#endif
