// SPDX-License-Identifier: GPL-2.0
/*
 * pxtop socket tracer: syscall tracepoints only (no kprobes, which this project must not
 * require). Only the exit tracepoints of the data syscalls are used: the arguments come from
 * the registers the task entered with, and the return value says what was really moved
 * (sys_enter_close is the one enter tracepoint). Every inet socket connection is keyed by (tgid, fd) and carries a generation (its
 * open timestamp) so fd reuse never mixes two connections.
 *
 * Events go through one ring buffer: OPEN (addresses, role, process), DATA (bytes moved, capped
 * per event with the true size kept, plus the stream position so user space sees gaps), and
 * CLOSE. Reservation failures and truncations are counted in `counters`, never silent.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "vmlinux_min.h"
#include "socket_trace.h"
#include "sock_fd.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load. */
const volatile __u32 self_tgid = 0;
const volatile __u32 capture_bytes = PXT_MAX_CAPTURE;
/*
 * Capture no data on the client end of loopback connections. Both ends of such a connection
 * are on this host and both are traced, and user space keeps only the server's record of each
 * request (Pixie's rule), so the client's copy of every byte would be read, shipped and
 * parsed only to be dropped. Open/close events and byte counts are kept. Set from the agent's
 * client-side setting.
 */
const volatile __u32 skip_loopback_clients = 1;
/* A quarter of the ring's size: above this much unread data, wake the reader. */
const volatile __u64 wakeup_bytes = (32 << 20) / 4;

#define AF_INET 2
#define AF_INET6 10
#define EINPROGRESS 115
#define MAX_IOV 64

struct conn_info {
	__u64 gen;
	__u64 wr_bytes;
	__u64 rd_bytes;
	__u64 tls_wr; /* plaintext positions, for connections carrying TLS */
	__u64 tls_rd;
	__u32 role;
	__u32 flags;
};

/* The client end of a loopback connection: see `skip_loopback_clients`. */
#define CONN_NO_DATA 1
/* A TLS library call used this connection: its syscalls carry ciphertext, not worth sending. */
#define CONN_TLS 2

enum op {
	OP_RW = 1,     /* read/write/recvfrom/sendto: buf + len */
	OP_IOV = 2,    /* readv/writev: iov + iovcnt */
	OP_MSG = 3,    /* sendmsg/recvmsg: msghdr */
	OP_CONNECT = 4,
	OP_ACCEPT = 5,
	OP_SENDFILE = 6,
};

struct args {
	__u64 enter_ts; /* 0: not taken (see stash); the exit stamp stands in */
	__u64 ptr;      /* buf, iov or msghdr */
	__u64 len;      /* count or iovcnt */
	__s32 fd;
	__u32 op;       /* 0: the slot is empty */
	__u32 dir;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, __u64); /* tgid << 32 | fd */
	__type(value, struct conn_info);
} conns SEC(".maps");


struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 32 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pxt_data_event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PXT_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * TLS: a call into the TLS library (SSL_read/SSL_write and the _ex variants) in progress, per
 * thread, from its uprobe to its uretprobe. The call's own socket syscalls, seen by the exit
 * tracepoints while it is in progress, tell which socket it uses (`fd`): no struct offsets
 * of any OpenSSL version are needed, and custom BIOs (curl's) work as long as they end in a
 * syscall on the socket.
 */
struct ssl_call {
	__u64 ssl;
	__u64 buf;
	__u64 out_len; /* _ex variants: where the library writes the bytes moved */
	__s32 fd;      /* -1 until one of the call's syscalls is seen */
	__u32 dir;
	__u32 ex;      /* which variant: a nested call of the other variant is not this one */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct ssl_call);
} ssl_calls SEC(".maps");

/* The socket of each TLS session (tgid, SSL *) as last seen: a read served from the library's
 * buffer makes no syscall, and then this tells the socket. */
struct ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ssl_key);
	__type(value, __s32);
} ssl_fds SEC(".maps");

