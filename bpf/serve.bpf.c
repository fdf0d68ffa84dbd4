/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope serve: counters and histograms of TCP activity, kept in the kernel
 * and read when Prometheus scrapes. Nothing per event leaves the kernel. */
#include "common.bpf.h"
#include "serve.h"

EXPORT_TYPE(struct metric_key, metric_key);
EXPORT_TYPE(struct histogram_key, histogram_key);
EXPORT_TYPE(struct histogram, histogram);
EXPORT_TYPE(enum metric, metric);
EXPORT_TYPE(enum outcome, outcome);
EXPORT_TYPE(enum histogram_id, histogram_id);

#define ECONNREFUSED 111
#define ETIMEDOUT 110

/* --port-labels: a bitmap of the ports that get a label of their own. */
const volatile __u8 port_labels_on = 0;
const volatile __u8 label_ports[8192] = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct metric_key);
	__type(value, __u64);
} metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct histogram_key);
	__type(value, struct histogram);
} histograms SEC(".maps");

/* A connection's port label: its local port if listed (a server's), else its
 * remote port if listed (a client's), else 0 ("other"). */
static __always_inline __u16 port_label(const struct sock_ident *id)
{
	if (!port_labels_on)
		return 0;
	if (port_in(label_ports, id->lport))
		return id->lport;
	if (port_in(label_ports, id->rport))
		return id->rport;
	return 0;
}

static __always_inline void add(__u16 metric, __u16 label, __u16 port, __u64 n)
{
	struct metric_key key = { .metric = metric, .label = label, .port = port };
	__u64 zero = 0, *value;

	value = counter_for(&metrics, &key, &zero);
	if (value)
		__sync_fetch_and_add(value, n);
}

static __always_inline void observe(__u16 which, __u16 port, __u64 ns)
{
	struct histogram_key key = { .histogram = which, .port = port };
	struct histogram zero = {}, *h;
	__u32 slot = log2_slot(ns / 1000);

	h = counter_for(&histograms, &key, &zero);
	if (!h)
		return;
	if (slot < HIST_SLOTS)
		__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum_ns, ns);
}

static __always_inline __u16 outcome_of(const struct sock *sk, int newstate)
{
	if (newstate == TCP_ESTABLISHED)
		return OUTCOME_ESTABLISHED;
	switch (sk->sk_err) {
	case ECONNREFUSED:
		return OUTCOME_REFUSED;
	case ETIMEDOUT:
		return OUTCOME_TIMED_OUT;
	case 0:
		return OUTCOME_ABORTED;
	default:
		return OUTCOME_FAILED;
	}
}

/* Connects (from connect() to their outcome), accepts (a listener's child
 * established) and sessions (from established to closed, as life reports them). */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(serve_state, const struct sock *sk, const int oldstate, const int newstate)
{
	/* A handshake's end or the close. */
	bool ends = oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV || newstate == TCP_CLOSE;
	struct sock_info *info;
	struct sock_ident id;
	struct tcp_sock *tp;
	__u64 now;
	__u16 port;

	if (!ends && !sock_track_changes(oldstate, newstate))
		return 0; /* nothing to follow or count */
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	now = bpf_ktime_get_ns();
	info = sock_track(sk, tp, oldstate, newstate, now, NULL);
	if (!info || !info->born_ns)
		return 0; /* not seen from its birth (it existed before serve started) */
	if (!ends)
		return 0;
	sock_identify(sk, tp, &id);
	if (!sock_passes(&id))
		return 0;
	port = port_label(&id);
	if (info->flags & SOCK_ACTIVE) {
		/* The end of a connect: SYN_SENT ->, or the SYN_RECV of a simultaneous open ->. */
		if ((oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV) && newstate != TCP_SYN_RECV) {
			add(METRIC_CONNECTS, outcome_of(sk, newstate), port, 1);
			observe(HISTOGRAM_CONNECT_LATENCY, port, now - info->born_ns);
			if (newstate == TCP_ESTABLISHED)
				info->flags |= SOCK_SESSION;
			return 0;
		}
	} else if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		add(METRIC_ACCEPTS, 0, port, 1);
		info->flags |= SOCK_SESSION;
		return 0;
	}
	if (newstate == TCP_CLOSE && (info->flags & SOCK_SESSION)) {
		info->flags &= ~SOCK_SESSION;
		add(METRIC_SESSIONS_CLOSED, 0, port, 1);
		add(METRIC_SESSION_TX_BYTES, 0, port, payload_acked(tp, info));
		add(METRIC_SESSION_RX_BYTES, 0, port, payload_received(sk, tp));
		observe(HISTOGRAM_SESSION_DURATION, port, now - info->born_ns);
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(serve_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	struct sock_ident id;
	struct tcp_sock *tp;

	/* Since 6.17 the tracepoint also reports retransmits that failed: not sent. */
	if (retransmit_has_err && ctx[2])
		return 0;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return 0;
	sock_identify(sk, tp, &id);
	if (sock_passes(&id))
		add(METRIC_RETRANSMITTED_SEGMENTS, 0, port_label(&id),
		    BPF_CORE_READ((struct tcp_skb_cb *)&skb->cb, tcp_gso_segs));
	return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(serve_synack, const struct sock *sk, const struct request_sock *req)
{
	struct sock_ident id;

	common_identify(&req->__req_common, &id);
	id.lport = req->__req_common.skc_num;
	if (sock_passes(&id))
		add(METRIC_SYNACK_RETRANSMITS, 0, port_label(&id), 1);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(serve_reset_sent, const struct sock *sk, const struct sk_buff *skb)
{
	struct sock_ident id;
	__u16 reason = 0;

	if (send_reset_has_reason)
		reason = (__u16)ctx[2];
	if (reset_identify(sk, skb, &id) && sock_passes(&id))
		add(METRIC_RESETS_SENT, reason, port_label(&id), 1);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(serve_reset_received, struct sock *sk)
{
	struct sock_ident id;
	struct tcp_sock *tp;

	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	sock_identify(sk, tp, &id);
	if (sock_passes(&id))
		add(METRIC_RESETS_RECEIVED, 0, port_label(&id), 1);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(serve_drop, struct sk_buff *skb, void *location, int reason)
{
	struct sock_ident id;
	__u8 flags;

	/* The packet's ends as it travels, as drop shows them (the port label takes either). */
	if (packet_identify(skb, &id, &flags) && sock_passes(&id))
		add(METRIC_DROPS, reason, port_label(&id), 1);
	return 0;
}

/* Each segment a flow receives: its smoothed RTT (as tcprtt and rtt sample it). */
SEC("tp_btf/tcp_probe")
int BPF_PROG(serve_rtt, struct sock *sk, const struct sk_buff *skb)
{
	struct sock_ident id;
	struct tcp_sock *tp;

	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	sock_identify(sk, tp, &id);
	if (sock_passes(&id))
		observe(HISTOGRAM_RTT, port_label(&id), (__u64)(tp->srtt_us >> 3) * 1000);
	return 0;
}
