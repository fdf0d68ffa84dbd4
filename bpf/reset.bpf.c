/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope reset: RSTs sent and received, from tcp:tcp_send_reset and tcp:tcp_receive_reset. */
#include "common.bpf.h"
#include "reset.h"

EXPORT_TYPE(struct reset_event, reset_event);

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(reset_track, const struct sock *sk, const int oldstate, const int newstate)
{
	track_owner(sk, oldstate, newstate);
	return 0;
}

/* A RST sent with no socket answers skb: its local end is the packet's
 * destination, its remote end the packet's source. */
static __always_inline bool packet_identify(const struct sk_buff *skb, struct sock_ident *s)
{
	unsigned char *head = skb->head;
	__u16 protocol = bpf_ntohs(skb->protocol), ports[2];
	__u32 v4[2];

	if (protocol == ETH_P_IP) {
		s->id.family = AF_INET;
		if (bpf_probe_read_kernel(v4, sizeof(v4), head + skb->network_header + 12))
			return false;
		*(__u32 *)s->id.raddr = v4[0];
		*(__u32 *)s->id.laddr = v4[1];
	} else if (protocol == ETH_P_IPV6) {
		s->id.family = AF_INET6;
		if (bpf_probe_read_kernel(s->id.raddr, 16, head + skb->network_header + 8) ||
		    bpf_probe_read_kernel(s->id.laddr, 16, head + skb->network_header + 24))
			return false;
	} else {
		return false;
	}
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + skb->transport_header))
		return false;
	s->rport = bpf_ntohs(ports[0]);
	s->lport = bpf_ntohs(ports[1]);
	s->id.netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	return true;
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

/* Present since 6.10, when tcp_send_reset gained its reason argument. */
enum sk_rst_reason {
	SK_RST_REASON_NOT_SPECIFIED,
};

struct trace_event_raw_tcp_send_reset {
	enum sk_rst_reason reason; /* an enum, as in the kernel, for CO-RE to match it */
} __attribute__((preserve_access_index));

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(reset_sent, const struct sock *sk, const struct sk_buff *skb)
{
	struct sock_ident id = {};
	struct sock_info *info = NULL;
	struct tcp_sock *tp;
	int state = 0, reason = 0;

	if (bpf_core_field_exists(struct trace_event_raw_tcp_send_reset, reason))
		reason = (int)ctx[2];

	if (sk) {
		state = sk->__sk_common.skc_state;
		tp = bpf_skc_to_tcp_sock((void *)sk);
		if (tp) {
			sock_identify(sk, tp, &id);
			info = sock_info_of(sk);
		} else { /* a request or time-wait socket: no inet_sock */
			common_identify(&sk->__sk_common, &id);
			id.lport = sk->__sk_common.skc_num;
		}
	} else if (!skb || !packet_identify(skb, &id)) {
		return 0;
	}
	emit(&id, info, state, reason, 1);
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
