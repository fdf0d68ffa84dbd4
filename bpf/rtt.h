/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_RTT_H
#define TCPSCOPE_RTT_H

#define RTT_SLOTS 32 /* log2 buckets: slot N holds [2^N, 2^(N+1)) µs or ms (slot 0 also 0) */

/* What a histogram is kept per: everything zero for one in total. */
struct rtt_key {
	__u8 raddr[16]; /* --by raddr */
	__u16 family;
	__u16 lport;    /* --by lport */
};

struct rtt_hist {
	__u64 slots[RTT_SLOTS];
	__u64 count;
	__u64 sum_us;
};

#endif
