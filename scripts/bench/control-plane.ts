// Control-plane benchmark: a real tenetd on the real BPF datapath, driven through its gRPC socket.
//
//   1. bulk load: N generated lookup records streamed through BulkLoadLookupRecords (REPLACE, in
//      10,000-record chunks like `tenetctl apply`), wall time and records/s, with the daemon's
//      own breakdown from its "policy changed" log line (build / validate / diff / persist /
//      reconcile) and the host agent's apply duration; the pinned tenet_records map is counted
//      afterwards. Each size is loaded from the base policy (demo records only), RUNS times.
//   2. update -> visible: single-record UpdateLookupRecord calls (a new MAC each time) on the
//      largest loaded set; for each, the RPC latency and the time from the RPC returning to the
//      new value being readable in the pinned map (tight bounded poll through the binding).
//   3. tenetd's resident memory (VmRSS, VmHWM from /proc/PID/status) after each load.
//
// The lab is the demo lab (scripts/lab/demo-lab.yaml); tenetd runs for hv1 with its pins in the
// lab's bpffs directory, the demo policy plus a benchmark virtual subnet (VSID 7001,
// fd00:70:1::/64) so that a million customer addresses fit; every generated record lives on hv2
// (a remote record on hv1). A size that does not fit the datapath's map is still attempted and
// reported with the status the API answered.
//
// Usage: npm run bench:control-plane [-- --records N] [--quick] [--runs R] [--updates U]
//        [--update-seconds S] [--capacity C] [--cpu-prof]
// (--capacity: tenetd's capacity.lookupRecords, default 1048576 so that a million records fit)
// (root; writes bench/results/control-plane-<date>[-N].json; --cpu-prof keeps tenetd's CPU profile
// in bench/tmp/ and prints where its time went)

import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ServiceError } from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { Maps, TENET_ABI_VERSION } from '../../agent/abi/generated.js';
import { TenetClient } from '../../agent/api/client.js';
import type { Plain } from '../../agent/api/proto.js';
import { BpfMap, TypedMap } from '../../agent/bpf/index.js';
import { Lab, buildTopology, loadLabFile } from '../../agent/lab/index.js';
import { parseDocument } from 'yaml';
import {
  killDaemon,
  startDaemon,
  tenetdConfig,
  type DaemonProc,
} from '../../test/helpers/tenetd.js';
import { machineDescription, summarize, type Summary } from './stats.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)).replace('/dist/', '/'));
const LAB_DIR = join(REPO, 'scripts', 'lab');
const VSID = 7001;
const REMOTE_PA = '198.18.0.2'; // hv2: every generated record is remote on hv1
const CHUNK = 10_000;
// A larger V8 heap than the default, so that a million-record document is measured rather than
// running out of heap; recorded in the results.
const TENETD_NODE_OPTIONS = '--max-old-space-size=8192';

