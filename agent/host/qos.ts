// The host agent's QoS stage: makes the kernel carry a compiled QoS plan (agent/compiler/qos.ts).
//
//   uplinks: an HTB qdisc (handle 7e:) on each uplink NIC with the plan's classes, and a leaf
//            qdisc under every leaf class: fq_codel where the kernel has it (short queues, so a
//            capped VM's own pings are not stuck behind its bulk traffic), else a bfifo of
//            max(20 ms at the class's ceiling, two 64 KiB GSO packets);
//   maps:    tenet_qos_ports and tenet_qos_cls from the plan; buckets and counters of ports that
//            left are deleted (bucket state of live ports is never written: no extra credit).
//
// Idempotent and incremental: what exists is read back (`tc qdisc show`, `tc -d class show`) and
// compared with what is wanted; a class that differs is changed in place (`tc class change`),
// never deleted and added again, which would drop its queue; classes nobody wants are deleted
// children first; an HTB of ours on an interface that is no longer an uplink is removed. A
// restarted agent finds the qdiscs it made and the pinned maps, and changes only differences.
// Everything runs in the managed network namespace through the agent's bounded command runner.
//
// Kernel capabilities are probed once, in a scratch network namespace (`unshare --net`, whose
// loopback is the only device touched): fq (EDT pacing, not used by this HTB design but
// reported), fq_codel (leaf qdisc).

import { Maps } from '../abi/generated.js';
import { sumPerCpu } from '../bpf/index.js';
import { openPinnedPerCpu, openPinnedTyped } from '../datapath/pinned.js';
import {
  classidText,
  HTB_MAJOR,
  MINOR_DEFAULT_LEAF,
  MIN_BURST_BYTES,
  type HtbClassPlan,
  type QosPlan,
  type UplinkPlan,
} from '../compiler/qos.js';
import { CommandError, runJson, type CommandRunner } from './command.js';
import { silentLogger, type Logger } from './log.js';
import { run } from '../process/exec.js';

/** Tenant class caps' buckets: pseudo ifindex bit and direction (bpf/abi/qos.h). */
const TENANT_BIT = 0x80000000;
const TENANT_DIR = 2;

export interface QosCapabilities {
  readonly htb: boolean;
  readonly fq: boolean;
  readonly fqCodel: boolean;
}

/** Which qdiscs the running kernel has, tried on the loopback of a scratch network namespace. */
export async function probeQdiscs(): Promise<QosCapabilities> {
  const tryKind = async (args: string[]): Promise<boolean> => {
    const r = await run(['unshare', '--net', 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', ...args], {
      timeoutMs: 5000,
    });
    return r.code === 0;
  };
  const [htb, fq, fqCodel] = await Promise.all([
    tryKind(['handle', '1:', 'htb']),
    tryKind(['fq']),
    tryKind(['fq_codel']),
  ]);
  return { htb, fq, fqCodel };
}

interface TcQdisc {
  kind: string;
  handle: string;
  root?: boolean;
  parent?: string;
  dev?: string;
  options?: { limit?: number };
}

export interface TcClass {
  readonly minor: number;
  readonly parent: number; // 0: root of the qdisc
  readonly rateBps: number;
  readonly ceilBps: number;
  readonly burstBytes: number;
  readonly cburstBytes: number;
  readonly quantum?: number;
}

export interface TcClassStats {
  readonly minor: number;
  readonly sentBytes: number;
  readonly sentPackets: number;
  readonly dropped: number;
  readonly overlimits: number;
  readonly backlogBytes: number;
  readonly backlogPackets: number;
}

const UNIT: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** `100Mbit`, `333333Kbit`, `1Gbit` -> bit/s. */
export function parseTcRate(text: string): number {
  const m = /^([\d.]+)([KMGT]?)bit$/.exec(text);
  if (!m) throw new Error(`unexpected tc rate ${JSON.stringify(text)}`);
  return Number(m[1]) * (UNIT[m[2] as string] as number);
}

function parseSize(text: string): number {
  const m = /^([\d.]+)(b|Kb|Mb)?/.exec(text);
  if (!m) throw new Error(`unexpected tc size ${JSON.stringify(text)}`);
  return Math.round(Number(m[1]) * (m[2] === 'Kb' ? 1024 : m[2] === 'Mb' ? 1024 * 1024 : 1));
}

function minorOf(handle: string): number {
  const [maj, min] = handle.split(':');
  if (parseInt(maj as string, 16) !== HTB_MAJOR) return -1;
  return min === '' || min === undefined ? 0 : parseInt(min, 16);
}

