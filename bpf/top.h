/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_TOP_H
#define TCPSCOPE_TOP_H

/* Bytes a process moved through a socket: one entry per socket and process
 * (a socket two processes use has two). */
struct top_key {
	__u64 cookie; /* the socket's cookie: unique for the boot, never reused */
	__u32 pid;    /* the process that sent or received (process context: exact) */
	__u32 pad;
};

struct top_flow {
	__u64 tx_bytes; /* what send calls returned, summed */
	__u64 rx_bytes; /* what receive calls returned (not MSG_PEEK) */
	__u64 sends;    /* calls that moved bytes */
	__u64 recvs;
	struct task_id task;
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
};

#endif
