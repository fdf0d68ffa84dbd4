/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_DROP_H
#define TCPSCOPE_DROP_H

/* One TCP packet the kernel dropped. Addresses are the packet's own:
 * "local" is its source, "remote" its destination. */
struct drop_event {
	__u64 ts_ns;
	__u32 reason;   /* enum skb_drop_reason */
	__s32 state;    /* the socket's TCP state, 0 without a socket */
	__s32 stack_bytes; /* bytes of stack, with --stack */
	__u8 flags;        /* TCP header flags */
	struct owner_id owner;
	struct task_id cpu;
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
	__u64 stack[24]; /* kernel return addresses, innermost first */
};

#endif
