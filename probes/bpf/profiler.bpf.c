// SPDX-License-Identifier: GPL-2.0
/*
 * pxtop CPU profiler: a perf_event program the loader attaches on every online CPU
 * (CPU_CLOCK, 99 Hz). Each sample takes the interrupted task's user stack (frame pointers,
 * BPF_F_USER_STACK) and kernel stack into a stack trace map and counts the sample under
 * (tgid, user stack id, kernel stack id) in a hash map: counts are aggregated in the kernel and
 * user space reads them every push period, not per sample.
 *
 * Double-buffered: two sets of (stack trace map, count map), chosen by `side[0]`. User space
 * flips the side, lets samples in flight on the old side finish, then reads and empties the
 * old side's maps while the new side fills. Nothing is lost or counted twice across a drain,
 * and the stack ids a count refers to stay valid until it is read (a single stack map emptied
 * while samples keep landing would free ids the live counts still name).
 *
 * Samples of the idle task (pid 0) are counted in `counters`, not kept. Stacks that could not
 * be stored (stack map bucket taken by another stack: the map is not told to reuse ids, which
 * would silently re-point older counts) and samples the count map had no room for are counted
 * too: loss is never silent.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "profiler.h"

char LICENSE[] SEC("license") = "GPL";

/* Frames per stack: the kernel's default perf_event_max_stack. */
#define MAX_FRAMES 127
#define EEXIST 17

struct stacks_map {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384); /* sized by the loader */
	__type(key, __u32);
	__uint(value_size, MAX_FRAMES * sizeof(__u64));
};

struct counts_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* sized by the loader */
	__type(key, struct pxt_stack_key);
	__type(value, __u64);
};

struct stacks_map stacks_0 SEC(".maps");
struct stacks_map stacks_1 SEC(".maps");
struct counts_map counts_0 SEC(".maps");
struct counts_map counts_1 SEC(".maps");

/* side[0]: which set samples go to (0 or 1); written by user space only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} side SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PXT_PROF_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void bump(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += 1;
}

static __always_inline void record(void *ctx, __u32 tgid, void *stacks, void *counts)
{
	struct pxt_stack_key key = {.tgid = tgid};
	key.user_stack_id = bpf_get_stackid(ctx, stacks, BPF_F_USER_STACK);
	key.kernel_stack_id = bpf_get_stackid(ctx, stacks, 0);
	if (key.user_stack_id == -EEXIST || key.kernel_stack_id == -EEXIST)
		bump(PXT_PROF_COLLISIONS);

	__u64 *n = bpf_map_lookup_elem(counts, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	__u64 one = 1;
	long err = bpf_map_update_elem(counts, &key, &one, BPF_NOEXIST);
	if (err == -EEXIST) {
		/* Another CPU inserted the same key in between. */
		n = bpf_map_lookup_elem(counts, &key);
		if (n)
			__sync_fetch_and_add(n, 1);
	} else if (err) {
		bump(PXT_PROF_DROPPED);
	}
}

SEC("perf_event")
int profile(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)id == 0) {
		bump(PXT_PROF_IDLE);
		return 0;
	}
	bump(PXT_PROF_SAMPLES);
	__u32 zero = 0;
	__u32 *s = bpf_map_lookup_elem(&side, &zero);
	if (s && *s == 1)
		record(ctx, id >> 32, &stacks_1, &counts_1);
	else
		record(ctx, id >> 32, &stacks_0, &counts_0);
	return 0;
}
