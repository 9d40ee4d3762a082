// What the resilience tests measure the datapath with, from outside the agent:
//
//   Traffic   fixed-rate sequenced UDP streams between VMs (scripts/bench/py/seq_stream.py), and
//             "leak" receivers in the other tenant's VM with the SAME customer address on the same
//             port: a stream's packets reaching them were forwarded across tenants.
//   probes    crafted frames a VM sends that the policy must drop (a spoofed source address, an
//             unknown destination), each counted under its drop reason.
//   snapshots the pinned datapath read directly: policy map contents (raw bytes), map ids,
//             attachments (link ids, program ids and tags), counters.

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Maps, Objects, type MapName } from '../../agent/abi/generated.js';
import { BpfMap, BpfProgram } from '../../agent/bpf/index.js';
import { CounterReader } from '../../agent/datapath/counters.js';
import { Attachments } from '../../agent/host/attach.js';
import { mapIds } from '../../agent/host/agent.js';
import type { BgProcess, ExecResult, Netns, Topology } from '../helpers/lab.js';
import { packet } from '../../agent/packet/index.js';
import { ROOT } from '../helpers/tenetd.js';

const run = promisify(execFile);
const PY = '/usr/bin/python3';
const STREAM = join(ROOT, 'scripts', 'bench', 'py', 'seq_stream.py');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------- traffic ----------

export interface StreamSpec {
  readonly name: string;
  /** VM (namespace short name) that sends. */
  readonly from: string;
  /** VM that receives. */
  readonly to: string;
  readonly dst: string;
  readonly port: number;
}

/** A VM of the other tenant with the same address as a stream's destination, listening too. */
export interface LeakSpec {
  readonly name: string;
  readonly at: string;
  readonly port: number;
  /** A VM of at's own tenant that ends the receiver with FIN markers (a legitimate path). */
  readonly finFrom: string;
  readonly finDst: string;
}

export interface StreamResult {
  readonly name: string;
  readonly sent: number;
  readonly errors: number;
  readonly received: number;
  readonly maxGap: number;
  /** The receiver ended at the sender's FIN markers. */
  readonly finSeen: boolean;
}

export interface LeakResult {
  readonly name: string;
  readonly received: number;
  /** Ended by its own tenant's FIN markers: the receiver was reachable, the check not blind. */
  readonly finSeen: boolean;
}

export interface TrafficReport {
  readonly seconds: number;
  readonly streams: readonly StreamResult[];
  readonly leaks: readonly LeakResult[];
}

async function waitUdpListen(ns: Netns, port: number, proc: BgProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await ns.exec(['ss', '-Hlun', `sport = :${port}`], { timeoutMs: 5000 });
    if (r.code === 0 && r.stdout.trim() !== '') return;
    if (!proc.running) throw new Error(`receiver in ${ns.name}:${port} exited: ${proc.stderr()}`);
    if (Date.now() > deadline) throw new Error(`receiver in ${ns.name}:${port} not listening`);
    await sleep(50);
  }
}

/** Waits up to ms for p to end; then stops it with SIGTERM (stopped: true). */
async function settle(p: BgProcess, ms: number): Promise<{ result: ExecResult; stopped: boolean }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), ms)));
  const first = await Promise.race([p.exited, late]);
  clearTimeout(timer);
  if (first !== 'late') return { result: first, stopped: false };
  return { result: await p.kill('SIGTERM', 3000), stopped: true };
}

function parseReceived(out: string, what: string): { received: number; maxGap: number } {
  const m = /received (\d+) max_gap (\d+)/.exec(out);
  if (m === null)
    throw new Error(`${what}: receiver output not understood: ${JSON.stringify(out)}`);
  return { received: Number(m[1]), maxGap: Number(m[2]) };
}

/**
 * Streams running until stop(). Each sender is bounded (rate * maxSeconds packets, and a hard
 * process time limit); stop() ends them early with SIGINT, after which they send their FIN
 * markers and report how many they sent.
 */
export class Traffic {
  private constructor(
    private readonly topo: Topology,
    private readonly streams: readonly StreamSpec[],
    private readonly leaks: readonly LeakSpec[],
    private readonly receivers: readonly BgProcess[],
    private readonly leakReceivers: readonly BgProcess[],
    private readonly senders: readonly BgProcess[],
    private readonly started: number,
  ) {}

