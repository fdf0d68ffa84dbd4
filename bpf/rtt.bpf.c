/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope rtt: histograms of flows' smoothed RTT, from tcp:tcp_probe (tcprtt). */
#include "common.bpf.h"
#include "rtt.h"

EXPORT_TYPE(struct rtt_key, rtt_key);
EXPORT_TYPE(struct rtt_hist, rtt_hist);

const volatile __u8 by_raddr = 0;
const volatile __u8 by_lport = 0;
const volatile __u8 in_ms = 0; /* buckets of milliseconds, not µs */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rtt_key);
	__type(value, struct rtt_hist);
} counts SEC(".maps");

/* Owners, for -p, as for retrans. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(rtt_track, const struct sock *sk, const int oldstate, const int newstate)
{
	track_owner(sk, oldstate, newstate);
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(rtt_sample, struct sock *sk, const struct sk_buff *skb)
{
	struct rtt_hist zero = {}, *hist;
	struct rtt_key key = {};
	struct sock_info *info;
	struct sock_ident id;
	struct tcp_sock *tp;
	__u32 srtt;

	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	sock_identify(sk, tp, &id);
	if (!sock_passes(&id))
		return 0;
	if (filter_pid) {
		info = sock_info_of(sk);
		if (!info || info->owner.pid != filter_pid)
			return 0;
	}
	srtt = tp->srtt_us >> 3; /* what the tracepoint reports as srtt, µs */
	if (by_raddr) {
		__builtin_memcpy(key.raddr, id.id.raddr, 16);
		key.family = id.id.family;
	}
	if (by_lport)
		key.lport = id.lport;
	hist = counter_for(&counts, &key, &zero);
	if (!hist)
		return 0;
	__sync_fetch_and_add(&hist->slots[log2_slot(in_ms ? srtt / 1000 : srtt) & (RTT_SLOTS - 1)], 1);
	__sync_fetch_and_add(&hist->count, 1);
	__sync_fetch_and_add(&hist->sum_us, srtt);
	return 0;
}
