// The lab: network namespaces, veth pairs, bridges and addresses for tests, the demo and
// benchmarks, with guaranteed teardown.
//
// Safety rules (GUIDE §2) are enforced here, not left to callers:
//  - everything is created inside namespaces this lab created; veth ends are created directly in
//    their target namespaces (`ip -n NS1 link add A type veth peer name B netns NS2`), never in
//    the root namespace;
//  - only 198.18.0.0/15 and fd00::/8 addresses and routes are accepted;
//  - every command has a hard time limit; background processes are tracked and killed;
//  - teardown is idempotent and also runs on process exit, SIGINT, SIGTERM and SIGHUP.
//
// Names: every lab has a per-run prefix `tn-<6 base36>`; namespace `x` is `tn-abc123-x`. A marker
// file /run/tenet-lab/<prefix>.json records the owning process so that `cleanupLeftovers()` can
// tell a crashed run's leftovers from a live parallel run.

import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  unlinkSync,
} from 'node:fs';
import { bytesToMac, cidrContains, ipFamily, isMac, parseCidr } from '../packet/addr.js';
import {
  type BgProcess,
  type ExecOptions,
  type ExecResult,
  ExecError,
  run,
  runOk,
  runSync,
  spawnBg,
} from '../process/exec.js';

export const LAB_NS_PREFIX = 'tn-';
export const BPFFS_ROOT = '/sys/fs/bpf';
export const BPFFS_TEST_PREFIX = 'tenet-test-';
export const LAB_STATE_DIR = '/run/tenet-lab';
export const NETNS_DIR = '/run/netns';

/** The only address ranges the lab will configure (GUIDE §2). */
export const LAB_RANGES = ['198.18.0.0/15', 'fd00::/8'] as const;

const ID_RE = /^[0-9a-z]{6}$/;
const SHORT_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const IFNAME_RE = /^[A-Za-z0-9_.@+-]{1,15}$/;

export class LabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabError';
  }
}

/** Throw unless `cidr` (address with optional /len) lies inside 198.18.0.0/15 or fd00::/8. */
export function assertLabAddress(cidr: string, what = 'address'): void {
  let ok = false;
  try {
    const c = parseCidr(cidr);
    ok = LAB_RANGES.some((r) => cidrContains(r, c));
  } catch (e) {
    throw new LabError(
      `${what} ${JSON.stringify(cidr)} is not a valid IP address or prefix: ${(e as Error).message}`,
    );
  }
  if (!ok) {
    throw new LabError(
      `${what} ${JSON.stringify(cidr)} is outside the lab ranges ${LAB_RANGES.join(' and ')}; ` +
        'labs and tests may only use those (GUIDE §2)',
    );
  }
}

export function assertIfname(name: string): void {
  if (!IFNAME_RE.test(name) || name === '.' || name === '..') {
    throw new LabError(
      `invalid interface name ${JSON.stringify(name)}: 1..15 chars of [A-Za-z0-9_.@+-]`,
    );
  }
}

/** A random locally administered unicast MAC (02:xx:...). */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = ((b[0] as number) & 0xfc) | 0x02;
  return bytesToMac(b);
}

export interface NetnsExecOptions extends ExecOptions {
  /**
   * 'ip-netns' (default): `ip netns exec`, which also gives a fresh /sys (hides /sys/fs/bpf).
   * 'nsenter': `nsenter --net=PATH`, network namespace only; use it for anything touching bpffs.
   */
  via?: 'ip-netns' | 'nsenter';
}

export interface LinkInfo {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  operstate?: string;
  flags: string[];
  master?: string;
  linkinfo?: { info_kind?: string };
  [k: string]: unknown;
}

export interface RouteOptions {
  via?: string;
  dev?: string;
  /** Extra `ip route` words, e.g. ['onlink'] or ['mtu', '1400']. */
  extra?: string[];
}

/** A network namespace created by a Lab. */
export class Netns {
  /** Full namespace name, e.g. tn-abc123-host1. */
  readonly name: string;
  /** `/run/netns/<name>`, for nsenter --net= and setns(2). */
  readonly path: string;

  constructor(
    readonly lab: Lab,
    /** The name given to lab.netns(), e.g. host1. */
    readonly short: string,
  ) {
    this.name = `${lab.prefix}-${short}`;
    this.path = `${NETNS_DIR}/${this.name}`;
  }