/** Parses `tc -d class show dev X` (HTB classes of our qdisc only). */
export function parseHtbClasses(text: string): TcClass[] {
  const out: TcClass[] = [];
  for (const line of text.split('\n')) {
    const m = /^class htb (\S+) (?:parent (\S+)|root)/.exec(line);
    if (!m) continue;
    const minor = minorOf(m[1] as string);
    if (minor < 0) continue;
    const field = (name: string): string | undefined =>
      new RegExp(`\\s${name} (\\S+)`).exec(line)?.[1];
    const quantum = field('quantum');
    out.push({
      minor,
      parent: m[2] === undefined ? 0 : minorOf(m[2]),
      rateBps: parseTcRate(field('rate') as string),
      ceilBps: parseTcRate(field('ceil') as string),
      burstBytes: parseSize(field('burst') as string),
      cburstBytes: parseSize(field('cburst') as string),
      ...(quantum === undefined ? {} : { quantum: Number(quantum) }),
    });
  }
  return out;
}

/** Parses `tc -s class show dev X`: the statistics of each HTB class of ours. */
export function parseHtbStats(text: string): TcClassStats[] {
  const out: TcClassStats[] = [];
  const blocks = text.split(/\n(?=class )/);
  for (const b of blocks) {
    const head = /^class htb (\S+)/.exec(b);
    if (!head) continue;
    const minor = minorOf(head[1] as string);
    if (minor < 0) continue;
    const sent = /Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)/.exec(b);
    const backlog = /backlog (\d+)b (\d+)p/.exec(b);
    out.push({
      minor,
      sentBytes: Number(sent?.[1] ?? 0),
      sentPackets: Number(sent?.[2] ?? 0),
      dropped: Number(sent?.[3] ?? 0),
      overlimits: Number(sent?.[4] ?? 0),
      backlogBytes: Number(backlog?.[1] ?? 0),
      backlogPackets: Number(backlog?.[2] ?? 0),
    });
  }
  return out;
}

/** Rates tc reads back are rounded to its printing; within this ratio they are equal. */
const RATE_TOLERANCE = 0.002;
const close = (a: number, b: number): boolean =>
  Math.abs(a - b) <= Math.max(1000, b * RATE_TOLERANCE);

/** HTB keeps bursts as transmission times and tc converts them back: allow its rounding. */
const closeBytes = (a: number, b: number): boolean => Math.abs(a - b) <= Math.max(64, b * 0.005);

function sameClass(have: TcClass, want: HtbClassPlan): boolean {
  return (
    have.parent === want.parent &&
    close(have.rateBps, want.rateBps) &&
    close(have.ceilBps, want.ceilBps) &&
    closeBytes(have.burstBytes, want.burstBytes) &&
    closeBytes(have.cburstBytes, want.cburstBytes) &&
    (!want.leaf || have.quantum === undefined || have.quantum === want.quantum)
  );
}

/** The leaf qdisc of a class: fq_codel when available, else a bfifo sized for latency. */
export function leafQdisc(c: HtbClassPlan, caps: QosCapabilities): string[] {
  if (caps.fqCodel) return ['fq_codel'];
  return ['bfifo', 'limit', String(bfifoLimit(c))];
}

export function bfifoLimit(c: Pick<HtbClassPlan, 'ceilBps'>): number {
  return Math.max(2 * MIN_BURST_BYTES, Math.round((c.ceilBps / 8) * 0.02));
}

export interface QosApplyReport {
  readonly tc: readonly string[];
  readonly mapWrites: number;
  readonly mapDeletes: number;
}

export interface QosManagerOptions {
  readonly pinRoot: string;
  readonly runner: CommandRunner;
  readonly logger?: Logger;
}

export class QosManager {
  private caps: QosCapabilities | undefined;
  private readonly log: Logger;
  /** Uplinks of the last applied plan (for stats). */
  private uplinks: readonly UplinkPlan[] = [];
  private lastPlan: QosPlan | undefined;

  constructor(private readonly opts: QosManagerOptions) {
    this.log = opts.logger ?? silentLogger;
  }

  async capabilities(): Promise<QosCapabilities> {
    if (this.caps === undefined) {
      this.caps = await probeQdiscs();
      this.log.info(
        {
          ...this.caps,
          outbound: 'HTB classification (skb->priority) on the uplink',
          inbound: 'BPF token-bucket policer (XDP/tc redirects bypass qdiscs)',
          leaf: this.caps.fqCodel ? 'fq_codel' : 'bfifo',
        },
        'QoS: kernel qdiscs probed',
      );
    }
    return this.caps;
  }

