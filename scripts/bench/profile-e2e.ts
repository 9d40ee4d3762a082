// Where the CPU goes in the end-to-end topologies: builds the lab of scripts/bench/end-to-end.ts
// and, for each topology and each of TCP single stream and UDP 64-byte traffic (iperf3, bounded),
// samples every CPU with `perf record -a -e cpu-clock` (the VM has no hardware counters) while the
// traffic runs, then writes the top kernel and BPF symbols of each profile side by side.
//
// Usage: npm run bench:profile [-- --seconds S]   (root, perf; writes
//        bench/results/profile-e2e-<date>.txt; the raw perf.data files stay in bench/tmp/)

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Lab, iperf3 } from '../../agent/lab/index.js';
import { buildE2eLab } from './end-to-end.js';
import { machineDescription } from './stats.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * Samples of the processes that carry the traffic (iperf3: its syscalls run the veth hops and the
 * softirqs they raise; ksoftirqd) by symbol; the machine is shared, everything else is left out.
 */
export function trafficSamples(script: string): {
  kept: number;
  total: number;
  bySym: Map<string, number>;
} {
  const bySym = new Map<string, number>();
  let kept = 0;
  let total = 0;
  for (const line of script.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 2 || f[0] === '') continue;
    total++;
    if (f[0] !== 'iperf3' && !f[0]!.startsWith('ksoftirqd/')) continue;
    kept++;
    const sym = (f[2] ?? '[unknown]').replace(/^bpf_prog_[0-9a-f]+_/, 'bpf_prog_');
    bySym.set(sym, (bySym.get(sym) ?? 0) + 1);
  }
  return { kept, total, bySym };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '4' } } });
  const secs = Number(values.seconds);
  if (!(secs >= 1 && secs <= 30)) throw new Error('--seconds takes 1..30');
  const tmp = join(REPO, 'bench', 'tmp');
  mkdirSync(tmp, { recursive: true });
  const lab = await Lab.create('bench-prof');
  const e2e = await buildE2eLab(lab, (l) => console.error(l));
  const out: string[] = [
    `# perf profiles of the end-to-end topologies, ${new Date().toISOString()}`,
    `# machine: ${JSON.stringify(machineDescription())}`,
    `# perf record -a -e cpu-clock -F 999 for ${secs} s during each iperf3 run; self time by symbol among the samples of iperf3 and ksoftirqd`,
    '',
  ];
  try {
    for (const key of ['overlay', 'vxlan', 'limit'] as const) {
      const b = e2e.built[key];
      for (const kind of ['tcp', 'udp64'] as const) {
        const data = join(tmp, `perf-${key}-${kind}.data`);
        const run = iperf3(b.server, b.client, b.dst, {
          seconds: secs + 1,
          ...(kind === 'udp64' ? { udp: true, length: 64, bitrate: '0' } : {}),
        });
        await new Promise((r) => setTimeout(r, 500));
        execFileSync(
          'perf',
          [
            'record',
            '-q',
            '-a',
            '-e',
            'cpu-clock',
            '-F',
            '999',
            '-o',
            data,
            '--',
            'sleep',
            String(secs),
          ],
          { stdio: ['ignore', 'ignore', 'inherit'], timeout: (secs + 30) * 1000 },
        );
        const r = await run;
        const script = execFileSync('perf', ['script', '-i', data, '-F', 'comm,ip,sym'], {
          encoding: 'utf8',
          timeout: 300_000,
          maxBuffer: 1 << 30,
        });
        const { kept, total, bySym } = trafficSamples(script);
        const bpf = [...bySym]
          .filter(([k]) => k.startsWith('bpf_prog_'))
          .reduce((x, [, c]) => x + c, 0);
        const lines = [...bySym]
          .sort((x, y) => y[1] - x[1])
          .slice(0, 25)
          .map(([sym, c]) => `  ${((100 * c) / kept).toFixed(1).padStart(5)}%  ${sym}`);
        out.push(
          `## ${key} ${kind}: ${kind === 'tcp' ? `${(r.receivedBps / 1e6).toFixed(0)} Mbit/s` : `${(r.sentBps / 1e6).toFixed(0)} Mbit/s offered`}`,
          `(${kept} of ${total} samples: iperf3 and ksoftirqd only; tenet's BPF programs ${((100 * bpf) / kept).toFixed(1)}%)`,
          ...lines.slice(0, 25),
          '',
        );
        console.error(`profiled ${key} ${kind}`);
      }
    }
  } finally {
    await e2e.close();
    await lab.teardown();
  }
  const file = join(
    REPO,
    'bench',
    'results',
    `profile-e2e-${new Date().toISOString().slice(0, 10)}.txt`,
  );
  writeFileSync(file, out.join('\n') + '\n');
  console.log(`written to ${file}`);
}

// Run as a command only (tests import the parsers).
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(`bench:profile failed: ${e instanceof Error ? (e.stack ?? e.message) : e}`);
    process.exit(1);
  });
}