  static async start(
    topo: Topology,
    streams: readonly StreamSpec[],
    leaks: readonly LeakSpec[],
    opts: { rate: number; maxSeconds: number },
  ): Promise<Traffic> {
    const limitMs = (opts.maxSeconds + 30) * 1000;
    const recvTimeout = String(opts.maxSeconds + 20);
    const listen = (vm: string, port: number): BgProcess => {
      const ns = topo.vm(vm).ns;
      return ns.spawn([PY, STREAM, 'recv', String(port), recvTimeout], { timeoutMs: limitMs });
    };
    const receivers = streams.map((s) => listen(s.to, s.port));
    const leakReceivers = leaks.map((l) => listen(l.at, l.port));
    await Promise.all([
      ...streams.map((s, i) => waitUdpListen(topo.vm(s.to).ns, s.port, receivers[i]!)),
      ...leaks.map((l, i) => waitUdpListen(topo.vm(l.at).ns, l.port, leakReceivers[i]!)),
    ]);
    const count = String(Math.ceil(opts.rate * opts.maxSeconds));
    const senders = streams.map((s) =>
      topo
        .vm(s.from)
        .ns.spawn([PY, STREAM, 'send', s.dst, String(s.port), count, String(opts.rate)], {
          timeoutMs: limitMs,
        }),
    );
    return new Traffic(topo, streams, leaks, receivers, leakReceivers, senders, Date.now());
  }

  /**
   * Stops the senders, collects every receiver's count. A receiver still running a few seconds
   * after its sender's FIN markers (they were lost) is stopped with SIGTERM and reports what it
   * got; a leak receiver must be ended by its own tenant's FIN, or the check was blind.
   */
  async stop(): Promise<TrafficReport> {
    const seconds = (Date.now() - this.started) / 1000;
    await Promise.all(this.senders.map((p) => p.kill('SIGINT', 5000)));
    const streams: StreamResult[] = [];
    for (const [i, s] of this.streams.entries()) {
      const sent = await this.senders[i]!.exited;
      const m = /sent (\d+) errors (\d+)/.exec(sent.stdout);
      if (m === null) throw new Error(`${s.name}: sender output not understood: ${sent.stdout}`);
      const got = await settle(this.receivers[i]!, 5000);
      streams.push({
        name: s.name,
        sent: Number(m[1]),
        errors: Number(m[2]),
        ...parseReceived(got.result.stdout, s.name),
        finSeen: !got.stopped,
      });
    }
    // The leak receivers have seen all they will: end them through their own tenant.
    await Promise.all(
      this.leaks.map((l) =>
        this.topo
          .vm(l.finFrom)
          .ns.execOk([PY, STREAM, 'send', l.finDst, String(l.port), '0', '100'], {
            timeoutMs: 10_000,
          }),
      ),
    );
    const leaks: LeakResult[] = [];
    for (const [i, l] of this.leaks.entries()) {
      const got = await settle(this.leakReceivers[i]!, 5000);
      leaks.push({
        name: l.name,
        received: parseReceived(got.result.stdout, l.name).received,
        finSeen: !got.stopped,
      });
    }
    return { seconds, streams, leaks };
  }

  /** Kills everything at once (cleanup after a failure). */
  async abort(): Promise<void> {
    await Promise.all(
      [...this.senders, ...this.receivers, ...this.leakReceivers].map((p) => p.kill('SIGKILL', 0)),
    );
  }
}

export function formatReport(label: string, r: TrafficReport): string {
  const lines = [`${label}: streams ran ${r.seconds.toFixed(1)} s`];
  for (const s of r.streams) {
    lines.push(
      `  ${s.name}: sent ${s.sent}, received ${s.received}, lost ${s.sent - s.received}, ` +
        `longest gap ${s.maxGap}, send errors ${s.errors}${s.finSeen ? '' : ', no FIN'}`,
    );
  }
  for (const l of r.leaks) {
    const fin = l.finSeen ? 'ended by its own tenant' : 'NOT reached by its own tenant';
    lines.push(`  leak check ${l.name}: received ${l.received} (${fin})`);
  }
  return lines.join('\n');
}

// ---------- probes ----------

/** A frame a VM sends that the datapath must drop under `reason`. */
export interface Probe {
  readonly vm: string;
  readonly reason: string;
  readonly frame: Buffer;
}

/** Sends the frames from their VMs' eth0 (AF_PACKET), all VMs at once. */
export async function sendProbes(topo: Topology, probes: readonly Probe[]): Promise<void> {
  const byVm = new Map<string, string[]>();
  for (const p of probes) byVm.set(p.vm, [...(byVm.get(p.vm) ?? []), p.frame.toString('hex')]);
  const script =
    'import socket, sys\n' +
    's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n' +
    's.bind(("eth0", 0))\n' +
    'for h in sys.argv[1:]:\n' +
    '    s.send(bytes.fromhex(h))\n';
  await Promise.all(
    [...byVm].map(([vm, frames]) =>
      topo.vm(vm).ns.execOk([PY, '-c', script, ...frames], { timeoutMs: 10_000 }),
    ),
  );
}

/** A UDP probe frame; its payload is a sequence number no stream uses (a leak would show). */
export function udpFrame(o: {
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  dport: number;
}): Buffer {
  const seq = Buffer.alloc(4);
  seq.writeUInt32BE(0xfffffff0);
  return packet()
    .eth({ src: o.srcMac, dst: o.dstMac })
    .ipv4({ src: o.src, dst: o.dst, ttl: 64 })
    .udp({ sport: 40_000, dport: o.dport })
    .payload(seq)
    .build();
}

