/* SPDX-License-Identifier: GPL-2.0 */
/* tcpscope top: bytes sent and received per socket and process (tcptop), from
 * sock:sock_send_length and sock:sock_recv_length (Linux 6.3), which fire in the
 * sending or receiving process itself. */
#include "common.bpf.h"
#include "top.h"

EXPORT_TYPE(struct top_key, top_key);
EXPORT_TYPE(struct top_flow, top_flow);

#define MSG_PEEK 0x2
#define MSG_ERRQUEUE 0x2000

/* Running totals, read (and, for closed sockets, deleted) by user space at
 * every interval: nothing is lost between two reads. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct top_key);
	__type(value, struct top_flow);
} counts SEC(".maps");

/* The sockets that have entries in counts, by cookie: 1 once closed, when
 * their entries are final and user space may delete them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} closed SEC(".maps");

static __always_inline void account(struct sock *sk, int bytes, bool sent)
{
	struct top_key key = {};
	struct top_flow *flow;
	struct sock_ident id;
	struct tcp_sock *tp;
	__u8 open = 0;

	if (bytes <= 0)
		return;
	tp = bpf_skc_to_tcp_sock(sk); /* NULL for other protocols (UDP, MPTCP, ...) */
	if (!tp)
		return;
	key.pid = bpf_get_current_pid_tgid() >> 32;
	if (filter_pid && key.pid != filter_pid)
		return;
	sock_identify(sk, tp, &id);
	if (!sock_passes(&id))
		return;
	key.cookie = bpf_get_socket_cookie(sk);
	flow = bpf_map_lookup_elem(&counts, &key);
	if (!flow) {
		struct top_flow zero = {};

		zero.task.pid = key.pid;
		bpf_get_current_comm(zero.task.comm, sizeof(zero.task.comm));
		zero.sock = id.id;
		zero.lport = id.lport;
		zero.rport = id.rport;
		bpf_map_update_elem(&closed, &key.cookie, &open, BPF_NOEXIST);
		bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
		flow = bpf_map_lookup_elem(&counts, &key);
		if (!flow) {
			count(map_full);
			return;
		}
	}
	if (sent) {
		__sync_fetch_and_add(&flow->tx_bytes, bytes);
		__sync_fetch_and_add(&flow->sends, 1);
	} else {
		__sync_fetch_and_add(&flow->rx_bytes, bytes);
		__sync_fetch_and_add(&flow->recvs, 1);
	}
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(top_send, struct sock *sk, int ret, int flags)
{
	account(sk, ret, true);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(top_recv, struct sock *sk, int ret, int flags)
{
	if (!(flags & (MSG_PEEK | MSG_ERRQUEUE))) /* a peek moves nothing */
		account(sk, ret, false);
	return 0;
}

/* A closed socket moves no more bytes: its entries are final. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(top_close, struct sock *sk, const int oldstate, const int newstate)
{
	__u64 cookie;
	__u8 *done;

	if (newstate != TCP_CLOSE)
		return 0;
	cookie = bpf_get_socket_cookie(sk);
	done = bpf_map_lookup_elem(&closed, &cookie);
	if (done)
		*done = 1;
	return 0;
}