/*
 * TLS calls in progress on the host (approximately: a call whose uretprobe never fires leaves
 * it high, which costs only speed). NB: while zero, the syscall path skips the ssl_calls
 * lookup, so hosts without TLS traffic pay one load per captured syscall, not a hash lookup.
 */
__u64 ssl_inflight = 0;

static __always_inline void count(__u32 which, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += n;
}

/*
 * NB: no wakeup per event. User space drains on a short timer; a wakeup per syscall (an
 * irq_work self-IPI, ~3 us in a VM) would cost more than everything else here. Only the record
 * that takes the ring past `wakeup_bytes` of unread data wakes the reader, once: a reader that
 * is behind is already awake, and forcing a wakeup on every record above the mark measured
 * 4 us per syscall.
 */
static __always_inline __u64 wakeup_flags(__u64 size)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	return avail <= wakeup_bytes && avail + size > wakeup_bytes ? BPF_RB_FORCE_WAKEUP
								    : BPF_RB_NO_WAKEUP;
}

static __always_inline __u64 conn_key(__u32 tgid, __s32 fd)
{
	return ((__u64)tgid << 32) | (__u32)fd;
}

/* Whether the socket's peer is a loopback address (127/8, ::1, ::ffff:127.0.0.0/104). */
static __always_inline int loopback_peer(struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET)
		return (BPF_CORE_READ(sk, __sk_common.skc_daddr) & 0xff) == 127;
	__u8 a[16] = {};
	BPF_CORE_READ_INTO(&a, sk, __sk_common.skc_v6_daddr);
	__u64 hi = 0;
	__builtin_memcpy(&hi, a, 8);
	if (hi != 0 || a[8] || a[9])
		return 0;
	if (a[10] == 0xff && a[11] == 0xff)
		return a[12] == 127;
	return !a[10] && !a[11] && !a[12] && !a[13] && !a[14] && a[15] == 1;
}

static __always_inline void emit_open(__u32 tgid, __s32 fd, struct conn_info *ci, struct sock *sk)
{
	struct pxt_open_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(PXT_COUNTER_LOST, 1);
		return;
	}
	e->kind = PXT_EV_OPEN;
	e->tgid = tgid;
	e->fd = fd;
	e->role = ci->role;
	e->gen = ci->gen;
	e->ts = ci->gen;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	e->start_boottime_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->_pad = 0;
	__builtin_memset(e->laddr, 0, sizeof(e->laddr));
	__builtin_memset(e->raddr, 0, sizeof(e->raddr));
	if (e->family == AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->laddr, &l, 4);
		__builtin_memcpy(e->raddr, &r, 4);
	} else {
		BPF_CORE_READ_INTO(&e->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e->raddr, sk, __sk_common.skc_v6_daddr);
	}
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, wakeup_flags(sizeof(*e)));
}

/*
 * The connection for (tgid, fd): the tracked one, or a new one if fd is an inet socket we had
 * not seen (opened before the agent started, or by a syscall we do not trace).
 */
static __always_inline struct conn_info *conn_lookup(__u32 tgid, __s32 fd, __u32 role, int create)
{
	__u64 key = conn_key(tgid, fd);
	struct conn_info *ci = bpf_map_lookup_elem(&conns, &key);
	if (ci && !create)
		return ci;
	struct sock *sk = inet_sock_of(fd);
	if (!sk)
		return NULL;
	struct conn_info fresh = {
		.gen = bpf_ktime_get_ns(),
		.role = role,
		.flags = role == PXT_ROLE_CLIENT && skip_loopback_clients && loopback_peer(sk)
				 ? CONN_NO_DATA
				 : 0,
	};
	bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY);
	ci = bpf_map_lookup_elem(&conns, &key);
	if (ci)
		emit_open(tgid, fd, ci, sk);
	return ci;
}

