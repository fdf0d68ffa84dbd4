/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types tcpscope reads, declared with preserve_access_index so
 * that clang emits CO-RE relocations: libbpf matches them by name against the
 * running kernel's BTF at load time. No kernel headers, no vmlinux.h.
 * Fields that sit inside anonymous unions in the kernel are declared flat;
 * libbpf finds them through the anonymous members.
 */
#ifndef TCPSCOPE_KERNEL_H
#define TCPSCOPE_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};

enum {
	BPF_F_NO_PREALLOC = 1U << 0,
};

enum {
	BPF_RB_NO_WAKEUP = 1ULL << 0,
	BPF_RB_FORCE_WAKEUP = 1ULL << 1,
};

enum {
	BPF_RB_AVAIL_DATA = 0,
	BPF_RB_RING_SIZE = 1,
};

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} __attribute__((preserve_access_index)) possible_net_t;

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	unsigned long skc_flags;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct socket;

struct sock {
	struct sock_common __sk_common;
	struct socket *sk_socket; /* NULL until accept() hands the socket to a process */
	__u16 sk_type;
	__u16 sk_protocol;
	int sk_err;
	int sk_err_soft;
	__u32 sk_ack_backlog;
	__u32 sk_max_ack_backlog;
	unsigned long sk_pacing_rate; /* bytes per second */
} __attribute__((preserve_access_index));

struct inet_sock {
	__be16 inet_sport;
} __attribute__((preserve_access_index));

struct inet_connection_sock {
	struct inet_sock icsk_inet;
	__u8 icsk_ca_state: 5; /* enum tcp_ca_state; read with BPF_CORE_READ_BITFIELD_PROBED */
} __attribute__((preserve_access_index));

/* Congestion-control states (include/net/tcp.h; the same values since 2.6). */
enum tcp_ca_state {
	TCP_CA_Open = 0,
	TCP_CA_Disorder = 1,
	TCP_CA_CWR = 2,
	TCP_CA_Recovery = 3,
	TCP_CA_Loss = 4,
};

enum sock_flags {
	SOCK_DEAD = 0,
	SOCK_DONE = 1,
};

struct tcp_sock {
	struct inet_connection_sock inet_conn;
	__u64 bytes_received;
	__u64 bytes_acked;
	__u64 bytes_sent;
	__u64 bytes_retrans;
	/* The sending state tcpscope probe samples (as tcp_info reports it). */
	__u32 snd_cwnd;
	__u32 snd_ssthresh;
	__u32 srtt_us;  /* smoothed RTT << 3 */
	__u32 mdev_us;  /* its mean deviation << 2 */
	__u32 snd_wnd;
	__u32 rcv_wnd;
	__u32 snd_nxt;
	__u32 snd_una;
	__u32 packets_out;
	__u32 retrans_out;
	__u32 lost_out;
	__u32 sacked_out;
	__u32 mss_cache;
	__u32 rate_delivered;
	__u32 rate_interval_us;
	bool is_mptcp; /* an MPTCP subflow (CONFIG_MPTCP) */
} __attribute__((preserve_access_index));

/* An MPTCP socket; its first subflow is the TCP socket that listens. */
struct mptcp_sock {
	struct sock *first;
} __attribute__((preserve_access_index));

struct request_sock {
	struct sock_common __req_common;
	__u8 num_retrans;
} __attribute__((preserve_access_index));

struct net_device {
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	char cb[48];
	unsigned char *head;
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
} __attribute__((preserve_access_index));

/* skb->cb as TCP uses it */
struct tcp_skb_cb {
	__u32 seq;
	__u16 tcp_gso_segs;  /* tcp_skb_pcount(): in an anonymous union */
} __attribute__((preserve_access_index));

/* From a task to the socket behind one of its file descriptors. */
struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));

struct file {
	void *private_data;
} __attribute__((preserve_access_index));

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
	struct files_struct *files;
} __attribute__((preserve_access_index));

#endif
