/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_RESET_H
#define TCPSCOPE_RESET_H

/* One RST, sent or received. */
struct reset_event {
	__u64 ts_ns;
	__s32 state;  /* the socket's TCP state; 0 when sent with no socket */
	__u32 reason; /* enum sk_rst_reason of a sent RST (6.10+) */
	__u8 sent;    /* 1: sent, 0: received */
	struct owner_id owner;
	struct task_id cpu;
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
};

#endif
