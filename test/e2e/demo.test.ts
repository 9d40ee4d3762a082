// The README's main job: the two-tenant NVGRE demo lab with one host agent per hypervisor; its
// connectivity tour passes, its counters show overlay traffic, and it leaves nothing behind.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privilege.js';
import { NETNS_DIR } from '../helpers/lab.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

describePrivileged('demo (scripts/demo main job)', () => {
  it('brings up the two-tenant overlay lab, passes its tour, counts traffic, and tears down', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'agent/demo/main.ts', '--duration', '3', '--interval', '1'],
      { cwd: REPO, encoding: 'utf8', timeout: 120_000 },
    );
    expect(r.stderr).not.toMatch(/demo failed|checks failed/);
    expect(r.status).toBe(0);
    const prefix = /lab (tn-[0-9a-z]{6})/.exec(r.stdout)?.[1];
    expect(prefix).toBeDefined();

    // The tour: six reachability checks and the same-address isolation check, all ok.
    const verdicts = r.stdout.split('\n').filter((l) => /^\s+(ok|FAIL)\s/.test(l));
    expect(verdicts).toHaveLength(7);
    expect(verdicts.every((l) => /^\s+ok\s/.test(l))).toBe(true);
    expect(r.stdout).toMatch(/red-vm2 got 3 echo requests, blue-vm2 \(same address\) 0/);

    // The last counter table: both hosts encapsulated and decapsulated blue's VSID 5001.
    const last = r.stdout.slice(r.stdout.lastIndexOf('counters from the pinned maps'));
    for (const host of ['hv1', 'hv2']) {
      const m = new RegExp(`${host}\\s+vsid 5001\\s+encap (\\d+) pkts, decap (\\d+) pkts`).exec(
        last,
      );
      expect(m, `${host} VSID 5001 counters`).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(Number(m![2])).toBeGreaterThan(0);
    }
    expect(r.stdout).toContain('lab torn down');
    const left = existsSync(NETNS_DIR)
      ? readdirSync(NETNS_DIR).filter((n) => n.startsWith(`${prefix}-`))
      : [];
    expect(left).toEqual([]);
    expect(existsSync(`/sys/fs/bpf/tenet-test-${prefix!.slice(3)}`)).toBe(false);
  });
});
