// Simulate's metering answer: the per-class counters the reference model says a frame bumps
// (agent/model/meter.ts), named by port and class for SimulateResponse.meters.

import type { SimResult } from '../model/index.js';
import {
  DEFAULT_METER_CLASS,
  meterClassId,
  meterClassNames,
  type Policy,
} from '../policy/index.js';
import type { Plain } from './proto.js';

export function simulatedMeters(
  r: SimResult,
  policy: Policy,
  portOf: (ifindex: number) => string,
): Plain[] {
  const names = new Map<number, string>([[0, DEFAULT_METER_CLASS]]);
  for (const acl of policy.portAcls)
    for (const n of meterClassNames(acl).slice(1)) names.set(meterClassId(n), n);
  return (r.meters ?? []).map((m) => ({
    port: portOf(m.ifindex),
    direction: m.direction,
    meterClass: names.get(m.classId) ?? `class-${m.classId}`,
    packets: String(m.packets),
    bytes: String(m.bytes),
  }));
}
