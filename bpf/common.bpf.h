/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by every tcpscope kernel program: socket ownership tracking,
 * in-kernel filters, loss counters and the ring buffer with adaptive wakeups.
 */
#ifndef TCPSCOPE_COMMON_BPF_H
#define TCPSCOPE_COMMON_BPF_H

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "common.h"

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6

char LICENSE[] SEC("license") = "GPL";

/* Filters, written by user space before load (rodata). */
const volatile __u32 filter_pid = 0;
const volatile __u16 filter_family = 0;
const volatile __u32 filter_netns = 0;
const volatile __u8 filter_lports_on = 0;
const volatile __u8 filter_rports_on = 0;
const volatile __u8 filter_lports[8192] = {}; /* bitmap of 65536 ports */
const volatile __u8 filter_rports[8192] = {};
/* 0 when nothing shows owners or filters by them (--no-owner, counts without
 * -p): sockets are tracked without them, and track_owner() does nothing. */
const volatile __u8 follow_owners = 1;
/* Wake the consumer only once this much data waits; it polls on a timer. */
const volatile __u64 wakeup_bytes = 1 << 20;

/* What the running kernel's tracepoints carry beyond their oldest layout, as
 * user space finds it in tracefs. (A CO-RE check on a tracepoint's record
 * struct would do, but where the struct is missing libbpf then searches the
 * modules' BTF, which needs CAP_SYS_ADMIN.) */
const volatile __u8 retransmit_has_err = 0;   /* tcp:tcp_retransmit_skb's err (6.17) */
const volatile __u8 send_reset_has_reason = 0; /* tcp:tcp_send_reset's reason (6.10) */

/* Counters, read by user space (bss). */
struct counters counters = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by user space */
} events SEC(".maps");

/* Where an event goes when a reservation in events fails although the ring
 * has room: since 6.15 the ring's lock gives up when its holder stalls (a
 * descheduled vCPU, say). Rarely used, so never contended. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} spill SEC(".maps");

/*
 * Per-socket state, by the socket's address: made when a socket is born (or
 * adopted), removed when the kernel destroys it (tcp:tcp_destroy_sock), so an
 * address reused by a new socket never finds an old entry. A hash map, not
 * socket-local storage: on a connection-heavy host, storage made and freed
 * with every socket cost the traced workload several times as much.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the sockets there are */
	__uint(max_entries, 1 << 18);
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

/* The owners of listening sockets, by local address and port: what their
 * children's owner is until the children's own is seen. The next listen() on
 * an address replaces its entry; LRU makes room for new ones. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key); /* family 0: a dual-stack listener takes both */
	__type(value, struct owner_id);
} listener_owners SEC(".maps");

/* Put a type into the object's BTF, where user space reads its layout. */
#define EXPORT_TYPE(type, name) type *name##_btf __attribute__((unused))
EXPORT_TYPE(enum owner_kind, owner_kind);
EXPORT_TYPE(enum tcp_state, tcp_state);
EXPORT_TYPE(struct task_id, task_id);

#define count(field) __sync_fetch_and_add(&counters.field, 1)

static __always_inline bool port_in(const volatile __u8 *bitmap, __u16 port)
{
	__u32 byte = port >> 3;

	/* Older verifiers (6.1, 6.12) lose a port's bounds in a byte swap (ntohs):
	 * bound the index where the compiler cannot drop the mask. */
	barrier_var(byte);
	return bitmap[byte & 8191] & (1 << (port & 7));
}

static __always_inline void set_owner_current(struct owner_id *owner, __u8 kind)
{
	owner->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(owner->comm, sizeof(owner->comm));
	owner->kind = kind;
}

/*
 * Transitions that only happen inside a system call made on the socket:
 * connect(), listen(), and close() or shutdown() (ESTABLISHED->FIN_WAIT1,
 * CLOSE_WAIT->LAST_ACK). Every other transition may run in softirq or timer
 * context, where the current task is whoever happened to be on the CPU.
 */
static __always_inline bool in_owner_syscall(int newstate)
{
	return newstate == TCP_SYN_SENT || newstate == TCP_LISTEN ||
	       newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK;
}

/* The value for key in a counting map, created zeroed on first use; NULL
 * (and counted) when the map is full. */
static __always_inline void *counter_for(void *map, const void *key, const void *zero)
{
	void *value = bpf_map_lookup_elem(map, key);

	if (!value) {
		/* Another CPU may add it meanwhile: either way, look again. */
		bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
		value = bpf_map_lookup_elem(map, key);
	}
	if (!value)
		count(map_full);
	return value;
}

static __always_inline void *event_reserve(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		e = bpf_ringbuf_reserve(&spill, size, 0);
	if (!e)
		count(lost);
	return e;
}

