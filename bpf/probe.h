/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_PROBE_H
#define TCPSCOPE_PROBE_H

/* A sample of a flow's sending state, when a segment arrives (tcp:tcp_probe),
 * before the kernel processes it. */
struct probe_event {
	__u64 ts_ns;
	__u64 pacing_rate;      /* bytes per second (sk_pacing_rate) */
	__u32 snd_cwnd;         /* congestion window, segments */
	__u32 ssthresh;         /* as tcp_probe reports it (tcp_current_ssthresh), segments;
	                         * 0x7fffffff: not set yet */
	__u32 srtt_us;          /* smoothed RTT, µs */
	__u32 rttvar_us;        /* its mean deviation, µs (as tcp_info's rttvar) */
	__u32 snd_wnd;          /* bytes the peer lets this end send */
	__u32 rcv_wnd;          /* bytes this end lets the peer send */
	__u32 in_flight;        /* bytes sent and not yet acknowledged (snd_nxt - snd_una) */
	__u32 packets_out;      /* segments sent and not yet acknowledged */
	__u32 retrans_out;      /* of them, retransmitted */
	__u32 lost_out;         /* of them, thought lost */
	__u32 mss;              /* bytes (mss_cache) */
	__u32 rate_delivered;   /* the latest delivery-rate sample: segments ... */
	__u32 rate_interval_us; /* ... delivered in this many µs */
	__u8 ca_state;          /* enum tcp_ca_state */
	struct owner_id owner;
	struct task_id cpu;
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
};

#endif
