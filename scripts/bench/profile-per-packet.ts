// Where a datapath path's test-run time goes: loads the per-packet section's setup, then for each
// path named (default: the no-op and the paths with a per-packet target) runs single test-runs in
// a tight loop for a few seconds while `perf record -e cpu-clock` samples this process (the
// programs run in the test-run syscall, in this process's context), and prints self time by
// symbol: the JITed program itself (bpf_prog_<tag>_<name>) against the helpers and kernel code it
// calls (map lookups, adjust_room/adjust_head, checksums, the test-run harness).
//
// Usage: npm run bench:profile-per-packet [-- --paths decap_deliver,encap --seconds S]
//        (root, perf; writes bench/results/profile-per-packet-<date>.txt)

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadPerPacketBench } from './per-packet.js';
import { machineDescription } from './stats.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * Samples whose call chain passes through bpf_test_run (the loop the kernel times), counted by
 * their leaf symbol: the JITed program, the helpers and map code it calls, the loop itself.
 */
export function timedRegion(script: string): {
  inside: number;
  total: number;
  bySym: Map<string, number>;
} {
  const bySym = new Map<string, number>();
  let inside = 0;
  let total = 0;
  for (const block of script.split(/\n\s*\n/)) {
    const frames = block
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[1] ?? '')
      .filter((x) => x !== '');
    if (frames.length === 0) continue;
    total++;
    const at = frames.indexOf('bpf_test_run');
    if (at < 0) continue;
    inside++;
    const leaf = frames[0]!.replace(/^bpf_prog_[0-9a-f]+_/, 'bpf_prog_');
    bySym.set(leaf, (bySym.get(leaf) ?? 0) + 1);
  }
  return { inside, total, bySym };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      paths: { type: 'string', default: 'noop_tc,noop_xdp,decap_deliver,encap,local_switch' },
      seconds: { type: 'string', default: '3' },
    },
  });
  const secs = Number(values.seconds);
  if (!(secs >= 1 && secs <= 30)) throw new Error('--seconds takes 1..30');
  const tmp = join(REPO, 'bench', 'tmp');
  mkdirSync(tmp, { recursive: true });
  const bench = await loadPerPacketBench();
  const out: string[] = [
    `# perf profiles of single BPF_PROG_TEST_RUN calls, ${new Date().toISOString()}`,
    `# machine: ${JSON.stringify(machineDescription())}`,
    `# perf record -g -e cpu-clock -F 4999 -p <this process> for ${secs} s per path; samples inside bpf_test_run by leaf symbol`,
    '',
  ];
  try {
    for (const key of values.paths.split(',')) {
      const noop = key === 'noop_tc' || key === 'noop_xdp';
      const p = bench.paths.find((x) => x.key === key);
      if (!noop && p === undefined) throw new Error(`--paths: no path ${key}`);
      const prog = noop ? bench.prog[key] : bench.prog[p!.hook];
      const frame = p?.frame ?? bench.paths.find((x) => x.key === 'local_switch')!.frame;
      const data = join(tmp, `perf-pp-${key}.data`);
      const perf = spawn(
        'perf',
        [
          'record',
          '-q',
          '-g',
          '-e',
          'cpu-clock',
          '-F',
          '4999',
          '-p',
          String(process.pid),
          '-o',
          data,
        ],
        { stdio: 'ignore' },
      );
      const exited = new Promise<void>((r) => perf.on('exit', () => r()));
      await new Promise((r) => setTimeout(r, 500));
      const end = performance.now() + secs * 1000;
      let n = 0;
      // A bounded loop: single runs (each from the original frame) until the time is up.
      while (performance.now() < end && n < 50_000_000) {
        for (let i = 0; i < 1000; i++)
          prog.testRun({ data: frame, repeat: 1, dataOutSize: frame.length + 512 });
        n += 1000;
      }
      perf.kill('SIGINT');
      await exited;
      const script = execFileSync('perf', ['script', '-i', data, '-F', 'comm,ip,sym'], {
        encoding: 'utf8',
        timeout: 300_000,
        maxBuffer: 1 << 30,
      });
      const { inside, total, bySym } = timedRegion(script);
      const top = [...bySym]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 20)
        .map(([sym, c]) => `  ${((100 * c) / inside).toFixed(1).padStart(5)}%  ${sym}`);
      out.push(
        `## ${key} (${n} single test-runs; ${inside} of ${total} samples inside bpf_test_run, ` +
          'the timed region; self time there by symbol)',
        ...top,
        '',
      );
      console.error(`profiled ${key}`);
    }
  } finally {
    bench.close();
  }
  const file = join(
    REPO,
    'bench',
    'results',
    `profile-per-packet-${new Date().toISOString().slice(0, 10)}.txt`,
  );
  writeFileSync(file, out.join('\n') + '\n');
  console.log(`written to ${file}`);
}

// Run as a command only (tests import the parsers).
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(
      `bench:profile-per-packet failed: ${e instanceof Error ? (e.stack ?? e.message) : e}`,
    );
    process.exit(1);
  });
}
