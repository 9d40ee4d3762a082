// Rules that relate the QoS parts of the document to each other and to the rest of it: a port
// has at most one portQos entry and it names a defined port; a minimum is a weight or a rate,
// never both; an uplink is a provider address's NIC on its host, listed once; a port's outbound
// shaping (caps, minimums, classes) needs the uplink its traffic leaves through; all the minimums
// on one uplink (ports and default bucket) are of one mode; in absolute mode they fit in the
// capacity; a minimum is not above the port's own outbound cap. Nothing here depends on the host
// the document lands on, so every host refuses the same documents.

import { caKey } from './validate.js';
import type { PolicyIssue } from './errors.js';
import type { MinimumBandwidth, Port, PolicyDocument, Uplink } from './model.js';

/** The (host, interface) key of an uplink. */
export function uplinkKey(host: string, iface: string): string {
  return `${host}/${iface}`;
}

/**
 * The NIC a port's traffic leaves its host through: the interface of the provider address its
 * first CA's lookup record names (the PA the compiler encapsulates from). Undefined if the
 * document does not say (validate.ts reports that).
 */
export function portUplinkInterface(doc: PolicyDocument, port: Port): string | undefined {
  const first = port.addresses[0];
  if (first === undefined) return undefined;
  const rec = doc.lookupRecords.find((r) => caKey(r.vsid, r.ca) === caKey(port.vsid, first));
  if (rec === undefined) return undefined;
  return doc.providerAddresses.find((p) => p.host === port.host && p.address === rec.pa)?.interface;
}

export type MinimumMode = 'weight' | 'absolute';

function modeOf(m: MinimumBandwidth): MinimumMode | undefined {
  if (m.weight !== undefined && m.mbps === undefined) return 'weight';
  if (m.mbps !== undefined && m.weight === undefined) return 'absolute';
  return undefined;
}