  private async tc(args: string[], done: string[]): Promise<void> {
    const argv = ['tc', ...args];
    const r = await this.opts.runner.run(argv);
    if (r.code !== 0) throw new CommandError(r);
    done.push(argv.join(' '));
  }

  private async tcText(args: string[]): Promise<string> {
    const r = await this.opts.runner.run(['tc', ...args]);
    if (r.code !== 0) throw new CommandError(r);
    return r.stdout;
  }

  /** Makes the uplinks and maps carry plan; `ifaces`: every interface name of the namespace. */
  async apply(plan: QosPlan, ifaces: Iterable<string>): Promise<QosApplyReport> {
    const done: string[] = [];
    const wanted = new Set(plan.uplinks.map((u) => u.interface));
    if (plan.uplinks.length > 0) {
      const caps = await this.capabilities();
      if (!caps.htb) throw new Error('QoS: this kernel has no HTB qdisc (sch_htb)');
      for (const u of plan.uplinks) await this.applyUplink(u, caps, done);
    }
    // HTBs of ours on interfaces that are no longer uplinks.
    const all = await runJson<TcQdisc[]>(this.opts.runner, ['tc', '-j', 'qdisc', 'show']);
    const present = new Set(ifaces);
    for (const q of all) {
      if (
        q.root === true &&
        q.kind === 'htb' &&
        q.handle === `${HTB_MAJOR.toString(16)}:` &&
        q.dev !== undefined &&
        present.has(q.dev) &&
        !wanted.has(q.dev)
      ) {
        await this.tc(['qdisc', 'del', 'dev', q.dev, 'root'], done);
      }
    }
    const maps = this.applyMaps(plan);
    this.uplinks = plan.uplinks;
    this.lastPlan = plan;
    if (done.length > 0 || maps.writes > 0 || maps.deletes > 0) {
      this.log.info(
        { tc: done.length, mapWrites: maps.writes, mapDeletes: maps.deletes },
        'QoS applied',
      );
    }
    return { tc: done, mapWrites: maps.writes, mapDeletes: maps.deletes };
  }

  private async applyUplink(u: UplinkPlan, caps: QosCapabilities, done: string[]): Promise<void> {
    const dev = u.interface;
    const qdiscs = await runJson<TcQdisc[]>(this.opts.runner, [
      'tc',
      '-j',
      'qdisc',
      'show',
      'dev',
      dev,
    ]);
    const root = qdiscs.find((q) => q.root === true);
    const ours = root?.kind === 'htb' && root.handle === `${HTB_MAJOR.toString(16)}:`;
    if (!ours) {
      await this.tc(
        [
          'qdisc',
          'replace',
          'dev',
          dev,
          'root',
          'handle',
          `${HTB_MAJOR.toString(16)}:`,
          'htb',
          'default',
          MINOR_DEFAULT_LEAF.toString(16),
        ],
        done,
      );
    }
    const have = new Map(
      (ours ? parseHtbClasses(await this.tcText(['-d', 'class', 'show', 'dev', dev])) : []).map(
        (c) => [c.minor, c],
      ),
    );
    const want = new Map(u.classes.map((c) => [c.minor, c]));
    // A class that must move to another parent is deleted (with its subtree) and added again.
    const removeTree = async (minor: number): Promise<void> => {
      for (const c of [...have.values()].filter((x) => x.parent === minor && x.minor !== minor)) {
        await removeTree(c.minor);
      }
      if (!have.has(minor)) return;
      await this.tc(['class', 'del', 'dev', dev, 'classid', classidText(minor)], done);
      have.delete(minor);
    };
    for (const c of have.values()) {
      const w = want.get(c.minor);
      if (w === undefined || w.parent !== c.parent) await removeTree(c.minor);
    }
    const qd = new Map(
      qdiscs.filter((q) => q.parent !== undefined).map((q) => [q.parent as string, q]),
    );
    for (const c of u.classes) {
      const params = [
        'htb',
        'rate',
        `${c.rateBps}bit`,
        'ceil',
        `${c.ceilBps}bit`,
        'burst',
        String(c.burstBytes),
        'cburst',
        String(c.cburstBytes),
        'quantum',
        String(c.quantum),
      ];
      const parent = c.parent === 0 ? `${HTB_MAJOR.toString(16)}:` : classidText(c.parent);
      const h = have.get(c.minor);
      if (h === undefined) {
        await this.tc(
          [
            'class',
            'add',
            'dev',
            dev,
            'parent',
            parent,
            'classid',
            classidText(c.minor),
            ...params,
          ],
          done,
        );
      } else if (!sameClass(h, c)) {
        await this.tc(
          [
            'class',
            'change',
            'dev',
            dev,
            'parent',
            parent,
            'classid',
            classidText(c.minor),
            ...params,
          ],
          done,
        );
      }
      if (!c.leaf) continue;
      const leaf = leafQdisc(c, caps);
      const cur = h === undefined ? undefined : qd.get(classidText(c.minor));
      const handle = `${c.minor.toString(16)}:`;
      if (cur === undefined || cur.kind !== leaf[0]) {
        await this.tc(
          [
            'qdisc',
            'replace',
            'dev',
            dev,
            'parent',
            classidText(c.minor),
            'handle',
            handle,
            ...leaf,
          ],
          done,
        );
      } else if (leaf[0] === 'bfifo' && cur.options?.limit !== bfifoLimit(c)) {
        await this.tc(
          [
            'qdisc',
            'change',
            'dev',
            dev,
            'parent',
            classidText(c.minor),
            'handle',
            cur.handle,
            ...leaf,
          ],
          done,
        );
      }
    }
  }