  /** argv wrapped so that it runs inside this namespace. */
  wrap(argv: readonly string[], via: NetnsExecOptions['via'] = 'ip-netns'): string[] {
    if (argv.length === 0) throw new TypeError('empty argv');
    return via === 'nsenter'
      ? ['nsenter', `--net=${this.path}`, '--', ...argv]
      : ['ip', 'netns', 'exec', this.name, ...argv];
  }

  /** Run a command in the namespace; resolves with { code, stdout, stderr, ... } and never rejects. */
  exec(argv: readonly string[], opts: NetnsExecOptions = {}): Promise<ExecResult> {
    this.lab.assertLive();
    return run(this.wrap(argv, opts.via), opts);
  }

  /** Like exec, but throws ExecError (with stderr) unless the command exits 0. */
  async execOk(argv: readonly string[], opts: NetnsExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(argv, opts);
    if (r.code !== 0) throw new ExecError(r, `in netns ${this.name}`);
    return r;
  }

  /** exec via `nsenter --net=PATH` (keeps the caller's mount namespace and thus /sys/fs/bpf). */
  enter(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(argv, { ...opts, via: 'nsenter' });
  }

  enterOk(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.execOk(argv, { ...opts, via: 'nsenter' });
  }

  /** Start a background process in the namespace; it is killed at lab teardown at the latest. */
  spawn(argv: readonly string[], opts: NetnsExecOptions = {}): BgProcess {
    this.lab.assertLive();
    const p = spawnBg(this.wrap(argv, opts.via), { timeoutMs: 120_000, ...opts });
    this.lab.track(p);
    return p;
  }

  /** `ip -n NAME <args>`, throwing on failure. */
  ip(...args: string[]): Promise<ExecResult> {
    this.lab.assertLive();
    return runOk(['ip', '-n', this.name, ...args], { timeoutMs: 15_000 }, `netns ${this.name}`);
  }

  async sysctl(key: string, value: string | number): Promise<void> {
    await this.sysctls({ [key]: value });
  }

  /** Set several sysctls in one process (the net.* ones are per namespace). */
  async sysctls(values: Record<string, string | number>): Promise<void> {
    const args: string[] = [];
    for (const [key, value] of Object.entries(values)) {
      if (!/^[A-Za-z0-9_./-]+$/.test(key))
        throw new LabError(`invalid sysctl key ${JSON.stringify(key)}`);
      args.push(`${key}=${value}`);
    }
    if (args.length) await this.execOk(['sysctl', '-qw', ...args], { timeoutMs: 10_000 });
  }

  async readSysctl(key: string): Promise<string> {
    const r = await this.execOk(['sysctl', '-n', key], { timeoutMs: 10_000 });
    return r.stdout.trim();
  }

  async linkUp(ifname: string): Promise<void> {
    await this.ip('link', 'set', 'dev', ifname, 'up');
  }

  async linkDown(ifname: string): Promise<void> {
    await this.ip('link', 'set', 'dev', ifname, 'down');
  }

  async setMtu(ifname: string, mtu: number): Promise<void> {
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new LabError(`invalid MTU ${mtu}`);
    await this.ip('link', 'set', 'dev', ifname, 'mtu', String(mtu));
  }

  async setMac(ifname: string, mac: string): Promise<void> {
    if (!isMac(mac)) throw new LabError(`invalid MAC ${JSON.stringify(mac)}`);
    await this.ip('link', 'set', 'dev', ifname, 'address', mac);
  }

  /** Add an address (CIDR); IPv6 addresses get `nodad` so they are usable at once. */
  async addAddr(ifname: string, cidr: string, opts: { nodad?: boolean } = {}): Promise<void> {
    assertLabAddress(cidr);
    const c = parseCidr(cidr);
    const args = ['addr', 'add', `${c.address}/${c.prefixLen}`, 'dev', ifname];
    if (c.family === 6 && opts.nodad !== false) args.push('nodad');
    await this.ip(...args);
  }

  /** Add a route; `dst` may be 'default' (then the family is taken from `via`). */
  async addRoute(dst: string, opts: RouteOptions = {}): Promise<void> {
    if (dst !== 'default') assertLabAddress(dst, 'route destination');
    if (opts.via) assertLabAddress(opts.via, 'route gateway');
    if (!opts.via && !opts.dev) throw new LabError(`route ${dst}: need via or dev`);
    const fam =
      dst !== 'default' ? ipFamily(parseCidr(dst).address) : opts.via ? ipFamily(opts.via) : 4;
    const args = [fam === 6 ? '-6' : '-4', 'route', 'add', dst];
    if (opts.via) args.push('via', opts.via);
    if (opts.dev) args.push('dev', opts.dev);
    if (opts.extra) args.push(...opts.extra);
    await this.ip(...args);
  }

