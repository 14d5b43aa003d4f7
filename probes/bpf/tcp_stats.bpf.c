// SPDX-License-Identifier: GPL-2.0
/*
 * pxtop TCP health probe: tracepoints only (no kprobes).
 *
 *   tcp:tcp_retransmit_skb    a segment retransmitted (addresses and state from the event)
 *   skb:kfree_skb             a packet dropped, with the kernel's reason; kept only for TCP
 *                             segments (IPv4, or IPv6 without extension headers), whose
 *                             endpoints are read from the packet's own IP and TCP headers
 *   sock:inet_sock_set_state  a TCP socket changed state
 *
 * Every event goes to user space through one ring buffer (no wakeup per event, as in the
 * socket tracer); user space counts them per connection and flush window. These events are
 * rare next to syscalls, so a kernel-side aggregation map would save little and lose their
 * order and times.
 *
 * The process: retransmits and most drops happen in softirq context, where the current task
 * is whoever was interrupted. So the owner of each socket (tgid and process start) is
 * recorded where the owner itself is running: at connect (CLOSE -> SYN_SENT), listen
 * (-> LISTEN) and the exit of accept/accept4 (the accepted socket behind the returned fd).
 * Sockets the agent did not see being set up (older than the agent) have no owner: tgid 0.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "vmlinux_min.h"
#include "sock_fd.h"
#include "tcp_stats.h"

char LICENSE[] SEC("license") = "GPL";

/* A quarter of the ring's size: above this much unread data, wake the reader. Set by the loader. */
const volatile __u64 wakeup_bytes = (4 << 20) / 4;

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7
#define TCP_LISTEN 10

/*
 * Tracepoint contexts, laid out from /sys/kernel/tracing/events/.../format (kernel 6.18; the
 * layouts have been stable since 5.x, kfree_skb's rx_sk came in 6.11). The first 8 bytes are
 * the common fields.
 */
struct tcp_retransmit_skb_ctx {
	__u64 common;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
	int err;
};
_Static_assert(__builtin_offsetof(struct tcp_retransmit_skb_ctx, family) == 32, "layout");
_Static_assert(__builtin_offsetof(struct tcp_retransmit_skb_ctx, saddr_v6) == 42, "layout");
_Static_assert(__builtin_offsetof(struct tcp_retransmit_skb_ctx, err) == 76, "layout");

struct inet_sock_set_state_ctx {
	__u64 common;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};
_Static_assert(__builtin_offsetof(struct inet_sock_set_state_ctx, protocol) == 30, "layout");
_Static_assert(__builtin_offsetof(struct inet_sock_set_state_ctx, daddr_v6) == 56, "layout");

struct kfree_skb_ctx {
	__u64 common;
	void *skbaddr;
	void *location;
	void *rx_sk;
	unsigned short protocol; /* ntohs(skb->protocol) */
	unsigned int reason;     /* enum skb_drop_reason */
};
_Static_assert(__builtin_offsetof(struct kfree_skb_ctx, protocol) == 32, "layout");
_Static_assert(__builtin_offsetof(struct kfree_skb_ctx, reason) == 36, "layout");

struct sys_exit_ctx {
	__u64 common;
	__s64 nr;
	__s64 ret;
};

