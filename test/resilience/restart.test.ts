// Hitless restart and upgrade, proven under real traffic (issue 4): one real tenetd per hypervisor
// of the demo lab (scripts/lab/demo-lab.yaml + demo-policy.yaml), each run inside its host's
// network namespace with `nsenter --net=` (so it shares our bpffs), its pins under the lab's
// private bpffs directory, its socket and state in a temp dir.
//
// While fixed-rate sequenced UDP streams cross the lab (blue across hosts both ways, IPv4 and
// IPv6; blue within hv2, routed between two virtual subnets; red across hosts), and while the
// other tenant's VM with the SAME customer address listens on each stream's port:
//   1. both daemons are killed with SIGKILL twenty times (some of them a second time while they
//      are still adopting the datapath): no stream loses a packet, no packet reaches the other
//      tenant, frames with a spoofed source or an unknown destination sent while the agents are
//      down (and after they are back) are dropped and counted every time, exactly; no counter
//      ever goes backwards; every restarted daemon is SERVING (gRPC health) within seconds;
//   2. the same with the state file deleted, truncated or garbage before the restart: the
//      datapath is kept exactly as it was (map contents byte for byte), the bad file is
//      quarantined and reported, and the orchestrator's next Apply is accepted and changes no
//      map entry;
//   3. the daemons restart with new objects ($TENET_BPF_DIR: the same sources built with one more
//      compiler flag: other program bytes, same behaviour): every attachment keeps its link id
//      and gets the new program (another id and tag) through an atomic link update; then back to
//      the old objects the same way.
// Figures (packets per stream, time to SERVING) are printed for the record.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TenetClient } from '../../agent/api/client.js';
import { decodeState, STATE_FILE_NAME } from '../../agent/daemon/state.js';
import { buildTopology, loadLabFile, ping, useLab, type Topology } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';
import {
  killDaemon,
  ROOT,
  startDaemon,
  tenetdConfig,
  waitServing,
  type DaemonProc,
} from '../helpers/tenetd.js';
import {
  attachments,
  buildVariantObjects,
  counterSample,
  dropCount,
  dumpPolicyMaps,
  formatReport,
  mapIds,
  regressions,
  sendProbes,
  Traffic,
  udpFrame,
  type AttachmentSnapshot,
  type LeakSpec,
  type Probe,
  type StreamSpec,
  type TrafficReport,
} from './harness.js';

const LAB_DIR = join(ROOT, 'scripts', 'lab');
const HOSTS = ['hv1', 'hv2'] as const;
type Host = (typeof HOSTS)[number];

/** Packets per second of each stream. */
const RATE = 500;
/**
 * Upper bound of one traffic phase: the senders stop by themselves after it. A phase must end
 * before (checked), so that every kill happens under traffic; idle, the longest takes ~45 s.
 */
const MAX_STREAM_S = 160;
const KILL_ROUNDS = 20;
/** "Back to SERVING within seconds": the bound every restart must meet. */
const SERVING_LIMIT_MS = 10_000;

const STREAMS: readonly StreamSpec[] = [
  {
    name: 'blue-vm1 -> blue-vm2 (hv1 -> hv2, IPv4)',
    from: 'blue-vm1',
    to: 'blue-vm2',
    dst: '198.19.1.12',
    port: 7001,
  },
  {
    name: 'blue-vm2 -> blue-vm1 (hv2 -> hv1, IPv6)',
    from: 'blue-vm2',
    to: 'blue-vm1',
    dst: 'fd00:1:1::11',
    port: 7002,
  },
  {
    name: 'blue-vm2 -> blue-db1 (within hv2, routed)',
    from: 'blue-vm2',
    to: 'blue-db1',
    dst: '198.19.2.21',
    port: 7003,
  },
  {
    name: 'red-vm1 -> red-vm2 (hv1 -> hv2, IPv4)',
    from: 'red-vm1',
    to: 'red-vm2',
    dst: '198.19.1.12',
    port: 7004,
  },
];

