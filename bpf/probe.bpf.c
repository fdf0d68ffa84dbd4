/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope probe: flows' sending state (cwnd, ssthresh, RTT...), from tcp:tcp_probe. */
#include "common.bpf.h"
#include "probe.h"

EXPORT_TYPE(struct probe_event, probe_event);
EXPORT_TYPE(enum tcp_ca_state, tcp_ca_state);

/* At most one sample per flow in this many ns (0: every segment). */
const volatile __u64 interval_ns = 0;

/* When each flow was last sampled, by socket address (with an interval). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} sampled SEC(".maps");

/* Owners are learned from state changes, as for life and retrans; a closed
 * socket's sample time goes, as its address may be a new socket's next. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(probe_track, const struct sock *sk, const int oldstate, const int newstate)
{
	__u64 key = (__u64)sk;

	track_owner(sk, oldstate, newstate);
	if (interval_ns && newstate == TCP_CLOSE)
		bpf_map_delete_elem(&sampled, &key);
	return 0;
}

/* Whether this flow is due a sample: the kernel decides, so that a busy host
 * pays for one event per flow per interval, not one per segment. */
static __always_inline bool due(const struct sock *sk, __u64 now)
{
	__u64 key = (__u64)sk, *last;

	if (!interval_ns)
		return true;
	last = bpf_map_lookup_elem(&sampled, &key);
	if (!last) {
		bpf_map_update_elem(&sampled, &key, &now, BPF_ANY);
		return true;
	}
	if (now - *last < interval_ns)
		return false;
	*last = now; /* tcp_probe runs under the socket's lock: no other CPU races this */
	return true;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(probe_sample, struct sock *sk, const struct sk_buff *skb)
{
	struct probe_event *e;
	struct sock_info *info;
	struct sock_ident id;
	struct tcp_sock *tp;
	__u32 cwnd, ssthresh, ca_state;
	__u64 now;

	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	sock_identify(sk, tp, &id);
	if (!sock_passes(&id))
		return 0;
	info = sock_info_of(sk);
	if (filter_pid && (!info || info->owner.pid != filter_pid))
		return 0;
	now = bpf_ktime_get_ns();
	if (!due(sk, now))
		return 0;
	e = event_reserve(sizeof(*e));
	if (!e)
		return 0;
	e->ts_ns = now;
	e->pacing_rate = sk->sk_pacing_rate;
	/* ssthresh as the tracepoint reports it (tcp_current_ssthresh()): the target
	 * while the window is being cut (CWR, Recovery), otherwise at least 3/4 of
	 * the window, where slow start would take it back to. */
	cwnd = tp->snd_cwnd;
	ssthresh = tp->snd_ssthresh;
	ca_state = BPF_CORE_READ_BITFIELD_PROBED(&tp->inet_conn, icsk_ca_state);
	if (ca_state != TCP_CA_CWR && ca_state != TCP_CA_Recovery && (cwnd >> 1) + (cwnd >> 2) > ssthresh)
		ssthresh = (cwnd >> 1) + (cwnd >> 2);
	e->snd_cwnd = cwnd;
	e->ssthresh = ssthresh;
	e->ca_state = ca_state;
	e->srtt_us = tp->srtt_us >> 3;
	e->rttvar_us = tp->mdev_us >> 2;
	e->snd_wnd = tp->snd_wnd;
	e->rcv_wnd = tp->rcv_wnd;
	e->in_flight = tp->snd_nxt - tp->snd_una;
	e->packets_out = tp->packets_out;
	e->retrans_out = tp->retrans_out;
	e->lost_out = tp->lost_out;
	e->mss = tp->mss_cache;
	e->rate_delivered = tp->rate_delivered;
	e->rate_interval_us = tp->rate_interval_us;
	event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, info, &id);
	event_submit(e);
	return 0;
}
