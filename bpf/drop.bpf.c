/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope drop: TCP packets the kernel dropped, from skb:kfree_skb. */
#include "common.bpf.h"
#include "drop.h"

EXPORT_TYPE(struct drop_event, drop_event);

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

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
	unsigned char *head = skb->head, *l4;
	__u16 protocol = bpf_ntohs(skb->protocol);
	struct sock_info *info = NULL;
	struct sock_ident id = {};
	struct sock *rx_sk = NULL;
	struct drop_event *e;
	__u8 ip[40], tcp[14];
	int state = 0;

	/* Only TCP, checked in the packet itself. */
	if (protocol == ETH_P_IP) {
		if (bpf_probe_read_kernel(ip, 20, head + skb->network_header) || ip[9] != 6)
			return 0;
		id.id.family = AF_INET;
		__builtin_memcpy(id.id.laddr, ip + 12, 4);
		__builtin_memcpy(id.id.raddr, ip + 16, 4);
	} else if (protocol == ETH_P_IPV6) {
		if (bpf_probe_read_kernel(ip, 40, head + skb->network_header) || ip[6] != 6)
			return 0;
		id.id.family = AF_INET6;
		__builtin_memcpy(id.id.laddr, ip + 8, 16);
		__builtin_memcpy(id.id.raddr, ip + 24, 16);
	} else {
		return 0;
	}
	l4 = head + skb->transport_header;
	if (skb->transport_header == skb->network_header) /* not set yet */
		l4 += protocol == ETH_P_IP ? (ip[0] & 0xf) * 4 : 40;
	if (bpf_probe_read_kernel(tcp, sizeof(tcp), l4))
		return 0;
	id.lport = (tcp[0] << 8) | tcp[1];
	id.rport = (tcp[2] << 8) | tcp[3];
	id.id.netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
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
	if (!id.id.netns && BPF_CORE_READ(skb, sk))
		id.id.netns = BPF_CORE_READ(skb, sk, __sk_common.skc_net.net, ns.inum);
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
	e->flags = tcp[13];
	/* In the event itself: a shared stack map can lose a stack to another. */
	e->stack_bytes = with_stack ? bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0) : 0;
	event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, info, &id);
	event_submit(e);
	return 0;
}
