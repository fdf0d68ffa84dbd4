/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope connect and connlat: active opens and their outcome, from sock:inet_sock_set_state. */
#include "common.bpf.h"
#include "connect.h"

EXPORT_TYPE(struct connect_event, connect_event);
EXPORT_TYPE(struct dest_key, dest_key);
EXPORT_TYPE(struct dest_count, dest_count);

const volatile __u8 count_only = 0;
const volatile __u8 answered_only = 0; /* connlat: only connects the peer answered */
const volatile __u64 min_latency_ns = 0;

#define ECONNREFUSED 111

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dest_key);
	__type(value, struct dest_count);
} counts SEC(".maps");

static __always_inline void count_dest(const struct sock_ident *id, bool established)
{
	struct dest_key key;
	struct dest_count zero = {}, *c;

	/* Padding is part of a key too: zero all of it (id's is zero). */
	__builtin_memset(&key, 0, sizeof(key));
	key.sock = id->id;
	key.rport = id->rport;
	c = counter_for(&counts, &key, &zero);
	if (!c)
		return;
	if (established)
		__sync_fetch_and_add(&c->established, 1);
	else
		__sync_fetch_and_add(&c->failed, 1);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(connect_state_change, const struct sock *sk, const int oldstate, const int newstate)
{
	struct connect_event *e;
	struct sock_info *info, done;
	struct sock_ident id;
	struct tcp_sock *tp;
	__u64 now, latency;
	int err;

	/* Only connects matter: a socket's state is kept from connect() (CLOSE ->
	 * SYN_SENT, which runs in the caller) to the end of SYN_SENT, or of the
	 * SYN_RECV a simultaneous open passes through (a connected socket has a
	 * struct socket; an accepted child in SYN_RECV has none yet). Every other
	 * change returns at once, so servers' traffic costs next to nothing. */
	if (newstate != TCP_SYN_SENT && oldstate != TCP_SYN_SENT &&
	    !(oldstate == TCP_SYN_RECV && sk->sk_socket))
		return 0;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	now = bpf_ktime_get_ns();
	if (newstate == TCP_SYN_SENT) {
		sock_track(sk, tp, oldstate, newstate, now, NULL);
		return 0;
	}
	/* A simultaneous open passes through SYN_RECV: that is not the end yet. */
	info = sock_info_of(sk);
	if (newstate == TCP_SYN_RECV || !info || !(info->flags & SOCK_ACTIVE))
		return 0;
	/* The connect is over: keep nothing of it in the map. */
	done = *info;
	info = &done;
	sock_forget(sk);
	err = newstate == TCP_ESTABLISHED ? 0 : sk->sk_err;
	if (answered_only && newstate != TCP_ESTABLISHED && err != ECONNREFUSED)
		return 0;
	latency = now - info->born_ns;
	if (latency < min_latency_ns)
		return 0;
	sock_identify(sk, tp, &id);
	if (!sock_passes(&id))
		return 0;
	if (filter_pid && info->owner.pid != filter_pid)
		return 0;
	if (count_only) {
		count_dest(&id, newstate == TCP_ESTABLISHED);
		return 0;
	}
	e = event_reserve(sizeof(*e));
	if (!e)
		return 0;
	e->ts_ns = now;
	e->latency_ns = latency;
	e->newstate = newstate;
	e->err = err;
	event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, info, &id);
	event_submit(e);
	return 0;
}