struct iphdr_min {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct ipv6hdr_min {
	__u8 vtc;
	__u8 flow[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct owner {
	__u64 start_boottime_ns;
	__u32 tgid;
	__u32 _pad;
};

/* The process that set up each socket: see the header comment. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock * */
	__type(value, struct owner);
} owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} tcp_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PXT_TCP_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tcp_counters SEC(".maps");

static __always_inline void count_lost(void)
{
	__u32 which = PXT_TCP_COUNTER_LOST;
	__u64 *c = bpf_map_lookup_elem(&tcp_counters, &which);
	if (c)
		*c += 1;
}

/* No wakeup per event: see the socket tracer's wakeup_flags. */
static __always_inline __u64 wakeup_flags(void)
{
	__u64 avail = bpf_ringbuf_query(&tcp_events, BPF_RB_AVAIL_DATA);
	__u64 size = sizeof(struct pxt_tcp_event);
	return avail <= wakeup_bytes && avail + size > wakeup_bytes ? BPF_RB_FORCE_WAKEUP
								    : BPF_RB_NO_WAKEUP;
}

static __always_inline void remember_owner(const void *sk)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct owner o = {
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.start_boottime_ns = BPF_CORE_READ(task, group_leader, start_boottime),
	};
	__u64 key = (__u64)sk;
	bpf_map_update_elem(&owners, &key, &o, BPF_ANY);
}

static __always_inline struct pxt_tcp_event *reserve(__u32 kind, const void *sk)
{
	struct pxt_tcp_event *e = bpf_ringbuf_reserve(&tcp_events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->ts = bpf_ktime_get_ns();
	e->sk = (__u64)sk;
	if (sk) {
		__u64 key = (__u64)sk;
		struct owner *o = bpf_map_lookup_elem(&owners, &key);
		if (o) {
			e->tgid = o->tgid;
			e->start_boottime_ns = o->start_boottime_ns;
		}
	}
	return e;
}

/* The connection's byte counters, for events on a full TCP socket. */
static __always_inline void read_bytes(struct pxt_tcp_event *e, const void *sk)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	e->tx_bytes = BPF_CORE_READ(tp, bytes_sent);
	e->rx_bytes = BPF_CORE_READ(tp, bytes_received);
}

