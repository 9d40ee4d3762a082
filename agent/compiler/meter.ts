// Metering classes of this host's VM ports: the tenet_meter_cls LPM trie (bpf/abi/meter.h) from
// the policy's `meter` ACL rules. One entry per (port, direction, remote prefix): key
// (64 + prefix length, port ifindex, direction, family, prefix), value the class number
// (agent/policy/validate-meter.ts: meterClassId, a hash of the name, never 0 = the default class).
// Direction: outbound (from the VM) is TENET_DIR_RX at the port, inbound (to the VM) TENET_DIR_TX.
// The table is policy: the reconciler stages and flips it with every other table, so a port's
// classes never change half-way for a packet.

import {
  addr16,
  meterPrefixes,
  prefixOf,
  type Policy,
  type MeterDirection,
} from '../policy/index.js';
import { Direction, Family } from '../abi/generated.js';
import type { HostFacts, InterfaceFacts } from './compile.js';
import { METER_KEY_FIXED_BITS, rowsOf, type MeterKey, type Row, type Rows } from './tables.js';
import type { MeterClass } from './tables.js';

/** tenet_direction of a metering direction at a VM port. */
export function meterDirectionValue(d: MeterDirection): number {
  return d === 'outbound' ? Direction.rx : Direction.tx;
}

function factsOf(facts: HostFacts, name: string): InterfaceFacts | undefined {
  if (facts instanceof Map) return facts.get(name);
  const rec = facts as Readonly<Record<string, InterfaceFacts>>;
  return Object.hasOwn(rec, name) ? rec[name] : undefined;
}

/** The meterClasses table for hostName. Ports whose interface is missing are reported elsewhere. */
export function compileMeterClasses(
  policy: Policy,
  hostName: string,
  facts: HostFacts,
): Rows<'meterClasses'> {
  const rows: Row<MeterKey, MeterClass>[] = [];
  policy.portAcls.forEach((acl, i) => {
    const port = policy.ports.find((p) => p.name === acl.port);
    if (port === undefined || port.host !== hostName) return;
    const dev = factsOf(facts, port.interface);
    if (dev === undefined) return;
    for (const m of meterPrefixes(acl, i)) {
      const prefix = prefixOf(m.prefix);
      rows.push({
        key: {
          prefixlen: METER_KEY_FIXED_BITS + prefix.length,
          ifindex: dev.ifindex,
          direction: meterDirectionValue(m.direction),
          family: prefix.family === 4 ? Family.ipv4 : Family.ipv6,
          addr: addr16(prefix),
        },
        value: { class_id: m.classId },
      });
    }
  });
  return rowsOf('meterClasses', rows);
}
