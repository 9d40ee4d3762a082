// Underlay next hops: for every remote provider address (PA) the policy's lookup records name, the
// MAC address the outer Ethernet header of an NVGRE frame to it must carry, kept in the datapath's
// TENET_MAP_UNDERLAY_NH (bpf/abi/policy.h). That map mirrors the host's neighbour table; it is
// not policy, so it has no generations: each entry is one atomic single-element update.
//
// How a PA is resolved:
//   1. the next hop and interface: the target's explicit next hop (the policy's underlayNextHop,
//      for PAs outside the on-link prefix) or the kernel's route (`ip -j route get PA oif DEV`,
//      where DEV is the NIC of the local PA that encapsulation sends from); gateway, else the PA
//      itself when on-link;
//   2. the next hop's MAC: `ip -j neigh show`, in any state that has a link-layer address except
//      INCOMPLETE and FAILED;
//   3. missing: provoke resolution with one bounded `ping -c 1` to the next hop (the kernel ARPs
//      for it), at most once per next hop per probeHoldMs, then read the neighbour table again.
// Route lookups are done in one `ip -batch` process and the neighbour table is read once per
// refresh, so the cost per refresh does not grow with process spawns per PA.
//
// Refreshing: `ip monitor label neigh route` runs as a child process while the resolver is started;
// any neighbour event schedules a (debounced) refresh, any route event also drops the cached next
// hops. A periodic refresh (refreshIntervalMs) re-resolves everything as a safety net. An entry
// whose next hop becomes unresolvable keeps its last MAC (forwarding to the last known MAC beats
// dropping) and is reported as unresolved until it resolves again; entries of PAs that no record
// names any more are removed by prune(), which the agent calls after the reconcile that stopped
// naming them.

import { TypedMap, type BpfMap } from '../bpf/index.js';
import { BE32 } from '../abi/codec.js';
import { UnderlayNhCodec, type UnderlayNh } from '../abi/generated.js';
import { formatMac, ipOf, ipv4ToNumber, numberToIpv4, parseIp } from '../policy/index.js';
import type { CommandRunner, Watcher } from './command.js';
import { errFields, silentLogger, type Logger } from './log.js';

/** A remote PA to resolve. */
export interface UnderlayTarget {
  /** The remote provider address (IPv4). */
  readonly pa: string;
  /** The local NIC encapsulated frames to this PA leave from (the local PA's interface). */
  readonly dev?: string;
  /** An explicit next hop (the policy's underlayNextHop) instead of the kernel's route. */
  readonly nextHop?: string;
}

/** What the resolver knows about one target. */
export interface UnderlayEntry {
  readonly pa: string;
  readonly nextHop?: string;
  readonly dev?: string;
  /** The MAC in the map (possibly the last known one when unresolved). */
  readonly mac?: string;
  /** Neighbour state (`REACHABLE`, `STALE`, `FAILED`, ...), or `none` when there is no entry. */
  readonly state: string;
  readonly resolved: boolean;
  /** Why it is unresolved. */
  readonly reason?: string;
}

export interface UnderlayStatus {
  readonly targets: number;
  readonly resolved: number;
  /** PAs without a usable next-hop MAC right now. */
  readonly unresolved: readonly string[];
  readonly entries: readonly UnderlayEntry[];
}

export interface UnderlayOptions {
  runner: CommandRunner;
  /** TENET_MAP_UNDERLAY_NH; the resolver owns the handle (stop() does not close it; close() does). */
  map: BpfMap;
  logger?: Logger;
  /** Provoke resolution of missing next hops with a ping (default true). */
  probe?: boolean;
  /** Time limit of one probe (default 1000 ms). */
  probeTimeoutMs?: number;
  /** Minimum time between two probes of one next hop (default 5000 ms). */
  probeHoldMs?: number;
  /** Periodic full refresh; 0 disables (default 30 000 ms). */
  refreshIntervalMs?: number;
  /** Follow neighbour and route changes with `ip monitor` (default true). */
  monitor?: boolean;
  /** Delay between a monitor event and the refresh it triggers (default 100 ms). */
  debounceMs?: number;
  /** Probes run in parallel (default 16). */
  probeConcurrency?: number;
}

export interface RefreshOptions {
  /** Allow probing (default: the resolver's `probe` option). */
  probe?: boolean;
  /** Look the routes up again instead of using the cached next hops. */
  reroute?: boolean;
}

interface Route {
  nextHop: string;
  dev: string;
}

interface Neighbour {
  mac: string | undefined;
  state: string;
}

