/* SPDX-License-Identifier: GPL-2.0 */
/* Types shared by the kernel programs and, through the objects' BTF, by
 * the Python side. Python never restates these layouts. */
#ifndef TCPSCOPE_COMMON_H
#define TCPSCOPE_COMMON_H

enum tcp_state {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT = 2,
	TCP_SYN_RECV = 3,
	TCP_FIN_WAIT1 = 4,
	TCP_FIN_WAIT2 = 5,
	TCP_TIME_WAIT = 6,
	TCP_CLOSE = 7,
	TCP_CLOSE_WAIT = 8,
	TCP_LAST_ACK = 9,
	TCP_LISTEN = 10,
	TCP_CLOSING = 11,
	TCP_NEW_SYN_RECV = 12,
};

/* How the process named in an event was learned. */
enum owner_kind {
	OWNER_UNKNOWN = 0,  /* never seen in process context */
	OWNER_TASK = 1,     /* the task that acted on this socket */
	OWNER_LISTENER = 2, /* stand-in: the owner of the listening socket */
};

/* Loss and accounting counters, in the objects' .bss. */
struct counters {
	__u64 lost;           /* ring buffer full: events dropped */
	__u64 storage_failed; /* no memory for per-socket state */
	__u64 preexisting;    /* sockets that existed before tracing began */
	__u64 map_full;       /* a count could not be added: its map was full */
};

#define SOCK_ACTIVE 1 /* born in connect() */

/* A process, as events name it. */
struct task_id {
	__u32 pid;
	char comm[16];
};

/* A socket's owner: a process and how it was learned. */
struct owner_id {
	__u32 pid;
	__u8 kind;  /* enum owner_kind */
	char comm[16];
};

/* The endpoints of a socket as events name them. Events keep this group
 * whole, so that user space decodes each distinct value once: many sockets
 * share it (the same hosts, the same namespace). */
struct sock_id {
	__u8 laddr[16]; /* IPv4 in the first 4 bytes */
	__u8 raddr[16];
	__u32 netns;    /* network namespace inode */
	__u16 family;
};

/* A listening socket: its local half. */
struct listener_key {
	struct sock_id sock; /* the remote half is zero */
	__u16 lport;
};

struct sock_info {
	__u64 born_ns;    /* 0: existed before tracing */
	__u64 changed_ns; /* last state change, 0: not seen */
	struct owner_id owner;
	__u8 flags;
};

#endif
