/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope states: one event per TCP state change. */
#include "common.bpf.h"
#include "states.h"

EXPORT_TYPE(struct state_event, state_event);

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(states_state_change, const struct sock *sk, const int oldstate, const int newstate)
{
	struct sock_info *info;
	struct state_event *e;
	struct tcp_sock *tp;
	bool adopted = false;
	struct sock_ident id;
	__u64 now;

	tp = bpf_skc_to_tcp_sock((void *)sk); /* NULL unless a full TCP socket */
	if (!tp)
		return 0;
	now = bpf_ktime_get_ns();
	info = sock_track(sk, tp, oldstate, newstate, now, &adopted);
	sock_identify(sk, tp, &id);
	if (!sock_passes(&id))
		goto out;
	if (filter_pid && (!info || info->owner.pid != filter_pid))
		goto out;
	if (adopted)
		count(preexisting);
	e = event_reserve(sizeof(*e));
	if (!e)
		goto out;
	e->ts_ns = now;
	e->delta_ns = info && info->changed_ns ? now - info->changed_ns : 0;
	e->skaddr = (__u64)sk;
	e->oldstate = oldstate;
	e->newstate = newstate;
	event_ids(&e->owner, &e->cpu, &e->sock, &e->lport, &e->rport, info, &id);
	event_submit(e);
out:
	if (info)
		info->changed_ns = now;
	return 0;
}
