// Differential property test of the port ACL stage: random rule sets for two ports (vm1, which
// sends and receives over NVGRE, and vm2, which receives host-locally) and random frames at the
// three ACL points, through the real programs (BPF_PROG_TEST_RUN) and the reference model
// (agent/model/acl.ts, reached through simulate()). The model walks the rules; the kernel ANDs
// bitmaps from LPM tries built by the compiler, so agreement checks compiler and datapath
// together. Every frame's verdict must agree; after each rule set's frames, every per-rule
// counter (packets, bytes), the ACL statistics and the drop counts per ACL reason must agree.
// Conntrack and fragment state carry over between the frames of one rule set.
//
// TENET_ACL_DIFF_RULESETS x TENET_ACL_DIFF_PACKETS cases per run (default 1000 x 100). On a
// failure fast-check shrinks the case and prints the rule sets and the frames.
// TENET_ACL_DIFF_STATS=1 prints how often each outcome came up.

import fc from 'fast-check';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BpfMap, numPossibleCpus, type BpfProgram } from '../../agent/bpf/index.js';
import { simulate, type Hook } from '../../agent/model/index.js';
import { describePacket, packet } from '../../agent/packet/index.js';
import type { AclRule } from '../../agent/policy/model.js';
import { describePrivileged } from '../helpers/privilege.js';
import { useAclDatapath, type AclPortSpec } from './acl-harness.js';
import {
  GW1_MAC,
  PA_A,
  PA_B,
  PORT_IFINDEX,
  VM1,
  VM2,
  VM2_IFINDEX,
  VM3,
  VM4,
  VM5,
  baseTables,
} from './fixture.js';

const RULESETS = Number(process.env.TENET_ACL_DIFF_RULESETS ?? 1000);
const PACKETS = Number(process.env.TENET_ACL_DIFF_PACKETS ?? 100);

// ---- rules -------------------------------------------------------------------------------------

const PREFIXES = [
  '198.18.10.12/32',
  '198.18.10.14/32',
  '198.18.10.11/32',
  '198.18.10.0/24',
  '198.18.10.8/29',
  '198.18.20.0/24',
  '198.18.0.0/15',
  '0.0.0.0/0',
  'fd00:10::12/128',
  'fd00:10::14/128',
  'fd00:10::/64',
  'fd00:20::/64',
  'fd00::/8',
];
const PORTS = [1, 2, 22, 53, 80, 443, 1000, 40000];
const MACS = [VM2.mac, VM4.mac, GW1_MAC, VM1.mac];

const range = fc
  .tuple(
    fc.constantFrom(0, 1, 2, 22, 50, 53, 80, 1000, 40000),
    fc.constantFrom(0, 2, 22, 53, 80, 443, 1024, 65535),
  )
  .map(([a, b]) => ({ from: Math.min(a, b), to: Math.max(a, b) }));

const ruleArb: fc.Arbitrary<Omit<AclRule, 'name'>> = fc
  .record(
    {
      direction: fc.constantFrom('inbound', 'outbound', 'both'),
      action: fc.constantFrom('allow', 'deny', 'allow', 'deny', 'meter'),
      weight: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
      protocol: fc.option(fc.constantFrom(6, 17, 1, 58), { nil: undefined }),
      localPrefix: fc.option(fc.constantFrom(...PREFIXES), { nil: undefined, freq: 4 }),
      remotePrefix: fc.option(fc.constantFrom(...PREFIXES), { nil: undefined, freq: 2 }),
      remoteMac: fc.option(fc.constantFrom(...MACS), { nil: undefined, freq: 5 }),
      localPorts: fc.option(range, { nil: undefined }),
      remotePorts: fc.option(range, { nil: undefined }),
      stateful: fc.boolean(),
      isolationVsid: fc.option(fc.constantFrom(5001, 5002), { nil: undefined, freq: 5 }),
    },
    { requiredKeys: ['direction', 'action', 'stateful'] },
  )
  .map((r) => {
    // What validation guarantees: ports only with TCP/UDP, state only on allow rules, meter
    // rules carry a class and a remote prefix and nothing else.
    if (r.action === 'meter') {
      return {
        direction: r.direction,
        action: 'meter',
        meteringClass: 'm',
        remotePrefix: r.remotePrefix ?? '0.0.0.0/0',
      } as Omit<AclRule, 'name'>;
    }
    const out: Record<string, unknown> = { ...r };
    for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
    if (r.protocol !== 6 && r.protocol !== 17) {
      delete out.localPorts;
      delete out.remotePorts;
    }
    if (r.action !== 'allow' || !r.stateful) delete out.stateful;
    else out.idleTimeoutSeconds = 3600;
    return out as unknown as Omit<AclRule, 'name'>;
  });

const rulesArb = fc
  .array(ruleArb, { minLength: 0, maxLength: 12 })
  .map((rs) => rs.map((r, i) => ({ ...r, name: `r${i}` }) as AclRule));

// ---- frames ------------------------------------------------------------------------------------

