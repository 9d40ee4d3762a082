// Per-packet cost of every datapath path through BPF_PROG_TEST_RUN, as ns/packet and as a ratio to
// a no-op program of the same hook (bpf/testing/noop.bpf.c) measured in the same run, plus the
// verifier's instruction counts of every product program.
//
// The product objects are loaded with their maps pinned under a private bpffs directory and the
// tables of the datapath tests' fixture (test/datapath/fixture.ts: one host with local and remote
// VMs of two tenants) installed, so nothing touches a live datapath. Test-runs happen in this
// process's network namespace on the loopback device, which the fixture makes the VM port and the
// physical NIC. Before a path is measured it is run once and checked: verdict and, for drops, the
// drop counter of the named reason, so a figure can never belong to another path than its label.
//
// Two ways to time a test-run, because the kernel's repeat loop runs the program again on the SAME
// skb / xdp_buff without resetting it:
//   - repeat=N ("direct"): the kernel's average over N runs. Valid only for paths that leave the
//     packet as it was (drops, host-local switching, pass): the section checks that the output
//     equals the input before using it.
//   - repeat=1 per call ("corrected"): for paths that rewrite the packet (encap, decap, routing's
//     TTL decrement, ARP/ND answers) every run must start from the original frame. A single run's
//     duration carries the test-run timer's fixed cost (one ktime read, ~60 ns here), so the
//     no-op is timed the same way and the figure is
//        ns = t1(path) - t1(noop) + tN(noop)
//     i.e. the extra cost over a no-op, added to the no-op's repeat-loop cost: the same quantity
//     the direct method measures. The section reports, for the non-rewriting paths, both methods
//     side by side (`*.ns_corrected`) so the correction can be checked.
// Rounds interleave every path (noop, path1, path2, ..., each round), and each figure is the
// min/median/max over rounds.

import { mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  DropReason,
  GenerationCodec,
  Maps,
  Objects,
  type DropReasonName,
  type MapName,
} from '../../agent/abi/generated.js';
import { U32 } from '../../agent/abi/codec.js';
import {
  BpfMap,
  BpfObject,
  PerCpuTypedMap,
  TypedMap,
  sumPerCpu,
  type BpfProgram,
} from '../../agent/bpf/index.js';
import { bpfBuildDir, loadObject, type ObjectName } from '../../agent/datapath/objects.js';
import { ensureBpffs } from '../../agent/lab/index.js';
import { packet, type PacketBuilder } from '../../agent/packet/index.js';
import {
  BLUE1,
  GW1_MAC,
  NIC_MAC,
  PA_A,
  PA_B,
  VM1,
  VM2,
  VM3,
  VM4,
  VM5,
  baseTables,
  type Tables,
} from '../../test/datapath/fixture.js';
import type { BenchFigure, Section, SectionResult } from './section.js';
import { summarize } from './stats.js';

type Hook = 'tc' | 'xdp';
type Verdict = 'pass' | 'drop' | 'redirect';

export interface PathSpec {
  /** Stable key part: per_packet.<key>.ns */
  readonly key: string;
  readonly label: string;
  readonly hook: Hook;
  readonly frame: Buffer;
  readonly verdict: Verdict;
  readonly reason?: DropReasonName;
  /** A target on the ratio to the no-op, if the issue sets one. */
  readonly maxRatio?: number;
}

const TC_VERDICTS: Record<number, Verdict> = { 0: 'pass', 2: 'drop', 7: 'redirect' };
const XDP_VERDICTS: Record<number, Verdict> = { 1: 'drop', 2: 'pass', 4: 'redirect' };

// ---- frames (the fixture's policy: vm1 on the port under test) ----------------------------------

const udp4 = (o: { dst: string; dmac: string; src?: string; smac?: string; ttl?: number }) =>
  packet()
    .eth({ src: o.smac ?? VM1.mac, dst: o.dmac })
    .ipv4({ src: o.src ?? VM1.ip4, dst: o.dst, ttl: o.ttl ?? 64, df: true, id: 7 })
    .udp({ sport: 40000, dport: 5000 })
    .payload(Buffer.alloc(18)); // a 64-byte frame before FCS

const tcp6 = (o: { dst: string; dmac: string }) =>
  packet()
    .eth({ src: VM1.mac, dst: o.dmac })
    .ipv6({ src: VM1.ip6, dst: o.dst, hopLimit: 64 })
    .tcp({ sport: 40001, dport: 443, seq: 1000, ack: 2000, flags: 'PA' })
    .payload(Buffer.alloc(6));

