/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TCPSCOPE_RETRANS_H
#define TCPSCOPE_RETRANS_H

/* One retransmitted (or, since 6.17, failed to retransmit) segment. */
struct retrans_event {
	__u64 ts_ns;
	__s32 err;    /* 0: sent; else the negative errno of a failed retransmit */
	__s32 state;  /* the socket's TCP state */
	__u32 seq;    /* the segment's first sequence number */
	__u32 segs;   /* the segments it carried (more than 1 with TSO/GSO) */
	struct owner_id owner;
	struct task_id cpu;
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
};

/* Per-flow counts, for -c. */
struct flow_key {
	struct sock_id sock;
	__u16 lport;
	__u16 rport;
};

struct flow_count {
	__u64 sent;
	__u64 failed;
	__u64 segments;  /* carried by the retransmits sent */
};

#endif
