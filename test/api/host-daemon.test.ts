// tenetd with the real BPF datapath (datapath.backend: host) on a one-hypervisor lab: an Apply
// through the socket lands in the pinned maps and attaches the programs; SIGTERM leaves the
// datapath attached; a restarted tenetd adopts it, reloads its state and serves again.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { TenetClient } from '../../agent/api/client.js';
import { xdpQuery } from '../../agent/bpf/index.js';
import { buildTopology, useLab, type Topology } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';
import { startDaemon, writeConfig, type DaemonProc } from './daemon-helpers.js';
import { demoPolicyText } from './helpers.js';

describePrivileged('tenetd on the BPF datapath', () => {
  const ref = useLab('tenetd-host', async (lab) => {
    const topo: Topology = await buildTopology(lab, {
      hosts: [
        {
          name: 'hv1',
          phys: { name: 'eth0', addrs: ['198.18.0.1/24'] },
          vms: [
            { name: 'blue1', port: 'vm-blue1', mac: '02:00:00:b1:00:11' },
            { name: 'red1', port: 'vm-red1', mac: '02:00:00:4e:00:11' },
          ],
        },
      ],
    });
    return { topo, pinRoot: join(await lab.bpffsDir(), 'hv1') };
  });
  const dir = mkdtempSync(join(tmpdir(), 'tenetd-host-'));
  let daemon: DaemonProc | undefined;
  afterAll(async () => {
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGKILL');
      await daemon.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  function config(): string {
    const netns = ref.value.topo.host('hv1').ns.path;
    return writeConfig(dir, {
      pinRoot: ref.value.pinRoot,
      datapath: `datapath:\n  backend: host\n  netns: ${netns}\n`,
    });
  }

  it('applies through the socket, survives SIGTERM, and is adopted by the next tenetd', async () => {
    const cfg = config();
    daemon = startDaemon(cfg);
    await daemon.waitLog((l) => l.event === 'ready', 60_000);
    const client = new TenetClient(join(dir, 'run', 'tenetd.sock'));
    const r = await client.policy('Apply', { text: demoPolicyText() });
    expect(r).toMatchObject({ version: '1', changed: true });
    const counters = await client.agent('GetCounters');
    const maps = counters.maps as { map: string; entries: string }[];
    expect(maps.find((m) => m.map === 'tenet_ports')?.entries).toBe('2');
    const netns = ref.value.topo.host('hv1').ns.path;
    const progId = xdpQuery({ ifname: 'eth0', netns }).progId;
    expect(progId).toBeGreaterThan(0);
    client.close();

    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    // The datapath is left as it was.
    expect(xdpQuery({ ifname: 'eth0', netns }).progId).toBe(progId);

    daemon = startDaemon(cfg);
    await daemon.waitLog((l) => l.event === 'ready', 60_000);
    const again = new TenetClient(join(dir, 'run', 'tenetd.sock'));
    const status = await again.agent('GetStatus');
    expect(status).toMatchObject({ ready: true, policyVersion: '1', stateFile: 'loaded' });
    expect(String(status.libbpfVersion)).toMatch(/^v?\d/);
    expect(xdpQuery({ ifname: 'eth0', netns }).progId).toBe(progId);
    again.close();
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
  });
});