interface Rec {
  vsid: number;
  ca: string;
  mac: string;
  pa: string;
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const macOf = (prefix: number, i: number): string =>
  `02:${hex2(prefix)}:${hex2((i >>> 24) & 255)}:${hex2((i >>> 16) & 255)}:${hex2((i >>> 8) & 255)}:${hex2(i & 255)}`;
const hiLo = (i: number): [number, number] => [(i >>> 16) + 1, i & 0xffff];
const caOf = (i: number): string => {
  const [hi, lo] = hiLo(i);
  return `fd00:70:1::${hi.toString(16)}:${lo.toString(16)}`;
};
function caBytes(i: number): Uint8Array {
  const [hi, lo] = hiLo(i);
  const b = new Uint8Array(16);
  b.set([0xfd, 0x00, 0x00, 0x70, 0x00, 0x01]);
  b[12] = hi >> 8;
  b[13] = hi & 255;
  b[14] = lo >> 8;
  b[15] = lo & 255;
  return b;
}
const record = (i: number, macPrefix = 0xb0): Rec => ({
  vsid: VSID,
  ca: caOf(i),
  mac: macOf(macPrefix, i),
  pa: REMOTE_PA,
});

/** The demo policy plus routing domain "bench" with VSID 7001 (fd00:70:1::/64). */
function benchPolicy(): { doc: Plain; demoRecords: Rec[] } {
  const text = readFileSync(join(LAB_DIR, 'demo-policy.yaml'), 'utf8');
  const doc = parseDocument(text).toJS() as Plain;
  const domains = doc.routingDomains as Plain[];
  domains.push({
    name: 'bench',
    virtualSubnets: [
      {
        name: 'bench-web',
        vsid: VSID,
        prefixes: ['fd00:70:1::/64'],
        gateway: { ipv6: 'fd00:70:1::1' },
      },
    ],
  });
  return { doc, demoRecords: doc.lookupRecords as Rec[] };
}

function rss(pid: number): { rssMiB: number; hwmMiB: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
}

function countEntries(pinRoot: string): number {
  const map = BpfMap.openPinned(join(pinRoot, 'tenet_records'));
  try {
    let n = 0;
    for (let k = map.nextKey(null); k !== null; k = map.nextKey(k)) n++;
    return n;
  } finally {
    map.close();
  }
}

function* chunks(records: readonly Rec[]): Generator<Plain> {
  yield { mode: 'BULK_LOAD_MODE_REPLACE', lookupRecords: [] };
  for (let i = 0; i < records.length; i += CHUNK)
    yield { lookupRecords: records.slice(i, i + CHUNK) };
}

const codeName = (e: unknown): string =>
  typeof (e as ServiceError).code === 'number'
    ? `${(e as ServiceError).code} ${(e as ServiceError).details}`
    : String(e);

interface LoadResult {
  run: number;
  records: number;
  ok: boolean;
  error?: string;
  wallMs: number;
  recordsPerSecond: number;
  mapEntries: number;
  daemonMs?: Record<string, number>;
  hostApplyMs?: number;
  rssMiB: number;
  hwmMiB: number;
}

export interface ControlPlaneOptions {
  /** Record counts to load (each from the base policy); sizes the map cannot hold are still tried. */
  readonly sizes: readonly number[];
  /** Repetitions of every size. */
  readonly runs: number;
  /** Single-record updates on the largest set that loaded (bounded by updateBudgetMs). */
  readonly updates: number;
  readonly updateBudgetMs: number;
  /** At least this many updates even past the budget (a p99 needs some). */
  readonly minUpdates?: number;
  readonly cpuProf?: boolean;
  readonly log?: (line: string) => void;
  /** tenetd's capacity.lookupRecords for the run (default DEFAULT_CAPACITY). */
  readonly capacity?: number;
}

/** The records map's size for the benchmark: room for 1,000,000 records and the demo's. */
export const DEFAULT_CAPACITY = 1_048_576;

export type ControlPlaneSummary = Record<string, unknown> & {
  records_map_capacity: number;
  bulk_load: Record<
    string,
    {
      ok: boolean;
      error?: string;
      wall_ms: Summary;
      records_per_second: Summary;
      rss_mib: Summary;
      rss_mib_run1: number;
    }
  >;
  update: {
    on_records: number;
    rpc_ms: Record<string, number>;
    rpc_return_to_visible_ms: Record<string, number>;
    rpc_plus_visible_ms: Record<string, number>;
  };
};

/** The sizes the CLI measures for N: 10k, the largest round size the map can hold, 100k, N. */
export function defaultSizes(n: number, capacity = DEFAULT_CAPACITY): number[] {
  const fit = Math.floor((capacity - benchPolicy().demoRecords.length) / 5000) * 5000;
  return [...new Set([10_000, fit, 100_000, n].filter((s) => s <= n))].sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      records: { type: 'string', default: '1000000' },
      quick: { type: 'boolean', default: false },
      runs: { type: 'string', default: '3' },
      updates: { type: 'string', default: '1000' },
      'update-seconds': { type: 'string', default: '120' },
      'cpu-prof': { type: 'boolean', default: false },
      capacity: { type: 'string', default: '1048576' },
    },
  });
  const n = values.quick ? 100_000 : Number(values.records);
  const runs = Number(values.runs);
  if (!Number.isInteger(n) || n < 1 || n > 4_000_000) throw new Error('--records takes 1..4e6');
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs takes a positive integer');
  const stemOf = (date: string): string =>
    `control-plane-${date.slice(0, 10)}${n === 1_000_000 ? '' : `-${n}`}`;
  // tenetd's capacity.lookupRecords (the records map's max_entries).
  const capacity = Number(values.capacity);
  if (!Number.isInteger(capacity) || capacity < 1024) throw new Error('--capacity takes >= 1024');
  const summary = await measureControlPlane({
    sizes: defaultSizes(n, capacity),
    capacity,
    runs,
    updates: Number(values.updates),
    updateBudgetMs: Number(values['update-seconds']) * 1000,
    cpuProf: values['cpu-prof'],
    profileName: stemOf(new Date().toISOString()),
  } as ControlPlaneOptions & { profileName: string });
  const out = join(REPO, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  // control-plane-<date>.json for the default 1,000,000 records, -<N> for other sizes.
  const file = join(out, `${stemOf(summary.date as string)}.json`);
  writeFileSync(file, JSON.stringify(summary, null, 2) + '\n');
  console.log(`written to ${file}`);
}