static __always_inline int is_self(__u64 pid_tgid)
{
	return (__u32)(pid_tgid >> 32) == self_tgid;
}

/*
 * The syscall's arguments, read at exit from the registers the task entered with (the kernel
 * saved them in pt_regs at entry and leaves them be; only the return value register changes),
 * so no enter tracepoint is needed at all: a second tracepoint per syscall, plus the per-thread
 * slot its arguments waited in, cost more than the rest of the capture path (BENCHMARKS.md).
 */
static __always_inline int syscall_args(struct args *a, __u32 op, __u32 dir, int len_arg)
{
	/*
	 * NB: plain loads through the BTF-typed pointer (the verifier turns them into faulting
	 * loads), not bpf_probe_read_kernel: the helper call cost ~120 ns per syscall here.
	 */
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs)
		return 0;
#if defined(__TARGET_ARCH_x86)
	__u64 arg0 = regs->di, arg1 = regs->si, arg2 = regs->dx, arg3 = regs->r10;
#elif defined(__TARGET_ARCH_arm64)
	/* x0 holds the return value by now; the kernel kept argument 0 in orig_x0. */
	__u64 arg0 = regs->orig_x0, arg1 = regs->regs[1], arg2 = regs->regs[2],
	      arg3 = regs->regs[3];
#else
#error "pxtop's probes support x86_64 and arm64"
#endif
	a->enter_ts = 0;
	a->fd = (__s32)arg0;
	a->ptr = arg1;
	a->len = len_arg == 3 ? arg3 : arg2;
	a->op = op;
	a->dir = dir;
	a->_pad = 0;
	return 1;
}

/* Emits one DATA event for `size` bytes at user address `buf` (NULL: a gap, nothing copied). */
static __always_inline void emit_data(__u32 tgid, struct args *a, struct conn_info *ci, __u32 dir,
				      __u64 pos, const void *buf, __u64 size, __u64 exit_ts,
				      __u16 flags)
{
	__u32 zero = 0;
	struct pxt_data_event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return;
	__u64 n = size;
	__u32 cap = capture_bytes;
	if (cap > PXT_MAX_CAPTURE)
		cap = PXT_MAX_CAPTURE;
	if (n > cap)
		n = cap;
	if (!buf)
		n = 0;
	e->hdr.kind = PXT_EV_DATA;
	e->hdr.tgid = tgid;
	e->hdr.fd = a->fd;
	e->hdr.dir = dir;
	e->hdr.gen = ci->gen;
	e->hdr.enter_ts = a->enter_ts;
	e->hdr.exit_ts = exit_ts;
	e->hdr.pos = pos;
	e->hdr.size = size;
	e->hdr.captured = 0;
	e->hdr.role = ci->role;
	e->hdr.flags = flags;
	/* NB: a 64-bit local keeps the verifier's bound on the output size. */
	__u64 got = 0;
	if (n > 0 && n <= PXT_MAX_CAPTURE && bpf_probe_read_user(e->data, n, buf) == 0)
		got = n;
	e->hdr.captured = got;
	if (got < size && buf)
		count(PXT_COUNTER_TRUNCATED, 1);
	__u64 total = sizeof(e->hdr) + got;
	if (total > sizeof(*e))
		return;
	if (bpf_ringbuf_output(&events, e, total, wakeup_flags(total)) != 0) {
		count(PXT_COUNTER_LOST, 1);
		return;
	}
}

/* State of one iovec walk, on the caller's stack; plain values only, so the loop body is
 * verified once as a bpf_loop callback instead of once per unrolled iteration (16 unrolled
 * copies of emit_data exceed the verifier's 1M-instruction budget). */
struct iov_walk {
	struct args a;
	struct conn_info ci;
	const struct iovec *iov;
	__u64 pos;
	__u64 total;
	__u64 done;
	__u64 exit_ts;
	__u32 tgid;
	__u32 dir;
};

