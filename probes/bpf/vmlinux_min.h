/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types the probes read, declared with only the fields it needs.
 *
 * NB: every struct carries preserve_access_index, so clang emits CO-RE relocations and the
 * loader (aya) resolves each field's real offset against the running kernel's BTF at load
 * time. That keeps the build free of a generated vmlinux.h (no BTF needed on the build host)
 * while staying correct on any kernel with BTF.
 */
#pragma once

typedef unsigned short umode_t;

struct inode {
	umode_t i_mode;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
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
	struct task_struct *group_leader;
	__u64 start_boottime;
} __attribute__((preserve_access_index));

struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));

/* TCP health (tcp_stats.bpf.c): the connection's byte counters (RFC 4898). */
struct tcp_sock {
	__u64 bytes_received;
	__u64 bytes_sent;
} __attribute__((preserve_access_index));

/* TCP health: a dropped packet's socket, headers and size. */
struct sk_buff {
	struct sock *sk;
	unsigned int len;
	int skb_iif;
	__u16 transport_header;
	__u16 network_header;
	unsigned char *head;
} __attribute__((preserve_access_index));

struct iovec {
	void *iov_base;
	__u64 iov_len;
};

struct user_msghdr {
	void *msg_name;
	int msg_namelen;
	struct iovec *msg_iov;
	__u64 msg_iovlen;
};

/*
 * The registers a task entered the kernel with (syscall arguments) or, in a uprobe, the user
 * registers at the probe (call arguments, return value). Only the fields used.
 */
#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	unsigned long r10;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
} __attribute__((preserve_access_index));
#elif defined(__TARGET_ARCH_arm64)
struct pt_regs {
	__u64 regs[31];
	__u64 orig_x0;
} __attribute__((preserve_access_index));
#endif