export function validateQos(doc: PolicyDocument): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const report = (path: string, message: string): void => {
    issues.push({ path, message });
  };

  const uplinkAt = new Map<string, { uplink: Uplink; index: number }>();
  doc.uplinks.forEach((u, i) => {
    const path = `uplinks[${i}]`;
    const key = uplinkKey(u.host, u.interface);
    const prev = uplinkAt.get(key);
    if (prev !== undefined) {
      report(
        `${path}.interface`,
        `${u.interface} on ${u.host} is already at uplinks[${prev.index}]`,
      );
    } else {
      uplinkAt.set(key, { uplink: u, index: i });
    }
    if (!doc.providerAddresses.some((p) => p.host === u.host && p.interface === u.interface)) {
      report(
        `${path}.interface`,
        `${u.interface} carries no provider address of host ${u.host}, so no VM traffic leaves through it`,
      );
    }
    if (u.defaultBucket !== undefined && modeOf(u.defaultBucket) === undefined) {
      report(`${path}.defaultBucket`, 'needs exactly one of weight and mbps');
    }
  });

  const portByName = new Map(doc.ports.map((p) => [p.name, p]));
  const qosOfPort = new Map<string, number>();
  // Per uplink: the minimums on it, for the mode and capacity checks.
  const onUplink = new Map<string, { path: string; mode: MinimumMode; mbps: number }[]>();
  doc.portQos.forEach((q, i) => {
    const path = `portQos[${i}]`;
    const port = portByName.get(q.port);
    if (port === undefined) {
      report(`${path}.port`, `port "${q.port}" is not defined`);
    }
    const prev = qosOfPort.get(q.port);
    if (prev !== undefined) {
      report(`${path}.port`, `port "${q.port}" already has QoS at portQos[${prev}]`);
    } else {
      qosOfPort.set(q.port, i);
    }
    const mode = q.minimum === undefined ? undefined : modeOf(q.minimum);
    if (q.minimum !== undefined && mode === undefined) {
      report(`${path}.minimum`, 'needs exactly one of weight and mbps');
    }
    const out = q.maximum?.outbound;
    if (q.minimum?.mbps !== undefined && out !== undefined && q.minimum.mbps > out.mbps) {
      report(
        `${path}.minimum.mbps`,
        `${q.minimum.mbps} Mbit/s is above the port's outbound maximum of ${out.mbps} Mbit/s`,
      );
    }
    const names = new Map<string, number>();
    (q.classCaps ?? []).forEach((c, k) => {
      const prevName = names.get(c.name);
      if (prevName !== undefined) {
        report(
          `${path}.classCaps[${k}].name`,
          `class "${c.name}" is already at classCaps[${prevName}]`,
        );
      } else {
        names.set(c.name, k);
      }
    });
    if (port === undefined) return;
    const shaped = q.minimum !== undefined || out !== undefined || (q.classCaps ?? []).length > 0;
    if (!shaped) return;
    const iface = portUplinkInterface(doc, port);
    const field =
      q.minimum !== undefined ? 'minimum' : out !== undefined ? 'maximum.outbound' : 'classCaps';
    if (iface === undefined || !uplinkAt.has(uplinkKey(port.host, iface))) {
      report(
        `${path}.${field}`,
        `port "${port.name}" sends through ${iface ?? 'an unknown NIC'} on host ${port.host}, which has no uplinks entry (outbound shaping needs the uplink's capacity)`,
      );
      return;
    }
    if (mode !== undefined) {
      const key = uplinkKey(port.host, iface);
      const list = onUplink.get(key) ?? [];
      list.push({ path: `${path}.minimum`, mode, mbps: q.minimum?.mbps ?? 0 });
      onUplink.set(key, list);
    }
  });

  const domains = new Set(doc.routingDomains.map((d) => d.name));
  const tenantAt = new Map<string, number>();
  doc.tenantQos.forEach((t, i) => {
    const path = `tenantQos[${i}]`;
    if (!domains.has(t.routingDomain)) {
      report(`${path}.routingDomain`, `routing domain "${t.routingDomain}" is not defined`);
    }
    const prev = tenantAt.get(t.routingDomain);
    if (prev !== undefined) {
      report(`${path}.routingDomain`, `"${t.routingDomain}" already has QoS at tenantQos[${prev}]`);
    } else {
      tenantAt.set(t.routingDomain, i);
    }
    const names = new Map<string, number>();
    t.classCaps.forEach((c, k) => {
      const p = names.get(c.name);
      if (p !== undefined) {
        report(`${path}.classCaps[${k}].name`, `class "${c.name}" is already at classCaps[${p}]`);
      } else {
        names.set(c.name, k);
      }
    });
  });

  for (const [key, { uplink, index }] of uplinkAt) {
    const path = `uplinks[${index}]`;
    const mins = onUplink.get(key) ?? [];
    const defMode = uplink.defaultBucket === undefined ? undefined : modeOf(uplink.defaultBucket);
    const mode = defMode ?? mins[0]?.mode;
    for (const m of mins) {
      if (m.mode !== mode) {
        report(
          m.path,
          `is by ${m.mode === 'weight' ? 'weight' : 'absolute rate'}, but ${uplink.interface} on ${uplink.host} shares by ${mode === 'weight' ? 'weight' : 'absolute rate'} (${defMode !== undefined ? `${path}.defaultBucket` : mins[0]?.path}); one mode per uplink`,
        );
      }
    }
    if (mode === 'absolute') {
      const sum = mins.reduce((s, m) => s + m.mbps, 0) + (uplink.defaultBucket?.mbps ?? 0);
      if (sum > uplink.capacityMbps) {
        report(
          `${path}.capacityMbps`,
          `the absolute minimums on ${uplink.interface} (${mins.map((m) => m.path).join(', ')}${uplink.defaultBucket?.mbps !== undefined ? `, ${path}.defaultBucket` : ''}) sum to ${sum} Mbit/s, above the capacity of ${uplink.capacityMbps} Mbit/s`,
        );
      }
    }
  }
  return issues;
}
