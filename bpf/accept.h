/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_ACCEPT_H
#define TCPSCOPE_ACCEPT_H

/* A passive connection: taken by accept(), or closed before any accept() took it. */
struct accept_event {
	__u64 ts_ns;
	__u32 backlog;     /* connections left in the listener's accept queue after this accept() */
	__u32 max_backlog; /* the queue's limit */
	__u8 queue_known;  /* 0: no queue (not accepted, or accept() began before tracing) */
	__u8 accepted;     /* 1: accept() returned it; 0: it closed in the accept queue */
	struct owner_id owner; /* the accepting process, or the listener's owner (OWNER_LISTENER) */
	struct task_id cpu;
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
};

#endif
