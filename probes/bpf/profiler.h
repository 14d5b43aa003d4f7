/* SPDX-License-Identifier: GPL-2.0 */
/* Types the profiler shares with user space (mirrored in probes/src/profiler.rs). */
#pragma once

/* A count map key: one per (process, user stack, kernel stack) seen in a push period. */
struct pxt_stack_key {
	__u32 tgid;
	__s32 user_stack_id;   /* negative: no user stack (kernel thread, or an error) */
	__s32 kernel_stack_id; /* negative: the sample interrupted user mode */
};
_Static_assert(sizeof(struct pxt_stack_key) == 12, "pxt_stack_key layout");

/* Indices of `counters` (per CPU). */
enum pxt_prof_counter {
	PXT_PROF_SAMPLES = 0,    /* samples of tasks other than idle */
	PXT_PROF_IDLE = 1,       /* samples of the idle task, not kept */
	PXT_PROF_COLLISIONS = 2, /* a stack not stored: its stack map bucket held another */
	PXT_PROF_DROPPED = 3,    /* a sample not counted: the count map was full */
	PXT_PROF_COUNTER_MAX = 4,
};
