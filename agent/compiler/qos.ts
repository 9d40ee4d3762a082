// QoS compiler: a pure function from a validated policy, a host name and the host's interfaces to
// (1) the HTB hierarchy each uplink of the host needs and (2) the contents of the QoS maps
// (bpf/abi/qos.h). No I/O; agent/host/qos.ts applies the result.
//
// The HTB tree on an uplink (handle 7e:, `default 3`), rates in bit/s:
//
//   7e:1  root                rate = ceil = capacity
//   ├─ 7e:2  default bucket   rate = its share, ceil = capacity
//   │   ├─ 7e:3  default leaf: ports without QoS, unreserved ports without caps, host traffic
//   │   └─ 7e:(0x1000+ifindex) an unreserved port with an outbound cap or classes:
//   │        rate = the default share split evenly, ceil = its cap
//   └─ 7e:(0x1000+ifindex)  a port with a minimum: rate = its minimum, ceil = its cap (or capacity)
//        (with classCaps the port's class is a parent of:)
//        ├─ 7e:(0x2000+ifindex)         the rest of its traffic
//        └─ 7e:(0x3000+k*0x1000+ifindex) destination class k: ceil = the class cap
//
// Weight mode: rate = capacity * weight / (sum of the uplink's weights + the default bucket's).
// Absolute mode: rate = the minimum; the default bucket gets its configured rate or what is left
// (at least 1% of capacity). HTB lends unused rate to classes below their ceil, in proportion
// to their quantum, which is set proportional to the rate: work-conserving weighted sharing.
//
// Caps (ceilings) are on the VM's IP bytes and are scaled to the wire (wireScale); capacity and
// minimums are shares of the uplink, in its own (encapsulated) bytes.
//
// Minors are derived from the port's ifindex so a port keeps its classes across applies and
// agent restarts (the agent changes classes in place, never recreates them: that would lose
// their queues); ifindex must therefore be below 4096.

import { prefixOf, type IpPrefix, type Policy, type PolicyIssue } from '../policy/index.js';
import { portUplinkInterface, type MinimumMode } from '../policy/validate-qos.js';
import { CompileError, type HostFacts, type InterfaceFacts } from './compile.js';

export const HTB_MAJOR = 0x7e;
export const MINOR_ROOT = 1;
export const MINOR_DEFAULT_PARENT = 2;
export const MINOR_DEFAULT_LEAF = 3;
const PORT_BASE = 0x1000;
const REST_BASE = 0x2000;
const CLASS_BASE = 0x3000;
export const QOS_IFINDEX_MAX = 0x0fff;

/** TC_H_MAKE(major << 16, minor): what skb->priority must hold to select an HTB class. */
export function classid(minor: number): number {
  return ((HTB_MAJOR << 16) | minor) >>> 0;
}

export function classidText(minor: number): string {
  return `${HTB_MAJOR.toString(16)}:${minor.toString(16)}`;
}

/** Bytes NVGRE adds to a VM's frame (outer Ethernet, IPv4, GRE with key). */
const NVGRE_ROOM = 42;
/** Bytes HTB counts on the uplink beyond the VM's IP packet: NVGRE plus the inner Ethernet. */
export const WIRE_OVERHEAD = NVGRE_ROOM + 14;

/**
 * Caps are on the VM's IP bytes; HTB on the uplink counts encapsulated frames. Ceilings are
 * scaled by the overhead of a full-size packet (the smallest relative overhead), so a VM never
 * exceeds its cap whatever its packet sizes, gets it exactly with full-size packets, and gets
 * less with small ones (docs/qos.md has the figures).
 */
export function wireScale(tenantMtu: number): number {
  return (tenantMtu + WIRE_OVERHEAD) / tenantMtu;
}

/** TCP-friendly minimum burst: a 64 KiB GSO packet plus a full-size frame. */
export const MIN_BURST_BYTES = 65536 + 1514;
/**
 * Default policer burst: POLICER_BURST_MS at the rate, at least MIN_BURST_BYTES. A policer has
 * no queue: TCP through it needs a bucket deep enough to ride out its own bursts and loss
 * recovery (measured in the lab: 64 KiB at 100 Mbit/s gave TCP 3% of the cap, 1 MiB 43%,
 * 4 MiB 95%). Shaped paths (HTB) need no such depth.
 */