const arpReq = (tpa: string) =>
  packet()
    .eth({ src: VM1.mac, dst: 'ff:ff:ff:ff:ff:ff' })
    .arp({ op: 'request', sha: VM1.mac, spa: VM1.ip4, tpa });

const nsol = (target: string) =>
  packet()
    .eth({ src: VM1.mac, dst: '33:33:ff:00:00:01' })
    .ipv6({ src: VM1.ip6, dst: 'ff02::1:ff00:1', hopLimit: 255 })
    .ndSolicit({ target, sll: VM1.mac });

const nvgre = (o: { vsid?: number; src?: string; flags?: boolean } = {}): PacketBuilder =>
  packet()
    .eth({ src: '02:00:00:00:10:02', dst: NIC_MAC })
    .ipv4({ src: o.src ?? PA_B, dst: PA_A, df: true, ttl: 63 })
    .nvgre({ vsid: o.vsid ?? BLUE1, flowId: 0x5a, ...(o.flags ? { checksum: true } : {}) });

const inner4 = () =>
  packet()
    .eth({ src: VM4.mac, dst: VM2.mac })
    .ipv4({ src: VM4.ip4, dst: VM2.ip4, ttl: 64, id: 3 })
    .udp({ sport: 5353, dport: 9999 })
    .payload(Buffer.alloc(18))
    .build();

/** Every path of today's datapath; features add theirs to this list (one entry each). */
export function datapathPaths(): PathSpec[] {
  const wrap = (b: PacketBuilder, inner: Buffer): Buffer => b.payload(inner).build();
  return [
    // to a VM: XDP on the physical NIC
    {
      key: 'decap_deliver',
      label: 'NVGRE decap + deliver to local VM (XDP)',
      hook: 'xdp',
      frame: wrap(nvgre(), inner4()),
      verdict: 'redirect',
      maxRatio: 10,
    },
    {
      key: 'xdp_pass_host',
      label: 'non-NVGRE frame passed to the host (XDP)',
      hook: 'xdp',
      frame: packet()
        .eth({ src: '02:00:00:00:10:02', dst: NIC_MAC })
        .ipv4({ src: PA_B, dst: PA_A })
        .udp({ sport: 1, dport: 2 })
        .payload(Buffer.alloc(18))
        .build(),
      verdict: 'pass',
    },
    // from a VM: tc ingress on its port
    {
      key: 'local_switch',
      label: 'local switch, same VSID, port to port (tc)',
      hook: 'tc',
      frame: udp4({ dst: VM2.ip4, dmac: VM2.mac }).build(),
      verdict: 'redirect',
    },
    {
      key: 'route_local',
      label: 'distributed router to a local VM, TTL-1 (tc)',
      hook: 'tc',
      frame: udp4({ dst: VM3.ip4, dmac: GW1_MAC }).build(),
      verdict: 'redirect',
    },
    {
      key: 'encap',
      label: 'NVGRE encap to a remote host, IPv4 (tc)',
      hook: 'tc',
      frame: udp4({ dst: VM4.ip4, dmac: VM4.mac }).build(),
      verdict: 'redirect',
      maxRatio: 10,
    },
    {
      key: 'encap_ipv6',
      label: 'NVGRE encap to a remote host, IPv6 TCP (tc)',
      hook: 'tc',
      frame: tcp6({ dst: VM4.ip6, dmac: VM4.mac }).build(),
      verdict: 'redirect',
      maxRatio: 10,
    },
    {
      key: 'route_encap',
      label: 'routed to a remote VM: TTL-1 + encap (tc)',
      hook: 'tc',
      frame: udp4({ dst: VM5.ip4, dmac: GW1_MAC }).build(),
      verdict: 'redirect',
    },
    {
      key: 'arp_reply',
      label: 'ARP request answered in the datapath (tc)',
      hook: 'tc',
      frame: arpReq(VM4.ip4).build(),
      verdict: 'redirect',
    },
    {
      key: 'nd_reply',
      label: 'neighbour solicitation answered (tc)',
      hook: 'tc',
      frame: nsol(VM4.ip6).build(),
      verdict: 'redirect',
    },
    // drops
    ...(
      [
        [
          'port_src_mac_spoof',
          'tc',
          udp4({ dst: VM2.ip4, dmac: VM2.mac, smac: '02:00:00:00:09:09' }),
        ],
        ['ip_src_spoof', 'tc', udp4({ dst: VM2.ip4, dmac: VM2.mac, src: '198.18.10.99' })],
        ['dst_unknown', 'tc', udp4({ dst: '198.18.10.77', dmac: '02:00:00:00:01:77' })],
        ['route_unknown', 'tc', udp4({ dst: '198.18.99.1', dmac: GW1_MAC })],
        ['arp_unknown_target', 'tc', arpReq('198.18.10.77')],
        ['nd_unknown_target', 'tc', nsol('fd00:10::77')],
        ['nvgre_vsid_unknown', 'xdp', nvgre({ vsid: 9999 }).payload(inner4())],
        ['nvgre_bad_flags', 'xdp', nvgre({ flags: true }).payload(inner4())],
        ['nvgre_foreign_pa', 'xdp', nvgre({ src: '198.18.0.3' }).payload(inner4())],
      ] as const
    ).map(
      ([reason, hook, b]): PathSpec => ({
        key: `drop_${reason}`,
        label: `drop: ${reason} (${hook})`,
        hook,
        frame: b.build(),
        verdict: 'drop',
        reason,
      }),
    ),
  ];
}

