// SPDX-License-Identifier: GPL-2.0
/*
 * pxtop socket tracer: syscall tracepoints only (no kprobes, which this project must not
 * require). Enter handlers stash the arguments per thread; exit handlers emit what was really
 * moved. Every inet socket connection is keyed by (tgid, fd) and carries a generation (its
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

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load. */
const volatile __u32 self_tgid = 0;
const volatile __u32 capture_bytes = PXT_MAX_CAPTURE;
/* A quarter of the ring's size: above this much unread data, wake the reader. */
const volatile __u64 wakeup_bytes = (32 << 20) / 4;

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AF_INET 2
#define AF_INET6 10
#define EINPROGRESS 115
#define MAX_IOV 64

struct conn_info {
	__u64 gen;
	__u64 wr_bytes;
	__u64 rd_bytes;
	__u32 role;
	__u32 _pad;
};

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

/*
 * The arguments of the syscall a thread is in, between its enter and exit tracepoints. Task
 * local storage, not a hash keyed by pid_tgid: the slot lives as long as the thread, so the hot
 * path never takes a hash bucket lock (a hash update plus delete measured ~500 ns per syscall
 * here, more than the whole tracepoint floor). `op == 0` marks the slot empty.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct args);
} inflight SEC(".maps");

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

/* The socket behind fd, or NULL if fd is not an inet socket. */
static __always_inline struct sock *inet_sock_of(__s32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return NULL;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	return sk;
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
 * NB: no filtering here. The exit handler looks the connection up anyway (and classifies an fd
 * it has not seen), so a lookup here too would be paid twice on every traced syscall.
 */
static __always_inline void stash(__u32 op, __u32 dir, __s32 fd, __u64 ptr, __u64 len)
{
	if (is_self(bpf_get_current_pid_tgid()))
		return;
	struct args *a = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0,
					      BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!a)
		return;
	/*
	 * NB: no clock read here (one costs ~75 ns on this VM, a fifth of the whole capture
	 * path): events are stamped at exit, as Pixie stamps them. A request's first byte is
	 * then stamped when its write returned, which for all but huge blocking writes is
	 * within a microsecond of when it started.
	 */
	a->enter_ts = 0;
	a->ptr = ptr;
	a->len = len;
	a->fd = fd;
	a->op = op;
	a->dir = dir;
}

/* Emits one DATA event for `size` bytes at user address `buf` (NULL: a gap, nothing copied). */
static __always_inline void emit_data(__u32 tgid, struct args *a, struct conn_info *ci, __u32 dir,
				      __u64 pos, const void *buf, __u64 size, __u64 exit_ts)
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
	count(PXT_COUNTER_EVENTS, 1);
	count(PXT_COUNTER_BYTES, size);
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
	emit_data(w->tgid, &w->a, &w->ci, w->dir, w->pos + w->done, v.iov_base, len, w->exit_ts);
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
		emit_data(tgid, a, ci, dir, pos + w.done, NULL, total - w.done, exit_ts);
}

/* The exit half: `a` is the thread's slot (op != 0), `op` this syscall's op. */
static __always_inline void on_exit(struct args *a, long ret, __u32 op)
{
	struct args copy = *a;
	a->op = 0;
	/* NB: `op` is a compile-time constant per tracepoint, so each program keeps one branch. */
	if (copy.op != op)
		return;
	__u32 dir = copy.dir;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 exit_ts = bpf_ktime_get_ns();
	if (!copy.enter_ts)
		copy.enter_ts = exit_ts;

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

	switch (op) {
	case OP_RW:
		emit_data(tgid, &copy, ci, dir, pos, (const void *)copy.ptr, ret, exit_ts);
		break;
	case OP_IOV:
		emit_iov(tgid, &copy, ci, dir, pos, (const struct iovec *)copy.ptr, copy.len, ret,
			 exit_ts);
		break;
	case OP_MSG: {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (const void *)copy.ptr) != 0) {
			emit_data(tgid, &copy, ci, dir, pos, NULL, ret, exit_ts);
			break;
		}
		emit_iov(tgid, &copy, ci, dir, pos, m.msg_iov, m.msg_iovlen, ret, exit_ts);
		break;
	}
	case OP_SENDFILE:
		/* The bytes never pass through user memory: a gap of the true size. */
		emit_data(tgid, &copy, ci, dir, pos, NULL, ret, exit_ts);
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

#define ENTER(name, op, dir, fd_i, ptr_i, len_i)                                         \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                      \
	int enter_##name(struct sys_enter_ctx *ctx)                                       \
	{                                                                                \
		stash(op, dir, (__s32)ctx->args[fd_i], ctx->args[ptr_i], ctx->args[len_i]); \
		return 0;                                                                \
	}

#define EXIT(name, want)                                                                   \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                       \
	int exit_##name(struct sys_exit_ctx *ctx)                                         \
	{                                                                                \
		struct args *a =                                                         \
			bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0, 0); \
		if (a && a->op != 0)                                                     \
			on_exit(a, ctx->ret, want);                                      \
		return 0;                                                                \
	}

ENTER(read, OP_RW, PXT_DIR_INGRESS, 0, 1, 2)
EXIT(read, OP_RW)
ENTER(write, OP_RW, PXT_DIR_EGRESS, 0, 1, 2)
EXIT(write, OP_RW)
ENTER(recvfrom, OP_RW, PXT_DIR_INGRESS, 0, 1, 2)
EXIT(recvfrom, OP_RW)
ENTER(sendto, OP_RW, PXT_DIR_EGRESS, 0, 1, 2)
EXIT(sendto, OP_RW)
ENTER(readv, OP_IOV, PXT_DIR_INGRESS, 0, 1, 2)
EXIT(readv, OP_IOV)
ENTER(writev, OP_IOV, PXT_DIR_EGRESS, 0, 1, 2)
EXIT(writev, OP_IOV)
ENTER(recvmsg, OP_MSG, PXT_DIR_INGRESS, 0, 1, 2)
EXIT(recvmsg, OP_MSG)
ENTER(sendmsg, OP_MSG, PXT_DIR_EGRESS, 0, 1, 2)
EXIT(sendmsg, OP_MSG)
ENTER(connect, OP_CONNECT, PXT_DIR_EGRESS, 0, 1, 2)
EXIT(connect, OP_CONNECT)
ENTER(accept, OP_ACCEPT, PXT_DIR_INGRESS, 0, 1, 2)
EXIT(accept, OP_ACCEPT)
ENTER(accept4, OP_ACCEPT, PXT_DIR_INGRESS, 0, 1, 2)
EXIT(accept4, OP_ACCEPT)
/* sendfile64(out_fd, in_fd, offset, count): only out_fd matters. */
ENTER(sendfile64, OP_SENDFILE, PXT_DIR_EGRESS, 0, 3, 3)
EXIT(sendfile64, OP_SENDFILE)

SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct sys_enter_ctx *ctx)
{
	on_close((__s32)ctx->args[0]);
	return 0;
}
