/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope cong: time in each congestion state per flow, from tcp:tcp_cong_state_set. */
#include "common.bpf.h"
#include "cong.h"

EXPORT_TYPE(struct cong_event, cong_event);
EXPORT_TYPE(struct cong_key, cong_key);
EXPORT_TYPE(struct cong_flow, cong_flow);
EXPORT_TYPE(enum tcp_ca_state, tcp_ca_state);

const volatile __u8 events_only = 0; /* -e: an event per change, no accounting */

/* When each established socket (that passes the filters) began: where its
 * time in the open state starts. With -e: when it last changed state. Hash
 * maps, not LRU: when one is full, what is not accounted is counted (map_full),
 * where an LRU would drop the oldest entries without a word. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} established SEC(".maps");

/* The flows that changed state at least once. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct cong_key);
	__type(value, struct cong_flow);
} counts SEC(".maps");

static __always_inline bool flow_passes(const struct sock *sk, struct tcp_sock **tp, struct sock_ident *id)
{
	*tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!*tp)
		return false;
	sock_identify(sk, *tp, id);
	return sock_passes(id);
}

/* The time since the last change goes to the state the flow was in. (A
 * switch: an array index from a map value is more than older verifiers
 * can bound.) */
static __always_inline void account(struct cong_flow *flow, __u64 now)
{
	__u64 spent = now - flow->changed_ns;

	switch (flow->state) {
	case TCP_CA_Open: flow->ns[0] += spent; break;
	case TCP_CA_Disorder: flow->ns[1] += spent; break;
	case TCP_CA_CWR: flow->ns[2] += spent; break;
	case TCP_CA_Recovery: flow->ns[3] += spent; break;
	case TCP_CA_Loss: flow->ns[4] += spent; break;
	}
	flow->changed_ns = now;
}

static __always_inline __u8 ca_state_of(struct tcp_sock *tp)
{
	return BPF_CORE_READ_BITFIELD_PROBED(&tp->inet_conn, icsk_ca_state);
}

/* Owners, as for retrans; and when a flow begins and ends. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(cong_track, const struct sock *sk, const int oldstate, const int newstate)
{
	struct cong_key key = { .sk = (__u64)sk };
	struct cong_flow *flow;
	struct sock_ident id;
	struct tcp_sock *tp;
	__u64 now, *since;

	track_owner(sk, oldstate, newstate);
	if (newstate == TCP_ESTABLISHED) {
		if (!flow_passes(sk, &tp, &id))
			return 0;
		now = bpf_ktime_get_ns();
		if (bpf_map_update_elem(&established, &key.sk, &now, BPF_ANY))
			count(map_full);
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;
	since = bpf_map_lookup_elem(&established, &key.sk);
	if (!since)
		return 0;
	key.since_ns = *since;
	bpf_map_delete_elem(&established, &key.sk);
	if (events_only)
		return 0;
	flow = bpf_map_lookup_elem(&counts, &key);
	if (flow && !flow->closed) {
		account(flow, bpf_ktime_get_ns());
		flow->closed = 1;
	}
	return 0;
}

SEC("tp_btf/tcp_cong_state_set")
int BPF_PROG(cong_change, struct sock *sk, const __u8 ca_state)
{
	struct cong_key key = { .sk = (__u64)sk };
	struct cong_flow fresh = {}, *flow;
	struct cong_event *e;
	struct sock_info *info;
	struct sock_ident id;
	struct tcp_sock *tp;
	bool in_flow = true;
	__u64 now, *since;
	__u8 old;

	if (!flow_passes(sk, &tp, &id))
		return 0;
	info = sock_info_of(sk);
	if (filter_pid && (!info || info->owner.pid != filter_pid))
		return 0;
	now = bpf_ktime_get_ns();
	old = ca_state_of(tp); /* the kernel sets the new state after the tracepoint */
	since = bpf_map_lookup_elem(&established, &key.sk);
	/* A flow runs from the handshake's end to the close: the kernel also sets
	 * the state of sockets still in their handshake, and resets closed ones'. */
	switch (sk->__sk_common.skc_state) {
	case TCP_SYN_SENT:
	case TCP_SYN_RECV:
	case TCP_CLOSE:
		in_flow = false;
	}
	if (events_only) {
		e = event_reserve(sizeof(*e));
		if (!e)
			return 0;
		e->ts_ns = now;
		e->in_old_ns = since ? now - *since : 0;
		if (since)
			*since = now;
		else if (in_flow && bpf_map_update_elem(&established, &key.sk, &now, BPF_ANY))
			count(map_full);
		e->old_state = old;
		e->new_state = ca_state;
		e->tcp_state = sk->__sk_common.skc_state;
		event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, info, &id);
		event_submit(e);
		return 0;
	}
	if (!in_flow)
		return 0;
	if (!since) {
		/* Established before tracing: accounted from now on. */
		if (bpf_map_update_elem(&established, &key.sk, &now, BPF_ANY)) {
			count(map_full);
			return 0;
		}
		key.since_ns = now;
	} else {
		key.since_ns = *since;
	}
	flow = bpf_map_lookup_elem(&counts, &key);
	if (!flow) {
		fresh.changed_ns = key.since_ns;
		fresh.state = old;
		fresh.sock = id.id;
		fresh.lport = id.lport;
		fresh.rport = id.rport;
		if (bpf_map_update_elem(&counts, &key, &fresh, BPF_NOEXIST) ||
		    !(flow = bpf_map_lookup_elem(&counts, &key))) {
			count(map_full);
			return 0;
		}
	}
	account(flow, now);
	flow->state = ca_state;
	flow->changes++;
	return 0;
}