// ---------- snapshots of the pinned datapath ----------

/** The policy maps and the underlay map: what a restart must never flush or rewrite. */
export const POLICY_MAPS: readonly MapName[] = [
  'tenet_gen',
  'tenet_local_pas',
  'tenet_ports',
  'tenet_records',
  'tenet_routes',
  'tenet_underlay',
  'tenet_vsubnets',
];

/** Every entry of the policy maps as `map key=value` (hex), sorted. */
export function dumpPolicyMaps(pinRoot: string): string[] {
  const out: string[] = [];
  for (const name of POLICY_MAPS) {
    const map = BpfMap.openPinned(join(pinRoot, Maps[name].name));
    try {
      for (let k = map.nextKey(null); k !== null; k = map.nextKey(k)) {
        out.push(`${name} ${k.toString('hex')}=${map.lookup(k)?.toString('hex') ?? 'gone'}`);
      }
    } finally {
      map.close();
    }
  }
  return out.sort();
}

export { mapIds };

export interface AttachmentSnapshot {
  readonly linkId: number;
  readonly progId: number;
  readonly tag: string;
}

/** The attachments pinned under <pinRoot>/links/, by pin name. */
export function attachments(pinRoot: string): Record<string, AttachmentSnapshot> {
  const out: Record<string, AttachmentSnapshot> = {};
  for (const a of new Attachments({ pinRoot }).list()) {
    const prog = BpfProgram.fromId(a.progId);
    try {
      out[a.name] = { linkId: a.linkId ?? 0, progId: a.progId, tag: prog.info().tag };
    } finally {
      prog.close();
    }
  }
  return out;
}

/**
 * Every counter of the datapath as a flat map: per port and direction, per VSID, per drop
 * reason (packets and bytes), summed over CPUs.
 */
export function counterSample(pinRoot: string): Map<string, bigint> {
  const reader = new CounterReader(pinRoot);
  try {
    const out = new Map<string, bigint>();
    for (const p of reader.portTraffic()) {
      out.set(`port ${p.ifindex} ${p.direction} packets`, p.packets);
      out.set(`port ${p.ifindex} ${p.direction} bytes`, p.bytes);
    }
    for (const v of reader.vsidTraffic()) {
      out.set(`vsid ${v.vsid} encap packets`, v.encap_packets);
      out.set(`vsid ${v.vsid} encap bytes`, v.encap_bytes);
      out.set(`vsid ${v.vsid} decap packets`, v.decap_packets);
      out.set(`vsid ${v.vsid} decap bytes`, v.decap_bytes);
    }
    for (const d of reader.dropTotals()) {
      out.set(`drop ${d.reason} packets`, d.packets);
      out.set(`drop ${d.reason} bytes`, d.bytes);
    }
    return out;
  } finally {
    reader.close();
  }
}

/** Counters that went backwards (or vanished) from `before` to `after`. */
export function regressions(
  before: ReadonlyMap<string, bigint>,
  after: ReadonlyMap<string, bigint>,
): string[] {
  const out: string[] = [];
  for (const [k, v] of before) {
    const now = after.get(k);
    if (now === undefined || now < v) out.push(`${k}: ${v} -> ${now ?? 'missing'}`);
  }
  return out;
}

export function dropCount(sample: ReadonlyMap<string, bigint>, reason: string): bigint {
  return sample.get(`drop ${reason} packets`) ?? 0n;
}

// ---------- a variant build of the product objects ----------

/**
 * Builds every product object again into `dir` with the Makefile's compiler and flags plus `extra`
 * (default -fno-builtin: clang no longer treats C library idioms as builtins). The result is other
 * program bytes, hence other program tags, from the same source with the same behaviour, the way
 * a new release's objects differ from the old ones. Returns dir.
 */
export async function buildVariantObjects(
  dir: string,
  extra: readonly string[] = ['-fno-builtin'],
): Promise<string> {
  const bpf = join(ROOT, 'bpf');
  const { stdout } = await run(
    'make',
    [
      '-s',
      '--no-print-directory',
      '-C',
      bpf,
      '--eval=tenet-print-cflags: ; @echo $(CLANG) $(BPF_CFLAGS)',
      'tenet-print-cflags',
    ],
    { timeout: 30_000 },
  );
  const [clang, ...flags] = [...stdout.trim().split(/\s+/), ...extra];
  mkdirSync(dir, { recursive: true });
  await Promise.all(
    Object.values(Objects).map((o) => {
      const src = o.file.replace(/\.o$/, '.bpf.c');
      if (!existsSync(join(bpf, src))) throw new Error(`no source ${src} for ${o.file}`);
      return run(clang!, [...flags, '-c', src, '-o', join(dir, o.file)], {
        cwd: bpf,
        timeout: 60_000,
      });
    }),
  );
  return dir;
}
