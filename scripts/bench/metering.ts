// Per-packet cost of metering: tenet_port_ingress (tc on a VM port) on a frame a VM sends to a
// local VM (source checks, outbound metering, switching, inbound metering, host-local delivery), through BPF_PROG_TEST_RUN
// with `repeat`, with the port having 0, 16 and 1024 meter prefixes (the class lookup is one LPM
// trie lookup whatever the count; the counter one per-CPU hash update), against the no-op tc
// program (bpf/testing/noop.bpf.c) as the per-packet baseline measured in the same run. Variants
// are interleaved and repeated; figures are min/median/max of the repetitions' averages.
//
// The tables come from the production compiler and reconciler (the demo policy, blue-vm1 on the
// loopback device, the port test-runs enter on) in a private pin root, removed at the end.
//
// Usage: npm run bench:metering [-- --quick]   (root; writes bench/results/metering-<date>.json)

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { DropReasonByValue, Maps } from '../../agent/abi/generated.js';
import { BpfMap, BpfObject, PerCpuTypedMap, TypedMap } from '../../agent/bpf/index.js';
import { compile } from '../../agent/compiler/index.js';
import { bpfBuildDir, loadObject } from '../../agent/datapath/objects.js';
import { packet } from '../../agent/packet/index.js';
import { parsePolicy } from '../../agent/policy/index.js';
import { BpfPolicyTables } from '../../agent/reconciler/bpf-tables.js';
import { reconcile } from '../../agent/reconciler/index.js';
import type { Section, SectionResult } from './section.js';
import { machineDescription, summarize } from './stats.js';

const run = promisify(execFile);

/** The product objects built with -DTENET_BENCH_NO_METER into dir (the bpf Makefile's flags). */
async function buildNoMeter(dir: string): Promise<void> {
  const bpf = join(REPO, 'bpf');
  const { stdout } = await run('make', [
    '-s',
    '--no-print-directory',
    '-C',
    bpf,
    '--eval=tenet-print-cflags: ; @echo $(CLANG) $(BPF_CFLAGS)',
    'tenet-print-cflags',
  ]);
  const [clang, ...flags] = stdout.trim().split(/\s+/);
  mkdirSync(dir, { recursive: true });
  await run(
    clang as string,
    [...flags, '-DTENET_BENCH_NO_METER', '-c', 'tenet_port.bpf.c', '-o', join(dir, 'tenet_port.o')],
    { cwd: bpf },
  );
}

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)).replace('/dist/', '/'));

const FACTS = {
  eth0: { ifindex: 2, mac: '02:00:00:00:0e:01', mtu: 1500 },
  lo: { ifindex: 1, mac: '02:00:00:00:0e:02', mtu: 1500 },
  'vm-red1': { ifindex: 11, mac: '02:00:00:00:0e:03', mtu: 1500 },
  'vm-x': { ifindex: 12, mac: '02:00:00:00:0e:04', mtu: 1500 },
};

/** The demo policy with blue-vm1 on lo and `prefixes` meter prefixes (nested /16../32 in 10/8). */
function policyWith(prefixes: number) {
  const doc = parseYaml(readFileSync(join(REPO, 'scripts/lab/demo-policy.yaml'), 'utf8'));
  for (const p of doc.ports) if (p.name === 'blue-vm1') p.interface = 'lo';
  // blue-vm2 local too: the frame is switched host-locally and left unmodified, so test-run's
  // `repeat` runs the same frame every time (an encapsulated frame would be fed back in).
  for (const p of doc.ports)
    if (p.name === 'blue-vm2') Object.assign(p, { host: 'hv1', interface: 'vm-x' });
  for (const r of doc.lookupRecords) if (r.mac === '02:00:00:b1:00:12') r.pa = '198.18.0.1';
  const rules = [];
  for (let i = 0; i < prefixes; i++) {
    rules.push({
      name: `m${i}`,
      direction: 'outbound',
      action: 'meter',
      meteringClass: `c${i % 8}`,
      // Distinct prefixes of several lengths, the longest covering the destination.
      remotePrefix: i === 0 ? '198.19.1.12/32' : `10.${(i >> 8) & 0xff}.${i & 0xff}.0/24`,
    });
  }
  doc.portAcls = prefixes === 0 ? [] : [{ port: 'blue-vm1', rules }];
  return parsePolicy(doc);
}

const FRAME = packet()
  .eth({ src: '02:00:00:b1:00:11', dst: '02:00:00:b1:00:12' })
  .ipv4({ src: '198.19.1.11', dst: '198.19.1.12', ttl: 64, df: true, id: 1 })
  .udp({ sport: 40000, dport: 5000 })
  .payload(Buffer.alloc(64, 0x61))
  .build();