const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;
const UNUSABLE_STATES = new Set(['INCOMPLETE', 'FAILED', 'NONE']);

function paNumber(pa: string): number {
  return ipv4ToNumber(ipOf(pa));
}

function isIpv4(text: string): boolean {
  return parseIp(text, 4).ok;
}

export class UnderlayResolver {
  /** Map writes and deletes done by this resolver. */
  readonly ops = { writes: 0, deletes: 0 };
  private readonly runner: CommandRunner;
  private readonly map: TypedMap<number, UnderlayNh>;
  private readonly log: Logger;
  private readonly opts: Required<Omit<UnderlayOptions, 'runner' | 'map' | 'logger'>>;
  private targets = new Map<string, UnderlayTarget>();
  /** What the map holds, PA number -> MAC text. */
  private readonly installed = new Map<number, string>();
  private readonly routes = new Map<string, Route>();
  private readonly lastProbe = new Map<string, number>();
  private entries = new Map<string, UnderlayEntry>();
  private queue: Promise<unknown> = Promise.resolve();
  private monitor: Watcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private started = false;

  constructor(options: UnderlayOptions) {
    this.runner = options.runner;
    this.map = new TypedMap(options.map, BE32, UnderlayNhCodec);
    this.log = options.logger ?? silentLogger;
    this.opts = {
      probe: options.probe ?? true,
      probeTimeoutMs: options.probeTimeoutMs ?? 1000,
      probeHoldMs: options.probeHoldMs ?? 5000,
      refreshIntervalMs: options.refreshIntervalMs ?? 30_000,
      monitor: options.monitor ?? true,
      debounceMs: options.debounceMs ?? 100,
      probeConcurrency: options.probeConcurrency ?? 16,
    };
    // Adopt what the map holds (a restarted agent rewrites nothing that is still right).
    for (const [pa, nh] of this.map.entries()) this.installed.set(pa, formatMac(nh.mac));
  }

  /** The PAs to resolve from now on. Entries of PAs left out stay until prune(). */
  setTargets(targets: Iterable<UnderlayTarget>): void {
    const next = new Map<string, UnderlayTarget>();
    for (const t of targets) {
      if (!isIpv4(t.pa)) throw new RangeError(`underlay target ${t.pa} is not an IPv4 address`);
      next.set(t.pa, t);
    }
    // A cached route stays valid while the target asks for the same thing.
    for (const pa of [...this.routes.keys()]) {
      const t = next.get(pa);
      const before = this.targets.get(pa);
      if (t === undefined || t.dev !== before?.dev || t.nextHop !== before?.nextHop) {
        this.routes.delete(pa);
      }
    }
    this.targets = next;
    for (const pa of [...this.entries.keys()]) if (!next.has(pa)) this.entries.delete(pa);
  }

  /** PAs the map holds an entry for. */
  installedPas(): string[] {
    return [...this.installed.keys()].map(numberToIpv4).sort();
  }

  /** Resolves every target and writes the entries that changed. Serialised with other calls. */
  refresh(opts: RefreshOptions = {}): Promise<UnderlayStatus> {
    return this.serialise(() => this.doRefresh(opts));
  }

  /** Deletes the entries of PAs that are not targets. Returns how many were deleted. */
  prune(): Promise<number> {
    return this.serialise(() => {
      let n = 0;
      for (const pa of [...this.installed.keys()]) {
        if (this.targets.has(numberToIpv4(pa))) continue;
        this.map.delete(pa);
        this.installed.delete(pa);
        this.ops.deletes++;
        n++;
        this.log.info({ pa: numberToIpv4(pa) }, 'underlay next hop removed');
      }
      return n;
    });
  }

  status(): UnderlayStatus {
    const entries = [...this.targets.keys()].sort().map(
      (pa) =>
        this.entries.get(pa) ?? {
          pa,
          state: 'none',
          resolved: false,
          reason: 'not resolved yet',
        },
    );
    const unresolved = entries.filter((e) => !e.resolved).map((e) => e.pa);
    return {
      targets: entries.length,
      resolved: entries.length - unresolved.length,
      unresolved,
      entries,
    };
  }