export const POLICER_BURST_MS = 300;
export function defaultBurstBytes(bitsPerSec: number): number {
  return Math.max(MIN_BURST_BYTES, Math.ceil((bitsPerSec / 8) * (POLICER_BURST_MS / 1000)));
}

export interface HtbClassPlan {
  readonly minor: number;
  readonly parent: number; // 0: the qdisc itself
  readonly rateBps: number; // bit/s
  readonly ceilBps: number;
  /** HTB burst (rate tokens) and cburst (ceil tokens), bytes. */
  readonly burstBytes: number;
  readonly cburstBytes: number;
  readonly quantum: number;
  /** A leaf gets a leaf qdisc. */
  readonly leaf: boolean;
  /** What this class is for (logs, CLI, metrics label). */
  readonly label: string;
  /** The port this class belongs to, if any. */
  readonly port?: string;
}

export interface UplinkPlan {
  readonly interface: string;
  readonly capacityBps: number;
  readonly mode: MinimumMode;
  /** Parents before children. */
  readonly classes: readonly HtbClassPlan[];
}

export interface QosRateRow {
  readonly bytes_per_sec: bigint;
  readonly burst_bytes: bigint;
}

export interface QosPortRow {
  readonly classid: number;
  readonly flags: number;
  readonly inbound: QosRateRow;
  readonly outbound: QosRateRow;
}

export interface QosClassRow {
  readonly key: { prefixlen: number; ifindex: number; family: number; addr: Uint8Array };
  readonly value: { classid: number; tenant_bucket: number };
}

export interface QosPlan {
  readonly uplinks: readonly UplinkPlan[];
  /** tenet_qos_ports: ifindex -> config. */
  readonly ports: ReadonlyMap<number, QosPortRow>;
  /** tenet_qos_cls rows. */
  readonly classes: readonly QosClassRow[];
  /** Port name -> ifindex, for counters. */
  readonly portIfindex: ReadonlyMap<string, number>;
  /** tenet_qos_tcaps: tenant class cap bucket id -> rate. */
  readonly tenantCaps: ReadonlyMap<number, QosRateRow>;
}

export const QOS_PORT_CLASSES = 1;
const CLASS_KEY_FIXED_BITS = 64;
const NO_RATE: QosRateRow = { bytes_per_sec: 0n, burst_bytes: 0n };

/** A QoS policy this host cannot carry: a CompileError, so the API answers it like one. */
export class QosCompileError extends CompileError {}

function factsOf(facts: HostFacts, name: string): InterfaceFacts | undefined {
  return facts instanceof Map
    ? (facts as ReadonlyMap<string, InterfaceFacts>).get(name)
    : (facts as Readonly<Record<string, InterfaceFacts>>)[name];
}

/**
 * HTB burst (cburst) in bytes: HTB_BURST_MS at the class's rate (ceiling), at least MIN_BURST_BYTES.
 * HTB keeps at most this much credit, so a dequeue that comes late (a busy CPU) loses whatever
 * would have accrued beyond it: too small a burst makes a class fall short of its rate under
 * load. The price is at most this many bytes above the rate after an idle period.
 */
export const HTB_BURST_MS = 20;
export function htbBurst(bps: number): number {
  return Math.max(MIN_BURST_BYTES, Math.ceil((bps / 8) * (HTB_BURST_MS / 1000)));
}

/** HTB quantum (bytes): proportional to the rate, so borrowed bandwidth follows the shares. */
export function quantumFor(rateBps: number): number {
  // 10 ms at the rate. HTB caps only quanta it computes itself (from r2q) at 200000; explicit
  // ones are used as given, so they stay proportional at every rate.
  return Math.max(1514, Math.round(rateBps / 8 / 100));
}

function rateRow(mbps: number | undefined, burstKiB: number | undefined): QosRateRow {
  if (mbps === undefined) return NO_RATE;
  const bps = mbps * 1e6;
  const burst = burstKiB !== undefined ? burstKiB * 1024 : defaultBurstBytes(bps);
  return { bytes_per_sec: BigInt(Math.max(1, Math.round(bps / 8))), burst_bytes: BigInt(burst) };
}

