/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_CONNECT_H
#define TCPSCOPE_CONNECT_H

/* The end of an active open: connect() succeeded, or did not. */
struct connect_event {
	__u64 ts_ns;
	__u64 latency_ns; /* from connect() to the answer, or to giving up */
	__s32 newstate;   /* ESTABLISHED, or CLOSE when it failed */
	__s32 err;        /* the socket's error when it failed (ECONNREFUSED, ...) */
	struct owner_id owner;
	struct task_id cpu;
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
};

/* Per-destination counts, for -c. */
struct dest_key {
	struct sock_id sock;
	__u16 rport;
};

struct dest_count {
	__u64 established;
	__u64 failed;
};

#endif
