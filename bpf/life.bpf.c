/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope life: one event per closed TCP session. */
#include "common.bpf.h"
#include "life.h"

EXPORT_TYPE(struct life_event, life_event);

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(life_state_change, const struct sock *sk, const int oldstate, const int newstate)
{
	struct sock_info *info;
	struct life_event *e;
	struct tcp_sock *tp;
	struct sock_ident id;
	__u64 now;

	if (!sock_track_changes(oldstate, newstate) && newstate != TCP_CLOSE)
		return 0; /* nothing to follow or report */
	tp = bpf_skc_to_tcp_sock((void *)sk); /* NULL unless a full TCP socket */
	if (!tp)
		return 0;
	now = bpf_ktime_get_ns();
	info = sock_track(sk, tp, oldstate, newstate, now, NULL);
	if (newstate != TCP_CLOSE || oldstate == TCP_LISTEN)
		return 0;
	sock_identify(sk, tp, &id);
	if (!sock_passes(&id))
		return 0;
	if (!info || !info->born_ns) {
		/* Its owner is unknown, so a pid filter cannot tell: not counted. */
		if (!filter_pid)
			count(preexisting);
		return 0;
	}
	if (filter_pid && info->owner.pid != filter_pid)
		return 0;
	e = event_reserve(sizeof(*e));
	if (!e)
		return 0;
	e->ts_ns = now;
	e->span_ns = now - info->born_ns;
	e->tx_bytes = payload_acked(tp, info);
	e->rx_bytes = payload_received(sk, tp);
	event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, info, &id);
	event_submit(e);
	info->born_ns = 0; /* this session is over */
	return 0;
}