export function compileQos(policy: Policy, hostName: string, facts: HostFacts): QosPlan {
  const issues: PolicyIssue[] = [];
  const report = (path: string, message: string): void => {
    issues.push({ path, message });
  };
  const hostPorts = policy.ports.filter((p) => p.host === hostName);
  const qosByPort = new Map(policy.portQos.map((q, i) => [q.port, { q, i }]));
  const uplinks: UplinkPlan[] = [];
  const ports = new Map<number, QosPortRow>();
  const classes: QosClassRow[] = [];
  const portIfindex = new Map<string, number>();
  const shapedIfaces = new Set<string>();
  /** Per port ifindex: destination prefixes of its own classes (HTB leaves). */
  const portPrefixes = new Map<number, ClassPrefix[]>();

  policy.uplinks.forEach((u, ui) => {
    if (u.host !== hostName) return;
    if (factsOf(facts, u.interface) === undefined) {
      report(
        `uplinks[${ui}].interface`,
        `interface "${u.interface}" does not exist on ${hostName}`,
      );
      return;
    }
    shapedIfaces.add(u.interface);
    const upMtu = (factsOf(facts, u.interface) as InterfaceFacts).mtu;
    const cap = Math.round(u.capacityMbps * 1e6);
    const members = hostPorts.filter((p) => portUplinkInterface(policy, p) === u.interface);
    const reserved = members.filter((p) => qosByPort.get(p.name)?.q.minimum !== undefined);
    const mode: MinimumMode =
      u.defaultBucket?.mbps !== undefined
        ? 'absolute'
        : u.defaultBucket?.weight !== undefined
          ? 'weight'
          : qosByPort.get(reserved[0]?.name ?? '')?.q.minimum?.mbps !== undefined
            ? 'absolute'
            : 'weight';
    const rateOf = new Map<string, number>();
    let defaultRate: number;
    if (mode === 'weight') {
      const dw = u.defaultBucket?.weight ?? 1;
      const sum = reserved.reduce(
        (s, p) => s + (qosByPort.get(p.name)?.q.minimum?.weight ?? 0),
        dw,
      );
      for (const p of reserved) {
        rateOf.set(
          p.name,
          Math.floor((cap * (qosByPort.get(p.name)?.q.minimum?.weight ?? 0)) / sum),
        );
      }
      defaultRate = Math.floor((cap * dw) / sum);
    } else {
      let used = 0;
      for (const p of reserved) {
        const r = Math.round((qosByPort.get(p.name)?.q.minimum?.mbps ?? 0) * 1e6);
        rateOf.set(p.name, r);
        used += r;
      }
      defaultRate =
        u.defaultBucket?.mbps !== undefined
          ? Math.round(u.defaultBucket.mbps * 1e6)
          : Math.max(cap - used, Math.floor(cap / 100));
    }
    const list: HtbClassPlan[] = [];
    const cls = (c: Omit<HtbClassPlan, 'quantum' | 'burstBytes' | 'cburstBytes'>): void => {
      // Whole kbit/s: tc prints them back exactly, so re-applying compares equal.
      const kbit = (x: number): number => Math.max(8000, Math.round(x / 1000) * 1000);
      const ceil = kbit(c.ceilBps);
      const rate = Math.min(kbit(c.rateBps), ceil);
      list.push({
        ...c,
        rateBps: rate,
        ceilBps: ceil,
        burstBytes: htbBurst(rate),
        cburstBytes: htbBurst(ceil),
        quantum: quantumFor(rate),
      });
    };
    cls({ minor: MINOR_ROOT, parent: 0, rateBps: cap, ceilBps: cap, leaf: false, label: 'root' });
    cls({
      minor: MINOR_DEFAULT_PARENT,
      parent: MINOR_ROOT,
      rateBps: defaultRate,
      ceilBps: cap,
      leaf: false,
      label: 'default-bucket',
    });
    // Unreserved ports that need a class of their own share the default bucket evenly with
    // the default leaf.
    const ownUnreserved = members.filter((p) => {
      const q = qosByPort.get(p.name)?.q;
      return (
        q !== undefined &&
        q.minimum === undefined &&
        (q.maximum?.outbound !== undefined || (q.classCaps ?? []).length > 0)
      );
    });
    const share = Math.floor(defaultRate / (ownUnreserved.length + 1));
    cls({
      minor: MINOR_DEFAULT_LEAF,
      parent: MINOR_DEFAULT_PARENT,
      rateBps: share,
      ceilBps: cap,
      leaf: true,
      label: 'default',
    });
    for (const p of members) {
      const pi = hostPorts.indexOf(p);
      const dev = factsOf(facts, p.interface);
      if (dev === undefined) continue; // the main compiler reports it
      const entry = qosByPort.get(p.name);
      const q = entry?.q;
      const own = q !== undefined && (q.minimum !== undefined || ownUnreserved.includes(p));
      if (!own) continue;
      if (dev.ifindex > QOS_IFINDEX_MAX) {
        report(
          `portQos[${entry?.i}].port`,
          `interface ${p.interface} of port "${p.name}" has ifindex ${dev.ifindex}; QoS classes need one below ${QOS_IFINDEX_MAX + 1} (ports[${pi}])`,
        );
        continue;
      }
      const outCap = q.maximum?.outbound;
      const scale = wireScale(Math.min(p.mtu ?? 65535, upMtu - NVGRE_ROOM));
      const ceil = Math.min(
        cap,
        outCap !== undefined ? Math.round(outCap.mbps * 1e6 * scale) : cap,
      );
      const rate = q.minimum !== undefined ? (rateOf.get(p.name) ?? share) : share;
      const caps = q.classCaps ?? [];
      const minor = PORT_BASE + dev.ifindex;
      cls({
        minor,
        parent: q.minimum !== undefined ? MINOR_ROOT : MINOR_DEFAULT_PARENT,
        rateBps: rate,
        ceilBps: ceil,
        leaf: caps.length === 0,
        label: `port:${p.name}`,
        port: p.name,
      });
      if (caps.length > 0) {
        const part = Math.floor(rate / (caps.length + 1));
        cls({
          minor: REST_BASE + dev.ifindex,
          parent: minor,
          rateBps: part,
          ceilBps: ceil,
          leaf: true,
          label: `port:${p.name}:rest`,
          port: p.name,
        });
        caps.forEach((c, k) => {
          const cminor = CLASS_BASE + k * 0x1000 + dev.ifindex;
          cls({
            minor: cminor,
            parent: minor,
            rateBps: part,
            ceilBps: Math.min(ceil, Math.round(c.mbps * 1e6 * scale)),
            leaf: true,
            label: `port:${p.name}:class:${c.name}`,
            port: p.name,
          });
          const list = portPrefixes.get(dev.ifindex) ?? [];
          for (const text of c.remotePrefixes) {
            list.push({ pfx: prefixOf(text), classid: classid(cminor), bucket: 0 });
          }
          portPrefixes.set(dev.ifindex, list);
        });
      }
    }
    uplinks.push({ interface: u.interface, capacityBps: cap, mode, classes: list });
  });

  // Tenant class caps: bucket ids in document order (the same on every host), one bucket per
  // (tenant, class) shared by all the tenant's ports here.
  const tenantCapRows = new Map<number, QosRateRow>();
  const tenantPrefixes = new Map<string, ClassPrefix[]>();
  let bucketId = 0;
  for (const t of policy.tenantQos) {
    const list: ClassPrefix[] = [];
    for (const c of t.classCaps) {
      bucketId++;
      tenantCapRows.set(bucketId, rateRow(c.mbps, c.burstKiB));
      for (const text of c.remotePrefixes)
        list.push({ pfx: prefixOf(text), classid: 0, bucket: bucketId });
    }
    tenantPrefixes.set(t.routingDomain, list);
  }
  const domainOfVsid = new Map<number, string>();
  for (const d of policy.routingDomains)
    for (const v of d.virtualSubnets) domainOfVsid.set(v.vsid, d.name);

  // The maps: every port of the host whose traffic meets an HTB (so a VM cannot pick a class by
  // setting its own skb->priority), and every port with an inbound or outbound cap.
  for (const p of hostPorts) {
    const dev = factsOf(facts, p.interface);
    if (dev === undefined) continue;
    const q = qosByPort.get(p.name)?.q;
    const iface = portUplinkInterface(policy, p);
    const shaped = iface !== undefined && shapedIfaces.has(iface);
    const tenantCaps = tenantPrefixes.get(domainOfVsid.get(p.vsid) ?? '') ?? [];
    if (!shaped && q === undefined && tenantCaps.length === 0) continue;
    let cid = 0;
    let flags = 0;
    if (shaped) {
      const plan = uplinks.find((u) => u.interface === iface);
      const mine = plan?.classes.find((c) => c.minor === PORT_BASE + dev.ifindex);
      cid =
        mine === undefined
          ? classid(MINOR_DEFAULT_LEAF)
          : classid(mine.leaf ? mine.minor : REST_BASE + dev.ifindex);
      if ((q?.classCaps ?? []).length > 0 && mine !== undefined) flags |= QOS_PORT_CLASSES;
    }
    const own = (flags & QOS_PORT_CLASSES) !== 0 ? (portPrefixes.get(dev.ifindex) ?? []) : [];
    const rows = mergeClassPrefixes(own, tenantCaps);
    for (const r of rows) {
      const addr = new Uint8Array(16);
      addr.set(r.pfx.bytes, 0);
      classes.push({
        key: {
          prefixlen: CLASS_KEY_FIXED_BITS + r.pfx.length,
          ifindex: dev.ifindex,
          family: r.pfx.family === 4 ? 4 : 6,
          addr,
        },
        value: { classid: r.classid, tenant_bucket: r.bucket },
      });
    }
    if (rows.length > 0) flags |= QOS_PORT_CLASSES;
    ports.set(dev.ifindex, {
      classid: cid,
      flags,
      inbound: rateRow(q?.maximum?.inbound?.mbps, q?.maximum?.inbound?.burstKiB),
      outbound: rateRow(q?.maximum?.outbound?.mbps, q?.maximum?.outbound?.burstKiB),
    });
    portIfindex.set(p.name, dev.ifindex);
  }
  if (issues.length > 0) throw new QosCompileError(hostName, issues);
  return { uplinks, ports, classes, portIfindex, tenantCaps: tenantCapRows };
}