/** The other tenant's VM with the stream's destination address, on the stream's port. */
const LEAKS: readonly LeakSpec[] = [
  {
    name: 'red-vm2 on blue 198.19.1.12:7001',
    at: 'red-vm2',
    port: 7001,
    finFrom: 'red-vm1',
    finDst: '198.19.1.12',
  },
  {
    name: 'red-vm1 on blue [fd00:1:1::11]:7002',
    at: 'red-vm1',
    port: 7002,
    finFrom: 'red-vm2',
    finDst: 'fd00:1:1::11',
  },
  {
    name: 'blue-vm2 on red 198.19.1.12:7004',
    at: 'blue-vm2',
    port: 7004,
    finFrom: 'blue-vm1',
    finDst: '198.19.1.12',
  },
];

/**
 * Frames the policy must drop, per host. The spoofed ones go to a port someone listens on (blue
 * -vm2's stream receiver; red-vm1's leak receiver): one let through would show there too.
 */
const PROBES: Record<Host, readonly Probe[]> = {
  hv1: [
    {
      vm: 'blue-vm1',
      reason: 'ip_src_spoof',
      frame: udpFrame({
        srcMac: '02:00:00:b1:00:11',
        dstMac: '02:00:00:b1:00:12',
        src: '198.19.1.99',
        dst: '198.19.1.12',
        dport: 7001,
      }),
    },
    {
      vm: 'blue-vm1',
      reason: 'dst_unknown',
      frame: udpFrame({
        srcMac: '02:00:00:b1:00:11',
        dstMac: '02:00:00:b1:00:77',
        src: '198.19.1.11',
        dst: '198.19.1.77',
        dport: 7001,
      }),
    },
  ],
  hv2: [
    {
      // red-vm2 claims red-vm1's address.
      vm: 'red-vm2',
      reason: 'ip_src_spoof',
      frame: udpFrame({
        srcMac: '02:00:00:4e:00:12',
        dstMac: '02:00:00:4e:00:11',
        src: '198.19.1.11',
        dst: '198.19.1.11',
        dport: 7002,
      }),
    },
    {
      vm: 'red-vm2',
      reason: 'dst_unknown',
      frame: udpFrame({
        srcMac: '02:00:00:4e:00:12',
        dstMac: '02:00:00:4e:00:78',
        src: '198.19.1.12',
        dst: '198.19.1.78',
        dport: 7002,
      }),
    },
  ],
};
const PROBE_REASONS = ['ip_src_spoof', 'dst_unknown'] as const;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function stats(xs: readonly number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const median = s[Math.floor(s.length / 2)] ?? 0;
  return `n ${s.length}, min ${(s[0] ?? 0).toFixed(0)} ms, median ${median.toFixed(0)} ms, max ${(s[s.length - 1] ?? 0).toFixed(0)} ms`;
}

function expectNoLossNoLeak(report: TrafficReport): void {
  for (const s of report.streams) {
    expect(s.sent, `${s.name}: packets sent`).toBeGreaterThan(RATE);
    // Still running when the phase ended: the whole phase was under traffic.
    expect(s.sent, `${s.name}: stopped by its own bound`).toBeLessThan(RATE * MAX_STREAM_S);
    expect(s.errors, `${s.name}: send errors`).toBe(0);
    expect(s.received, `${s.name}: received of ${s.sent} sent`).toBe(s.sent);
    expect(s.finSeen, `${s.name}: the end marker arrived`).toBe(true);
  }
  for (const l of report.leaks) {
    expect(l.received, `leak: ${l.name}`).toBe(0);
    expect(l.finSeen, `${l.name}: reachable from its own tenant`).toBe(true);
  }
}