// ---- the loaded datapath -----------------------------------------------------------------------

const POLICY_MAPS = [
  'tenet_ports',
  'tenet_vsubnets',
  'tenet_records',
  'tenet_routes',
  'tenet_local_pas',
  'tenet_underlay',
] as const satisfies readonly MapName[];

function install(pinRoot: string, t: Tables): void {
  for (const name of POLICY_MAPS) {
    const m = BpfMap.openPinned(join(pinRoot, name));
    const d = Maps[name];
    const tm = new TypedMap(m, d.key as never, d.value as never);
    const set = (k: unknown, v: unknown): void => tm.set(k as never, v as never);
    try {
      if (name === 'tenet_ports') for (const [k, v] of t.ports) set(k, v);
      if (name === 'tenet_vsubnets') for (const [k, v] of t.vsubnets) set(k, v);
      if (name === 'tenet_records') for (const r of t.records) set(r.key, r.entry);
      if (name === 'tenet_routes') for (const r of t.routes) set(r.key, r.entry);
      if (name === 'tenet_local_pas') for (const [k, v] of t.localPas) set(k, v);
      if (name === 'tenet_underlay') for (const [k, v] of t.underlay) set(k, v);
    } finally {
      m.close();
    }
  }
  const gen = new TypedMap(BpfMap.openPinned(join(pinRoot, 'tenet_gen')), U32, GenerationCodec);
  gen.set(0, { active: 0 });
  gen.close();
}

function dropCount(pinRoot: string, reason: DropReasonName): bigint {
  const m = new PerCpuTypedMap(
    BpfMap.openPinned(join(pinRoot, 'tenet_drop_ctrs')),
    Maps.tenet_drop_ctrs.key,
    Maps.tenet_drop_ctrs.value,
  );
  try {
    return sumPerCpu(m.get(DropReason[reason]) ?? [], ['packets']).packets;
  } finally {
    m.close();
  }
}

/** Trimmed mean of the middle 80% (single runs are quantised to the clock's ~10 ns). */
function trimmedMean(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const cut = Math.floor(s.length * 0.1);
  const mid = s.slice(cut, s.length - cut);
  return mid.reduce((a, b) => a + b, 0) / mid.length;
}

function timeSingle(prog: BpfProgram, frame: Buffer, calls: number): number {
  const ds: number[] = [];
  const out = frame.length + 512;
  for (let i = 0; i < calls; i++)
    ds.push(prog.testRun({ data: frame, repeat: 1, dataOutSize: out }).durationNs);
  return trimmedMean(ds);
}

function timeRepeat(prog: BpfProgram, frame: Buffer, repeat: number): number {
  return prog.testRun({ data: frame, repeat, dataOutSize: frame.length + 512 }).durationNs;
}

export interface ProgramInsns {
  object: string;
  program: string;
  verifiedInsns: number;
  xlatedInsns: number;
  jitedBytes: number;
}