static long iov_step(__u64 i, void *arg)
{
	struct iov_walk *w = arg;
	if (w->done >= w->total)
		return 1;
	struct iovec v = {};
	if (bpf_probe_read_user(&v, sizeof(v), &w->iov[i]) != 0)
		return 1;
	__u64 len = v.iov_len;
	if (len > w->total - w->done)
		len = w->total - w->done;
	if (len == 0)
		return 0;
	emit_data(w->tgid, &w->a, &w->ci, w->dir, w->pos + w->done, v.iov_base, len, w->exit_ts,
		  0);
	w->done += len;
	return 0;
}

static __always_inline void emit_iov(__u32 tgid, struct args *a, struct conn_info *ci, __u32 dir,
				     __u64 pos, const struct iovec *iov, __u64 iovcnt, __u64 total,
				     __u64 exit_ts)
{
	struct iov_walk w = {
		.a = *a,
		.ci = *ci,
		.iov = iov,
		.pos = pos,
		.total = total,
		.done = 0,
		.exit_ts = exit_ts,
		.tgid = tgid,
		.dir = dir,
	};
	__u32 n = iovcnt > MAX_IOV ? MAX_IOV : (__u32)iovcnt;
	bpf_loop(n, iov_step, &w, 0);
	if (w.done < total) /* more iovecs than we walk: keep positions true with a gap */
		emit_data(tgid, a, ci, dir, pos + w.done, NULL, total - w.done, exit_ts, 0);
}

/*
 * One syscall's exit. NB: `op` and `dir` are compile-time constants per tracepoint, so each
 * program keeps one branch.
 */
static __always_inline void on_exit(long ret, __u32 op, __u32 dir, int len_arg)
{
	/* Failed and empty calls (EAGAIN reads above all) cost only this test. */
	if (op == OP_CONNECT) {
		if (ret != 0 && ret != -EINPROGRESS)
			return;
	} else if (ret < 0 || (op != OP_ACCEPT && ret == 0)) {
		return;
	}
	__u64 id = bpf_get_current_pid_tgid();
	if (is_self(id))
		return;
	struct args copy;
	if (!syscall_args(&copy, op, dir, len_arg))
		return;
	__u32 tgid = id >> 32;

	if (op == OP_CONNECT) {
		if (ret == 0 || ret == -EINPROGRESS)
			conn_lookup(tgid, copy.fd, PXT_ROLE_CLIENT, 1);
		return;
	}
	if (op == OP_ACCEPT) {
		if (ret >= 0)
			conn_lookup(tgid, (__s32)ret, PXT_ROLE_SERVER, 1);
		return;
	}
	if (ret <= 0)
		return;
	struct conn_info *ci = conn_lookup(tgid, copy.fd, PXT_ROLE_UNKNOWN, 0);
	if (!ci)
		return;
	__u64 *ctr = dir == PXT_DIR_EGRESS ? &ci->wr_bytes : &ci->rd_bytes;
	__u64 pos = __sync_fetch_and_add(ctr, (__u64)ret);
	if (ssl_inflight) {
		struct ssl_call *call = bpf_map_lookup_elem(&ssl_calls, &id);
		if (call) {
			/* Ciphertext of a TLS call: tell the call its socket, keep the bytes. */
			call->fd = copy.fd;
			ci->flags |= CONN_TLS;
		}
	}
	if (ci->flags & (CONN_NO_DATA | CONN_TLS))
		return;
	/* NB: the clock is read only for events that are sent (~70 ns a read here). */
	__u64 exit_ts = bpf_ktime_get_ns();
	copy.enter_ts = exit_ts;

	switch (op) {
	case OP_RW:
		emit_data(tgid, &copy, ci, dir, pos, (const void *)copy.ptr, ret, exit_ts, 0);
		break;
	case OP_IOV:
		emit_iov(tgid, &copy, ci, dir, pos, (const struct iovec *)copy.ptr, copy.len, ret,
			 exit_ts);
		break;
	case OP_MSG: {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (const void *)copy.ptr) != 0) {
			emit_data(tgid, &copy, ci, dir, pos, NULL, ret, exit_ts, 0);
			break;
		}
		emit_iov(tgid, &copy, ci, dir, pos, m.msg_iov, m.msg_iovlen, ret, exit_ts);
		break;
	}
	case OP_SENDFILE:
		/* The bytes never pass through user memory: a gap of the true size. */
		emit_data(tgid, &copy, ci, dir, pos, NULL, ret, exit_ts, 0);
		break;
	}
}

