/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Events the TCP health probe hands to user space. Mirrored field for field by a #[repr(C)]
 * struct in probes/src/tcp_stats.rs, with size asserts on both sides: change one, change the
 * other.
 */
#pragma once

enum pxt_tcp_kind {
	PXT_TCP_RETRANSMIT = 1,   /* tcp:tcp_retransmit_skb */
	PXT_TCP_DROP = 2,         /* skb:kfree_skb of a TCP segment */
	PXT_TCP_STATE_CHANGE = 3, /* sock:inet_sock_set_state of a TCP socket */
};

enum pxt_tcp_counter {
	PXT_TCP_COUNTER_LOST = 0, /* events the ring buffer had no room for */
	PXT_TCP_COUNTER_MAX = 1,
};

struct pxt_tcp_event {
	__u64 ts;                /* bpf_ktime_get_ns (monotonic) */
	__u64 sk;                /* the socket's address (0: none known), a connection key */
	__u64 start_boottime_ns; /* owner process start, ns since boot (0: owner unknown) */
	__u64 tx_bytes;          /* tcp_sock.bytes_sent (retransmit, state change) */
	__u64 rx_bytes;          /* tcp_sock.bytes_received */
	__u32 kind;              /* enum pxt_tcp_kind */
	__u32 tgid;              /* owner process (0: unknown) */
	__u32 reason;            /* drop: enum skb_drop_reason */
	__s32 old_state;         /* state change: before (0 otherwise) */
	__s32 state;             /* after a change; the socket's state for the others (0: none) */
	__u16 family;            /* AF_INET or AF_INET6 */
	__u16 lport;             /* host order */
	__u16 rport;
	__u16 _pad;
	__u32 _pad2;
	__u8 laddr[16];          /* network order; 4 bytes used for IPv4 */
	__u8 raddr[16];
};
_Static_assert(sizeof(struct pxt_tcp_event) == 104, "pxt_tcp_event layout");
