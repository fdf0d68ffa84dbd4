/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope retrans: TCP retransmits, from tcp:tcp_retransmit_skb. */
#include "common.bpf.h"
#include "retrans.h"

EXPORT_TYPE(struct retrans_event, retrans_event);
EXPORT_TYPE(struct flow_key, flow_key);
EXPORT_TYPE(struct flow_count, flow_count);

const volatile __u8 count_only = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct flow_key);
	__type(value, struct flow_count);
} counts SEC(".maps");

/* Owners are learned from state changes, as for life and states. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(retrans_track, const struct sock *sk, const int oldstate, const int newstate)
{
	track_owner(sk, oldstate, newstate);
	return 0;
}

static __always_inline void count_flow(const struct sock_ident *id, int err, __u32 segs)
{
	struct flow_key key = { .sock = id->id, .lport = id->lport, .rport = id->rport };
	struct flow_count zero = {}, *c;

	c = counter_for(&counts, &key, &zero);
	if (!c)
		return;
	if (err) {
		__sync_fetch_and_add(&c->failed, 1);
	} else {
		__sync_fetch_and_add(&c->sent, 1);
		__sync_fetch_and_add(&c->segments, segs);
	}
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(retrans_skb, const struct sock *sk, const struct sk_buff *skb)
{
	struct retrans_event *e;
	struct sock_info *info;
	struct sock_ident id;
	struct tcp_sock *tp;
	__u32 segs;
	int err = 0;

	/* Since 6.17 the tracepoint also reports retransmits that failed. */
	if (retransmit_has_err)
		err = (int)ctx[2];
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	sock_identify(sk, tp, &id);
	if (!sock_passes(&id))
		return 0;
	info = sock_info_of(sk);
	if (filter_pid && (!info || info->owner.pid != filter_pid))
		return 0;
	/* What the kernel adds to TcpRetransSegs: tcp_skb_pcount(), the segments
	 * a TSO/GSO packet carries. */
	segs = BPF_CORE_READ((struct tcp_skb_cb *)&skb->cb, tcp_gso_segs);
	if (count_only) {
		count_flow(&id, err, segs);
		return 0;
	}
	e = event_reserve(sizeof(*e));
	if (!e)
		return 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->err = err;
	e->state = sk->__sk_common.skc_state;
	e->seq = BPF_CORE_READ((struct tcp_skb_cb *)&skb->cb, seq);
	e->segs = segs;
	event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, info, &id);
	event_submit(e);
	return 0;
}