static __always_inline void on_close(__s32 fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (is_self(id))
		return;
	__u64 key = conn_key(id >> 32, fd);
	struct conn_info *ci = bpf_map_lookup_elem(&conns, &key);
	if (!ci)
		return;
	struct pxt_close_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->kind = PXT_EV_CLOSE;
		e->tgid = id >> 32;
		e->fd = fd;
		e->role = ci->role;
		e->gen = ci->gen;
		e->ts = bpf_ktime_get_ns();
		e->wr_bytes = ci->wr_bytes;
		e->rd_bytes = ci->rd_bytes;
		bpf_ringbuf_submit(e, wakeup_flags(sizeof(*e)));
	} else {
		count(PXT_COUNTER_LOST, 1);
	}
	bpf_map_delete_elem(&conns, &key);
}

/*
 * One program per syscall tracepoint. NB: the raw sys_enter/sys_exit tracepoints (one
 * program each, dispatching on the syscall number) were tried and measured: the same cost per
 * traced syscall, and +110 ns on every untraced syscall of the host (getpid 195 -> 305 ns).
 */
struct sys_enter_ctx {
	__u64 common;
	__s64 nr;
	__u64 args[6];
};

struct sys_exit_ctx {
	__u64 common;
	__s64 nr;
	__s64 ret;
};

#define EXIT(name, op, dir, len_arg)                                                      \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                       \
	int exit_##name(struct sys_exit_ctx *ctx)                                         \
	{                                                                                \
		on_exit(ctx->ret, op, dir, len_arg);                                     \
		return 0;                                                                \
	}

EXIT(read, OP_RW, PXT_DIR_INGRESS, 2)
EXIT(write, OP_RW, PXT_DIR_EGRESS, 2)
EXIT(recvfrom, OP_RW, PXT_DIR_INGRESS, 2)
EXIT(sendto, OP_RW, PXT_DIR_EGRESS, 2)
EXIT(readv, OP_IOV, PXT_DIR_INGRESS, 2)
EXIT(writev, OP_IOV, PXT_DIR_EGRESS, 2)
EXIT(recvmsg, OP_MSG, PXT_DIR_INGRESS, 2)
EXIT(sendmsg, OP_MSG, PXT_DIR_EGRESS, 2)
EXIT(connect, OP_CONNECT, PXT_DIR_EGRESS, 2)
EXIT(accept, OP_ACCEPT, PXT_DIR_INGRESS, 2)
EXIT(accept4, OP_ACCEPT, PXT_DIR_INGRESS, 2)
/* sendfile64(out_fd, in_fd, offset, count): out_fd and count. */
EXIT(sendfile64, OP_SENDFILE, PXT_DIR_EGRESS, 3)

SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct sys_enter_ctx *ctx)
{
	on_close((__s32)ctx->args[0]);
	return 0;
}

/*
 * TLS plaintext: uprobes on the library's read and write calls, attached by user space to each
 * libssl it finds mapped. The entry stores the call's arguments; the return emits the bytes
 * moved as DATA with PXT_DATA_TLS, on the connection of the socket the call used, with
 * positions in the plaintext stream (the connection's syscall positions count ciphertext).
 */