  /** Starts following neighbour/route changes and the periodic refresh. */
  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.opts.monitor) this.startMonitor();
    if (this.opts.refreshIntervalMs > 0) {
      this.timer = setInterval(() => {
        this.refresh({ reroute: true }).catch((e: unknown) =>
          this.log.warn(errFields(e), 'periodic underlay refresh failed'),
        );
      }, this.opts.refreshIntervalMs);
      this.timer.unref();
    }
  }

  /** Stops the monitor and timers, then waits for a refresh in flight. The map is left as is. */
  async stop(): Promise<void> {
    this.started = false;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    clearTimeout(this.restartTimer);
    this.timer = this.debounce = this.restartTimer = undefined;
    const m = this.monitor;
    this.monitor = undefined;
    await m?.stop();
    await this.queue.catch(() => undefined);
  }

  /** stop() and close the map handle. */
  async close(): Promise<void> {
    await this.stop();
    this.map.close();
  }

  private serialise<T>(f: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private startMonitor(): void {
    this.monitor = this.runner.watch(
      ['ip', 'monitor', 'label', 'neigh', 'route'],
      (line) => {
        if (line.startsWith('[ROUTE]')) this.routes.clear();
        this.scheduleRefresh();
      },
      (result) => {
        if (!this.started) return;
        this.log.warn(
          { code: result.code, stderr: result.stderr.trim() },
          'underlay monitor exited; restarting',
        );
        this.restartTimer = setTimeout(() => {
          if (this.started) this.startMonitor();
        }, 1000);
        this.restartTimer.unref();
      },
    );
  }

  private scheduleRefresh(): void {
    if (!this.started || this.debounce !== undefined) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.refresh().catch((e: unknown) =>
        this.log.warn(errFields(e), 'underlay refresh after a neighbour change failed'),
      );
    }, this.opts.debounceMs);
    this.debounce.unref();
  }

  private async doRefresh(opts: RefreshOptions): Promise<UnderlayStatus> {
    const targets = [...this.targets.values()];
    if (targets.length === 0) return this.status();
    if (opts.reroute) this.routes.clear();
    const routeErrors = await this.lookupRoutes(targets.filter((t) => !this.routes.has(t.pa)));
    let neighbours = await this.readNeighbours();

    const probe = opts.probe ?? this.opts.probe;
    if (probe) {
      const now = Date.now();
      const toProbe = new Map<string, Route>();
      for (const t of targets) {
        const route = this.routes.get(t.pa);
        if (route === undefined) continue;
        const key = `${route.nextHop}|${route.dev}`;
        if (usable(neighbours.get(key))) continue;
        if (now - (this.lastProbe.get(key) ?? -Infinity) < this.opts.probeHoldMs) continue;
        toProbe.set(key, route);
      }
      if (toProbe.size > 0) {
        for (const key of toProbe.keys()) this.lastProbe.set(key, now);
        await this.probeAll([...toProbe.values()]);
        neighbours = await this.readNeighbours();
      }
    }

    const entries = new Map<string, UnderlayEntry>();
    for (const t of targets) {
      const route = this.routes.get(t.pa);
      const current = this.installed.get(paNumber(t.pa));
      if (route === undefined) {
        entries.set(t.pa, {
          pa: t.pa,
          ...(current === undefined ? {} : { mac: current }),
          state: 'none',
          resolved: false,
          reason: routeErrors.get(t.pa) ?? 'no route',
        });
        continue;
      }
      const n = neighbours.get(`${route.nextHop}|${route.dev}`);
      const base = { pa: t.pa, nextHop: route.nextHop, dev: route.dev };
      if (!usable(n)) {
        entries.set(t.pa, {
          ...base,
          ...(current === undefined ? {} : { mac: current }),
          state: n?.state ?? 'none',
          resolved: false,
          reason:
            n === undefined
              ? `no neighbour entry for ${route.nextHop} on ${route.dev}`
              : `neighbour ${route.nextHop} on ${route.dev} is ${n.state}`,
        });
        continue;
      }
      const mac = n.mac;
      entries.set(t.pa, { ...base, mac, state: n.state, resolved: true });
      // The target may have been dropped while we were resolving: never re-add it.
      if (current !== mac && this.targets.has(t.pa)) {
        this.map.set(paNumber(t.pa), {
          mac: Uint8Array.from(mac.split(':'), (h) => parseInt(h, 16)),
        });
        this.installed.set(paNumber(t.pa), mac);
        this.ops.writes++;
        this.log.info(
          { pa: t.pa, nextHop: route.nextHop, dev: route.dev, mac, previous: current ?? null },
          'underlay next hop updated',
        );
      }
    }
    // Log transitions into "unresolved" once, not at every refresh.
    for (const [pa, e] of entries) {
      const before = this.entries.get(pa);
      if (!e.resolved && (before === undefined || before.resolved)) {
        this.log.warn(
          { pa, reason: e.reason, keptMac: e.mac ?? null },
          'underlay next hop unresolved',
        );
      }
    }
    this.entries = entries;
    return this.status();
  }

  /** Fills this.routes for the targets; returns the error per PA that has no route. */
  private async lookupRoutes(targets: readonly UnderlayTarget[]): Promise<Map<string, string>> {
    const errors = new Map<string, string>();
    if (targets.length === 0) return errors;
    // What to ask the kernel: the PA, or an explicit next hop whose interface is unknown.
    const queries: Array<{ target: UnderlayTarget; addr: string }> = [];
    for (const t of targets) {
      if (t.nextHop !== undefined && t.dev !== undefined) {
        this.routes.set(t.pa, { nextHop: t.nextHop, dev: t.dev });
      } else {
        queries.push({ target: t, addr: t.nextHop ?? t.pa });
      }
    }
    if (queries.length === 0) return errors;
    const input = queries
      .map((q) => `route get ${q.addr}${q.target.dev === undefined ? '' : ` oif ${q.target.dev}`}`)
      .join('\n');
    const r = await this.runner.run(['ip', '-j', '-force', '-batch', '-'], {
      input: `${input}\n`,
      timeoutMs: 10_000 + queries.length * 5,
    });
    // One JSON array per successful query, in order; failed ones print to stderr only.
    const byDst = new Map<string, { gateway?: string; dev?: string; type?: string }>();
    for (const line of r.stdout.split('\n')) {
      const text = line.trim();
      if (!text.startsWith('[')) continue;
      try {
        for (const o of JSON.parse(text) as Array<Record<string, unknown>>) {
          if (typeof o.dst !== 'string') continue;
          byDst.set(o.dst, {
            ...(typeof o.gateway === 'string' ? { gateway: o.gateway } : {}),
            ...(typeof o.dev === 'string' ? { dev: o.dev } : {}),
            ...(typeof o.type === 'string' ? { type: o.type } : {}),
          });
        }
      } catch {
        /* a line we do not understand: its query counts as failed */
      }
    }
    for (const q of queries) {
      const o = byDst.get(q.addr);
      if (o === undefined || o.dev === undefined) {
        errors.set(
          q.target.pa,
          `no route to ${q.addr}: ${r.stderr.trim() || 'route lookup failed'}`,
        );
        continue;
      }
      if (o.type !== undefined && o.type !== 'unicast') {
        errors.set(q.target.pa, `${q.addr} is a ${o.type} route, not reachable on the underlay`);
        continue;
      }
      const nextHop = q.target.nextHop ?? o.gateway ?? q.addr;
      this.routes.set(q.target.pa, { nextHop, dev: q.target.dev ?? o.dev });
    }
    return errors;
  }

  /** The IPv4 neighbour table by `ip|dev`. */
  private async readNeighbours(): Promise<Map<string, Neighbour>> {
    const r = await this.runner.run(['ip', '-j', '-4', 'neigh', 'show']);
    const out = new Map<string, Neighbour>();
    if (r.code !== 0) {
      this.log.warn({ stderr: r.stderr.trim() }, 'reading the neighbour table failed');
      return out;
    }
    const list = JSON.parse(r.stdout.trim() || '[]') as Array<Record<string, unknown>>;
    for (const n of list) {
      if (typeof n.dst !== 'string' || typeof n.dev !== 'string') continue;
      const states = Array.isArray(n.state) ? n.state.filter((s) => typeof s === 'string') : [];
      out.set(`${n.dst}|${n.dev}`, {
        mac:
          typeof n.lladdr === 'string' && MAC_RE.test(n.lladdr)
            ? n.lladdr.toLowerCase()
            : undefined,
        state: states.join(',') || 'NONE',
      });
    }
    return out;
  }

  private async probeAll(routes: readonly Route[]): Promise<void> {
    const seconds = Math.max(1, Math.ceil(this.opts.probeTimeoutMs / 1000));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < routes.length) {
        const route = routes[next++] as Route;
        const r = await this.runner.run(
          ['ping', '-n', '-q', '-c', '1', '-W', String(seconds), '-I', route.dev, route.nextHop],
          { timeoutMs: this.opts.probeTimeoutMs + 2000 },
        );
        this.log.debug(
          { nextHop: route.nextHop, dev: route.dev, code: r.code },
          'probed underlay next hop',
        );
      }
    };
    const n = Math.min(this.opts.probeConcurrency, routes.length);
    await Promise.all(Array.from({ length: n }, worker));
  }
}

function usable(n: Neighbour | undefined): n is Neighbour & { mac: string } {
  if (n === undefined || n.mac === undefined) return false;
  return !n.state.split(',').some((s) => UNUSABLE_STATES.has(s));
}