  private applyMaps(plan: QosPlan): { writes: number; deletes: number } {
    let writes = 0;
    let deletes = 0;
    const ports = openPinnedTyped(this.opts.pinRoot, Maps.tenet_qos_ports);
    const cls = openPinnedTyped(this.opts.pinRoot, Maps.tenet_qos_cls);
    const bkts = openPinnedTyped(this.opts.pinRoot, Maps.tenet_qos_bkts);
    const ctrs = openPinnedPerCpu(this.opts.pinRoot, Maps.tenet_qos_ctrs);
    const tcaps = openPinnedTyped(this.opts.pinRoot, Maps.tenet_qos_tcaps);
    try {
      // Classes first, so a port flagged for classes finds them.
      const clsKey = (k: {
        prefixlen: number;
        ifindex: number;
        family: number;
        addr: Uint8Array;
      }): string =>
        `${k.ifindex}/${k.family}/${Buffer.from(k.addr).toString('hex')}/${k.prefixlen}`;
      const wantCls = new Map(plan.classes.map((r) => [clsKey(r.key), r]));
      for (const r of plan.classes) {
        const cur = cls.get(r.key);
        if (cur?.classid !== r.value.classid || cur.tenant_bucket !== r.value.tenant_bucket) {
          cls.set(r.key, { ...r.value });
          writes++;
        }
      }
      for (const k of [...cls.keys()]) {
        if (!wantCls.has(clsKey(k))) {
          cls.delete(k);
          deletes++;
        }
      }
      // Tenant caps before the class entries that name them are used (rates only; state is the
      // datapath's).
      for (const [id, row] of plan.tenantCaps) {
        const cur = tcaps.get(id);
        if (cur?.bytes_per_sec !== row.bytes_per_sec || cur.burst_bytes !== row.burst_bytes) {
          tcaps.set(id, { ...row });
          writes++;
        }
      }
      for (const k of [...tcaps.keys()]) {
        if (!plan.tenantCaps.has(k)) {
          tcaps.delete(k);
          deletes++;
        }
      }
      for (const [ifindex, row] of plan.ports) {
        const cur = ports.get(ifindex);
        if (
          cur === undefined ||
          cur.classid !== row.classid ||
          cur.flags !== row.flags ||
          cur.inbound.bytes_per_sec !== row.inbound.bytes_per_sec ||
          cur.inbound.burst_bytes !== row.inbound.burst_bytes ||
          cur.outbound.bytes_per_sec !== row.outbound.bytes_per_sec ||
          cur.outbound.burst_bytes !== row.outbound.burst_bytes
        ) {
          ports.set(ifindex, {
            ...row,
            inbound: { ...row.inbound },
            outbound: { ...row.outbound },
          });
          writes++;
        }
      }
      for (const k of [...ports.keys()]) {
        if (!plan.ports.has(k)) {
          ports.delete(k);
          deletes++;
        }
      }
      // State of ports that left: their buckets and counters.
      for (const k of [...bkts.keys()]) {
        const gone =
          k.direction === TENANT_DIR
            ? !plan.tenantCaps.has(k.ifindex & ~TENANT_BIT)
            : !plan.ports.has(k.ifindex);
        if (gone) {
          bkts.delete(k);
          deletes++;
        }
      }
      for (const k of [...ctrs.keys()]) {
        if (!plan.ports.has(k.ifindex)) {
          ctrs.delete(k);
          deletes++;
        }
      }
    } finally {
      tcaps.close();
      ports.close();
      cls.close();
      bkts.close();
      ctrs.close();
    }
    return { writes, deletes };
  }