static __always_inline void event_submit(void *e)
{
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
		BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;

	bpf_ringbuf_submit(e, flags);
}

/* A socket as the kernel's tracepoint reports it: addresses in 16 bytes
 * (IPv4 in the first four), the local port as the bound source port (0 until
 * connect() picks one), ports in host order. */
struct sock_ident {
	struct sock_id id;
	__u16 lport;
	__u16 rport;
};

/* Addresses, family, netns and remote port: what a socket and a request
 * socket (a SYN_RECV connection) both keep in their struct sock_common. All
 * of *s is written, padding too: map keys are made of it, byte for byte. */
static __always_inline void common_identify(const struct sock_common *skc, struct sock_ident *s)
{
	struct sock_id *id = &s->id;
	const __u32 *v6;

	__builtin_memset(s, 0, sizeof(*s));
	id->family = skc->skc_family;
	id->netns = skc->skc_net.net->ns.inum; /* direct loads: no helper calls */
	s->rport = bpf_ntohs(skc->skc_dport);
	if (id->family == AF_INET6) {
		v6 = skc->skc_v6_rcv_saddr.in6_u.u6_addr32;
		((__u32 *)id->laddr)[0] = v6[0];
		((__u32 *)id->laddr)[1] = v6[1];
		((__u32 *)id->laddr)[2] = v6[2];
		((__u32 *)id->laddr)[3] = v6[3];
		v6 = skc->skc_v6_daddr.in6_u.u6_addr32;
		((__u32 *)id->raddr)[0] = v6[0];
		((__u32 *)id->raddr)[1] = v6[1];
		((__u32 *)id->raddr)[2] = v6[2];
		((__u32 *)id->raddr)[3] = v6[3];
	} else {
		*(__u32 *)id->laddr = skc->skc_rcv_saddr;
		*(__u32 *)id->raddr = skc->skc_daddr;
	}
}

static __always_inline void sock_identify(const struct sock *sk, const struct tcp_sock *tp,
					  struct sock_ident *s)
{
	common_identify(&sk->__sk_common, s);
	s->lport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
}

/* The key of a listener's owner: the local half of a socket. The bound port
 * (inet_sport), because the kernel zeroes skc_num when it unbinds a closing
 * socket. */
static __always_inline void listener_key_of(const struct sock *sk, const struct tcp_sock *tp,
					    struct listener_key *key)
{
	struct sock_ident id;

	sock_identify(sk, tp, &id);
	__builtin_memset(key, 0, sizeof(*key));
	key->sock.netns = id.id.netns;
	__builtin_memcpy(key->sock.laddr, id.id.laddr, 16);
	key->lport = id.lport;
}

static __always_inline void listener_owner_set(const struct sock *sk, const struct tcp_sock *tp,
					       const struct owner_id *owner)
{
	struct listener_key key;

	listener_key_of(sk, tp, &key);
	if (bpf_map_update_elem(&listener_owners, &key, owner, BPF_ANY))
		count(map_full);
}

/* The owner of the listener that a socket's local address and port belong
 * to: one bound to that address, else one bound to any. */
static __always_inline struct owner_id *listener_owner_of(const struct sock *sk, const struct tcp_sock *tp)
{
	struct listener_key key;
	struct owner_id *owner;

	listener_key_of(sk, tp, &key);
	owner = bpf_map_lookup_elem(&listener_owners, &key);
	if (!owner) {
		__builtin_memset(key.sock.laddr, 0, 16);
		owner = bpf_map_lookup_elem(&listener_owners, &key);
	}
	return owner;
}

static __always_inline struct sock_info *sock_info_of(const void *sk)
{
	__u64 key = (__u64)sk;

	return bpf_map_lookup_elem(&socks, &key);
}

static __always_inline void sock_forget(const void *sk)
{
	__u64 key = (__u64)sk;

	bpf_map_delete_elem(&socks, &key);
}

/* A socket is born at CLOSE->SYN_SENT (connect), LISTEN->SYN_RECV (a
 * listener's child) or ->LISTEN. */
static __always_inline bool sock_born(int oldstate, int newstate)
{
	return newstate == TCP_SYN_SENT || newstate == TCP_LISTEN ||
	       (newstate == TCP_SYN_RECV && oldstate == TCP_LISTEN);
}

/* Whether sock_track() does more for a change than look the socket up: a
 * birth, or (when owners are followed) a change its owner makes. */
static __always_inline bool sock_track_changes(int oldstate, int newstate)
{
	return sock_born(oldstate, newstate) || (follow_owners && in_owner_syscall(newstate));
}