/** Loads, updates and measures a real tenetd on the demo lab; returns the figures (no files). */
export async function measureControlPlane(
  o: ControlPlaneOptions & { profileName?: string },
): Promise<ControlPlaneSummary> {
  const log = o.log ?? ((l: string) => console.log(l));
  const sizes = [...o.sizes].sort((a, b) => a - b);
  const n = sizes[sizes.length - 1]!;
  const runs = o.runs;
  const updates = o.updates;
  const updateBudgetMs = o.updateBudgetMs;
  const minUpdates = o.minUpdates ?? 0;
  const capacity = o.capacity ?? DEFAULT_CAPACITY;
  const { doc, demoRecords } = benchPolicy();
  const generated = Array.from({ length: n }, (_, i) => record(i));

  const lab = await Lab.create('bench-cp');
  const dir = mkdtempSync(join(tmpdir(), 'bench-cp-'));
  const profDir = join(dir, 'prof');
  let daemon: DaemonProc | undefined;
  let client: TenetClient | undefined;
  try {
    const topo = await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml')));
    const pinRoot = join(await lab.bpffsDir(), 'hv1');
    const cfg = tenetdConfig(dir, {
      pinRoot,
      metricsListen: null,
      logLevel: 'info',
      datapath:
        `datapath:\n  backend: host\n  netns: ${topo.host('hv1').ns.path}\n` +
        `capacity:\n  lookupRecords: ${capacity}\n`,
    });
    // --cpu-prof is not allowed in NODE_OPTIONS: put it on tenetd's node command line (exec keeps
    // the pid tenetd's own).
    const prof = ['sh', '-c', `exec "$0" --cpu-prof --cpu-prof-dir=${profDir} "$@"`];
    daemon = startDaemon(
      cfg,
      { NODE_OPTIONS: TENETD_NODE_OPTIONS },
      o.cpuProf ? { wrap: prof } : {},
    );
    await daemon.waitLog((l) => l.event === 'ready', 60_000);
    const pid = daemon.child.pid as number;
    client = new TenetClient(join(dir, 'run', 'tenetd.sock'));
    await client.policy('Apply', { text: stringify(doc) }, { timeoutMs: 60_000 });
    const baseEntries = countEntries(pinRoot);
    const idle = rss(pid);
    log(
      `tenetd pid ${pid} on hv1; base policy: ${baseEntries} records in tenet_records ` +
        `(capacity ${capacity}); RSS ${idle.rssMiB.toFixed(0)} MiB; sizes ${sizes.join(', ')}`,
    );

    const d = daemon;
    const lastLog = (
      pred: (l: Record<string, unknown>) => boolean,
      from: number,
    ): Record<string, unknown> | undefined => d.logs.slice(from).findLast(pred);

    const loads: LoadResult[] = [];
    let largest = 0;
    for (let run = 1; run <= runs; run++) {
      for (const size of sizes) {
        // Back to the base policy (not timed).
        await client.bulkLoad(chunks(demoRecords));
        const records = [...demoRecords, ...generated.slice(0, size)];
        await new Promise((r) => setTimeout(r, 100)); // the reset's log lines come first
        const from = d.logs.length;
        const t0 = performance.now();
        let ok = true;
        let error: string | undefined;
        try {
          await client.bulkLoad(chunks(records), undefined, { timeoutMs: 1_800_000 });
        } catch (e) {
          ok = false;
          error = codeName(e);
        }
        const wallMs = performance.now() - t0;
        await new Promise((r) => setTimeout(r, 50)); // the log lines
        const changed = ok ? lastLog((l) => l.msg === 'policy changed', from) : undefined;
        const host = ok ? lastLog((l) => typeof l.durationMs === 'number', from) : undefined;
        const mem = rss(pid);
        const r: LoadResult = {
          run,
          records: size,
          ok,
          ...(error === undefined ? {} : { error }),
          wallMs: Math.round(wallMs),
          recordsPerSecond: Math.round((size / wallMs) * 1000),
          mapEntries: countEntries(pinRoot),
          ...(changed?.timingMs === undefined
            ? {}
            : { daemonMs: changed.timingMs as Record<string, number> }),
          ...(host === undefined ? {} : { hostApplyMs: host.durationMs as number }),
          ...mem,
        };
        loads.push(r);
        if (ok) largest = Math.max(largest, size);
        log(
          `run ${run}: ${size} records: ${ok ? 'ok' : `REFUSED (${error})`} in ${r.wallMs} ms ` +
            `(${r.recordsPerSecond} records/s); map holds ${r.mapEntries}; ` +
            `daemon ${JSON.stringify(r.daemonMs ?? {})}, host apply ${r.hostApplyMs ?? '-'} ms; ` +
            `RSS ${mem.rssMiB.toFixed(0)} MiB (peak ${mem.hwmMiB.toFixed(0)})`,
        );
        if (ok && r.mapEntries !== baseEntries + size) {
          throw new Error(`map holds ${r.mapEntries}, expected ${baseEntries + size}`);
        }
      }
    }

    // Updates on the largest set that loaded.
    await client.bulkLoad(chunks([...demoRecords, ...generated.slice(0, largest)]), undefined, {
      timeoutMs: 1_800_000,
    });
    const map = new TypedMap(
      BpfMap.openPinned(join(pinRoot, 'tenet_records')),
      Maps.tenet_records.key,
      Maps.tenet_records.value,
    );
    const gen = new TypedMap(
      BpfMap.openPinned(join(pinRoot, 'tenet_gen')),
      Maps.tenet_gen.key,
      Maps.tenet_gen.value,
    );
    const rpcMs: number[] = [];
    const visibleMs: number[] = [];
    const totalMs: number[] = [];
    let visibleBeforeReturn = 0;
    let polls = 0;
    const began = performance.now();
    try {
      for (
        let u = 0;
        u < updates && (u < minUpdates || performance.now() - began < updateBudgetMs);
        u++
      ) {
        const i = (u * 7919) % largest;
        const rec = record(i, u % 2 === 0 ? 0xb1 : 0xb2);
        const key = { vsid: VSID, family: 6, addr: caBytes(i) };
        const want = rec.mac.split(':').map((h) => parseInt(h, 16));
        // What a packet sees: the active generation (tenet_gen), then that slot if it is live.
        const seen = (): boolean => {
          const g = gen.get(0)?.active ?? 0;
          const e = map.get(key);
          const mac = e !== undefined && (e.live & (1 << g)) !== 0 ? e.v[g]?.mac : undefined;
          return mac !== undefined && want.every((b, j) => mac[j] === b);
        };
        const t0 = performance.now();
        await client.policy('UpdateLookupRecord', { lookupRecord: rec });
        const t1 = performance.now();
        let t2 = t1;
        let k = 0;
        for (;;) {
          k++;
          if (seen()) {
            t2 = performance.now();
            break;
          }
          if (performance.now() - t1 > 2000) throw new Error(`update ${u} not visible in 2 s`);
        }
        if (k === 1) visibleBeforeReturn++;
        polls += k;
        rpcMs.push(t1 - t0);
        visibleMs.push(t2 - t1);
        totalMs.push(t2 - t0);
      }
    } finally {
      map.close();
      gen.close();
    }
    const final = rss(pid);
    // Where an update's time goes inside tenetd (its "policy changed" log lines).
    const updateLogs = d.logs.filter(
      (l) => l.msg === 'policy changed' && l.method === 'UpdateLookupRecord',
    );
    const updatePaths: Record<string, number> = {};
    for (const l of updateLogs)
      updatePaths[String(l.path)] = (updatePaths[String(l.path)] ?? 0) + 1;
    const updateDaemonMs = Object.fromEntries(
      ['build', 'validate', 'diff', 'persist', 'reconcile'].map((k) => [
        k,
        updateLogs.length === 0
          ? { min: NaN, median: NaN, max: NaN, n: 0 }
          : summarize(updateLogs.map((l) => (l.timingMs as Record<string, number>)[k] ?? NaN)),
      ]),
    );

    const pct = (xs: number[], p: number): number => {
      const s = [...xs].sort((a, b) => a - b);
      return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
    };
    const dist = (xs: number[]): Record<string, number> => ({
      n: xs.length,
      p50: +pct(xs, 50).toFixed(3),
      p99: +pct(xs, 99).toFixed(3),
      max: +Math.max(...xs).toFixed(3),
    });
    const perSize: Record<string, unknown> = {};
    for (const size of sizes) {
      const rs = loads.filter((l) => l.records === size);
      const okRuns = rs.filter((l) => l.ok);
      const s = (f: (l: LoadResult) => number): Summary => summarize(rs.map(f));
      perSize[String(size)] = {
        ok: okRuns.length === rs.length,
        ...(okRuns.length === rs.length ? {} : { error: rs.find((l) => !l.ok)?.error }),
        wall_ms: s((l) => l.wallMs),
        records_per_second: s((l) => l.recordsPerSecond),
        rss_mib: s((l) => Math.round(l.rssMiB)),
        // Run 1 loads each size after only smaller ones: later runs' figures carry the heap a
        // larger earlier load left behind.
        rss_mib_run1: Math.round(rs[0]!.rssMiB),
        ...(okRuns.every((l) => l.daemonMs !== undefined) && okRuns.length > 0
          ? {
              daemon_ms: Object.fromEntries(
                Object.keys(okRuns[0]!.daemonMs!).map((k) => [
                  k,
                  summarize(okRuns.map((l) => l.daemonMs![k]!)),
                ]),
              ),
            }
          : {}),
        ...(okRuns.every((l) => l.hostApplyMs !== undefined) && okRuns.length > 0
          ? { host_apply_ms: summarize(okRuns.map((l) => l.hostApplyMs!)) }
          : {}),
      };
    }
    const summary = {
      benchmark: 'control-plane',
      date: new Date().toISOString(),
      machine: machineDescription(),
      abi_version: TENET_ABI_VERSION,
      records_map_capacity: capacity,
      base_policy_records: baseEntries,
      requested_records: n,
      tenetd_node_options: TENETD_NODE_OPTIONS,
      runs,
      targets: { bulk_1m_seconds: 5, update_visible_p99_ms: 2 },
      bulk_load: perSize,
      update: {
        on_records: largest,
        rpc_ms: dist(rpcMs),
        rpc_return_to_visible_ms: dist(visibleMs),
        rpc_plus_visible_ms: dist(totalMs),
        visible_on_first_poll: visibleBeforeReturn,
        daemon_ms: updateDaemonMs,
        paths: updatePaths,
        mean_polls: +(polls / Math.max(1, rpcMs.length)).toFixed(2),
        budget_ms: updateBudgetMs,
      },
      rss_idle_mib: Math.round(idle.rssMiB),
      rss_final_mib: Math.round(final.rssMiB),
      rss_peak_mib: Math.round(final.hwmMiB),
      loads,
    };
    log(
      `\nupdates on ${largest} records: ${rpcMs.length} done; RPC ms ${JSON.stringify(summary.update.rpc_ms)}; ` +
        `RPC return -> visible ms ${JSON.stringify(summary.update.rpc_return_to_visible_ms)} ` +
        `(${visibleBeforeReturn} already visible on the first poll); paths ${JSON.stringify(updatePaths)}; ` +
        `daemon medians ms ${JSON.stringify(Object.fromEntries(Object.entries(updateDaemonMs).map(([k, v]) => [k, v.median])))}`,
    );
    client.close();
    client = undefined;
    daemon.child.kill('SIGTERM');
    await daemon.exited;
    if (o.cpuProf)
      printProfile(
        profDir,
        join(REPO, 'bench', 'tmp', `${o.profileName ?? 'control-plane'}.cpuprofile`),
      );
    return summary as unknown as ControlPlaneSummary;
  } finally {
    client?.close();
    await killDaemon(daemon);
    await lab.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** Self time by function and by file from tenetd's CPU profile (the profile is kept). */
function printProfile(profDir: string, keepAs: string): void {
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) {
    console.log('no CPU profile was written');
    return;
  }
  const text = readFileSync(join(profDir, files[0]!), 'utf8');
  mkdirSync(join(keepAs, '..'), { recursive: true });
  writeFileSync(keepAs, text);
  const p = JSON.parse(text) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((nd) => [nd.id, nd]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  for (const [id, us] of self) {
    const c = byId.get(id)!.callFrame;
    const where = c.url.replace(/^file:\/\//, '').replace(REPO + '/', '');
    const f = `${c.functionName || '(anonymous)'} ${where}:${c.lineNumber + 1}`;
    fn.set(f, (fn.get(f) ?? 0) + us);
    const w =
      where === '' ? c.functionName : where.replace(/^.*node_modules\/([^/]+).*$/, 'npm:$1');
    file.set(w, (file.get(w) ?? 0) + us);
  }
  const top = (m: Map<string, number>, k: number): string =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([name, us]) => `  ${((us / total) * 100).toFixed(1).padStart(5)}%  ${name}`)
      .join('\n');
  console.log(`\ntenetd CPU profile (${(total / 1e6).toFixed(1)} s sampled), kept as ${keepAs}`);
  console.log(`self time by file:\n${top(file, 15)}`);
  console.log(`self time by function:\n${top(fn, 25)}`);
}

// Run as a command only (the suite imports measureControlPlane).
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(`bench:control-plane failed: ${e instanceof Error ? (e.stack ?? e.message) : e}`);
    process.exit(1);
  });
}
