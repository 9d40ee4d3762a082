// Receive steering in the policy document (`portSteering`): which CPUs run the receive pipeline
// of a VM port, the Hyper-V VMQ / vRSS / dynamic VMQ choices:
//
//   portSteering:
//     - { port: blue-web, mode: fixed, cpus: [1] }        # VMQ: one CPU
//     - { port: blue-db, mode: spread, cpus: [0, 1] }     # vRSS: flows hashed over the set
//     - { port: red-app, mode: auto }                     # dynamic: the agent picks and moves
//     - { port: red-db, mode: auto, cpus: [0, 1] }        # dynamic, within these CPUs
//
// The shapes are checked here; how the fields relate (the port exists, one entry per port, no CPU
// twice, one CPU for fixed) in validate-steering.ts; whether the CPUs exist on the host that gets
// the port in agent/compiler/steering.ts, which knows the host's online CPUs.

import { z } from 'zod';

/** CPUs in one port's set (TENET_STEER_SET_MAX in bpf/abi/steer.h). */
export const STEER_SET_MAX = 16;
/** Highest CPU number a port can name (TENET_CPUMAP_MAX - 1 in bpf/abi/maps.h). */
export const STEER_CPU_MAX = 255;

export type SteeringMode = 'fixed' | 'spread' | 'auto';

/** The receive steering of one VM port (at most one entry per port). */
export interface PortSteering {
  /** A port's name (ports[].name). */
  readonly port: string;
  readonly mode: SteeringMode;
  /**
   * fixed: exactly one CPU; spread: the set the flows are hashed over; auto: the CPUs the agent
   * may move the port between (absent: every online CPU of the host).
   */
  readonly cpus?: readonly number[];
}

const cpu = z.number().superRefine((n, ctx) => {
  if (!Number.isInteger(n) || n < 0 || n > STEER_CPU_MAX) {
    ctx.addIssue(`${String(n)} is not a CPU number (an integer 0..${STEER_CPU_MAX})`);
  }
});

export const portSteering = z.strictObject({
  port: z.string().min(1, 'is required'),
  mode: z.enum(['fixed', 'spread', 'auto']),
  cpus: z.array(cpu).optional(),
});