  /** Add a permanent neighbour entry. */
  async addNeighbor(ifname: string, ip: string, mac: string): Promise<void> {
    assertLabAddress(ip, 'neighbour address');
    if (!isMac(mac)) throw new LabError(`invalid MAC ${JSON.stringify(mac)}`);
    await this.ip('neigh', 'replace', ip, 'lladdr', mac, 'dev', ifname, 'nud', 'permanent');
  }

  async links(): Promise<LinkInfo[]> {
    const r = await this.ip('-j', '-d', 'link', 'show');
    return JSON.parse(r.stdout || '[]') as LinkInfo[];
  }

  async link(ifname: string): Promise<LinkInfo> {
    const r = await this.ip('-j', '-d', 'link', 'show', 'dev', ifname);
    const arr = JSON.parse(r.stdout || '[]') as LinkInfo[];
    if (!arr[0]) throw new LabError(`no link ${ifname} in ${this.name}`);
    return arr[0];
  }

  async ifindex(ifname: string): Promise<number> {
    return (await this.link(ifname)).ifindex;
  }

  async mac(ifname: string): Promise<string> {
    const a = (await this.link(ifname)).address;
    if (!a) throw new LabError(`${ifname} in ${this.name} has no MAC`);
    return a;
  }
}

export interface VethEnd {
  ns: Netns | string;
  name: string;
  mac?: string;
  mtu?: number;
  /** CIDRs to add (validated against the lab ranges). */
  addrs?: string[];
  /** Bring the link up (default true). */
  up?: boolean;
}

export interface VethPair {
  a: { ns: Netns; name: string; mac: string };
  b: { ns: Netns; name: string; mac: string };
}

export interface BridgeOptions {
  mtu?: number;
  vlanFiltering?: boolean;
  /** Multicast snooping; off by default so ND/IGMP-less multicast is flooded. */
  mcastSnooping?: boolean;
  mac?: string;
}

export interface LabOptions {
  /** Where the marker lives (tests of cleanup may override). */
  stateDir?: string;
}

interface Marker {
  pid: number;
  start?: string;
  label: string;
  created: string;
}

function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime) after the ")" that ends comm (which may itself contain spaces).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