  /** HTB statistics of every class on the last applied plan's uplinks. */
  async htbStats(): Promise<{ uplink: string; class: HtbClassPlan; stats: TcClassStats }[]> {
    const out: { uplink: string; class: HtbClassPlan; stats: TcClassStats }[] = [];
    for (const u of this.uplinks) {
      let text: string;
      try {
        text = await this.tcText(['-s', 'class', 'show', 'dev', u.interface]);
      } catch {
        continue;
      }
      const byMinor = new Map(parseHtbStats(text).map((s) => [s.minor, s]));
      for (const c of u.classes) {
        const s = byMinor.get(c.minor);
        if (s !== undefined) out.push({ uplink: u.interface, class: c, stats: s });
      }
    }
    return out;
  }

  /** Everything QoS for the API and metrics: capabilities, HTB classes with stats, counters. */
  async status(): Promise<QosStatus> {
    const caps = await this.capabilities();
    const plan = this.lastPlan;
    const nameOf = new Map(
      [...(plan?.portIfindex ?? new Map<string, number>())].map(([n, i]) => [i, n]),
    );
    const stats = await this.htbStats();
    const counters = readQosCounters(this.opts.pinRoot);
    return {
      capabilities: caps,
      outboundMethod: 'htb',
      inboundMethod: 'policer',
      leafQdisc: caps.fqCodel ? 'fq_codel' : 'bfifo',
      uplinks: (plan?.uplinks ?? []).map((u) => ({
        interface: u.interface,
        capacityBps: u.capacityBps,
        mode: u.mode,
        classes: stats
          .filter((s) => s.uplink === u.interface)
          .map((s) => ({
            classid: classidText(s.class.minor),
            label: s.class.label,
            ...(s.class.port === undefined ? {} : { port: s.class.port }),
            rateBps: s.class.rateBps,
            ceilBps: s.class.ceilBps,
            sentBytes: s.stats.sentBytes,
            sentPackets: s.stats.sentPackets,
            droppedPackets: s.stats.dropped,
            overlimits: s.stats.overlimits,
            backlogBytes: s.stats.backlogBytes,
            backlogPackets: s.stats.backlogPackets,
          })),
      })),
      ports: counters
        .filter((c) => nameOf.has(c.ifindex))
        .map((c) => ({ ...c, port: nameOf.get(c.ifindex) as string })),
    };
  }

  /** The last applied plan (undefined before the first apply). */
  get plan(): QosPlan | undefined {
    return this.lastPlan;
  }
}

export interface QosClassStatus {
  readonly classid: string;
  readonly label: string;
  readonly port?: string;
  readonly rateBps: number;
  readonly ceilBps: number;
  readonly sentBytes: number;
  readonly sentPackets: number;
  readonly droppedPackets: number;
  /** Times the class was over its rate/ceiling: packets the shaper delayed. */
  readonly overlimits: number;
  readonly backlogBytes: number;
  readonly backlogPackets: number;
}

export interface QosStatus {
  readonly capabilities: QosCapabilities;
  /** How each direction is enforced here (docs/qos.md). */
  readonly outboundMethod: 'htb';
  readonly inboundMethod: 'policer';
  readonly leafQdisc: 'fq_codel' | 'bfifo';
  readonly uplinks: readonly {
    readonly interface: string;
    readonly capacityBps: number;
    readonly mode: string;
    readonly classes: readonly QosClassStatus[];
  }[];
  readonly ports: readonly (QosPortCounters & { readonly port: string })[];
}

export interface QosPortCounters {
  readonly ifindex: number;
  readonly direction: 'outbound' | 'inbound';
  readonly passedPackets: bigint;
  readonly passedBytes: bigint;
  readonly droppedPackets: bigint;
  readonly droppedBytes: bigint;
}

/** The QoS stage's per-port counters, summed over CPUs. */
export function readQosCounters(pinRoot: string): QosPortCounters[] {
  const m = openPinnedPerCpu(pinRoot, Maps.tenet_qos_ctrs);
  try {
    const out: QosPortCounters[] = [];
    for (const [k, v] of m.entries()) {
      const s = sumPerCpu(v, [
        'passed_packets',
        'passed_bytes',
        'dropped_packets',
        'dropped_bytes',
      ]);
      out.push({
        ifindex: k.ifindex,
        direction: k.direction === 0 ? 'outbound' : 'inbound',
        passedPackets: s.passed_packets,
        passedBytes: s.passed_bytes,
        droppedPackets: s.dropped_packets,
        droppedBytes: s.dropped_bytes,
      });
    }
    return out.sort((a, b) => a.ifindex - b.ifindex || a.direction.localeCompare(b.direction));
  } finally {
    m.close();
  }
}
