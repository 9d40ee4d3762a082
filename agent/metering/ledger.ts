// The metering ledger: per-port meter totals that survive agent restarts, interface changes and
// live migration, on top of datapath counters that are never reset.
//
// A port's lifetime total per (class, direction) is
//     base  +  the datapath's counter of the interface the port is bound to now
// where `base` holds everything counted before: on this host under earlier interfaces (an
// interface that was replaced has its final counters folded into base and then deleted), and on
// other hosts (imported). "Since reset" is the lifetime total minus `baseline`, the lifetime
// total recorded by the last ResetMeters; no BPF counter is ever zeroed.
//
// Sync (before every read or change): the ports the policy puts on this host are bound to their
// interface's ifindex. A port whose interface changed, or that left this host (a policy change
// moved it: the datapath no longer counts it, since its port and class entries are gone), has its
// final counters folded into base; a port that left becomes a DEPARTED record holding its final
// totals (and its reset baseline) under an id `<host>:<port>:<seq>` with a per-host sequence
// number, kept in the durable state until the orchestrator releases it. The folded interface's
// counters are deleted only after the ledger holding them is durable, so a crash in between
// leaves them to be deleted at the next start (pendingRemove), never counted twice.
//
// Migration protocol (docs/metering.md): ExportMeters on the source returns the port's departed
// records (idempotent: the same ids and totals every time); ImportMeters on the destination adds
// one record to the port's base and remembers its id, refusing the same id again
// (ALREADY_EXISTS); ExportMeters with release_ids then forgets records the destination has. A
// port that returns to this host before its departed record was exported takes the record back
// into its base (it never left, as far as metering knows); an exported record is never taken
// back (its totals now travel with the VM).

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  DEFAULT_METER_CLASS,
  DEFAULT_METER_CLASS_ID,
  METER_DIRECTIONS,
  meterClassId,
  meterClassNames,
  type MeterDirection,
  type Policy,
} from '../policy/index.js';
import type { MeterSource, RawMeterCount } from './source.js';

export const METER_STATE_FILE = 'meters.state';
const MAGIC = 'TENET-METERS';
const FORMAT = 1;

export interface Count {
  packets: bigint;
  bytes: bigint;
}

/** Counts by `${class}/${direction}`. */
export type ClassCounts = Map<string, Count>;

export interface ClassTotal {
  readonly className: string;
  readonly direction: MeterDirection;
  readonly packets: bigint;
  readonly bytes: bigint;
  readonly packetsSinceReset: bigint;
  readonly bytesSinceReset: bigint;
}

export interface PortMeters {
  readonly port: string;
  readonly interface: string;
  /** 0 while the port's interface does not exist. */
  readonly ifindex: number;
  readonly resetUnixMs: number;
  readonly classes: ClassTotal[];
}

/** Final totals of a port that left this host: what ExportMeters hands out. */
export interface MeterExport {
  readonly id: string;
  readonly sequence: number;
  readonly port: string;
  readonly sourceHost: string;
  readonly departedUnixMs: number;
  readonly resetUnixMs: number;
  readonly totals: ClassCounts;
  readonly baseline: ClassCounts;
}

interface PortState {
  ifindex: number;
  iface: string;
  base: ClassCounts;
  baseline: ClassCounts;
  resetUnixMs: number;
}

interface DepartedState extends MeterExport {
  exported: boolean;
}

interface LedgerState {
  sequence: number;
  ports: Map<string, PortState>;
  departed: Map<string, DepartedState>;
  imported: Set<string>;
  pendingRemove: number[];
  /** Class id -> name, for counters of classes the policy no longer names. */
  classNames: Map<number, string>;
}

