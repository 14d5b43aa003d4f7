/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Events the socket tracer hands to user space. Mirrored field for field by #[repr(C)] structs
 * in probes/src/socket.rs, with size asserts on both sides: change one, change the other.
 */
#pragma once

#define PXT_MAX_CAPTURE 16384

enum pxt_event_kind {
	PXT_EV_DATA = 1,
	PXT_EV_OPEN = 2,
	PXT_EV_CLOSE = 3,
};

enum pxt_dir {
	PXT_DIR_EGRESS = 0,  /* this process wrote */
	PXT_DIR_INGRESS = 1, /* this process read */
};

/* Pixie's trace_role values. */
enum pxt_role {
	PXT_ROLE_CLIENT = 1,
	PXT_ROLE_SERVER = 2,
	PXT_ROLE_UNKNOWN = 4,
};

/* pxt_data_header.flags */
#define PXT_DATA_TLS 1 /* plaintext from a TLS library call, positions in the plaintext stream */

enum pxt_counter {
	PXT_COUNTER_EVENTS = 0,    /* unused: user space counts what arrives */
	PXT_COUNTER_LOST = 1,      /* events the ring buffer had no room for */
	PXT_COUNTER_TRUNCATED = 2, /* data events cut to the capture cap */
	PXT_COUNTER_BYTES = 3,     /* unused: user space sums what arrives */
	PXT_COUNTER_TLS_NO_FD = 4, /* TLS calls whose socket could not be told: plaintext dropped */
	PXT_COUNTER_MAX = 5,
};

struct pxt_data_header {
	__u32 kind;
	__u32 tgid;
	__s32 fd;
	__u32 dir;
	__u64 gen;
	__u64 enter_ts;
	__u64 exit_ts;
	__u64 pos;      /* stream offset of the first byte, per direction */
	__u64 size;     /* bytes the syscall really moved (this iovec's share) */
	__u32 captured; /* bytes that follow */
	__u16 role;
	__u16 flags;    /* PXT_DATA_* */
};
_Static_assert(sizeof(struct pxt_data_header) == 64, "pxt_data_header layout");

struct pxt_data_event {
	struct pxt_data_header hdr;
	__u8 data[PXT_MAX_CAPTURE];
};

struct pxt_open_event {
	__u32 kind;
	__u32 tgid;
	__s32 fd;
	__u32 role;
	__u64 gen;
	__u64 ts;
	__u64 start_boottime_ns;
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 _pad;
	__u8 laddr[16];
	__u8 raddr[16];
	char comm[16];
};
_Static_assert(sizeof(struct pxt_open_event) == 96, "pxt_open_event layout");

struct pxt_close_event {
	__u32 kind;
	__u32 tgid;
	__s32 fd;
	__u32 role;
	__u64 gen;
	__u64 ts;
	__u64 wr_bytes;
	__u64 rd_bytes;
};
_Static_assert(sizeof(struct pxt_close_event) == 48, "pxt_close_event layout");