interface FrameSpec {
  path: 'out-local' | 'out-remote' | 'out-routed' | 'in-decap' | 'in-decap-routed';
  v6: boolean;
  l4:
    | { kind: 'udp' | 'tcp'; sport: number; dport: number }
    | { kind: 'echo'; reply: boolean; id: number }
    | { kind: 'error'; proto: 'udp' | 'tcp'; sport: number; dport: number };
  frag: 'none' | 'first' | 'later';
  fragId: number;
  ext: number;
}

const frameSpecArb: fc.Arbitrary<FrameSpec> = fc.record({
  path: fc.constantFrom(
    'out-local',
    'out-remote',
    'out-routed',
    'in-decap',
    'in-decap',
    'in-decap-routed',
  ),
  v6: fc.boolean(),
  l4: fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constantFrom('udp' as const, 'tcp' as const),
        sport: fc.constantFrom(...PORTS),
        dport: fc.constantFrom(...PORTS),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('echo' as const),
        reply: fc.boolean(),
        id: fc.constantFrom(1, 2),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('error' as const),
        proto: fc.constantFrom('udp' as const, 'tcp' as const),
        sport: fc.constantFrom(...PORTS),
        dport: fc.constantFrom(...PORTS),
      }),
    },
  ),
  frag: fc.constantFrom('none', 'none', 'none', 'none', 'first', 'later'),
  fragId: fc.constantFrom(1, 2),
  ext: fc.constantFrom(0, 0, 0, 1, 2, 7),
});

interface Ends {
  src: { ip4: string; ip6: string; mac: string };
  dst: { ip4: string; ip6: string; mac: string };
  dmac: string;
  smac: string;
  wire: boolean;
}

function endsOf(path: FrameSpec['path']): Ends {
  switch (path) {
    case 'out-local':
      return { src: VM1, dst: VM2, smac: VM1.mac, dmac: VM2.mac, wire: false };
    case 'out-remote':
      return { src: VM1, dst: VM4, smac: VM1.mac, dmac: VM4.mac, wire: false };
    case 'out-routed':
      return { src: VM1, dst: VM3, smac: VM1.mac, dmac: GW1_MAC, wire: false };
    case 'in-decap':
      return { src: VM4, dst: VM1, smac: VM4.mac, dmac: VM1.mac, wire: true };
    case 'in-decap-routed':
      return { src: VM5, dst: VM1, smac: GW1_MAC, dmac: VM1.mac, wire: true };
  }
}

/** Frames by spec: the spec space is small and building is the test's hottest path. */
const FRAMES = new Map<string, { frame: Buffer; hook: Hook }>();

function buildFrame(s: FrameSpec): { frame: Buffer; hook: Hook } {
  const key = JSON.stringify(s);
  let f = FRAMES.get(key);
  if (f === undefined) FRAMES.set(key, (f = buildFrameUncached(s)));
  return f;
}

function buildFrameUncached(s: FrameSpec): { frame: Buffer; hook: Hook } {
  const e = endsOf(s.path);
  const src = s.v6 ? e.src.ip6 : e.src.ip4;
  const dst = s.v6 ? e.dst.ip6 : e.dst.ip4;
  const later = s.frag === 'later';
  const fragFields =
    s.frag === 'none' ? undefined : { id: s.fragId, mf: !later, offset: later ? 4 : 0 };
  let b = packet().eth({ src: e.smac, dst: e.dmac });
  if (s.v6) {
    const ext: Array<Record<string, unknown>> = [];
    for (let i = 0; i < s.ext; i++) ext.push({ type: i === 0 ? 'hop-by-hop' : 'dest-opts' });
    if (fragFields) ext.push({ type: 'fragment', ...fragFields });
    b = b.ipv6({ src, dst, hopLimit: 64, ext: ext as never });
  } else {
    b = b.ipv4({
      src,
      dst,
      ttl: 64,
      id: fragFields?.id ?? 9,
      df: !fragFields,
      mf: fragFields?.mf ?? false,
      fragOffset: fragFields?.offset ?? 0,
    });
  }
  const l4 = s.l4;
  if (l4.kind === 'udp') b = b.udp({ sport: l4.sport, dport: l4.dport });
  else if (l4.kind === 'tcp') b = b.tcp({ sport: l4.sport, dport: l4.dport, flags: 'S' });
  else if (l4.kind === 'echo') {
    const type = s.v6 ? (l4.reply ? 129 : 128) : l4.reply ? 0 : 8;
    b = s.v6 ? b.icmpv6({ type, id: l4.id, seq: 1 }) : b.icmp({ type, id: l4.id, seq: 1 });
  } else {
    const err = l4 as Extract<FrameSpec['l4'], { kind: 'error' }>;
    // An error about a flow the other way: the quoted packet went from dst to src.
    let q = packet().eth({ src: e.dmac, dst: e.smac });
    q = s.v6
      ? q.ipv6({ src: dst, dst: src, hopLimit: 64 })
      : q.ipv4({ src: dst, dst: src, ttl: 64 });
    q =
      err.proto === 'udp'
        ? q.udp({ sport: err.sport, dport: err.dport })
        : q.tcp({ sport: err.sport, dport: err.dport });
    const qf = q.payload('x').build();
    const quote = qf.subarray(14, 14 + (s.v6 ? 40 : 20) + 8);
    b = s.v6 ? b.icmpv6({ type: 1, code: 4 }) : b.icmp({ type: 3, code: 3 });
    b = b.payload(quote);
  }
  const inner = l4.kind === 'error' ? b.build() : b.payload('acl differential').build();
  if (!e.wire) return { frame: inner, hook: { kind: 'port-ingress', ifindex: PORT_IFINDEX } };
  const frame = packet()
    .eth({ src: '02:00:00:00:10:02', dst: '02:00:00:00:10:01' })
    .ipv4({ src: PA_B, dst: PA_A, df: true, ttl: 63 })
    .nvgre({ vsid: 5001, flowId: 0x22 })
    .payload(inner)
    .build();
  return { frame, hook: { kind: 'phys-xdp', ifindex: PORT_IFINDEX } };
}