/* Addresses as the tcp and sock tracepoints give them: source is the socket's local end. */
static __always_inline void copy_addrs(struct pxt_tcp_event *e, __u16 family, const __u8 *s4,
				       const __u8 *d4, const __u8 *s6, const __u8 *d6)
{
	e->family = family;
	if (family == AF_INET6) {
		__builtin_memcpy(e->laddr, s6, 16);
		__builtin_memcpy(e->raddr, d6, 16);
	} else {
		__builtin_memcpy(e->laddr, s4, 4);
		__builtin_memcpy(e->raddr, d4, 4);
	}
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcp_retransmit(struct tcp_retransmit_skb_ctx *ctx)
{
	if (ctx->family != AF_INET && ctx->family != AF_INET6)
		return 0;
	struct pxt_tcp_event *e = reserve(PXT_TCP_RETRANSMIT, ctx->skaddr);
	if (!e)
		return 0;
	copy_addrs(e, ctx->family, ctx->saddr, ctx->daddr, ctx->saddr_v6, ctx->daddr_v6);
	e->lport = ctx->sport;
	e->rport = ctx->dport;
	e->state = ctx->state;
	read_bytes(e, ctx->skaddr);
	bpf_ringbuf_submit(e, wakeup_flags());
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int tcp_set_state(struct inet_sock_set_state_ctx *ctx)
{
	if (ctx->protocol != IPPROTO_TCP || (ctx->family != AF_INET && ctx->family != AF_INET6))
		return 0;
	/* NB: these two transitions run in the owner's own syscall (connect, listen). */
	if ((ctx->oldstate == TCP_CLOSE && ctx->newstate == TCP_SYN_SENT) ||
	    ctx->newstate == TCP_LISTEN)
		remember_owner(ctx->skaddr);
	struct pxt_tcp_event *e = reserve(PXT_TCP_STATE_CHANGE, ctx->skaddr);
	if (e) {
		copy_addrs(e, ctx->family, ctx->saddr, ctx->daddr, ctx->saddr_v6, ctx->daddr_v6);
		e->lport = ctx->sport;
		e->rport = ctx->dport;
		e->old_state = ctx->oldstate;
		e->state = ctx->newstate;
		read_bytes(e, ctx->skaddr);
		bpf_ringbuf_submit(e, wakeup_flags());
	}
	if (ctx->newstate == TCP_CLOSE) {
		/* The socket is done with: its address may be reused by another process's. */
		__u64 key = (__u64)ctx->skaddr;
		bpf_map_delete_elem(&owners, &key);
	}
	return 0;
}

SEC("tracepoint/skb/kfree_skb")
int tcp_drop(struct kfree_skb_ctx *ctx)
{
	__u16 proto = ctx->protocol;
	if (proto != ETH_P_IP && proto != ETH_P_IPV6)
		return 0;
	struct sk_buff *skb = ctx->skbaddr;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (!head || nh == (__u16)~0U)
		return 0;
	__u16 family;
	__u32 thoff;
	__u8 src[16] = {}, dst[16] = {};
	if (proto == ETH_P_IP) {
		struct iphdr_min ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return 0;
		/* Not TCP, or a fragment other than the first: no TCP header here. */
		if ((ip.ver_ihl >> 4) != 4 || ip.protocol != IPPROTO_TCP ||
		    (bpf_ntohs(ip.frag_off) & 0x1fff))
			return 0;
		family = AF_INET;
		thoff = nh + (ip.ver_ihl & 0xf) * 4;
		__builtin_memcpy(src, ip.saddr, 4);
		__builtin_memcpy(dst, ip.daddr, 4);
	} else {
		struct ipv6hdr_min ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return 0;
		/* NB: extension headers are not walked; a TCP segment behind one is not seen. */
		if ((ip6.vtc >> 4) != 6 || ip6.nexthdr != IPPROTO_TCP)
			return 0;
		family = AF_INET6;
		thoff = nh + sizeof(ip6);
		__builtin_memcpy(src, ip6.saddr, 16);
		__builtin_memcpy(dst, ip6.daddr, 16);
	}
	__be16 ports[2];
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + thoff))
		return 0;
	__u16 sport = bpf_ntohs(ports[0]), dport = bpf_ntohs(ports[1]);

	/* The socket: the packet's owner (sending socket, or the one early demux found), or the
	 * one the receive path handed the drop. */
	struct sock *sk = BPF_CORE_READ(skb, sk);
	if (!sk)
		sk = ctx->rx_sk;
	/* Which end is local: a packet that came in on an interface was sent by the remote end,
	 * unless the socket's local port says otherwise. */
	int egress = BPF_CORE_READ(skb, skb_iif) == 0;
	int state = 0;
	if (sk) {
		__u16 num = BPF_CORE_READ(sk, __sk_common.skc_num);
		if (sport == num && dport != num)
			egress = 1;
		else if (dport == num && sport != num)
			egress = 0;
		state = BPF_CORE_READ(sk, __sk_common.skc_state);
	}
	struct pxt_tcp_event *e = reserve(PXT_TCP_DROP, sk);
	if (!e)
		return 0;
	e->family = family;
	e->reason = ctx->reason;
	e->state = state;
	if (egress) {
		__builtin_memcpy(e->laddr, src, 16);
		__builtin_memcpy(e->raddr, dst, 16);
		e->lport = sport;
		e->rport = dport;
	} else {
		__builtin_memcpy(e->laddr, dst, 16);
		__builtin_memcpy(e->raddr, src, 16);
		e->lport = dport;
		e->rport = sport;
	}
	bpf_ringbuf_submit(e, wakeup_flags());
	return 0;
}

/* The owner of an accepted socket: the process that accepted it. */
static __always_inline void on_accept(struct sys_exit_ctx *ctx)
{
	if (ctx->ret < 0)
		return;
	struct sock *sk = inet_sock_of((__s32)ctx->ret);
	if (sk)
		remember_owner(sk);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tcp_exit_accept(struct sys_exit_ctx *ctx)
{
	on_accept(ctx);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tcp_exit_accept4(struct sys_exit_ctx *ctx)
{
	on_accept(ctx);
	return 0;
}
