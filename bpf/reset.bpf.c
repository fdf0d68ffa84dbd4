/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope reset: RSTs sent and received, from tcp:tcp_send_reset and tcp:tcp_receive_reset. */
#include "common.bpf.h"
#include "reset.h"

EXPORT_TYPE(struct reset_event, reset_event);

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(reset_track, const struct sock *sk, const int oldstate, const int newstate)
{
	track_owner(sk, oldstate, newstate);
	return 0;
}

static __always_inline void emit(const struct sock_ident *id, const struct sock_info *info, int state,
				 __u32 reason, __u8 sent)
{
	struct reset_event *e;

	if (!sock_passes(id))
		return;
	if (filter_pid && (!info || info->owner.pid != filter_pid))
		return;
	e = event_reserve(sizeof(*e));
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->state = state;
	e->reason = reason;
	e->sent = sent;
	event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, info, id);
	event_submit(e);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(reset_sent, const struct sock *sk, const struct sk_buff *skb)
{
	struct sock_info *info = NULL;
	struct sock_ident id;
	int reason = 0;

	if (send_reset_has_reason)
		reason = (int)ctx[2];
	if (!reset_identify(sk, skb, &id))
		return 0;
	if (sk && bpf_skc_to_tcp_sock((void *)sk))
		info = sock_info_of(sk);
	emit(&id, info, sk ? sk->__sk_common.skc_state : 0, reason, 1);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(reset_received, struct sock *sk)
{
	struct sock_ident id;
	struct tcp_sock *tp;

	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	sock_identify(sk, tp, &id);
	emit(&id, sock_info_of(sk), sk->__sk_common.skc_state, 0, 0);
	return 0;
}
