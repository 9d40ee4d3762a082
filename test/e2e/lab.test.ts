// The lab itself: a switch + 2 hypervisor hosts + 1 VM each, real traffic across it, and
// guaranteed teardown (normal, throwing test body, SIGTERM, process.exit, crashed-run leftovers).

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privilege.js';
import {
  BPFFS_ROOT,
  BPFFS_TEST_PREFIX,
  LAB_STATE_DIR,
  Lab,
  LabError,
  NETNS_DIR,
  buildTopology,
  cleanupLeftovers,
  iperf3,
  ping,
  run,
  useLab,
  withLab,
  type Topology,
} from '../helpers/lab.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function nsOf(prefix: string): string[] {
  return existsSync(NETNS_DIR)
    ? readdirSync(NETNS_DIR).filter((n) => n.startsWith(`${prefix}-`))
    : [];
}

describePrivileged('lab', () => {
  let prefix = '';
  let bpffsDir = '';
  // Registered before useLab, so (hooks run as a stack) it runs after the lab's own afterAll.
  afterAll(() => {
    expect(prefix).not.toBe('');
    expect(nsOf(prefix)).toEqual([]);
    expect(existsSync(bpffsDir)).toBe(false);
    expect(existsSync(`${LAB_STATE_DIR}/${prefix}.json`)).toBe(false);
  });

  const ref = useLab('e2e-lab', (lab) =>
    buildTopology(lab, {
      hosts: [
        {
          name: 'h1',
          phys: { addrs: ['198.18.0.1/24', 'fd00:0:0:ff::1/64'] },
          forwarding: true,
          routes: [{ dst: '198.18.2.0/24', via: '198.18.0.2' }],
          vms: [
            {
              name: 'vm1',
              port: 'vm1p',
              mac: '02:00:00:00:01:01',
              addrs: ['198.18.1.10/24', 'fd00:0:0:1::10/64'],
              portAddrs: ['198.18.1.1/24'],
              routes: [{ dst: 'default', via: '198.18.1.1' }],
            },
          ],
        },
        {
          name: 'h2',
          phys: { addrs: ['198.18.0.2/24', 'fd00:0:0:ff::2/64'] },
          forwarding: true,
          routes: [{ dst: '198.18.1.0/24', via: '198.18.0.1' }],
          vms: [
            {
              name: 'vm2',
              port: 'vm2p',
              mac: '02:00:00:00:02:01',
              addrs: ['198.18.2.10/24'],
              portAddrs: ['198.18.2.1/24'],
              routes: [{ dst: 'default', via: '198.18.2.1' }],
            },
          ],
        },
      ],
    }),
  );

  it('builds the topology with prefixed namespaces and the expected wiring', async () => {
    const topo: Topology = ref.value;
    const lab = ref.lab;
    prefix = lab.prefix;
    expect(lab.prefix).toMatch(/^tn-[0-9a-z]{6}$/);
    expect(nsOf(lab.prefix).sort()).toEqual(
      ['h1', 'h2', 'sw', 'vm1', 'vm2'].map((n) => `${lab.prefix}-${n}`),
    );
    // Switch: bridge with one port per host.
    const sw = await topo.switch.ns.links();
    expect(
      sw
        .filter((l) => l.master === 'br0')
        .map((l) => l.ifname)
        .sort(),
    ).toEqual(['p-h1', 'p-h2']);
    // Hosts: phys0 + VM port, no other interfaces; VMs: eth0 with the given MAC.
    const h1 = await topo.host('h1').ns.links();
    expect(h1.map((l) => l.ifname).sort()).toEqual(['lo', 'phys0', 'vm1p']);
    expect(await topo.vm('vm1').ns.mac('eth0')).toBe('02:00:00:00:01:01');
    expect(topo.vm('vm1').eth0).toMatchObject({
      name: 'eth0',
      mac: '02:00:00:00:01:01',
      ip4: '198.18.1.10',
      ip6: 'fd00:0:0:1::10',
    });
    expect(topo.host('h1').phys.mac).toBe(await topo.host('h1').ns.mac('phys0'));
    expect(await topo.vm('vm2').port.ifindex()).toBeGreaterThan(1);
    expect(topo.host('h2').vm('vm2').host.name).toBe('h2');
    // IPv6 DAD is off, so the address is usable at once (not "tentative").
    const addr = await topo.host('h1').ns.ip('-6', 'addr', 'show', 'dev', 'phys0');
    expect(addr.stdout).toContain('fd00:0:0:ff::1/64');
    expect(addr.stdout).not.toContain('tentative');
  });

  it('pings over the underlay (IPv4 and IPv6) and VM to VM through both hosts', async () => {
    const topo: Topology = ref.value;
    const a = await ping(topo.host('h1').ns, '198.18.0.2', { count: 3, intervalMs: 50 });
    expect(a).toMatchObject({ transmitted: 3, received: 3, lossPct: 0 });
    expect(a.rtt?.avg).toBeGreaterThan(0);
    const b = await ping(topo.host('h2').ns, 'fd00:0:0:ff::1', { count: 2, intervalMs: 50 });
    expect(b).toMatchObject({ transmitted: 2, received: 2 });
    const c = await ping(topo.vm('vm1').ns, '198.18.2.10', { count: 3, intervalMs: 50 });
    expect(c).toMatchObject({ transmitted: 3, received: 3 });
    // An address nobody has: bounded, reports loss instead of hanging.
    const d = await ping(topo.vm('vm1').ns, '198.18.2.99', {
      count: 2,
      intervalMs: 50,
      timeoutS: 2,
    });
    expect(d.received).toBe(0);
  });

  it('runs a 2-second iperf3 TCP test VM to VM', async () => {
    const topo: Topology = ref.value;
    const r = await iperf3(topo.vm('vm2').ns, topo.vm('vm1').ns, '198.18.2.10', { seconds: 2 });
    expect(r.receivedBps).toBeGreaterThan(0);
    expect(r.sentBps).toBeGreaterThan(0);
    const end = (r.json as { end: { sum_received: { seconds: number } } }).end;
    expect(end.sum_received.seconds).toBeGreaterThan(1.5);
  });

  it('offers nsenter execution that keeps /sys/fs/bpf, unlike ip netns exec', async () => {
    const ns = ref.value.host('h1').ns;
    bpffsDir = await ref.lab.bpffsDir();
    expect(bpffsDir).toBe(`${BPFFS_ROOT}/${BPFFS_TEST_PREFIX}${ref.lab.id}`);
    const viaNsenter = await ns.enterOk(['stat', '-f', '-c', '%T', bpffsDir]);
    expect(viaNsenter.stdout.trim()).toBe('bpf_fs');
    const viaIpNetns = await ns.exec(['stat', '-f', '-c', '%T', bpffsDir]);
    expect(viaIpNetns.code).not.toBe(0); // hidden behind a fresh /sys
    // Both run in the lab namespace.
    const links = await ns.enterOk(['ip', '-o', 'link', 'show', 'phys0']);
    expect(links.stdout).toContain('phys0');
  });

  it('execOk throws with stderr; exec enforces its time limit', async () => {
    const ns = ref.value.host('h1').ns;
    await expect(ns.execOk(['ip', 'link', 'show', 'nope0'])).rejects.toThrow(
      /nope0.*does not exist|does not exist/,
    );
    const t = await ns.exec(['sleep', '5'], { timeoutMs: 200 });
    expect(t).toMatchObject({ timedOut: true, code: null, signal: 'SIGKILL' });
    expect(t.durationMs).toBeLessThan(3000);
  });

  it('refuses addresses outside 198.18.0.0/15 and fd00::/8', async () => {
    const ns = ref.value.host('h1').ns;
    for (const bad of [
      '10.0.0.1/24',
      '192.168.1.1/24',
      '198.20.0.1/24',
      '8.8.8.8',
      'fe80::1/64',
      '2001:db8::1/64',
    ]) {
      await expect(ns.addAddr('phys0', bad), bad).rejects.toThrow(
        /outside the lab ranges 198\.18\.0\.0\/15 and fd00::\/8/,
      );
    }
    await expect(ns.addRoute('10.0.0.0/8', { dev: 'phys0' })).rejects.toThrow(LabError);
    await expect(ns.addRoute('default', { via: '192.168.0.1' })).rejects.toThrow(LabError);
    await expect(ping(ns, '127.0.0.1')).rejects.toThrow(LabError);
    await expect(
      ref.lab.veth(
        { ns: 'h1', name: 'way-too-long-name0', mac: '02:00:00:00:00:01' },
        { ns: 'h2', name: 'x' },
      ),
    ).rejects.toThrow(/invalid interface name/);
    // Nothing was added.
    const addrs = await ns.ip('-j', 'addr', 'show', 'dev', 'phys0');
    expect(addrs.stdout).not.toMatch(/10\.0\.0\.1|192\.168|fe80::1\//);
  });

  it('cleanupLeftovers keeps live labs and removes crashed ones', async () => {
    const dry = await cleanupLeftovers({ dryRun: true });
    expect(dry.skippedLive).toContain(ref.lab.id);
    expect(dry.namespaces.filter((n) => n.startsWith(ref.lab.prefix))).toEqual([]);
  });
});

describePrivileged('lab teardown', () => {
  it('withLab tears down when the body throws', async () => {
    let prefix = '';
    await expect(
      withLab('throws', async (lab) => {
        prefix = lab.prefix;
        const a = await lab.netns('a');
        const b = await lab.netns('b');
        await lab.veth(
          { ns: a, name: 'x0', addrs: ['198.18.9.1/30'] },
          { ns: b, name: 'x1', addrs: ['198.18.9.2/30'] },
        );
        expect(nsOf(prefix).length).toBe(2);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(prefix).not.toBe('');
    expect(nsOf(prefix)).toEqual([]);
  });

  it('teardown is idempotent, kills background processes and makes the lab unusable', async () => {
    const lab = await Lab.create('idempotent');
    const ns = await lab.netns('a');
    const p = ns.spawn(['sleep', '30']);
    expect(p.running).toBe(true);
    await Promise.all([lab.teardown(), lab.teardown()]);
    await lab.teardown();
    expect(p.running).toBe(false);
    expect(nsOf(lab.prefix)).toEqual([]);
    expect(lab.tornDown).toBe(true);
    await expect(lab.netns('b')).rejects.toThrow(/torn down/);
  });

  it('cleanupLeftovers removes a crashed run (namespace, bpffs dir, marker)', async () => {
    const id = 'zz' + Math.random().toString(36).slice(2, 6).padEnd(4, '0');
    const name = `tn-${id}-crashed`;
    // A finished child's pid stands in for the dead owner.
    const dead = await run(['true']);
    expect(dead.code).toBe(0);
    const r0 = await run(['ip', 'netns', 'add', name]);
    expect(r0.code).toBe(0);
    mkdirSync(`${BPFFS_ROOT}/${BPFFS_TEST_PREFIX}${id}`, { recursive: true });
    mkdirSync(LAB_STATE_DIR, { recursive: true });
    writeFileSync(
      `${LAB_STATE_DIR}/tn-${id}.json`,
      JSON.stringify({ pid: 999_999_999, label: 'crashed', created: '' }),
    );
    try {
      const rep = await cleanupLeftovers({ ids: [id] });
      expect(rep.namespaces).toEqual([name]);
      expect(rep.bpffsDirs).toEqual([`${BPFFS_ROOT}/${BPFFS_TEST_PREFIX}${id}`]);
      expect(rep.markers).toEqual([`tn-${id}.json`]);
      expect(rep.errors).toEqual([]);
      expect(existsSync(`${NETNS_DIR}/${name}`)).toBe(false);
      expect(existsSync(`${BPFFS_ROOT}/${BPFFS_TEST_PREFIX}${id}`)).toBe(false);
    } finally {
      await run(['ip', 'netns', 'del', name]);
      rmSync(`${BPFFS_ROOT}/${BPFFS_TEST_PREFIX}${id}`, { recursive: true, force: true });
      rmSync(`${LAB_STATE_DIR}/tn-${id}.json`, { force: true });
    }
  });

  // A child process creates a lab and is then killed by a signal or exits without tearing down:
  // the exit-time handlers must remove its namespaces.
  const tmp = mkdtempSync(join(tmpdir(), 'tenet-lab-child-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const childScript = join(tmp, 'child.mts'); // .mts: ESM outside the package
  writeFileSync(
    childScript,
    `import { Lab } from ${JSON.stringify(join(REPO, 'agent/lab/lab.ts'))};
const lab = await Lab.create('child');
const a = await lab.netns('a');
const b = await lab.netns('b');
await lab.veth({ ns: a, name: 'c0' }, { ns: b, name: 'c1' });
await lab.bpffsDir();
process.stdout.write(lab.prefix + '\\n');
if (process.argv[2] === 'exit') process.exit(3);
setTimeout(() => process.exit(0), 20000);
`,
  );

  for (const mode of ['SIGTERM', 'SIGINT', 'exit'] as const) {
    it(`removes a child's lab on ${mode}`, async () => {
      // node --import tsx (not the tsx CLI, which is a relaying parent): the signal reaches the lab's process.
      const child = spawn(process.execPath, ['--import', 'tsx', childScript, mode], {
        cwd: REPO,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
        child.on('close', (code, signal) => res({ code, signal })),
      );
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      try {
        const deadline = Date.now() + 15_000;
        while (!out.includes('\n') && Date.now() < deadline && child.exitCode === null)
          await new Promise((r) => setTimeout(r, 20));
        const prefix = out.trim().split('\n')[0] ?? '';
        expect(prefix, err).toMatch(/^tn-[0-9a-z]{6}$/);
        if (mode !== 'exit') {
          expect(nsOf(prefix).length).toBe(2);
          child.kill(mode);
        }
        const res = await exited;
        if (mode === 'exit') expect(res.code).toBe(3);
        else expect(res.signal).toBe(mode);
        expect(nsOf(prefix)).toEqual([]);
        expect(existsSync(`${BPFFS_ROOT}/${BPFFS_TEST_PREFIX}${prefix.slice(3)}`)).toBe(false);
        expect(existsSync(`${LAB_STATE_DIR}/${prefix}.json`)).toBe(false);
      } finally {
        clearTimeout(killer);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });
  }
});
