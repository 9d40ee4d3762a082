// The README's main job: the demo lab runs tenet's datapath with real traffic, shows counters
// that grow, and leaves nothing behind when it ends.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privilege.js';
import { NETNS_DIR } from '../helpers/lab.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

describePrivileged('demo (scripts/demo main job)', () => {
  it('runs the lab with the datapath attached, counts real traffic, and tears down', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'agent/demo/main.ts', '--duration', '4', '--interval', '1'],
      { cwd: REPO, encoding: 'utf8', timeout: 90_000 },
    );
    expect(r.stderr).not.toMatch(/demo failed/);
    expect(r.status).toBe(0);
    const prefix = /building lab (tn-[0-9a-z]{6})/.exec(r.stdout)?.[1];
    expect(prefix).toBeDefined();

    // The last table: every VM port counted ping traffic in both directions, and each host's
    // XDP program on phys0 counted what crossed the underlay.
    const last = r.stdout.slice(r.stdout.lastIndexOf('per-port counters'));
    const packets = (host: string, port: string, dir: string): number => {
      const re = new RegExp(`${host}\\s+${port}.*?\\s${dir}\\s+(\\d+) pkts`);
      return Number(re.exec(last)?.[1] ?? -1);
    };
    for (const [host, port] of [
      ['hv1', 'vm1p'],
      ['hv2', 'vm2p'],
    ] as const) {
      expect(packets(host, port, 'rx')).toBeGreaterThanOrEqual(10);
      expect(packets(host, port, 'tx')).toBeGreaterThanOrEqual(10);
      expect(packets(host, 'phys0', 'rx')).toBeGreaterThanOrEqual(10);
    }
    expect(last).not.toMatch(/drop /);
    expect(r.stdout).toContain('lab torn down');
    const left = existsSync(NETNS_DIR)
      ? readdirSync(NETNS_DIR).filter((n) => n.startsWith(`${prefix}-`))
      : [];
    expect(left).toEqual([]);
    expect(existsSync(`/sys/fs/bpf/tenet-test-${prefix!.slice(3)}`)).toBe(false);
  });
});
