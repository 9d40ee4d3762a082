// Port ACL benchmark (`npm run bench:acl`, root): the per-packet cost of the ACL stage with 1,
// 100, 1,000 and 10,000 rules, and the time to replace a 10,000-rule set.
//
// Per packet: tenet_port_ingress is test-run (BPF_PROG_TEST_RUN, repeat) on one UDP frame from
// vm1 to vm2 (switched, host-local delivery) with vm1's port carrying no ACL or an N-rule
// outbound ACL, next to the no-op tc program (bpf/testing/noop.bpf.c) measured in the same run.
// Configurations are interleaved round-robin; each figure is min/median/max over the rounds of
// the average ns per run. The ACL stage's own cost is (with N rules) - (no ACL).
// Two rule shapes:
//   typical  N deny rules on distinct remote /32s with a protocol and a remote port each, then
//            an allow for 198.18.0.0/15 that decides the packet (the lowest precedence: its
//            word is the last one);
//   dense    the adversary of the bitmap summaries: every rule admits the packet in the first
//            three fields, and the last three fields admit alternating rules, so every word is
//            a candidate and no AND is non-zero until the end (cost grows with N / 64).
// Rule-set update: compile + write + flip + delete the old set for 10,000 rules.
//
// Writes bench/results/acl-<date>.json; `import { aclSection }` for `npm run bench`.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { GenerationCodec, Maps, type MapName } from '../../agent/abi/generated.js';
import { U32 } from '../../agent/abi/codec.js';
import { BpfMap, BpfObject, TypedMap } from '../../agent/bpf/index.js';
import { compileAcls } from '../../agent/compiler/acl.js';
import { bpfBuildDir, loadObject } from '../../agent/datapath/objects.js';
import { packet } from '../../agent/packet/index.js';
import type { AclRule } from '../../agent/policy/model.js';
import { AclTables } from '../../agent/reconciler/acl.js';
import { baseTables, VM1, VM2 } from '../../test/datapath/fixture.js';
import type { BenchFigure, Section, SectionOptions, SectionResult } from './section.js';
import { machineDescription, summarize } from './stats.js';

const REPO = join(import.meta.dirname, '..', '..');
const SIZES = [1, 100, 1000, 10000] as const;

function typicalRules(n: number): AclRule[] {
  const rules: AclRule[] = [];
  for (let i = 0; i < n - 1; i++) {
    rules.push({
      name: `deny-${i}`,
      direction: 'outbound',
      action: 'deny',
      weight: 1,
      protocol: i % 2 ? 6 : 17,
      remotePrefix: `198.19.${(i >> 8) & 255}.${i & 255}/32`,
      remotePorts: { from: 1000 + (i % 50), to: 1000 + (i % 50) },
    });
  }
  rules.push({
    name: 'allow-lab',
    direction: 'outbound',
    action: 'allow',
    remotePrefix: '198.18.0.0/15',
  });
  return rules;
}

function denseRules(n: number): AclRule[] {
  const rules: AclRule[] = [];
  for (let i = 0; i < n - 1; i++) {
    rules.push(
      i % 2
        ? { name: `d-${i}`, direction: 'outbound', action: 'deny', remoteMac: '02:00:00:00:99:99' }
        : { name: `d-${i}`, direction: 'outbound', action: 'deny', isolationVsid: 9999 },
    );
  }
  rules.push({ name: 'allow-all', direction: 'outbound', action: 'allow' });
  return rules;
}

const POLICY_MAPS = [
  'tenet_ports',
  'tenet_vsubnets',
  'tenet_records',
  'tenet_routes',
  'tenet_local_pas',
  'tenet_underlay',
] as const;

function installPolicy(pinRoot: string): void {
  const t = baseTables();
  const open = <K, V>(name: MapName): TypedMap<K, V> => {
    const d = Maps[name];
    return new TypedMap(BpfMap.openPinned(join(pinRoot, name)), d.key as never, d.value as never);
  };
  const maps = Object.fromEntries(POLICY_MAPS.map((n) => [n, open<unknown, unknown>(n)]));
  for (const [k, v] of t.ports) maps.tenet_ports!.set(k, v);
  for (const [k, v] of t.vsubnets) maps.tenet_vsubnets!.set(k, v);
  for (const r of t.records) maps.tenet_records!.set(r.key, r.entry);
  for (const r of t.routes) maps.tenet_routes!.set(r.key, r.entry);
  for (const [k, v] of t.localPas) maps.tenet_local_pas!.set(k, v);
  for (const [k, v] of t.underlay) maps.tenet_underlay!.set(k, v);
  const gen = new TypedMap(BpfMap.openPinned(join(pinRoot, 'tenet_gen')), U32, GenerationCodec);
  gen.set(0, { active: 0 });
  gen.close();
  for (const m of Object.values(maps)) m.close();
}