/** Verifier figures of every program of every product object (new objects appear by themselves). */
async function programInsns(pinRoot: string): Promise<ProgramInsns[]> {
  const out: ProgramInsns[] = [];
  for (const name of Object.keys(Objects) as ObjectName[]) {
    const obj = await loadObject(name, pinRoot);
    try {
      for (const p of Object.keys(Objects[name].programs)) {
        const prog = obj.program(p);
        const info = prog.info();
        out.push({
          object: name,
          program: p,
          verifiedInsns: info.verifiedInsns,
          xlatedInsns: info.xlatedInsns,
          jitedBytes: info.jitedLen,
        });
        prog.close();
      }
    } finally {
      obj.close();
    }
  }
  return out;
}

export interface PerPacketBench {
  readonly pinRoot: string;
  readonly prog: Record<'tc' | 'xdp' | 'noop_tc' | 'noop_xdp', BpfProgram>;
  /** Every path, checked once (verdict, drop reason), with whether it rewrites the packet. */
  readonly paths: ReadonlyArray<PathSpec & { rewrites: boolean }>;
  close(): void;
}

/** Loads the product objects and the no-op under a private pin root with the fixture's tables. */
export async function loadPerPacketBench(): Promise<PerPacketBench> {
  await ensureBpffs();
  const pinRoot = `/sys/fs/bpf/tenet-test-bench${randomBytes(3).toString('hex')}`;
  mkdirSync(pinRoot, { recursive: true });
  const objs: BpfObject[] = [];
  const progs: BpfProgram[] = [];
  const close = (): void => {
    for (const p of progs) p.close();
    for (const o of objs) o.close();
    rmSync(pinRoot, { recursive: true, force: true });
  };
  try {
    const port = await loadObject('tenet_port', pinRoot);
    objs.push(port);
    const xdp = await loadObject('tenet_xdp', pinRoot);
    objs.push(xdp);
    const noop = BpfObject.open(join(bpfBuildDir(), 'testing', 'noop.o'));
    objs.push(noop);
    await noop.load();
    install(pinRoot, baseTables());
    const prog = {
      tc: port.program('tenet_port_ingress'),
      xdp: xdp.program('tenet_xdp_rx'),
      noop_tc: noop.program('noop_tc'),
      noop_xdp: noop.program('noop_xdp'),
    };
    progs.push(...Object.values(prog));

    // Check every path once: the verdict, the drop reason, whether it rewrites the packet.
    const paths = datapathPaths().map((p) => {
      const before = p.reason ? dropCount(pinRoot, p.reason) : 0n;
      const r = prog[p.hook].testRun({ data: p.frame, dataOutSize: p.frame.length + 512 });
      const verdict = (p.hook === 'tc' ? TC_VERDICTS : XDP_VERDICTS)[r.retval];
      if (verdict !== p.verdict)
        throw new Error(`per-packet: ${p.key}: verdict ${verdict ?? r.retval}, want ${p.verdict}`);
      if (p.reason && dropCount(pinRoot, p.reason) !== before + 1n)
        throw new Error(`per-packet: ${p.key}: not counted under ${p.reason}`);
      return { ...p, rewrites: !r.data.equals(p.frame) };
    });
    return { pinRoot, prog, paths, close };
  } catch (e) {
    close();
    throw e;
  }
}

