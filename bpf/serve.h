/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_SERVE_H
#define TCPSCOPE_SERVE_H

#define HIST_SLOTS 40 /* log2 buckets of µs: slot N holds [2^N, 2^(N+1)) µs, up to 12.7 days */
#define SOCK_SESSION 2 /* sock_info.flags: established, not closed yet */

/* The counters, each a series per label and port label. */
enum metric {
	METRIC_CONNECTS,          /* label: enum outcome */
	METRIC_ACCEPTS,
	METRIC_SESSIONS_CLOSED,
	METRIC_SESSION_TX_BYTES,
	METRIC_SESSION_RX_BYTES,
	METRIC_RETRANSMITTED_SEGMENTS,
	METRIC_SYNACK_RETRANSMITS,
	METRIC_RESETS_SENT,       /* label: the kernel's reason (enum sk_rst_reason; 0 before 6.10) */
	METRIC_RESETS_RECEIVED,
	METRIC_DROPS,             /* label: the kernel's reason (enum skb_drop_reason) */
};

enum outcome {
	OUTCOME_ESTABLISHED,
	OUTCOME_REFUSED,   /* ECONNREFUSED: the peer answered with a RST */
	OUTCOME_TIMED_OUT, /* ETIMEDOUT */
	OUTCOME_ABORTED,   /* closed by its owner before an answer */
	OUTCOME_FAILED,    /* any other error */
};

enum histogram_id {
	HISTOGRAM_CONNECT_LATENCY,
	HISTOGRAM_SESSION_DURATION,
	HISTOGRAM_RTT,
};

struct metric_key {
	__u16 metric; /* enum metric */
	__u16 label;
	__u16 port;   /* the port label: a listed port, 0 for any other */
	__u16 pad;
};

struct histogram_key {
	__u16 histogram; /* enum histogram_id */
	__u16 port;
};

struct histogram {
	__u64 slots[HIST_SLOTS];
	__u64 count; /* also the values beyond the last slot */
	__u64 sum_ns;
};

#endif
