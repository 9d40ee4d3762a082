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
    `# perf record -a -e cpu-clock -F 999 for ${secs} s during each iperf3 run; self time by symbol`,
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
        const report = execFileSync(
          'perf',
          [
            'report',
            '-i',
            data,
            '--no-children',
            '--sort',
            'sym',
            '--stdio',
            '--percent-limit',
            '1',
          ],
          { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 },
        );
        const lines = report.split('\n').filter((l) => /^\s+\d/.test(l));
        out.push(
          `## ${key} ${kind}: ${kind === 'tcp' ? `${(r.receivedBps / 1e6).toFixed(0)} Mbit/s` : `${(r.sentBps / 1e6).toFixed(0)} Mbit/s offered`}`,
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

main().catch((e: unknown) => {
  console.error(`bench:profile failed: ${e instanceof Error ? (e.stack ?? e.message) : e}`);
  process.exit(1);
});