describePrivileged('tenetd hitless restart and upgrade under traffic (demo lab)', () => {
  const ref = useLab('resilience', async (lab) => ({
    topo: await buildTopology(lab, loadLabFile(join(LAB_DIR, 'demo-lab.yaml'))),
    bpffs: await lab.bpffsDir(),
  }));
  const topo = (): Topology => ref.value.topo;
  const pinRoot = (h: Host): string => join(ref.value.bpffs, h);
  const tmp = mkdtempSync(join(tmpdir(), 'tenet-resilience-'));
  const hostDir = (h: Host): string => join(tmp, h);
  const socket = (h: Host): string => join(hostDir(h), 'run', 'tenetd.sock');
  const stateDir = (h: Host): string => join(hostDir(h), 'state');
  const configs = new Map<Host, string>();
  const daemons = new Map<Host, DaemonProc>();
  const running = new Set<Traffic>();

  let kills = 0;
  /** Counters as last sampled, per host; what went backwards since the start. */
  const lastSample = new Map<Host, Map<string, bigint>>();
  const backwards: string[] = [];
  /** Probe batches whose drops were not counted exactly. */
  const miscounted: string[] = [];
  let probeBatches = 0;

  // Registered after useLab's hooks, so it runs before the lab is torn down.
  afterAll(async () => {
    await Promise.all([...running].map((t) => t.abort()));
    await Promise.all([...daemons.values()].map((d) => killDaemon(d)));
    rmSync(tmp, { recursive: true, force: true });
  });

  function spawnTenetd(h: Host, env: NodeJS.ProcessEnv = {}): DaemonProc {
    const d = startDaemon(configs.get(h)!, env, {
      wrap: ['nsenter', `--net=${topo().host(h).ns.path}`, '--'],
    });
    daemons.set(h, d);
    return d;
  }

  /** Starts tenetd on h and waits for SERVING; returns the time it took from the spawn. */
  async function up(h: Host, env: NodeJS.ProcessEnv = {}): Promise<number> {
    const t0 = performance.now();
    const d = spawnTenetd(h, env);
    const ms = await Promise.race([
      waitServing(socket(h), t0, 30_000),
      d.exited.then((code) => {
        throw new Error(
          `tenetd on ${h} exited (${code}) before SERVING: ${JSON.stringify(d.logs.slice(-5))}`,
        );
      }),
    ]);
    return ms;
  }

  async function kill9(h: Host): Promise<void> {
    const d = daemons.get(h);
    if (d === undefined || d.child.exitCode !== null || d.child.signalCode !== null) return;
    d.child.kill('SIGKILL');
    await d.exited;
    kills++;
  }

  /** Samples every host's counters: none may be below the previous sample. */
  function sample(): Map<Host, Map<string, bigint>> {
    const out = new Map<Host, Map<string, bigint>>();
    for (const h of HOSTS) {
      const s = counterSample(pinRoot(h));
      const prev = lastSample.get(h);
      if (prev !== undefined) backwards.push(...regressions(prev, s).map((r) => `${h}: ${r}`));
      lastSample.set(h, s);
      out.set(h, s);
    }
    return out;
  }

  /** Sends one batch of probes on every host; checks each is dropped and counted, exactly. */
  async function probe(when: string): Promise<void> {
    const before = sample();
    await sendProbes(topo(), [...PROBES.hv1, ...PROBES.hv2]);
    probeBatches++;
    // The veth peer's tc ingress usually runs (and counts) before the sender's write returns;
    // allow a moment for a busy CPU.
    const deadline = Date.now() + 1000;
    for (;;) {
      const after = sample();
      const wrong: string[] = [];
      for (const h of HOSTS) {
        for (const reason of PROBE_REASONS) {
          const want = BigInt(PROBES[h].filter((p) => p.reason === reason).length);
          const got = dropCount(after.get(h)!, reason) - dropCount(before.get(h)!, reason);
          if (got !== want) wrong.push(`${h} ${reason}: +${got}, sent ${want}`);
        }
      }
      if (wrong.length === 0) return;
      if (Date.now() > deadline) {
        miscounted.push(`${when}: ${wrong.join('; ')}`);
        return;
      }
      await sleep(50);
    }
  }

  /**
   * kill -9 every tenetd, probe while they are down, optionally do something else while they are
   * down, start them again (killing them once more mid-startup when asked), wait for SERVING on
   * both, probe again. Returns the time to SERVING per host.
   */
  async function restartAll(
    when: string,
    opts: {
      env?: NodeJS.ProcessEnv;
      whileDown?: () => Promise<void> | void;
      /** Kill again when this log line appears during the start, then start once more. */
      killAt?: string;
    } = {},
  ): Promise<Record<Host, number>> {
    await Promise.all(HOSTS.map((h) => kill9(h)));
    await probe(`${when}, agents down`);
    await opts.whileDown?.();
    if (opts.killAt !== undefined) {
      const at = opts.killAt;
      await Promise.all(
        HOSTS.map(async (h) => {
          const d = spawnTenetd(h, opts.env);
          await d.waitLog((l) => l.msg === at, 30_000);
          await kill9(h);
        }),
      );
      await probe(`${when}, agents killed at "${at}"`);
    }
    const [a, b] = await Promise.all(HOSTS.map((h) => up(h, opts.env)));
    await probe(`${when}, agents back`);
    return { hv1: a!, hv2: b! };
  }

  async function withClient<T>(h: Host, f: (c: TenetClient) => Promise<T>): Promise<T> {
    const c = new TenetClient(socket(h));
    try {
      return await f(c);
    } finally {
      c.close();
    }
  }

  function snapshot(h: Host): {
    maps: string[];
    mapIds: Record<string, number>;
    links: Record<string, AttachmentSnapshot>;
  } {
    return {
      maps: dumpPolicyMaps(pinRoot(h)),
      mapIds: mapIds(pinRoot(h)),
      links: attachments(pinRoot(h)),
    };
  }

  async function runTraffic(body: () => Promise<void>): Promise<TrafficReport> {
    const t = await Traffic.start(topo(), STREAMS, LEAKS, { rate: RATE, maxSeconds: MAX_STREAM_S });
    running.add(t);
    try {
      await sleep(500);
      await body();
      await sleep(500);
      return await t.stop();
    } catch (e) {
      await t.abort();
      throw e;
    } finally {
      running.delete(t);
    }
  }

  beforeAll(async () => {
    const policy = readFileSync(join(LAB_DIR, 'demo-policy.yaml'), 'utf8');
    for (const h of HOSTS) {
      configs.set(
        h,
        tenetdConfig(hostDir(h), {
          hostName: h,
          pinRoot: pinRoot(h),
          datapath: 'datapath:\n  backend: host\n',
          metricsListen: null,
          logLevel: 'info',
        }),
      );
    }
    await Promise.all(HOSTS.map((h) => up(h)));
    for (const h of HOSTS) {
      const r = await withClient(h, (c) => c.policy('Apply', { text: policy }));
      expect(r).toMatchObject({ version: '1', changed: true });
    }
    // Every path the streams and the leak checks' FIN markers take works before we start.
    for (const [from, to] of [
      ['blue-vm1', '198.19.1.12'],
      ['blue-vm2', 'fd00:1:1::11'],
      ['blue-vm2', '198.19.2.21'],
      ['red-vm1', '198.19.1.12'],
      ['red-vm2', 'fd00:1:1::11'],
    ] as const) {
      const r = await ping(topo().vm(from).ns, to, { count: 1, timeoutS: 3 });
      expect(r.received, `${from} -> ${to}: ${r.error ?? ''}`).toBe(1);
    }
    sample();
  }, 120_000);

  it('kill -9 of both daemons 20 times under traffic: no loss, no leak, drops counted, counters monotonic, SERVING within seconds', async () => {
    const before = Object.fromEntries(HOSTS.map((h) => [h, snapshot(h)]));
    const killsBefore = kills;
    const times: number[] = [];
    const report = await runTraffic(async () => {
      for (let round = 1; round <= KILL_ROUNDS; round++) {
        // Kills land at different moments of the streams.
        await sleep((round * 97) % 300);
        const killAt =
          round % 10 === 5
            ? 'adopting pinned datapath'
            : round % 10 === 0
              ? 'host agent started'
              : undefined;
        const t = await restartAll(`round ${round}`, killAt === undefined ? {} : { killAt });
        times.push(t.hv1, t.hv2);
      }
    });

    console.log(
      formatReport(`kill -9 x ${kills - killsBefore} (${KILL_ROUNDS} rounds, both hosts)`, report),
    );
    console.log(`  time from start to SERVING: ${stats(times)}; probe batches ${probeBatches}`);
    expectNoLossNoLeak(report);
    expect(miscounted, 'probe drops not counted exactly').toEqual([]);
    expect(backwards, 'counters that went backwards').toEqual([]);
    expect(kills - killsBefore).toBeGreaterThanOrEqual(2 * KILL_ROUNDS);
    expect(Math.max(...times)).toBeLessThan(SERVING_LIMIT_MS);
    for (const h of HOSTS) {
      // Adopted, never flushed or re-created: same maps (ids and contents), same links, same
      // programs (the objects did not change).
      const after = snapshot(h);
      expect(after.mapIds, `${h} map ids`).toEqual(before[h]!.mapIds);
      expect(after.maps, `${h} policy maps`).toEqual(before[h]!.maps);
      expect(after.links, `${h} attachments`).toEqual(before[h]!.links);
      expect(Object.keys(after.links).length).toBeGreaterThan(0);
    }
  }, 200_000);

  it('state file deleted, truncated or garbage: datapath kept, file quarantined and reported, next Apply changes nothing', async () => {
    const policy = readFileSync(join(LAB_DIR, 'demo-policy.yaml'), 'utf8');
    const corruptions = {
      deleted: (path: string) => rmSync(path),
      truncated: (path: string) => {
        const b = readFileSync(path);
        writeFileSync(path, b.subarray(0, Math.floor(b.length / 2)));
      },
      garbage: (path: string) => writeFileSync(path, randomBytes(4096)),
    } as const;
    const times: number[] = [];
    const figures: string[] = [];
    const report = await runTraffic(async () => {
      for (const [what, corrupt] of Object.entries(corruptions)) {
        const before = Object.fromEntries(HOSTS.map((h) => [h, snapshot(h)]));
        const t = await restartAll(`state file ${what}`, {
          whileDown: () => {
            for (const h of HOSTS) corrupt(join(stateDir(h), STATE_FILE_NAME));
          },
        });
        times.push(t.hv1, t.hv2);
        for (const h of HOSTS) {
          const status = await withClient(h, (c) => c.agent('GetStatus'));
          expect(status, `${h} after the state file was ${what}`).toMatchObject({ ready: true });
          expect(status.policyKnown ?? false, `${h} policy known`).toBe(false);
          const names = readdirSync(stateDir(h));
          if (what === 'deleted') {
            expect(status.stateFile).toBe('absent');
          } else {
            expect(String(status.stateFile)).toMatch(/^quarantined: /);
            const q = await daemons.get(h)!.waitLog((l) => l.event === 'state_quarantined', 1000);
            expect(q.level).toBe(50);
            expect(existsSync(String(q.movedTo))).toBe(true);
            expect(names).not.toContain(STATE_FILE_NAME);
          }
          // The datapath is exactly as it was.
          const after = snapshot(h);
          expect(after.mapIds, `${h} map ids`).toEqual(before[h]!.mapIds);
          expect(after.maps, `${h} policy maps after a restart with the state ${what}`).toEqual(
            before[h]!.maps,
          );
          expect(after.links, `${h} attachments`).toEqual(before[h]!.links);

          // The orchestrator's next Apply is accepted and writes nothing to the datapath.
          const r = await withClient(h, (c) => c.policy('Apply', { text: policy }));
          const tables = r.datapath as {
            table: string;
            added?: number;
            changed?: number;
            removed?: number;
          }[];
          expect(tables.length).toBeGreaterThan(0);
          for (const tc of tables) {
            expect({
              table: tc.table,
              added: tc.added ?? 0,
              changed: tc.changed ?? 0,
              removed: tc.removed ?? 0,
            }).toEqual({
              table: tc.table,
              added: 0,
              changed: 0,
              removed: 0,
            });
          }
          expect(dumpPolicyMaps(pinRoot(h)), `${h} policy maps after the next Apply`).toEqual(
            before[h]!.maps,
          );
          const again = await withClient(h, (c) => c.agent('GetStatus'));
          expect(again).toMatchObject({ ready: true, policyKnown: true });
          // ... and is durable again.
          decodeState(readFileSync(join(stateDir(h), STATE_FILE_NAME)));
          figures.push(
            `${h} ${what}: stateFile "${String(status.stateFile).slice(0, 60)}"; Apply wrote 0 entries`,
          );
        }
      }
    });
    console.log(formatReport('state file deleted / truncated / garbage, then Apply', report));
    console.log(`  time from start to SERVING: ${stats(times)}\n  ${figures.join('\n  ')}`);
    expectNoLossNoLeak(report);
    expect(miscounted, 'probe drops not counted exactly').toEqual([]);
    expect(backwards, 'counters that went backwards').toEqual([]);
    expect(Math.max(...times)).toBeLessThan(SERVING_LIMIT_MS);
  }, 90_000);

  it('program upgrade under traffic: same links, new programs (atomic update), no loss, no bypass; and back', async () => {
    const variant = await buildVariantObjects(join(tmp, 'bpf-v2'));
    const before = Object.fromEntries(HOSTS.map((h) => [h, snapshot(h)]));
    const upgraded: Record<string, Record<string, AttachmentSnapshot>> = {};
    const back: Record<string, Record<string, AttachmentSnapshot>> = {};
    const times: number[] = [];
    const report = await runTraffic(async () => {
      const t = await restartAll('upgrade', { env: { TENET_BPF_DIR: variant } });
      times.push(t.hv1, t.hv2);
      for (const h of HOSTS) {
        upgraded[h] = attachments(pinRoot(h));
        // Through BpfLink.update (attach.ts logs this only there), one per attachment.
        const logs = daemons
          .get(h)!
          .logs.filter((l) => l.msg === 'upgraded an attachment to the loaded program');
        expect(logs.map((l) => l.attachment).sort(), `${h} upgrade log lines`).toEqual(
          Object.keys(upgraded[h]!).sort(),
        );
      }
      await sleep(1000);
      const t2 = await restartAll('rollback');
      times.push(t2.hv1, t2.hv2);
      for (const h of HOSTS) back[h] = attachments(pinRoot(h));
    });
    console.log(
      formatReport('program upgrade (objects built with -fno-builtin) and rollback', report),
    );
    console.log(`  time from start to SERVING: ${stats(times)}`);
    for (const h of HOSTS) {
      const old = before[h]!.links;
      const names = Object.keys(old).sort();
      expect(names.length).toBeGreaterThanOrEqual(3);
      expect(Object.keys(upgraded[h]!).sort()).toEqual(names);
      expect(Object.keys(back[h]!).sort()).toEqual(names);
      for (const n of names) {
        const [o, u, b] = [old[n]!, upgraded[h]![n]!, back[h]![n]!];
        console.log(
          `  ${h} ${n}: link ${o.linkId} -> ${u.linkId} -> ${b.linkId}; program ${o.progId} (${o.tag}) -> ${u.progId} (${u.tag}) -> ${b.progId} (${b.tag})`,
        );
        expect(u.linkId, `${h} ${n} link id after the upgrade`).toBe(o.linkId);
        expect(b.linkId, `${h} ${n} link id after the rollback`).toBe(o.linkId);
        expect(u.progId, `${h} ${n} program id after the upgrade`).not.toBe(o.progId);
        expect(u.tag, `${h} ${n} program tag after the upgrade`).not.toBe(o.tag);
        expect(b.progId).not.toBe(u.progId);
        expect(b.tag, `${h} ${n} program tag after the rollback`).toBe(o.tag);
      }
      expect(snapshot(h).maps, `${h} policy maps`).toEqual(before[h]!.maps);
      expect(mapIds(pinRoot(h))).toEqual(before[h]!.mapIds);
    }
    expectNoLossNoLeak(report);
    expect(miscounted, 'probe drops not counted exactly').toEqual([]);
    expect(backwards, 'counters that went backwards').toEqual([]);
    expect(Math.max(...times)).toBeLessThan(SERVING_LIMIT_MS);
  }, 90_000);
});