/* A new socket's owner: the task that connects or listens; for a listener's
 * child, its listener's (a stand-in). Unknown when no owners are followed. */
static __always_inline void owner_at_birth(const struct sock *sk, const struct tcp_sock *tp, int newstate,
					   struct owner_id *owner)
{
	struct owner_id *listener;

	if (!follow_owners)
		return;
	if (newstate == TCP_SYN_RECV) {
		/* The child is still a copy of its listener here (the kernel
		 * changes its state before it sets its own addresses): the
		 * lookup finds the listener's own key. */
		listener = listener_owner_of(sk, tp);
		if (listener) {
			*owner = *listener;
			owner->kind = OWNER_LISTENER;
		}
		return;
	}
	set_owner_current(owner, OWNER_TASK);
	if (newstate == TCP_LISTEN)
		listener_owner_set(sk, tp, owner);
}

/*
 * Follow a socket through a state change and return its tracked state, or
 * NULL when it is not tracked (see sock_born() for births). With adopted given, a
 * socket first seen later (it existed before tracing) is tracked from now on,
 * marked with born_ns == 0, and *adopted says so. A child carries its
 * listener's owner, marked as a stand-in, until its own owner is seen reading
 * from it or closing it.
 */
static __always_inline struct sock_info *
sock_track(const struct sock *sk, const struct tcp_sock *tp, int oldstate, int newstate, __u64 now,
	   bool *adopted)
{
	struct sock_info *info, fresh = {};
	__u64 key = (__u64)sk;

	if (sock_born(oldstate, newstate)) {
		fresh.born_ns = now;
		fresh.flags = newstate == TCP_SYN_SENT ? SOCK_ACTIVE : 0;
		owner_at_birth(sk, tp, newstate, &fresh.owner);
		if (bpf_map_update_elem(&socks, &key, &fresh, BPF_ANY)) {
			count(storage_failed);
			return NULL;
		}
		return bpf_map_lookup_elem(&socks, &key);
	}
	info = bpf_map_lookup_elem(&socks, &key);
	if (!info) {
		if (!adopted)
			return NULL;
		if (bpf_map_update_elem(&socks, &key, &fresh, BPF_NOEXIST) ||
		    !(info = bpf_map_lookup_elem(&socks, &key))) {
			count(storage_failed);
			return NULL;
		}
		*adopted = true;
	}
	if (follow_owners && in_owner_syscall(newstate) && info->owner.kind != OWNER_TASK)
		set_owner_current(&info->owner, OWNER_TASK);
	return info;
}

/* For the tools that only need to know sockets' owners from their state
 * changes: births and the changes made in process context. The others (most
 * of them) return before any helper call. No times are kept. */
static __always_inline void track_owner(const struct sock *sk, int oldstate, int newstate)
{
	struct tcp_sock *tp;

	if (!follow_owners || !sock_track_changes(oldstate, newstate))
		return;
	tp = bpf_skc_to_tcp_sock((void *)sk);
	if (tp)
		sock_track(sk, tp, oldstate, newstate, 0, NULL);
}

/* recvmsg() with data runs in the reading task: for a passive socket, the
 * process that accepted and serves it. */
SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(owner_reads, struct sock *sk)
{
	struct sock_info *info = sock_info_of(sk);

	if (info && info->owner.kind != OWNER_TASK)
		set_owner_current(&info->owner, OWNER_TASK);
	return 0;
}

/* The socket is going away: its address may be a new socket's next. A
 * lookup takes no lock, a delete does: connect tracks few sockets (and relies
 * on this only for handshakes it could not see end, e.g. an orphaned MPTCP
 * subflow closed in SYN_RECV). */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(forget_sock, struct sock *sk)
{
	if (sock_info_of(sk))
		sock_forget(sk);
	return 0;
}

/* The log2 bucket of a value: slot N holds [2^N, 2^(N+1)), slot 0 also 0. */
static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 slot = 0;

#pragma unroll
	for (int shift = 32; shift > 0; shift >>= 1) {
		if (v >= (1ULL << shift)) {
			v >>= shift;
			slot += shift;
		}
	}
	return slot;
}

/*
 * The socket's byte counters count sequence space: bytes_acked includes an
 * acked SYN (active opens only) and an acked FIN, bytes_received a received
 * FIN. Report payload only. A FIN is acked only after all payload, so the
 * unique payload sent bounds what bytes_acked can hold besides it.
 */
static __always_inline __u64 payload_acked(const struct tcp_sock *tp, const struct sock_info *info)
{
	__u64 acked = tp->bytes_acked, sent = tp->bytes_sent - tp->bytes_retrans;

	if ((info->flags & SOCK_ACTIVE) && acked)
		acked--; /* the SYN */
	return acked < sent ? acked : sent;
}

