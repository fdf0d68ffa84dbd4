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
	__u16 family, lport, rport;
	bool adopted = false;
	__u64 now;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	now = bpf_ktime_get_ns();
	info = sock_track(sk, oldstate, newstate, now, &adopted);
	family = sk->__sk_common.skc_family;
	sock_ports(sk, &lport, &rport);
	if (!sock_passes(sk, family, lport, rport))
		goto out;
	if (filter_pid && (!info || info->pid != filter_pid))
		goto out;
	if (adopted)
		count(preexisting);
	e = event_reserve(sizeof(*e));
	if (!e)
		goto out;
	e->ts_ns = now;
	e->skaddr = (__u64)sk;
	e->delta_ns = info && info->changed_ns ? now - info->changed_ns : 0;
	sock_addrs(sk, family, e->laddr, e->raddr);
	e->cpu_pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->cpu_comm, sizeof(e->cpu_comm));
	if (info) {
		e->pid = info->pid;
		e->owner = info->owner;
		__builtin_memcpy(e->comm, info->comm, sizeof(e->comm));
	} else {
		e->pid = 0;
		e->owner = OWNER_UNKNOWN;
		__builtin_memset(e->comm, 0, sizeof(e->comm));
	}
	e->netns = sock_netns(sk);
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->lport = lport;
	e->rport = rport;
	e->family = family;
	event_submit(e);
out:
	if (info)
		info->changed_ns = now;
	return 0;
}