#if defined(__TARGET_ARCH_x86)
#define UARG1(r) ((r)->di)
#define UARG2(r) ((r)->si)
#define UARG4(r) ((r)->cx)
#define URET(r) ((r)->ax)
#elif defined(__TARGET_ARCH_arm64)
#define UARG1(r) ((r)->regs[0])
#define UARG2(r) ((r)->regs[1])
#define UARG4(r) ((r)->regs[3])
#define URET(r) ((r)->regs[0])
#endif

static __always_inline void ssl_enter(struct pt_regs *ctx, __u32 dir, int ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (is_self(id))
		return;
	struct ssl_call call = {
		.ssl = UARG1(ctx),
		.buf = UARG2(ctx),
		.out_len = ex ? UARG4(ctx) : 0,
		.fd = -1,
		.dir = dir,
		.ex = ex,
	};
	/* NB: a nested call (one variant built on the other) keeps the outer call's arguments. */
	if (bpf_map_update_elem(&ssl_calls, &id, &call, BPF_NOEXIST) == 0)
		__sync_fetch_and_add(&ssl_inflight, 1);
}

static __always_inline void ssl_return(struct pt_regs *ctx, int ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_call *p = bpf_map_lookup_elem(&ssl_calls, &id);
	if (!p || p->ex != (__u32)ex)
		return;
	struct ssl_call call = *p;
	bpf_map_delete_elem(&ssl_calls, &id);
	__sync_fetch_and_add(&ssl_inflight, -1);
	int rc = (int)URET(ctx);
	__u64 n;
	if (ex) {
		__u64 moved = 0;
		if (rc != 1 || !call.out_len ||
		    bpf_probe_read_user(&moved, sizeof(moved), (const void *)call.out_len) != 0)
			return;
		n = moved;
	} else {
		if (rc <= 0)
			return;
		n = rc;
	}
	if (n == 0)
		return;
	__u32 tgid = id >> 32;
	struct ssl_key key = {.ssl = call.ssl, .tgid = tgid};
	if (call.fd >= 0) {
		bpf_map_update_elem(&ssl_fds, &key, &call.fd, BPF_ANY);
	} else {
		__s32 *fd = bpf_map_lookup_elem(&ssl_fds, &key);
		if (!fd) {
			count(PXT_COUNTER_TLS_NO_FD, 1);
			return;
		}
		call.fd = *fd;
	}
	struct conn_info *ci = conn_lookup(tgid, call.fd, PXT_ROLE_UNKNOWN, 0);
	if (!ci)
		return;
	ci->flags |= CONN_TLS;
	__u64 *ctr = call.dir == PXT_DIR_EGRESS ? &ci->tls_wr : &ci->tls_rd;
	__u64 pos = __sync_fetch_and_add(ctr, n);
	if (ci->flags & CONN_NO_DATA)
		return;
	__u64 ts = bpf_ktime_get_ns();
	struct args a = {.enter_ts = ts, .ptr = call.buf, .len = n, .fd = call.fd, .op = OP_RW,
			 .dir = call.dir};
	emit_data(tgid, &a, ci, call.dir, pos, (const void *)call.buf, n, ts, PXT_DATA_TLS);
}

/* Entry and return programs for one library call; `ex`: the _ex variant. */
#define SSL_PROBES(name, dir, ex)                                                         \
	SEC("uprobe")                                                                    \
	int name##_enter(struct pt_regs *ctx)                                             \
	{                                                                                \
		ssl_enter(ctx, dir, ex);                                                 \
		return 0;                                                                \
	}                                                                                \
	SEC("uretprobe")                                                                 \
	int name##_return(struct pt_regs *ctx)                                            \
	{                                                                                \
		ssl_return(ctx, ex);                                                     \
		return 0;                                                                \
	}

SSL_PROBES(ssl_write, PXT_DIR_EGRESS, 0)
SSL_PROBES(ssl_read, PXT_DIR_INGRESS, 0)
SSL_PROBES(ssl_write_ex, PXT_DIR_EGRESS, 1)
SSL_PROBES(ssl_read_ex, PXT_DIR_INGRESS, 1)