export const perPacket: Section = async ({ quick, log }): Promise<SectionResult> => {
  const rounds = quick ? 5 : 15;
  const calls = quick ? 2000 : 10_000;
  const repeat = quick ? 100_000 : 1_000_000;
  const bench = await loadPerPacketBench();
  const { pinRoot, prog, paths } = bench;
  try {
    // Interleaved rounds.
    const direct = new Map<string, number[]>();
    const single = new Map<string, number[]>();
    const push = (m: Map<string, number[]>, k: string, v: number): void => {
      m.set(k, [...(m.get(k) ?? []), v]);
    };
    const noopFrame = paths.find((p) => p.key === 'local_switch')!.frame;
    for (let r = 0; r < rounds; r++) {
      for (const h of ['tc', 'xdp'] as const) {
        const np = prog[h === 'tc' ? 'noop_tc' : 'noop_xdp'];
        push(direct, `noop_${h}`, timeRepeat(np, noopFrame, repeat));
        push(single, `noop_${h}`, timeSingle(np, noopFrame, calls));
      }
      for (const p of paths) {
        if (!p.rewrites) push(direct, p.key, timeRepeat(prog[p.hook], p.frame, repeat));
        push(single, p.key, timeSingle(prog[p.hook], p.frame, calls));
      }
      log(`per-packet: round ${r + 1}/${rounds}`);
    }

    const figures: BenchFigure[] = [];
    for (const h of ['tc', 'xdp'] as const) {
      figures.push({
        key: `per_packet.noop_${h}.ns`,
        label: `no-op ${h} program (baseline)`,
        unit: 'ns',
        value: summarize(direct.get(`noop_${h}`)!),
        note: `repeat=${repeat}; one run alone: ${summarize(single.get(`noop_${h}`)!).median.toFixed(0)} ns (timer cost included)`,
      });
    }
    for (const p of paths) {
      const nd = direct.get(`noop_${p.hook}`)!;
      const n1 = single.get(`noop_${p.hook}`)!;
      const s1 = single.get(p.key)!;
      // Per round: corrected single-run figure, against that round's no-op.
      const corrected = s1.map((v, i) => v - n1[i]! + nd[i]!);
      const ns = p.rewrites ? corrected : direct.get(p.key)!;
      const ratio = ns.map((v, i) => v / nd[i]!);
      const rs = summarize(ratio);
      figures.push({
        key: `per_packet.${p.key}.ns`,
        label: p.label,
        unit: 'ns',
        value: summarize(ns),
        note: p.rewrites
          ? 'rewrites the packet: single runs, corrected by the no-op timed the same way'
          : `repeat=${repeat}`,
      });
      figures.push({
        key: `per_packet.${p.key}.ratio_noop`,
        label: `${p.label} / no-op ${p.hook}`,
        unit: 'ratio',
        value: rs,
        ...(p.maxRatio === undefined
          ? {}
          : { target: `<= ${p.maxRatio}x no-op`, met: rs.median <= p.maxRatio }),
      });
      if (!p.rewrites) {
        figures.push({
          key: `per_packet.${p.key}.ns_corrected`,
          label: `${p.label} (single-run method, cross-check)`,
          unit: 'ns',
          value: summarize(corrected),
        });
      }
    }
    // How the single-run method compares with the direct one where both apply, per hook.
    const check: string[] = [];
    for (const h of ['tc', 'xdp'] as const) {
      const fs = paths
        .filter((p) => p.hook === h && !p.rewrites)
        .map((p) => {
          const d = summarize(direct.get(p.key)!).median;
          const n1 = summarize(single.get(`noop_${h}`)!).median;
          const nd = summarize(direct.get(`noop_${h}`)!).median;
          return d / (summarize(single.get(p.key)!).median - n1 + nd);
        });
      if (fs.length === 0) continue;
      const s = summarize(fs);
      check.push(
        `${h}: direct / single-run = ${s.median.toFixed(2)} (${s.min.toFixed(2)}..${s.max.toFixed(2)}, ${fs.length} paths)`,
      );
    }
    const insns = await programInsns(pinRoot);
    for (const i of insns) {
      figures.push({
        key: `verifier.${i.object}.${i.program}.verified_insns`,
        label: `verifier: ${i.program} (${i.object}.o) instructions processed`,
        unit: 'insns',
        value: summarize([i.verifiedInsns]),
        note: `xlated ${i.xlatedInsns} insns, JIT ${i.jitedBytes} bytes`,
      });
    }
    return {
      section: 'per_packet',
      title: 'Per-packet cost (BPF_PROG_TEST_RUN)',
      figures,
      notes: [
        `${rounds} interleaved rounds; each round times the no-op programs and every path. ` +
          `Paths that leave the packet untouched: the kernel's average over repeat=${repeat}. ` +
          `Paths that rewrite it (the repeat loop would feed the rewritten packet back in): the ` +
          `trimmed mean of ${calls} single runs minus the no-op's single run plus the no-op's ` +
          'repeat-loop cost (the `ns_corrected` figures check this method against the direct one).',
        'Frames are 64 bytes (the NVGRE ones 64 bytes inside 42 bytes of outer headers); tables: the ' +
          'datapath tests fixture (test/datapath/fixture.ts). The test-run loop itself costs ' +
          'the no-op figure, so every ratio includes it in both numerator and denominator.',
        `Where both methods apply, the single-run method reads higher than the direct one (${check.join('; ')}): ` +
          'a lone run pays cache and branch-predictor misses the repeat loop amortises. The figures of the ' +
          'rewriting paths (decap, encap, routing, ARP/ND answers) are therefore upper bounds; multiplied by ' +
          'that factor they estimate what the repeat loop would show.',
      ],
    };
  } finally {
    bench.close();
  }
};
