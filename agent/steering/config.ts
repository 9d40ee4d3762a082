// tenetd's `datapath.steering` settings: dynamic steering's interval and thresholds
// (agent/steering/balance.ts), checked like the rest of the config file.
//
//   datapath:
//     steering:
//       intervalMs: 1000        # how often load is measured and a port may move
//       capacityPps: 1000000    # packets/s one CPU's receive pipeline handles before it saturates
//       high: 0.8               # above high * capacity a CPU is overloaded
//       low: 0.5                # below low * capacity a CPU has room
//       minDwellMs: 10000       # a port stays at least this long after it moved
//       cooldownMs: 2000        # at most one move per this long

import { z } from 'zod';

export const steeringConfig = z
  .strictObject({
    intervalMs: z.number().int().min(100).max(600_000).optional(),
    capacityPps: z.number().positive().optional(),
    high: z.number().gt(0).max(1).optional(),
    low: z.number().gt(0).lt(1).optional(),
    minDwellMs: z.number().int().min(0).optional(),
    cooldownMs: z.number().int().min(0).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.low !== undefined && c.high !== undefined && c.low >= c.high) {
      ctx.addIssue({ code: 'custom', path: ['low'], message: `must be below high (${c.high})` });
    }
  });

export type SteeringConfig = z.output<typeof steeringConfig>;

/** The HostAgent's steering options from the config section. */
export function steeringOptions(c: SteeringConfig | undefined): {
  intervalMs?: number;
  balance?: Record<string, number>;
} {
  if (c === undefined) return {};
  const { intervalMs, ...balance } = c;
  const b = Object.fromEntries(Object.entries(balance).filter(([, v]) => v !== undefined));
  return {
    ...(intervalMs === undefined ? {} : { intervalMs }),
    ...(Object.keys(b).length === 0 ? {} : { balance: b as Record<string, number> }),
  };
}
