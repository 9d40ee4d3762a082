// Receive steering through tenetd on the real BPF datapath (one-hypervisor lab): tenetctl
// steering set/list/clear, the SteeringService status codes for bad input (unknown port, empty
// or duplicate CPU sets, CPUs the host does not have) with the field named and nothing applied,
// and the per-CPU metrics on the metrics endpoint (checked with promtool).

import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TenetClient } from '../../agent/api/client.js';
import { buildTopology, useLab, type Topology } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';
import { startDaemon, type DaemonProc } from './daemon-helpers.js';
import { demoPolicyText, ROOT } from './helpers.js';
import { tenetdConfig } from '../helpers/tenetd.js';

const execFileP = promisify(execFile);
const CLI = join(ROOT, 'agent/cli/main.ts');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function promtool(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`promtool: ${out}`))));
    p.stdin.end(text);
  });
}

describePrivileged('steering through tenetd, tenetctl and metrics', () => {
  const ref = useLab('steer-api', async (lab) => {
    const topo: Topology = await buildTopology(lab, {
      hosts: [
        {
          name: 'hv1',
          phys: { name: 'eth0', addrs: ['198.18.0.1/24'] },
          vms: [
            {
              name: 'blue1',
              port: 'vm-blue1',
              mac: '02:00:00:b1:00:11',
              addrs: ['198.19.1.11/24'],
            },
            { name: 'red1', port: 'vm-red1', mac: '02:00:00:4e:00:11' },
          ],
        },
      ],
    });
    return { topo, pinRoot: join(await lab.bpffsDir(), 'hv1') };
  });
  const dir = mkdtempSync(join(tmpdir(), 'tenetd-steer-'));
  let daemon: DaemonProc | undefined;
  let client: TenetClient;
  let metricsUrl = '';
  const socket = join(dir, 'run', 'tenetd.sock');

  const tenetctl = async (...args: string[]): Promise<Result> => {
    try {
      const { stdout, stderr } = await execFileP(
        process.execPath,
        ['--import', 'tsx', CLI, '--socket', socket, ...args],
        { cwd: ROOT, timeout: 60_000 },
      );
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };

  beforeAll(async () => {
    const netns = ref.value.topo.host('hv1').ns.path;
    const cfg = tenetdConfig(dir, {
      pinRoot: ref.value.pinRoot,
      datapath: `datapath:\n  backend: host\n  netns: ${netns}\n`,
    });
    daemon = startDaemon(cfg);
    await daemon.waitLog((l) => l.event === 'ready', 60_000);
    const m = await daemon.waitLog((l) => l.msg === 'metrics listening', 10_000);
    metricsUrl = `http://${String(m.host)}:${String(m.port)}/metrics`;
    client = new TenetClient(socket);
    await client.policy('Apply', { text: demoPolicyText() });
  }, 90_000);
  afterAll(async () => {
    client?.close();
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('tenetctl steering set / list / clear', async () => {
    const v0 = BigInt((await client.agent('GetStatus')).policyVersion as string);
    const set = await tenetctl('steering', 'set', 'blue-vm1', '--mode', 'fixed', '--cpus', '1');
    expect(set.code, set.stderr).toBe(0);
    // A policy change like any other: a new version (so it is persisted and diffed).
    expect(set.stdout).toContain(`blue-vm1: fixed 1 (policy version ${v0 + 1n})`);
    const again = await client.call('SteeringService', 'SetPortSteering', {
      steering: { port: 'blue-vm1', mode: 'fixed', cpus: [1] },
    });
    expect(again.version).toBe(String(v0 + 1n)); // the same again changes nothing
    const spread = await tenetctl(
      'steering',
      'set',
      'red-vm1',
      '--mode',
      'spread',
      '--cpus',
      '0-1',
    );
    expect(spread.code, spread.stderr).toBe(0);

    const list = await tenetctl('steering', 'list', '-o', 'json');
    expect(list.code, list.stderr).toBe(0);
    const res = JSON.parse(list.stdout) as { ports: Array<Record<string, unknown>> };
    expect(res.ports.map((p) => [p.port, p.mode, p.cpus, p.currentCpus])).toEqual([
      ['blue-vm1', 'fixed', [1], [1]],
      ['red-vm1', 'spread', [0, 1], [0, 1]],
    ]);
    const table = await tenetctl('steering', 'list');
    expect(table.stdout).toMatch(/PORT\s+INTERFACE\s+MODE\s+CPUS\s+NOW-ON/);
    expect(table.stdout).toMatch(/blue-vm1\s+vm-blue1\s+fixed\s+1\s+1/);

    const clear = await tenetctl('steering', 'clear', 'red-vm1');
    expect(clear.code, clear.stderr).toBe(0);
    const after = await client.call('SteeringService', 'GetSteering', {});
    expect((after.ports as Array<{ port: string }>).map((p) => p.port)).toEqual(['blue-vm1']);
  });

  it('rejects bad input clearly and applies nothing', async () => {
    const version = (await client.agent('GetStatus')).policyVersion;
    const cases: Array<{ args: string[]; code: number; text: RegExp }> = [
      {
        args: ['steering', 'set', 'nope', '--mode', 'fixed', '--cpus', '0'],
        code: 1,
        text: /NOT_FOUND.*port "nope" does not exist/s,
      },
      {
        // A CPU this host does not have: the host cannot carry it.
        args: ['steering', 'set', 'blue-vm1', '--mode', 'fixed', '--cpus', '200'],
        code: 1,
        text: /FAILED_PRECONDITION.*portSteering\[0\]\.cpus\[0\].*CPU 200 does not exist or is offline on host hv1 \(online: 0-1\)/s,
      },
      {
        args: ['steering', 'set', 'blue-vm1', '--mode', 'spread', '--cpus', '0,1,0'],
        code: 1,
        text: /INVALID_ARGUMENT.*steering\.cpus\[2\].*CPU 0 is already in the set/s,
      },
      {
        // An empty set cannot be sent over proto3: it arrives as "none", which fixed requires.
        args: ['steering', 'set', 'blue-vm1', '--mode', 'fixed', '--cpus', ''],
        code: 1,
        text: /INVALID_ARGUMENT.*steering\.cpus.*is required for mode fixed/s,
      },
      {
        args: ['steering', 'set', 'blue-vm1', '--mode', 'fixed', '--cpus', '0-x'],
        code: 2,
        text: /--cpus: "0-x" is not a CPU list/,
      },
      { args: ['steering', 'set', 'blue-vm1', '--mode', 'rss'], code: 2, text: /Allowed choices/ },
      { args: ['steering', 'clear', 'red-vm1'], code: 1, text: /NOT_FOUND.*has no steering/s },
      { args: ['steering', 'list', '--port', 'nope'], code: 1, text: /NOT_FOUND/ },
    ];
    for (const c of cases) {
      const r = await tenetctl(...c.args);
      expect(r.code, `${c.args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(c.code);
      expect(r.stderr, c.args.join(' ')).toMatch(c.text);
    }
    // Nothing was applied: same policy version, same steering.
    expect((await client.agent('GetStatus')).policyVersion).toBe(version);
    const now = await client.call('SteeringService', 'GetSteering', {});
    expect((now.ports as Array<{ port: string; currentCpus: number[] }>)[0]).toMatchObject({
      port: 'blue-vm1',
      currentCpus: [1],
    });
    // The same through the API directly: a real status code.
    await expect(
      client.call('SteeringService', 'SetPortSteering', {
        steering: { port: 'blue-vm1', mode: 'spread', cpus: [0, 5] },
      }),
    ).rejects.toMatchObject({ code: grpcStatus.FAILED_PRECONDITION });
  });

  it('exports per-CPU port packets and steering metrics (promtool-clean)', async () => {
    // Some traffic from the VM so the port has per-CPU counts.
    await ref.value.topo
      .vm('blue1')
      .ns.exec(['ping', '-c', '2', '-i', '0.2', '-W', '1', '198.19.1.12']);
    const text = await (await fetch(metricsUrl)).text();
    await promtool(text);
    const ours = text.split('\n').filter((l) => /^tenet_(port_cpu|steering)/.test(l));
    expect(ours.join('\n')).toMatch(
      /^tenet_port_cpu_packets_total\{port="blue-vm1",cpu="\d+",direction="rx"\} [1-9]/m,
    );
    expect(ours.join('\n')).toMatch(/^tenet_steering_port_cpu\{port="blue-vm1",cpu="1"\} 1$/m);
    expect(ours.join('\n')).toMatch(/^tenet_steering_moves_total 0$/m);
  });
});