interface ClassPrefix {
  readonly pfx: IpPrefix;
  readonly classid: number;
  readonly bucket: number;
}

function covers(outer: IpPrefix, inner: IpPrefix): boolean {
  if (outer.family !== inner.family || outer.length > inner.length) return false;
  for (let bit = 0; bit < outer.length; bit++) {
    const m = 0x80 >> bit % 8;
    if (((outer.bytes[bit >> 3] ?? 0) & m) !== ((inner.bytes[bit >> 3] ?? 0) & m)) return false;
  }
  return true;
}

/**
 * One LPM entry per distinct prefix of either list, carrying the port class AND the tenant
 * bucket that the longest matching prefix of each list gives: the trie returns one entry, so a
 * port's /24 class inside its tenant's 0.0.0.0/0 cap must carry the tenant's bucket too.
 */
export function mergeClassPrefixes(
  own: readonly ClassPrefix[],
  tenant: readonly ClassPrefix[],
): ClassPrefix[] {
  const longest = (list: readonly ClassPrefix[], p: IpPrefix): ClassPrefix | undefined =>
    list
      .filter((x) => covers(x.pfx, p))
      .reduce<
        ClassPrefix | undefined
      >((b, x) => (b === undefined || x.pfx.length > b.pfx.length ? x : b), undefined);
  const keys = new Map<string, IpPrefix>();
  for (const x of [...own, ...tenant]) keys.set(x.pfx.text, x.pfx);
  return [...keys.values()].map((pfx) => ({
    pfx,
    classid: longest(own, pfx)?.classid ?? 0,
    bucket: longest(tenant, pfx)?.bucket ?? 0,
  }));
}
