/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcpscope accept: passive connections as accept() returns them, from the
 * syscalls:sys_{enter,exit}_accept{,4} tracepoints (process context: the
 * accepting task), and those that closed in the accept queue unaccepted, from
 * sock:inet_sock_set_state.
 */
#include "common.bpf.h"
#include "accept.h"

EXPORT_TYPE(struct accept_event, accept_event);

#define IPPROTO_MPTCP 262
#define SOCK_STREAM 1

/* A kernel pointer read with probes, as a pointer the program may load
 * from directly (6.2+). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define kernel_cast(ptr, type) ((type *)bpf_rdonly_cast((ptr), bpf_core_type_id_kernel(type)))

/* The listening socket of each accept() in progress, by thread. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* struct sock * */
} accepting SEC(".maps");

/* The records of the syscall tracepoints, as their format files give them. */
struct syscall_enter {
	__u64 common;
	__s32 nr;
	__u64 fd; /* the first argument */
};

struct syscall_exit {
	__u64 common;
	__s32 nr;
	__s64 ret;
};

/* The socket behind one of the current task's file descriptors: direct
 * loads, but for the file table's slot (a pointer to pointers). */
static __always_inline struct sock *fd_sock(__u32 fd)
{
	struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
	struct file *file = NULL;
	struct socket *sock;

	if (fd >= fdt->max_fds || bpf_probe_read_kernel(&file, sizeof(file), &fdt->fd[fd]) || !file)
		return NULL;
	sock = kernel_cast(kernel_cast(file, struct file)->private_data, struct socket);
	return sock->sk;
}

/* One line: a connection; its owner (NULL: unknown); the listener whose
 * queue it left, when known (NULL: its queue is not shown). */
static __always_inline void emit(const struct sock_ident *id, const struct owner_id *owner,
				 const struct sock *listener, __u8 accepted)
{
	struct accept_event *e = event_reserve(sizeof(*e));

	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->backlog = listener ? listener->sk_ack_backlog : 0;
	e->max_backlog = listener ? listener->sk_max_ack_backlog : 0;
	e->queue_known = listener != NULL;
	e->accepted = accepted;
	event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, NULL, id);
	if (owner)
		e->owner = *owner;
	event_submit(e);
}

static __always_inline int accept_enter(struct syscall_enter *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	__u64 listener;

	if (filter_pid && tid >> 32 != filter_pid)
		return 0;
	listener = (__u64)fd_sock(ctx->fd); /* an int, passed in a full register */
	if (listener && bpf_map_update_elem(&accepting, &tid, &listener, BPF_ANY))
		count(map_full);
	return 0;
}

static __always_inline int accept_exit(struct syscall_exit *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct sock *listener = NULL, *sk;
	struct sock_ident id;
	struct owner_id owner;
	struct tcp_sock *tp;
	__u64 *stashed;

	stashed = bpf_map_lookup_elem(&accepting, &tid);
	if (stashed) {
		listener = kernel_cast((void *)*stashed, struct sock);
		bpf_map_delete_elem(&accepting, &tid);
	} else if (filter_pid && tid >> 32 != filter_pid) {
		return 0;
	}
	/* No listener when the accept() began before tracing did: the
	 * connection is still shown, its queue unknown. */
	if (ctx->ret < 0)
		return 0;
	sk = fd_sock(ctx->ret);
	if (!sk)
		return 0;
	sk = kernel_cast(sk, struct sock);
	/* An MPTCP socket starts as a TCP one: the same addresses and ports. */
	if (!sk || (sk->sk_protocol != IPPROTO_TCP && sk->sk_protocol != IPPROTO_MPTCP) ||
	    sk->sk_type != SOCK_STREAM)
		return 0;
	sock_identify(sk, kernel_cast(sk, struct tcp_sock), &id);
	if (!sock_passes(&id))
		return 0;
	set_owner_current(&owner, OWNER_TASK);
	/* An MPTCP listener's queue is its first subflow's. */
	if (listener && bpf_core_type_exists(struct mptcp_sock) && listener->sk_protocol == IPPROTO_MPTCP)
		listener = kernel_cast(kernel_cast(listener, struct mptcp_sock)->first, struct sock);
	if (listener) {
		/* listen() names a listener's owner; failing that, its first accept() seen. */
		tp = kernel_cast(listener, struct tcp_sock);
		if (!listener_owner_of(listener, tp))
			listener_owner_set(listener, tp, &owner);
	}
	emit(&id, &owner, listener, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int accept4_enter(struct syscall_enter *ctx)
{
	return accept_enter(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int accept4_exit(struct syscall_exit *ctx)
{
	return accept_exit(ctx);
}

SEC("tracepoint/syscalls/sys_enter_accept")
int accept_enter_old(struct syscall_enter *ctx)
{
	return accept_enter(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int accept_exit_old(struct syscall_exit *ctx)
{
	return accept_exit(ctx);
}

/*
 * -> LISTEN runs in listen(), the listener's owner. A connection that leaves
 * ESTABLISHED or CLOSE_WAIT for CLOSE (a reset, or its listener closing)
 * with no struct socket, not orphaned, was never accepted: accept() grafts one
 * on, and a process's close() lets go of it (sock_orphan) only after the
 * change of state. MPTCP subflows are let go of by their MPTCP socket first.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(accept_state_change, const struct sock *sk, const int oldstate, const int newstate)
{
	struct owner_id *owner, me;
	struct sock_ident id;
	struct tcp_sock *tp;

	if (newstate == TCP_LISTEN) {
		tp = bpf_skc_to_tcp_sock((void *)sk);
		if (tp) {
			set_owner_current(&me, OWNER_TASK);
			listener_owner_set(sk, tp, &me);
		}
		return 0;
	}
	if (newstate != TCP_CLOSE || (oldstate != TCP_ESTABLISHED && oldstate != TCP_CLOSE_WAIT) ||
	    sk->sk_socket ||
	    (sk->__sk_common.skc_flags >> bpf_core_enum_value(enum sock_flags, SOCK_DEAD)) & 1)
		return 0;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp || (bpf_core_field_exists(tp->is_mptcp) && tp->is_mptcp))
		return 0;
	sock_identify(sk, tp, &id);
	if (!sock_passes(&id))
		return 0;
	owner = listener_owner_of(sk, tp);
	if (filter_pid && (!owner || owner->pid != filter_pid))
		return 0;
	if (owner) {
		me = *owner;
		me.kind = OWNER_LISTENER;
	}
	emit(&id, owner ? &me : NULL, NULL, 0);
	return 0;
}