function markerAlive(m: Marker): boolean {
  try {
    process.kill(m.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return m.start === undefined || procStart(m.pid) === m.start;
}

// ---------- exit-time safety net ----------

const liveLabs = new Set<Lab>();
let handlersInstalled = false;
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function onExit(): void {
  for (const lab of [...liveLabs]) lab.teardownSync();
}

function onSignal(sig: NodeJS.Signals): void {
  onExit();
  uninstallHandlers();
  // Re-raise with the default disposition unless somebody else handles it.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstallHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.off('exit', onExit);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/** All labs of this process that are not torn down yet. */
export function liveLabCount(): number {
  return liveLabs.size;
}

export class Lab {
  /** 6 random base36 characters. */
  readonly id: string;
  /** `tn-<id>`: every namespace of this lab starts with `<prefix>-`. */
  readonly prefix: string;
  private readonly nss = new Map<string, Netns>();
  private readonly procs = new Set<BgProcess>();
  private readonly stateDir: string;
  private bpffs: string | undefined;
  private teardownPromise: Promise<void> | undefined;
  private dead = false;

  private constructor(
    readonly label: string,
    opts: LabOptions,
  ) {
    let id = '';
    do {
      id = '';
      const bytes = randomBytes(6);
      for (const b of bytes) id += (b % 36).toString(36);
    } while (
      existsSync(NETNS_DIR) &&
      readdirSync(NETNS_DIR).some((n) => n.startsWith(`${LAB_NS_PREFIX}${id}-`))
    );
    this.id = id;
    this.prefix = `${LAB_NS_PREFIX}${id}`;
    this.stateDir = opts.stateDir ?? LAB_STATE_DIR;
  }

  /** Create a lab (no namespaces yet). Requires root. */
  static async create(label: string, opts: LabOptions = {}): Promise<Lab> {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new LabError('the lab needs root (network namespaces, veth, bpffs)');
    }
    const lab = new Lab(label, opts);
    mkdirSync(lab.stateDir, { recursive: true });
    const marker: Marker = {
      pid: process.pid,
      start: procStart(process.pid),
      label,
      created: new Date().toISOString(),
    };
    writeFileSync(lab.markerPath, JSON.stringify(marker));
    liveLabs.add(lab);
    installHandlers();
    return lab;
  }

  private get markerPath(): string {
    return `${this.stateDir}/${this.prefix}.json`;
  }

  get tornDown(): boolean {
    return this.dead;
  }

  assertLive(): void {
    if (this.dead) throw new LabError(`lab ${this.prefix} (${this.label}) has been torn down`);
  }

  /** Full name of namespace `short` (whether or not it exists). */
  nsName(short: string): string {
    return `${this.prefix}-${short}`;
  }

  /** Create namespace `short` (or return it if this lab already made it). Loopback comes up, DAD is off. */
  async netns(short: string): Promise<Netns> {
    this.assertLive();
    const existing = this.nss.get(short);
    if (existing) return existing;
    if (!SHORT_RE.test(short) || short.length > 64) {
      throw new LabError(
        `invalid namespace name ${JSON.stringify(short)}: [A-Za-z0-9][A-Za-z0-9_.-]*`,
      );
    }
    const ns = new Netns(this, short);
    this.nss.set(short, ns); // registered before creation so teardown removes a half-made one
    await runOk(['ip', 'netns', 'add', ns.name], { timeoutMs: 15_000 }, `lab ${this.label}`);
    await ns.ip('link', 'set', 'dev', 'lo', 'up');
    // New interfaces inherit `default`; no DAD so IPv6 addresses work at once, no RAs/autoconf.
    const sysctls: Record<string, number> = {};
    for (const k of ['all', 'default']) {
      sysctls[`net.ipv6.conf.${k}.accept_dad`] = 0;
      sysctls[`net.ipv6.conf.${k}.dad_transmits`] = 0;
      sysctls[`net.ipv6.conf.${k}.accept_ra`] = 0;
    }
    await ns.sysctls(sysctls);
    return ns;
  }

  /** Look up a namespace this lab created; throws if absent. */
  get(short: string): Netns {
    const ns = this.nss.get(short);
    if (!ns) throw new LabError(`lab ${this.prefix} has no namespace ${JSON.stringify(short)}`);
    return ns;
  }

  has(short: string): boolean {
    return this.nss.has(short);
  }

  namespaces(): Netns[] {
    return [...this.nss.values()];
  }

  private resolve(ns: Netns | string): Netns {
    if (typeof ns !== 'string') {
      if (ns.lab !== this) throw new LabError(`namespace ${ns.name} belongs to another lab`);
      return ns;
    }
    return this.get(ns);
  }

  /**
   * Create a veth pair with each end directly in its namespace (never in the root namespace),
   * set MACs/MTU, add addresses and bring both ends up.
   */
  async veth(a: VethEnd, b: VethEnd): Promise<VethPair> {
    this.assertLive();
    const nsA = this.resolve(a.ns);
    const nsB = this.resolve(b.ns);
    assertIfname(a.name);
    assertIfname(b.name);
    if (nsA === nsB && a.name === b.name) throw new LabError(`veth ends must differ: ${a.name}`);
    for (const e of [a, b]) {
      if (e.mac && !isMac(e.mac))
        throw new LabError(`invalid MAC ${JSON.stringify(e.mac)} for ${e.name}`);
      for (const c of e.addrs ?? []) assertLabAddress(c);
    }
    const macA = a.mac ?? randomMac();
    const macB = b.mac ?? randomMac();
    const args = ['link', 'add', a.name, 'address', macA];
    if (a.mtu) args.push('mtu', String(a.mtu));
    args.push('type', 'veth', 'peer', 'name', b.name, 'address', macB);
    if (b.mtu) args.push('mtu', String(b.mtu));
    if (nsB !== nsA) args.push('netns', nsB.name);
    await nsA.ip(...args);
    for (const [ns, e] of [
      [nsA, a],
      [nsB, b],
    ] as const) {
      for (const c of e.addrs ?? []) await ns.addAddr(e.name, c);
      if (e.up !== false) await ns.linkUp(e.name);
    }
    return { a: { ns: nsA, name: a.name, mac: macA }, b: { ns: nsB, name: b.name, mac: macB } };
  }

  /** Create a Linux bridge (STP off, forward delay 0, snooping off) and bring it up. */
  async bridge(ns: Netns | string, name: string, opts: BridgeOptions = {}): Promise<void> {
    const n = this.resolve(ns);
    assertIfname(name);
    const args = ['link', 'add', 'name', name];
    if (opts.mac) args.push('address', opts.mac);
    if (opts.mtu) args.push('mtu', String(opts.mtu));
    args.push('type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    args.push('mcast_snooping', opts.mcastSnooping ? '1' : '0');
    // Only pass vlan_filtering when asked: kernels without CONFIG_BRIDGE_VLAN_FILTERING (like
    // ours) reject the attribute even when it is 0.
    if (opts.vlanFiltering) args.push('vlan_filtering', '1');
    await n.ip(...args);
    await n.linkUp(name);
  }

  /** Enslave `port` to `bridge` in the same namespace and bring the port up. */
  async bridgePort(ns: Netns | string, bridge: string, port: string): Promise<void> {
    const n = this.resolve(ns);
    await n.ip('link', 'set', 'dev', port, 'master', bridge);
    await n.linkUp(port);
  }

  /**
   * A per-lab bpffs directory `/sys/fs/bpf/tenet-test-<id>` (bpffs is mounted if absent), removed at
   * teardown. Use it with `nsenter`-based execution; `ip netns exec` hides /sys/fs/bpf.
   */
  async bpffsDir(): Promise<string> {
    this.assertLive();
    if (this.bpffs) return this.bpffs;
    await ensureBpffs();
    const dir = `${BPFFS_ROOT}/${BPFFS_TEST_PREFIX}${this.id}`;
    this.bpffs = dir;
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Called by Netns.spawn; tracked processes are killed at teardown. */
  track(p: BgProcess): void {
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
  }

  /**
   * Delete everything this lab created: kill tracked processes and any process still inside its
   * namespaces, delete the namespaces (which takes their veths), remove its bpffs dir and marker.
   * Idempotent; safe to call concurrently. Throws an aggregate error only after trying everything.
   */
  teardown(): Promise<void> {
    if (!this.teardownPromise) this.teardownPromise = this.doTeardown();
    return this.teardownPromise;
  }

  private async doTeardown(): Promise<void> {
    this.dead = true;
    const errors: string[] = [];
    await Promise.all([...this.procs].map((p) => p.kill('SIGTERM', 1000)));
    for (const ns of [...this.nss.values()].reverse()) {
      await killNetnsPids(ns.name);
      const r = await run(['ip', 'netns', 'del', ns.name], { timeoutMs: 15_000 });
      if (r.code !== 0 && existsSync(ns.path))
        errors.push(`ip netns del ${ns.name}: ${r.stderr.trim()}`);
    }
    this.nss.clear();
    if (this.bpffs) {
      try {
        rmSync(this.bpffs, { recursive: true, force: true });
      } catch (e) {
        errors.push(`rm ${this.bpffs}: ${(e as Error).message}`);
      }
    }
    try {
      unlinkSync(this.markerPath);
    } catch {
      /* gone */
    }
    liveLabs.delete(this);
    if (liveLabs.size === 0) uninstallHandlers();
    if (errors.length)
      throw new LabError(
        `teardown of lab ${this.prefix} (${this.label}) incomplete:\n${errors.join('\n')}`,
      );
  }

  /** Synchronous best-effort teardown, for process exit handlers. */
  teardownSync(): void {
    if (this.dead && !liveLabs.has(this)) return;
    this.dead = true;
    for (const p of this.procs) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const ns of [...this.nss.values()].reverse()) {
      const pids = runSync(['ip', 'netns', 'pids', ns.name]).stdout.split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      runSync(['ip', 'netns', 'del', ns.name]);
    }
    this.nss.clear();
    if (this.bpffs) rmSync(this.bpffs, { recursive: true, force: true });
    try {
      unlinkSync(this.markerPath);
    } catch {
      /* gone */
    }
    liveLabs.delete(this);
    this.teardownPromise ??= Promise.resolve();
  }
}

async function killNetnsPids(nsName: string): Promise<void> {
  const r = await run(['ip', 'netns', 'pids', nsName], { timeoutMs: 10_000 });
  const pids = r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => p > 1 && p !== process.pid);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Mount bpffs on /sys/fs/bpf if it is not mounted (GUIDE §1). */
export async function ensureBpffs(): Promise<void> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  if (mounts.split('\n').some((l) => l.split(' ')[1] === BPFFS_ROOT && l.split(' ')[2] === 'bpf'))
    return;
  await runOk(['mount', '-t', 'bpf', 'bpf', BPFFS_ROOT], { timeoutMs: 10_000 }, 'mount bpffs');
}

/** Create a lab, run fn, always tear down (also when fn throws). */
export async function withLab<T>(
  label: string,
  fn: (lab: Lab) => Promise<T> | T,
  opts: LabOptions = {},
): Promise<T> {
  const lab = await Lab.create(label, opts);
  try {
    return await fn(lab);
  } finally {
    await lab.teardown();
  }
}

export interface CleanupOptions {
  /** Also remove leftovers of labs whose owning process is still alive (default false). */
  all?: boolean;
  stateDir?: string;
  /** Only report what would be removed. */
  dryRun?: boolean;
  /** Restrict to these lab ids (the 6 characters after `tn-`); default: every tn-* leftover. */
  ids?: string[];
}

export interface CleanupReport {
  namespaces: string[];
  bpffsDirs: string[];
  markers: string[];
  /** Prefixes left alone because their owning process is alive. */
  skippedLive: string[];
  errors: string[];
}

/**
 * Remove every `tn-*` namespace and `/sys/fs/bpf/tenet-test-*` directory left by crashed runs.
 * Labs whose owner process is still alive (per their marker) are skipped unless `all` is set;
 * this process's own live labs are always skipped unless `all` is set.
 */
export async function cleanupLeftovers(opts: CleanupOptions = {}): Promise<CleanupReport> {
  const stateDir = opts.stateDir ?? LAB_STATE_DIR;
  const report: CleanupReport = {
    namespaces: [],
    bpffsDirs: [],
    markers: [],
    skippedLive: [],
    errors: [],
  };
  const mine = new Set([...liveLabs].map((l) => l.id));
  const isLive = (id: string): boolean => {
    if (opts.all) return false;
    if (mine.has(id)) return true;
    try {
      const m = JSON.parse(
        readFileSync(`${stateDir}/${LAB_NS_PREFIX}${id}.json`, 'utf8'),
      ) as Marker;
      return markerAlive(m);
    } catch {
      return false;
    }
  };
  const only = opts.ids ? new Set(opts.ids) : undefined;
  const skip = (id: string | undefined): boolean => {
    if (only && (id === undefined || !only.has(id))) return true;
    if (id === undefined || !isLive(id)) return false;
    if (!report.skippedLive.includes(id)) report.skippedLive.push(id);
    return true;
  };

  const nsNames = existsSync(NETNS_DIR)
    ? readdirSync(NETNS_DIR).filter((n) => n.startsWith(LAB_NS_PREFIX))
    : [];
  for (const name of nsNames) {
    const id = /^tn-([0-9a-z]{6})-/.exec(name)?.[1];
    if (skip(id)) continue;
    report.namespaces.push(name);
    if (opts.dryRun) continue;
    await killNetnsPids(name);
    const r = await run(['ip', 'netns', 'del', name], { timeoutMs: 15_000 });
    if (r.code !== 0 && existsSync(`${NETNS_DIR}/${name}`))
      report.errors.push(`ip netns del ${name}: ${r.stderr.trim()}`);
  }

  let bpfDirs: string[] = [];
  try {
    bpfDirs = readdirSync(BPFFS_ROOT).filter((n) => n.startsWith(BPFFS_TEST_PREFIX));
  } catch {
    /* bpffs not mounted or /sys/fs/bpf absent */
  }
  for (const d of bpfDirs) {
    const id = d.slice(BPFFS_TEST_PREFIX.length);
    if (skip(ID_RE.test(id) ? id : undefined)) continue;
    const path = `${BPFFS_ROOT}/${d}`;
    report.bpffsDirs.push(path);
    if (opts.dryRun) continue;
    try {
      rmSync(path, { recursive: true, force: true });
    } catch (e) {
      report.errors.push(`rm ${path}: ${(e as Error).message}`);
    }
  }

  let markers: string[] = [];
  try {
    markers = readdirSync(stateDir).filter(
      (n) => n.startsWith(LAB_NS_PREFIX) && n.endsWith('.json'),
    );
  } catch {
    /* no state dir */
  }
  for (const m of markers) {
    const id = m.slice(LAB_NS_PREFIX.length, -'.json'.length);
    if (skip(id)) continue;
    report.markers.push(m);
    if (!opts.dryRun) rmSync(`${stateDir}/${m}`, { force: true });
  }
  return report;
}
