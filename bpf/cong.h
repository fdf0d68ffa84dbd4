/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_CONG_H
#define TCPSCOPE_CONG_H

#define CA_STATES 5 /* enum tcp_ca_state: Open, Disorder, CWR, Recovery, Loss */

/* One congestion-state change (-e). */
struct cong_event {
	__u64 ts_ns;
	__u64 in_old_ns;  /* time spent in the old state; 0 when its start was not seen */
	__u8 old_state;   /* enum tcp_ca_state */
	__u8 new_state;
	__u8 tcp_state;   /* the socket's TCP state (enum tcp_state) */
	struct owner_id owner;
	struct task_id cpu;
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
};

/* A flow's time in each state, kept in the kernel (the default). */
struct cong_key {
	__u64 sk;        /* the socket's address ... */
	__u64 since_ns;  /* ... and when its accounting began: addresses are reused */
};

struct cong_flow {
	__u64 ns[CA_STATES];  /* time in each state, up to changed_ns */
	__u64 changed_ns;     /* the last change (or the close) */
	__u64 changes;
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
	__u8 state;           /* the current state */
	__u8 closed;          /* the socket closed at changed_ns */
};

#endif
