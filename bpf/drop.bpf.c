/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope drop: TCP packets the kernel dropped, from skb:kfree_skb. */
#include "common.bpf.h"
#include "drop.h"

EXPORT_TYPE(struct drop_event, drop_event);


const volatile __u8 with_stack = 0;

/* Present since 6.11, when kfree_skb gained the receiving socket (rx_sk). */
struct trace_event_raw_kfree_skb {
	void *rx_sk;
} __attribute__((preserve_access_index));

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(drop_track, const struct sock *sk, const int oldstate, const int newstate)
{
	track_owner(sk, oldstate, newstate);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(drop_skb, struct sk_buff *skb, void *location, int reason)
{
	struct sock_info *info = NULL;
	struct sock_ident id;
	struct sock *rx_sk = NULL;
	struct drop_event *e;
	int state = 0;
	__u8 flags;

	if (!packet_identify(skb, &id, &flags))
		return 0; /* only TCP, checked in the packet itself */
	/* The socket's state; its owner only through the receiving socket the
	 * kernel passes (6.11+): skb->sk is a pointer BPF may only read. */
	if (bpf_core_field_exists(struct trace_event_raw_kfree_skb, rx_sk))
		rx_sk = (struct sock *)ctx[3];
	if (rx_sk) {
		state = rx_sk->__sk_common.skc_state;
		if (bpf_skc_to_tcp_sock(rx_sk))
			info = sock_info_of(rx_sk);
	} else if (BPF_CORE_READ(skb, sk)) {
		state = BPF_CORE_READ(skb, sk, __sk_common.skc_state);
	}
	if (!sock_passes(&id))
		return 0;
	if (filter_pid && (!info || info->owner.pid != filter_pid))
		return 0;
	e = event_reserve(sizeof(*e));
	if (!e)
		return 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->reason = reason;
	e->state = state;
	e->flags = flags;
	/* In the event itself: a shared stack map can lose a stack to another. */
	e->stack_bytes = with_stack ? bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0) : 0;
	event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, info, &id);
	event_submit(e);
	return 0;
}
