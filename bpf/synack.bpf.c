/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope synack: SYN-ACK retransmits per listener, from tcp:tcp_retransmit_synack. */
#include "common.bpf.h"
#include "synack.h"

EXPORT_TYPE(struct synack_event, synack_event);
EXPORT_TYPE(struct listener_key, listener_key);
EXPORT_TYPE(struct counter, counter);

const volatile __u8 count_only = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listener_key);
	__type(value, struct counter);
} counts SEC(".maps");

/* Only listeners' owners matter here: track nothing else, so that busy
 * connection traffic costs next to nothing. A listener's entry ends when it
 * stops listening (a socket is always closed before it is destroyed). */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(synack_track, const struct sock *sk, const int oldstate, const int newstate)
{
	struct tcp_sock *tp;

	/* LISTEN -> SYN_RECV is a child, born a copy of its listener. */
	if (oldstate == TCP_LISTEN && newstate == TCP_CLOSE) {
		sock_forget(sk);
		return 0;
	}
	if (newstate != TCP_LISTEN)
		return 0;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (tp)
		sock_track(sk, tp, oldstate, newstate, 0, NULL);
	return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(synack_retransmit, const struct sock *sk, const struct request_sock *req)
{
	struct listener_key key = {};
	struct synack_event *e;
	struct sock_info *info;
	struct sock_ident id;
	struct counter zero = {}, *n;

	common_identify(&req->__req_common, &id);
	id.lport = req->__req_common.skc_num;
	if (!sock_passes(&id))
		return 0;
	info = sock_info_of(sk);
	if (filter_pid && (!info || info->owner.pid != filter_pid))
		return 0;
	if (count_only) {
		key.sock.family = id.id.family;
		key.sock.netns = id.id.netns;
		__builtin_memcpy(key.sock.laddr, id.id.laddr, 16);
		key.lport = id.lport;
		n = counter_for(&counts, &key, &zero);
		if (n)
			__sync_fetch_and_add(&n->value, 1);
		return 0;
	}
	e = event_reserve(sizeof(*e));
	if (!e)
		return 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->backlog = sk->sk_ack_backlog;
	e->max_backlog = sk->sk_max_ack_backlog;
	e->retrans = req->num_retrans;
	event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, info, &id);
	event_submit(e);
	return 0;
}