export const meteringSection: Section = async ({ quick, log }): Promise<SectionResult> => {
  const pinRoot = `/sys/fs/bpf/tenet-bench-meter-${randomBytes(4).toString('hex')}`;
  mkdirSync(pinRoot, { recursive: true });
  const reps = quick ? 5 : 15;
  const repeat = quick ? 20_000 : 100_000;
  const port = await loadObject('tenet_port', pinRoot);
  // The same sources with tenet_meter() compiled out: the marginal cost of metering.
  const variantDir = join(tmpdir(), `tenet-bench-nometer-${randomBytes(4).toString('hex')}`);
  await buildNoMeter(variantDir);
  const bare = await loadObject('tenet_port', pinRoot, { dir: variantDir });
  const noopObj = BpfObject.open(join(bpfBuildDir(), 'testing', 'noop.o'));
  await noopObj.load();
  const tables = BpfPolicyTables.openPinned(pinRoot);
  try {
    const u = Maps.tenet_underlay;
    const underlay = new TypedMap(BpfMap.openPinned(join(pinRoot, u.name)), u.key, u.value);
    underlay.set(0xc6120002, { mac: Uint8Array.of(2, 0, 0, 0, 0x0e, 9) });
    underlay.close();
    const variants = [0, 16, 1024];
    const samples = new Map<string, number[]>([
      ['noop', []],
      ['bare', []],
      ...variants.map((v) => [`p${v}`, []] as [string, number[]]),
    ]);
    const runOnce = (prog: ReturnType<BpfObject['program']>): { ns: number; retval: number } => {
      const r = prog.testRun({ data: FRAME, repeat, dataOutSize: FRAME.length + 256 });
      return { ns: r.durationNs, retval: r.retval };
    };
    const noop = noopObj.program('noop_tc');
    const ingress = port.program('tenet_port_ingress');
    const bareIngress = bare.program('tenet_port_ingress');
    for (let rep = 0; rep < reps; rep++) {
      samples.get('noop')?.push(runOnce(noop).ns);
      await reconcile(tables, compile(policyWith(16), 'hv1', FACTS));
      samples.get('bare')?.push(runOnce(bareIngress).ns);
      for (const v of variants) {
        await reconcile(tables, compile(policyWith(v), 'hv1', FACTS));
        const r = runOnce(ingress);
        if (r.retval !== 7) {
          const d = Maps.tenet_drop_ctrs;
          const drops = new PerCpuTypedMap(
            BpfMap.openPinned(join(pinRoot, d.name)),
            d.key,
            d.value,
          );
          const seen = [...drops.entries()]
            .filter(([, v]) => v.some((c) => c.packets > 0n))
            .map(([k]) => DropReasonByValue[k]);
          drops.close();
          throw new Error(
            `tenet_port_ingress returned ${r.retval}, not a redirect: ${seen.join(', ')}`,
          );
        }
        samples.get(`p${v}`)?.push(r.ns);
      }
      log(`rep ${rep + 1}/${reps}`);
    }
    noop.close();
    ingress.close();
    bareIngress.close();
    const noopS = summarize(samples.get('noop') ?? []);
    const figures = [
      {
        key: 'metering.noop_tc.ns',
        label: 'no-op tc program (baseline)',
        unit: 'ns',
        value: noopS,
      },
      {
        key: 'metering.port_local_no_meter.ns',
        label: 'VM port -> local VM, metering compiled out',
        unit: 'ns',
        value: summarize(samples.get('bare') ?? []),
      },
      ...variants
        .map((v) => {
          const s = summarize(samples.get(`p${v}`) ?? []);
          return [
            {
              key: `metering.port_local_prefixes_${v}.ns`,
              label: `VM port -> local VM, ${v} meter prefixes`,
              unit: 'ns',
              value: s,
            },
            {
              key: `metering.port_local_prefixes_${v}.ratio_noop`,
              label: `same, / no-op`,
              unit: 'ratio',
              value: summarize(
                (samples.get(`p${v}`) ?? []).map(
                  (x, i) => x / ((samples.get('noop') ?? [])[i] ?? 1),
                ),
              ),
            },
          ];
        })
        .flat(),
    ];
    return {
      section: 'metering',
      title: 'Metering: per-packet cost of the VM-port program with meter classes',
      figures,
      notes: [
        `BPF_PROG_TEST_RUN, repeat ${repeat}, ${reps} interleaved repetitions; ${FRAME.length}-byte UDP frame`,
        'every product variant meters twice per frame (outbound at the source port, inbound at the destination; the default class when no prefix matches); "metering compiled out" is the same sources built with -DTENET_BENCH_NO_METER, so the difference is the marginal cost of metering',
      ],
    };
  } finally {
    tables.close();
    port.close();
    bare.close();
    noopObj.close();
    rmSync(variantDir, { recursive: true, force: true });
    rmSync(pinRoot, { recursive: true, force: true });
  }
};

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
  const result = await meteringSection({
    quick: values.quick === true,
    log: (l) => console.error(l),
  });
  for (const f of result.figures)
    console.log(
      `${f.label.padEnd(52)} ${f.value.median.toFixed(f.unit === 'ratio' ? 2 : 0).padStart(8)} ${f.unit}  (min ${f.value.min.toFixed(2)}, max ${f.value.max.toFixed(2)})`,
    );
  const dir = join(REPO, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const date = new Date().toISOString();
  const file = join(dir, `metering-${date.slice(0, 10)}.json`);
  writeFileSync(
    file,
    JSON.stringify({ date, machine: machineDescription(), ...result }, null, 2) + '\n',
  );
  console.log(`wrote ${file}`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`bench:metering failed: ${e instanceof Error ? (e.stack ?? e.message) : e}`);
    process.exitCode = 1;
  });
}