// ---- the property ------------------------------------------------------------------------------

const ACL_REASONS = { 56: 'acl_deny', 57: 'acl_fragment', 58: 'acl_unclassifiable' } as const;

describePrivileged('port ACLs: kernel and reference model agree (fast-check)', () => {
  const acl = useAclDatapath();
  let progs: { port: BpfProgram; xdp: BpfProgram };
  let drops: BpfMap;
  const cpus = numPossibleCpus();
  const tables = baseTables();

  beforeAll(() => {
    acl.dp.install(tables, 0);
    progs = acl.dp.programs();
    drops = BpfMap.openPinned(join(acl.dp.pinRoot, 'tenet_drop_ctrs'));
  });
  afterAll(() => {
    progs?.port.close();
    progs?.xdp.close();
    drops?.close();
  });

  const aclDrops = (): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [slot, name] of Object.entries(ACL_REASONS)) {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(Number(slot));
      const v = drops.lookup(k);
      let n = 0n;
      for (let c = 0; v && c < cpus; c++) n += v.readBigUInt64LE(c * 16);
      out[name] = Number(n);
    }
    return out;
  };

  it(`${RULESETS} rule sets x ${PACKETS} frames: same verdicts, counters and statistics`, () => {
    let cases = 0;
    const started = performance.now();
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(
        rulesArb,
        rulesArb,
        fc.array(frameSpecArb, { minLength: PACKETS, maxLength: PACKETS }),
        (r1, r2, specs) => {
          const ports: AclPortSpec[] = [
            { name: 'vm1', ifindex: PORT_IFINDEX, rules: r1 },
            { name: 'vm2', ifindex: VM2_IFINDEX, rules: r2 },
          ];
          acl.setAcls(ports);
          acl.resetState();
          const dropsBefore = aclDrops();
          const modelDrops: Record<string, number> = {
            acl_deny: 0,
            acl_fragment: 0,
            acl_unclassifiable: 0,
          };
          const sim = acl.sim();
          specs.forEach((spec, i) => {
            const { frame, hook } = buildFrame(spec);
            const prog = hook.kind === 'port-ingress' ? progs.port : progs.xdp;
            const r = prog.testRun({ data: frame, dataOutSize: frame.length + 512 });
            const m = simulate(tables, 0, frame, hook, { ...sim, nowNs: process.hrtime.bigint() });
            if (m.dropReason && m.dropReason in modelDrops) {
              modelDrops[m.dropReason] = (modelDrops[m.dropReason] ?? 0) + 1;
            }
            seen.set(m.dropReason ?? m.verdict, (seen.get(m.dropReason ?? m.verdict) ?? 0) + 1);
            if (r.retval !== m.retval) {
              throw new Error(
                `frame ${i} (${JSON.stringify(spec)}): kernel retval ${r.retval}, model ${m.retval} ` +
                  `(${m.verdict} ${m.dropReason ?? ''})\n${describePacket(frame)}`,
              );
            }
            cases++;
          });
          expect(aclDrops()).toEqual(
            Object.fromEntries(
              Object.entries(dropsBefore).map(([k, v]) => [k, v + (modelDrops[k] ?? 0)]),
            ),
          );
          expect(Object.fromEntries(acl.model.current.counters)).toEqual(
            Object.fromEntries(acl.ruleCounters()),
          );
          expect(acl.model.current.stats).toEqual(acl.stats());
        },
      ),
      { numRuns: RULESETS },
    );
    expect(cases).toBeGreaterThanOrEqual(RULESETS * PACKETS);
    console.log(`${cases} cases in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    if (process.env.TENET_ACL_DIFF_STATS === '1') console.log(Object.fromEntries(seen));
    // The generators reach every ACL outcome (a weak check that they did not go stale).
    for (const k of ['redirect', 'acl_deny', 'acl_fragment', 'acl_unclassifiable']) {
      expect(seen.get(k) ?? 0, k).toBeGreaterThan(0);
    }
    // About 30 s alone on the 2-core machine; the margin is for a machine shared with other runs.
  }, 240_000);
});