static __always_inline __u64 payload_received(const struct sock *sk, const struct tcp_sock *tp)
{
	/* tcp_fin() marks the socket SOCK_DONE when the peer's FIN arrives. */
	__u64 fin = (sk->__sk_common.skc_flags >> bpf_core_enum_value(enum sock_flags, SOCK_DONE)) & 1;

	return tp->bytes_received - fin;
}

/* A TCP packet's ends as it travels: its source as the local end, its
 * destination as the remote one (swap them for a packet received); the TCP
 * flags into *flags. False unless TCP over IP. */
static __always_inline bool packet_identify(const struct sk_buff *skb, struct sock_ident *id, __u8 *flags)
{
	unsigned char *head = skb->head, *l4;
	__u16 protocol = bpf_ntohs(skb->protocol);
	__u8 ip[40], tcp[14];

	__builtin_memset(id, 0, sizeof(*id));
	if (protocol == ETH_P_IP) {
		if (bpf_probe_read_kernel(ip, 20, head + skb->network_header) || ip[9] != IPPROTO_TCP)
			return false;
		id->id.family = AF_INET;
		__builtin_memcpy(id->id.laddr, ip + 12, 4);
		__builtin_memcpy(id->id.raddr, ip + 16, 4);
	} else if (protocol == ETH_P_IPV6) {
		if (bpf_probe_read_kernel(ip, 40, head + skb->network_header) || ip[6] != IPPROTO_TCP)
			return false;
		id->id.family = AF_INET6;
		__builtin_memcpy(id->id.laddr, ip + 8, 16);
		__builtin_memcpy(id->id.raddr, ip + 24, 16);
	} else {
		return false;
	}
	l4 = head + skb->transport_header;
	if (skb->transport_header == skb->network_header) /* not set yet */
		l4 += protocol == ETH_P_IP ? (ip[0] & 0xf) * 4 : 40;
	if (bpf_probe_read_kernel(tcp, sizeof(tcp), l4))
		return false;
	id->lport = (tcp[0] << 8) | tcp[1];
	id->rport = (tcp[2] << 8) | tcp[3];
	*flags = tcp[13];
	id->id.netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	if (!id->id.netns && BPF_CORE_READ(skb, sk))
		id->id.netns = BPF_CORE_READ(skb, sk, __sk_common.skc_net.net, ns.inum);
	return true;
}

/* The connection a RST is sent on: sk, a full socket or a request or time-wait
 * one (no inet_sock: its bound port is skc_num); with no socket, the packet the
 * RST answers, its destination the local end. */
static __always_inline bool reset_identify(const struct sock *sk, const struct sk_buff *skb,
					   struct sock_ident *id)
{
	struct tcp_sock *tp;
	__u8 addr[16], flags;
	__u16 port;

	if (sk) {
		tp = bpf_skc_to_tcp_sock((void *)sk);
		if (tp) {
			sock_identify(sk, tp, id);
		} else {
			common_identify(&sk->__sk_common, id);
			id->lport = sk->__sk_common.skc_num;
		}
		return true;
	}
	if (!skb || !packet_identify(skb, id, &flags))
		return false;
	__builtin_memcpy(addr, id->id.laddr, 16);
	__builtin_memcpy(id->id.laddr, id->id.raddr, 16);
	__builtin_memcpy(id->id.raddr, addr, 16);
	port = id->lport;
	id->lport = id->rport;
	id->rport = port;
	return true;
}

/* The identity groups every event ends with (see common.h): the owner as
 * tracked (unknown without state), the task on-CPU, the socket. */
static __always_inline void event_ids(struct owner_id *owner, struct task_id *cpu, struct sock_id *sock,
				      __u16 *lport, __u16 *rport, const struct sock_info *info,
				      const struct sock_ident *id)
{
	if (info)
		*owner = info->owner;
	else
		__builtin_memset(owner, 0, sizeof(*owner)); /* OWNER_UNKNOWN */
	cpu->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(cpu->comm, sizeof(cpu->comm));
	*sock = id->id;
	*lport = id->lport;
	*rport = id->rport;
}

/* The shared filters. The pid filter is checked by the caller, which knows
 * whose event it is. */
static __always_inline bool sock_passes(const struct sock_ident *s)
{
	if (filter_family && s->id.family != filter_family)
		return false;
	if (filter_lports_on && !port_in(filter_lports, s->lport))
		return false;
	if (filter_rports_on && !port_in(filter_rports, s->rport))
		return false;
	if (filter_netns && s->id.netns != filter_netns)
		return false;
	return true;
}

#endif
