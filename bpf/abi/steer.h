/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Receive steering (VMQ / vRSS): which CPU runs the receive pipeline (decapsulation, inbound
 * policy, delivery) of the frames for one VM port. The XDP program on the physical NIC parses just
 * enough of an NVGRE frame to find its destination port, looks up the port's steering entry, picks
 * a CPU and hands the frame to that CPU's cpumap queue, where the cpumap program runs the whole
 * pipeline. The agent writes the entries (from policy, and moves ports in dynamic mode) and the
 * cpumap's per-CPU queues; the datapath writes the counters.
 */
#ifndef TENET_ABI_STEER_H
#define TENET_ABI_STEER_H

#include <linux/types.h>

/* How a port's CPU is chosen. Carried in __u8 fields. */
enum tenet_steer_mode {
	/* No steering: the pipeline runs on the CPU that received the frame. */
	TENET_STEER_NONE = 0,
	/* cpus[0] runs every frame of the port (VMQ; also dynamic mode, which rewrites cpus[0]). */
	TENET_STEER_FIXED = 1,
	/*
	 * cpus[hash(inner 5-tuple, seed) % ncpus] (vRSS): every frame of one flow goes to the same
	 * CPU, so a flow is never reordered; different flows spread over the set.
	 */
	TENET_STEER_SPREAD = 2,
};

/* CPUs in one port's set. */
#define TENET_STEER_SET_MAX 16

/* Value of TENET_MAP_STEER: the steering of one VM port. */
struct tenet_steer_entry {
	__u8 mode;  /* enum tenet_steer_mode */
	__u8 ncpus; /* 1..TENET_STEER_SET_MAX entries of cpus[] in use */
	__u8 pad[2];
	__u32 seed; /* mixed into the flow hash (spread), so ports do not all pick alike */
	__u16 cpus[TENET_STEER_SET_MAX];
};
_Static_assert(sizeof(struct tenet_steer_entry) == 40, "struct tenet_steer_entry is ABI: 40 bytes");

/*
 * Value of TENET_MAP_STEER_COUNTERS (per CPU, key: the VM port's ifindex). The CPU slot is the CPU
 * that counted: steered, local and fallback are counted by the CPU that received the frame,
 * pipeline by the CPU whose cpumap program ran it.
 */
struct tenet_steer_counters {
	__u64 steered;	/* frames handed to another CPU's cpumap queue */
	__u64 local;	/* queued to the receiving CPU itself (the chosen one), for order */
	__u64 fallback; /* the chosen CPU has no cpumap queue: pipeline ran in place, here */
	__u64 pipeline; /* frames whose pipeline the cpumap program ran on this CPU */
};
_Static_assert(sizeof(struct tenet_steer_counters) == 32,
	       "struct tenet_steer_counters is ABI: 32 bytes");

/*
 * Value of TENET_MAP_CPUMAP: the kernel's struct bpf_cpumap_val, spelled out so the agent gets a
 * generated codec for it (the kernel's struct has a union, which the ABI rules do not allow).
 */
struct tenet_cpumap_val {
	__u32 qsize; /* frames the CPU's queue holds */
	__u32 prog;  /* written: fd of the cpumap program (tenet_xdp_cpu); read back: its id */
};
_Static_assert(sizeof(struct tenet_cpumap_val) == 8, "struct tenet_cpumap_val is ABI: 8 bytes");

#endif /* TENET_ABI_STEER_H */