export class MeterError extends Error {
  constructor(
    readonly kind: 'not_found' | 'failed_precondition' | 'already_exists' | 'invalid_argument',
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export const countKey = (className: string, d: MeterDirection): string => `${className}/${d}`;
function splitKey(k: string): [string, MeterDirection] {
  const i = k.lastIndexOf('/');
  return [k.slice(0, i), k.slice(i + 1) as MeterDirection];
}

function add(into: ClassCounts, key: string, c: Count): void {
  const o = into.get(key) ?? { packets: 0n, bytes: 0n };
  into.set(key, { packets: o.packets + c.packets, bytes: o.bytes + c.bytes });
}

function addAll(into: ClassCounts, from: ClassCounts): void {
  for (const [k, c] of from) add(into, k, c);
}

const isZero = (m: ClassCounts): boolean =>
  [...m.values()].every((c) => c.packets === 0n && c.bytes === 0n);

// ---- durable encoding ------------------------------------------------------------------------

type Json = Record<string, [string, string]>;
const countsToJson = (m: ClassCounts): Json =>
  Object.fromEntries([...m].map(([k, c]) => [k, [String(c.packets), String(c.bytes)]]));
const countsFromJson = (j: unknown): ClassCounts => {
  const out: ClassCounts = new Map();
  for (const [k, v] of Object.entries((j ?? {}) as Json))
    out.set(k, { packets: BigInt(v[0]), bytes: BigInt(v[1]) });
  return out;
};

function encode(s: LedgerState): Buffer {
  const body = Buffer.from(
    JSON.stringify({
      sequence: s.sequence,
      ports: Object.fromEntries(
        [...s.ports].map(([n, p]) => [
          n,
          {
            ifindex: p.ifindex,
            iface: p.iface,
            base: countsToJson(p.base),
            baseline: countsToJson(p.baseline),
            resetUnixMs: p.resetUnixMs,
          },
        ]),
      ),
      departed: [...s.departed.values()].map((d) => ({
        ...d,
        totals: countsToJson(d.totals),
        baseline: countsToJson(d.baseline),
      })),
      imported: [...s.imported],
      pendingRemove: s.pendingRemove,
      classNames: Object.fromEntries(s.classNames),
    }),
  );
  const sha = createHash('sha256').update(body).digest('hex');
  return Buffer.concat([
    Buffer.from(`${MAGIC} ${FORMAT} length=${body.length} sha256=${sha}\n`),
    body,
  ]);
}

function decode(data: Buffer): LedgerState {
  const nl = data.indexOf(0x0a);
  const m = /^(\S+) (\d+) length=(\d+) sha256=([0-9a-f]{64})$/.exec(
    data.subarray(0, Math.max(0, nl)).toString(),
  );
  if (nl < 0 || m === null || m[1] !== MAGIC || Number(m[2]) !== FORMAT)
    throw new Error('not a tenet meter state file of format 1');
  const body = data.subarray(nl + 1);
  if (body.length !== Number(m[3])) throw new Error('truncated or overlong');
  if (createHash('sha256').update(body).digest('hex') !== m[4])
    throw new Error('checksum mismatch');
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const j = JSON.parse(body.toString()) as any;
  return {
    sequence: Number(j.sequence),
    ports: new Map(
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      Object.entries(j.ports as Record<string, any>).map(([n, p]) => [
        n,
        {
          ifindex: Number(p.ifindex),
          iface: String(p.iface),
          base: countsFromJson(p.base),
          baseline: countsFromJson(p.baseline),
          resetUnixMs: Number(p.resetUnixMs),
        },
      ]),
    ),
    departed: new Map(
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      (j.departed as any[]).map((d) => [
        d.id,
        { ...d, totals: countsFromJson(d.totals), baseline: countsFromJson(d.baseline) },
      ]),
    ),
    imported: new Set(j.imported as string[]),
    pendingRemove: (j.pendingRemove as number[]).map(Number),
    classNames: new Map(
      Object.entries(j.classNames as Record<string, string>).map(([k, v]) => [Number(k), v]),
    ),
  };
}

const emptyState = (): LedgerState => ({
  sequence: 0,
  ports: new Map(),
  departed: new Map(),
  imported: new Set(),
  pendingRemove: [],
  classNames: new Map(),
});

export interface LedgerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface LedgerOptions {
  readonly hostName: string;
  readonly source: MeterSource;
  /** Durable state directory; undefined: in memory only (tests). */
  readonly stateDir?: string;
  /** The desired policy now (undefined while unknown). */
  readonly policy: () => Policy | undefined;
  readonly log?: LedgerLogger;
  readonly now?: () => number;
}

export class MeterLedger {
  private state: LedgerState = emptyState();
  private queue: Promise<unknown> = Promise.resolve();
  readonly path: string | undefined;
  private readonly now: () => number;

  private constructor(private readonly opts: LedgerOptions) {
    this.path = opts.stateDir === undefined ? undefined : join(opts.stateDir, METER_STATE_FILE);
    this.now = opts.now ?? Date.now;
  }

  /** Loads the durable ledger (a damaged file is set aside and reported, never guessed at). */
  static async open(opts: LedgerOptions): Promise<MeterLedger> {
    const l = new MeterLedger(opts);
    if (l.path !== undefined) {
      try {
        l.state = decode(await readFile(l.path));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
          const movedTo = `${l.path}.quarantine-${new Date().toISOString().replace(/[:.]/g, '-')}`;
          await rename(l.path, movedTo).catch(() => undefined);
          opts.log?.error(
            { event: 'meter_state_quarantined', err: String(e), movedTo },
            'the meter state file cannot be trusted: set aside; meter totals restart from the datapath counters',
          );
        }
      }
    }
    return l;
  }

  /** Runs fn after every earlier operation (one change at a time). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async persist(): Promise<void> {
    if (this.path === undefined) return;
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.${basename(this.path)}.tmp-${process.pid}`);
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
    try {
      await fh.writeFile(encode(this.state));
      await fh.sync();
    } catch (e) {
      await fh.close();
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    await fh.close();
    await rename(tmp, this.path);
    const d = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  private className(id: number): string {
    if (id === DEFAULT_METER_CLASS_ID) return DEFAULT_METER_CLASS;
    return this.state.classNames.get(id) ?? `class-${id}`;
  }

  private rawOf(raw: readonly RawMeterCount[], ifindex: number): ClassCounts {
    const out: ClassCounts = new Map();
    if (ifindex === 0) return out;
    for (const r of raw)
      if (r.ifindex === ifindex) add(out, countKey(this.className(r.classId), r.direction), r);
    return out;
  }

  /** Brings bindings in line with the policy (see the top of the file). Serialised callers only. */
  private async syncLocked(): Promise<RawMeterCount[]> {
    const s = this.state;
    const policy = this.opts.policy();
    let changed = false;
    if (policy !== undefined) {
      for (const acl of policy.portAcls)
        for (const name of meterClassNames(acl).slice(1)) {
          const id = meterClassId(name);
          if (s.classNames.get(id) !== name) {
            s.classNames.set(id, name);
            changed = true;
          }
        }
    }
    let raw = await this.opts.source.read();
    if (policy !== undefined) {
      const local = new Map<string, string>();
      for (const p of policy.ports)
        if (p.host === this.opts.hostName) local.set(p.name, p.interface);
      const current = new Map<string, number | undefined>();
      for (const [name, iface] of local) current.set(name, await this.opts.source.ifindexOf(iface));
      // Fold ports that left, whose interface is another one now (renamed in the policy, or
      // recreated: a new ifindex). An interface that is missing right now (or whose lookup
      // failed) keeps its binding: its counters cannot grow without it, and a transient lookup
      // failure must not fold and delete the counters of a live port.
      for (const [name, p] of s.ports) {
        const cur = current.get(name);
        const moved =
          !local.has(name) ||
          local.get(name) !== p.iface ||
          (cur !== undefined && cur !== p.ifindex);
        if (p.ifindex !== 0 && moved) {
          addAll(p.base, this.rawOf(raw, p.ifindex));
          s.pendingRemove.push(p.ifindex);
          p.ifindex = 0;
          changed = true;
        }
        if (!local.has(name)) {
          if (!isZero(p.base)) {
            s.sequence++;
            const id = `${this.opts.hostName}:${name}:${s.sequence}`;
            s.departed.set(id, {
              id,
              sequence: s.sequence,
              port: name,
              sourceHost: this.opts.hostName,
              departedUnixMs: this.now(),
              resetUnixMs: p.resetUnixMs,
              totals: p.base,
              baseline: p.baseline,
              exported: false,
            });
          }
          s.ports.delete(name);
          changed = true;
        }
      }
      // Bind local ports to their interfaces; a returning port takes back unexported records.
      for (const [name, iface] of local) {
        const cur = current.get(name);
        let p = s.ports.get(name);
        if (p === undefined) {
          p = { ifindex: 0, iface, base: new Map(), baseline: new Map(), resetUnixMs: 0 };
          s.ports.set(name, p);
          for (const [id, d] of s.departed) {
            if (d.port !== name || d.exported) continue;
            addAll(p.base, d.totals);
            addAll(p.baseline, d.baseline);
            p.resetUnixMs = Math.max(p.resetUnixMs, d.resetUnixMs);
            s.departed.delete(id);
          }
          changed = true;
        }
        if (p.iface !== iface) {
          p.iface = iface;
          changed = true;
        }
        if (p.ifindex === 0 && cur !== undefined) {
          p.ifindex = cur;
          // An interface the ledger is about to delete counters of is now this port's: keep them.
          s.pendingRemove = s.pendingRemove.filter((x) => x !== cur);
          changed = true;
        }
      }
    }
    if (changed) await this.persist();
    if (s.pendingRemove.length > 0) {
      for (const ifindex of s.pendingRemove) await this.opts.source.remove(ifindex);
      s.pendingRemove = [];
      await this.persist();
      raw = await this.opts.source.read();
    }
    return raw;
  }

  private totalsOf(p: PortState, raw: readonly RawMeterCount[]): ClassCounts {
    const t: ClassCounts = new Map();
    addAll(t, p.base);
    addAll(t, this.rawOf(raw, p.ifindex));
    return t;
  }

  private portView(name: string, p: PortState, raw: readonly RawMeterCount[]): PortMeters {
    const totals = this.totalsOf(p, raw);
    const policy = this.opts.policy();
    const names = meterClassNames(policy?.portAcls.find((a) => a.port === name));
    for (const k of [...totals.keys(), ...p.baseline.keys()]) {
      const [c] = splitKey(k);
      if (!names.includes(c)) names.push(c);
    }
    const classes: ClassTotal[] = [];
    for (const c of names)
      for (const d of METER_DIRECTIONS) {
        const t = totals.get(countKey(c, d)) ?? { packets: 0n, bytes: 0n };
        const b = p.baseline.get(countKey(c, d)) ?? { packets: 0n, bytes: 0n };
        classes.push({
          className: c,
          direction: d,
          packets: t.packets,
          bytes: t.bytes,
          packetsSinceReset: t.packets - b.packets,
          bytesSinceReset: t.bytes - b.bytes,
        });
      }
    return {
      port: name,
      interface: p.iface,
      ifindex: p.ifindex,
      resetUnixMs: p.resetUnixMs,
      classes,
    };
  }

  /** The ports a request names: one port, or every port of a routing domain on this host. */
  private targets(sel: { port?: string; routingDomain?: string }): string[] {
    const policy = this.opts.policy();
    if (policy === undefined)
      throw new MeterError(
        'failed_precondition',
        'the policy is unknown: apply a whole document first',
      );
    if (sel.port !== undefined) {
      const port = policy.ports.find((p) => p.name === sel.port);
      if (port === undefined)
        throw new MeterError('not_found', `port "${sel.port}" does not exist`, 'port');
      if (port.host !== this.opts.hostName)
        throw new MeterError(
          'failed_precondition',
          `port "${sel.port}" is on host ${port.host}, not ${this.opts.hostName}: measure it there`,
          'port',
        );
      return [port.name];
    }
    const rd = policy.routingDomains.find((d) => d.name === sel.routingDomain);
    if (rd === undefined)
      throw new MeterError(
        'not_found',
        `routing domain "${sel.routingDomain}" does not exist`,
        'routing_domain',
      );
    const vsids = new Set(rd.virtualSubnets.map((s) => s.vsid));
    return policy.ports
      .filter((p) => p.host === this.opts.hostName && vsids.has(p.vsid))
      .map((p) => p.name);
  }

  /** Totals of a port, or of every port of a routing domain on this host (and their sum). */
  measure(sel: { port?: string; routingDomain?: string }): Promise<PortMeters[]> {
    return this.serial(async () => {
      const raw = await this.syncLocked();
      return this.targets(sel).map((name) => {
        const p = this.state.ports.get(name) as PortState;
        return this.portView(name, p, raw);
      });
    });
  }

  /** Every local port (metrics). */
  all(): Promise<PortMeters[]> {
    return this.serial(async () => {
      const raw = await this.syncLocked();
      return [...this.state.ports].map(([n, p]) => this.portView(n, p, raw));
    });
  }

  /** Since-reset totals start again from now for the selected ports; lifetime totals go on. */
  reset(sel: { port?: string; routingDomain?: string }): Promise<PortMeters[]> {
    return this.serial(async () => {
      const raw = await this.syncLocked();
      const names = this.targets(sel);
      const t = this.now();
      for (const name of names) {
        const p = this.state.ports.get(name) as PortState;
        p.baseline = this.totalsOf(p, raw);
        p.resetUnixMs = t;
      }
      await this.persist();
      return names.map((n) => this.portView(n, this.state.ports.get(n) as PortState, raw));
    });
  }

  /**
   * The departed records of a port (first forgetting those in release: the destination has
   * them). Idempotent: the same records, ids and totals until released.
   */
  export(port: string, release: readonly string[] = []): Promise<MeterExport[]> {
    return this.serial(async () => {
      await this.syncLocked();
      let changed = false;
      for (const id of release) {
        const d = this.state.departed.get(id);
        if (d === undefined) continue; // released before: idempotent
        if (d.port !== port)
          throw new MeterError(
            'invalid_argument',
            `record ${id} is not of port "${port}"`,
            'release_ids',
          );
        if (!d.exported)
          throw new MeterError(
            'failed_precondition',
            `record ${id} was never exported: export it before releasing it`,
            'release_ids',
          );
        this.state.departed.delete(id);
        changed = true;
      }
      const out = [...this.state.departed.values()]
        .filter((d) => d.port === port)
        .sort((a, b) => a.sequence - b.sequence);
      for (const d of out)
        if (!d.exported) {
          d.exported = true;
          changed = true;
        }
      if (changed) await this.persist();
      if (out.length === 0 && release.length === 0) {
        if (this.state.ports.has(port))
          throw new MeterError(
            'failed_precondition',
            `port "${port}" is still on this host: its totals move once a policy change has moved it`,
            'port',
          );
        throw new MeterError('not_found', `no meter totals of port "${port}" to export`, 'port');
      }
      return out.map(({ exported: _e, ...rest }) => rest);
    });
  }

  /** Adds an exported record to its port's base, once. */
  import(rec: MeterExport): Promise<PortMeters> {
    return this.serial(async () => {
      const raw = await this.syncLocked();
      if (rec.sourceHost === this.opts.hostName)
        throw new MeterError(
          'failed_precondition',
          `record ${rec.id} was exported by this host; import it on the port's new host`,
          'record.source_host',
        );
      if (this.state.imported.has(rec.id))
        throw new MeterError(
          'already_exists',
          `record ${rec.id} was imported already`,
          'record.id',
        );
      this.targets({ port: rec.port });
      const p = this.state.ports.get(rec.port) as PortState;
      addAll(p.base, rec.totals);
      addAll(p.baseline, rec.baseline);
      p.resetUnixMs = Math.max(p.resetUnixMs, rec.resetUnixMs);
      this.state.imported.add(rec.id);
      await this.persist();
      return this.portView(rec.port, p, raw);
    });
  }

  close(): void {
    this.opts.source.close();
  }
}

export { splitKey };