export const aclSection: Section = async (opts: SectionOptions): Promise<SectionResult> => {
  const rounds = opts.quick ? 5 : 11;
  const repeat = opts.quick ? 20000 : 100000;
  const pinRoot = `/sys/fs/bpf/tenet-test-bench-acl-${randomBytes(4).toString('hex')}`;
  mkdirSync(pinRoot, { recursive: true });
  const noopObj = BpfObject.open(join(bpfBuildDir(), 'testing', 'noop.o'));
  const port = await loadObject('tenet_port', pinRoot);
  const xdp = await loadObject('tenet_xdp', pinRoot);
  const tables = new AclTables(pinRoot);
  const aclPorts = BpfMap.openPinned(join(pinRoot, 'tenet_acl_ports'));
  try {
    await noopObj.load();
    installPolicy(pinRoot);
    const noop = noopObj.program('noop_tc');
    const prog = port.program('tenet_port_ingress');
    const frame = packet()
      .eth({ src: VM1.mac, dst: VM2.mac })
      .ipv4({ src: VM1.ip4, dst: VM2.ip4, ttl: 64, df: true })
      .udp({ sport: 40000, dport: 5000 })
      .payload('x'.repeat(18))
      .build();

    // Every rule set lives under a fake port ifindex; a round points ifindex 1 (the loopback
    // device test-runs see) at one of them with a single map update.
    const configs: Array<{ name: string; entry: Buffer | null }> = [
      { name: 'no ACL', entry: null },
    ];
    const specs: Array<{ port: string; rules: AclRule[]; ifindex: number }> = [];
    let fake = 1000;
    for (const shape of ['typical', 'dense'] as const) {
      for (const n of SIZES) {
        if (shape === 'dense' && n === 1) continue;
        specs.push({
          port: `${shape}-${n}`,
          rules: shape === 'typical' ? typicalRules(n) : denseRules(n),
          ifindex: fake++,
        });
      }
    }
    opts.log(`compiling and installing ${specs.length} rule sets`);
    tables.apply(compileAcls(specs, (p) => specs.find((s) => s.port === p)?.ifindex));
    const key = (i: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(i);
      return b;
    };
    for (const s of specs) configs.push({ name: s.port, entry: aclPorts.lookup(key(s.ifindex)) });

    const samples = new Map<string, number[]>([['noop', []]]);
    for (const c of configs) samples.set(c.name, []);
    const run = (p: typeof prog): number => {
      const r = p.testRun({ data: frame, dataOutSize: frame.length + 256, repeat });
      return r.durationNs;
    };
    // Check the verdicts once: every configuration must deliver the frame to vm2.
    for (const c of configs) {
      if (c.entry) aclPorts.update(key(1), c.entry);
      else aclPorts.delete(key(1));
      const r = prog.testRun({ data: frame, dataOutSize: frame.length + 256 });
      if (r.retval !== 7)
        throw new Error(`${c.name}: verdict ${r.retval}, expected a redirect (7)`);
    }
    for (let round = 0; round < rounds; round++) {
      opts.log(`round ${round + 1}/${rounds}`);
      samples.get('noop')!.push(run(noop));
      for (const c of configs) {
        if (c.entry) aclPorts.update(key(1), c.entry);
        else aclPorts.delete(key(1));
        samples.get(c.name)!.push(run(prog));
      }
    }
    noop.close();
    prog.close();

    // Rule-set update: replace a 10,000-rule set with a changed one, compile and apply.
    const updateMs: number[] = [];
    const compileMs: number[] = [];
    for (let i = 0; i < (opts.quick ? 3 : 5); i++) {
      const rules = typicalRules(10000).map((r, j) => (j === 0 ? { ...r, weight: 2 + i } : r));
      const t0 = performance.now();
      const compiled = compileAcls([{ port: 'update', rules }], () => 999);
      const t1 = performance.now();
      tables.apply([
        ...compileAcls(specs, (p) => specs.find((s) => s.port === p)?.ifindex),
        ...compiled,
      ]);
      const t2 = performance.now();
      compileMs.push(t1 - t0);
      updateMs.push(t2 - t0);
    }

    const noopS = summarize(samples.get('noop')!);
    const base = samples.get('no ACL')!;
    const figures: BenchFigure[] = [
      { key: 'acl.noop.ns', label: 'no-op tc program', unit: 'ns', value: noopS },
      {
        key: 'acl.no_acl.ns',
        label: 'tenet_port_ingress, port without ACL',
        unit: 'ns',
        value: summarize(base),
      },
    ];
    const ratio = (xs: number[]): number[] =>
      xs.map((x, i) => x / (samples.get('noop')![i] as number));
    for (const s of specs) {
      const xs = samples.get(s.port)!;
      const n = s.rules.length;
      const shape = s.port.split('-')[0] as string;
      figures.push({
        key: `acl.${shape}.rules_${n}.ns`,
        label: `${shape}, ${n} rules: tenet_port_ingress`,
        unit: 'ns',
        value: summarize(xs),
      });
      figures.push({
        key: `acl.${shape}.rules_${n}.ratio_noop`,
        label: `${shape}, ${n} rules: ratio to no-op`,
        unit: 'ratio',
        value: summarize(ratio(xs)),
      });
      figures.push({
        key: `acl.${shape}.rules_${n}.stage_ns`,
        label: `${shape}, ${n} rules: ACL stage (minus no-ACL run of the same round)`,
        unit: 'ns',
        value: summarize(xs.map((x, i) => x - (base[i] as number))),
      });
    }
    // The target of the feature: per-packet cost independent of the rule count up to 10,000.
    const flat = (shape: string, from: number): void => {
      const a = samples.get(`${shape}-${from}`);
      const b = samples.get(`${shape}-10000`);
      if (!a || !b) return;
      const r = summarize(b.map((x, i) => x / (a[i] as number)));
      figures.push({
        key: `acl.${shape}.rules_10000_vs_${from}.ratio`,
        label: `${shape}: 10,000 rules / ${from} rule(s), per packet`,
        unit: 'ratio',
        value: r,
        target: '<= 1.25 (cost independent of the rule count)',
        met: r.median <= 1.25,
      });
    };
    flat('typical', 1);
    flat('dense', 100);
    figures.push({
      key: 'acl.update_10000.ms',
      label: 'replace a 10,000-rule set (compile + write + flip + delete old)',
      unit: 'ms',
      value: summarize(updateMs),
    });
    figures.push({
      key: 'acl.compile_10000.ms',
      label: 'of which compile',
      unit: 'ms',
      value: summarize(compileMs),
    });
    return {
      section: 'acl',
      title: 'Port ACLs',
      figures,
      notes: [
        `BPF_PROG_TEST_RUN, repeat ${repeat}, ${rounds} interleaved rounds; one 64-byte UDP frame vm1 -> vm2.`,
        'typical: distinct remote /32 deny rules, the deciding allow last; dense: every word a candidate (worst case).',
      ],
    };
  } finally {
    aclPorts.close();
    tables.close();
    port.close();
    xdp.close();
    noopObj.close();
    rmSync(pinRoot, { recursive: true, force: true });
  }
};

export default aclSection;

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const result = await aclSection({ quick, log: (l) => console.error(l) });
  for (const f of result.figures) {
    const v = f.value;
    console.log(
      `${f.label.padEnd(72)} ${v.median.toFixed(f.unit === 'ratio' ? 2 : 0).padStart(9)} ${f.unit} (min ${v.min.toFixed(1)}, max ${v.max.toFixed(1)})`,
    );
  }
  const date = new Date().toISOString();
  const out = join(REPO, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const file = join(out, `acl-${date.slice(0, 10)}.json`);
  writeFileSync(
    file,
    JSON.stringify({ date, machine: machineDescription(), ...result }, null, 2) + '\n',
  );
  console.log(`written to ${file}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
