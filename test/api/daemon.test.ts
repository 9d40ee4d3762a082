// tenetd as a real process (memory backend: the real compiler, reconciler, API, state file and
// metrics, without touching kernel state): readiness (health, sd_notify), the durable state
// (atomic, reloaded, a bad file quarantined and reported), SIGTERM, --check-config.

import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TenetClient } from '../../agent/api/client.js';
import { decodeState, encodeState, STATE_FILE_NAME } from '../../agent/daemon/state.js';
import { parsePolicy } from '../../agent/policy/index.js';
import { NODE_ARGS, startDaemon, TENETD, writeConfig, type DaemonProc } from './daemon-helpers.js';
import { demoPolicyText, DEMO_POLICY_PATH, ROOT } from './helpers.js';

const runFile = promisify(execFile);

const isReady = (l: Record<string, unknown>): boolean => l.event === 'ready';

describe('tenetd process', () => {
  let dir: string;
  let config: string;
  let daemon: DaemonProc | undefined;
  let client: TenetClient | undefined;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tenetd-'));
    config = writeConfig(dir);
  });
  afterEach(async () => {
    client?.close();
    client = undefined;
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGKILL');
      await daemon.exited;
    }
    daemon = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const socket = () => join(dir, 'run', 'tenetd.sock');
  const statePath = () => join(dir, 'state', STATE_FILE_NAME);

  async function up(env: NodeJS.ProcessEnv = {}): Promise<DaemonProc> {
    daemon = startDaemon(config, env);
    await daemon.waitLog(isReady);
    client = new TenetClient(socket());
    return daemon;
  }

  async function down(): Promise<number | null> {
    client?.close();
    client = undefined;
    daemon?.child.kill('SIGTERM');
    const code = await daemon?.exited;
    return code ?? null;
  }

  it('starts, serves, persists the policy atomically, and exits 0 on SIGTERM leaving no socket', async () => {
    const d = await up();
    const status = await client!.agent('GetStatus');
    expect(status).toMatchObject({
      hostName: 'hv1',
      ready: true,
      policyKnown: true,
      stateFile: 'absent',
    });
    const r = await client!.policy('Apply', { text: demoPolicyText() });
    expect(r).toMatchObject({ version: '1', changed: true });
    const state = readFileSync(statePath());
    expect(state.subarray(0, 14).toString()).toBe('TENET-STATE 1 ');
    expect(decodeState(state).version).toBe(1n);
    // No temporary file left next to it.
    expect(readdirSync(join(dir, 'state'))).toEqual([STATE_FILE_NAME]);
    const line = d.logs.find((l) => l.msg === 'policy changed');
    expect(line).toMatchObject({ level: 30, method: 'Apply', version: '1' });
    expect(await down()).toBe(0);
    expect(existsSync(socket())).toBe(false);
    expect(d.logs.some((l) => l.event === 'stopped')).toBe(true);
  });

  it('reloads the persisted policy at start and reconciles it', async () => {
    const d = await up();
    const status = await client!.agent('GetStatus');
    expect(status).toMatchObject({ stateFile: 'loaded', policyVersion: '1', policyKnown: true });
    expect((await client!.policy('GetPort', { name: 'blue-vm1' })).port).toMatchObject({
      vsid: 5001,
    });
    await client!.policy('DeletePort', { name: 'red-vm2' });
    expect(decodeState(readFileSync(statePath())).version).toBe(2n);
    expect(d.logs.some((l) => l.msg === 'state file' && l.state === 'loaded')).toBe(true);
    expect(await down()).toBe(0);
  });

  for (const [what, corrupt] of [
    ['truncated', (b: Buffer) => b.subarray(0, b.length - 10)],
    ['garbage', () => Buffer.from('\u0000\u0001garbage that is not a state file')],
    [
      'a flipped byte',
      (b: Buffer) => Buffer.from(b.toString('latin1').replace('blue-vm1', 'blue-vmX'), 'latin1'),
    ],
    [
      'another format version',
      (b: Buffer) =>
        Buffer.from(b.toString('latin1').replace('TENET-STATE 1 ', 'TENET-STATE 9 '), 'latin1'),
    ],
  ] as const) {
    it(`quarantines a state file with ${what}, reports it, and keeps running`, async () => {
      writeFileSync(statePath(), encodeState(parsePolicy(demoPolicyText()), 5n));
      writeFileSync(statePath(), corrupt(readFileSync(statePath())));
      const d = await up();
      const q = await d.waitLog((l) => l.event === 'state_quarantined');
      expect(q.level).toBe(50);
      const status = await client!.agent('GetStatus');
      expect(String(status.stateFile)).toMatch(/^quarantined: /);
      const names = readdirSync(join(dir, 'state'));
      expect(names.some((n) => n.startsWith(`${STATE_FILE_NAME}.quarantine-`))).toBe(true);
      expect(names).not.toContain(STATE_FILE_NAME);
      // The orchestrator's next Apply sets the policy again and it is persisted.
      await client!.policy('Apply', { text: demoPolicyText() });
      expect(decodeState(readFileSync(statePath())).policy.ports).toHaveLength(5);
      expect(await down()).toBe(0);
      for (const n of names) if (n.includes('quarantine')) rmSync(join(dir, 'state', n));
    });
  }

  it('reports READY=1 to $NOTIFY_SOCKET only after the first reconcile', async () => {
    const notifySocket = join(dir, 'notify.sock');
    const listener = spawn('/usr/bin/python3', [
      '-c',
      `import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); print('bound', flush=True)
while True:
    print(s.recv(4096).decode().replace('\\n', '|'), flush=True)`,
      notifySocket,
    ]);
    try {
      const lines: string[] = [];
      const rl = createInterface({ input: listener.stdout });
      await new Promise<void>((resolve) => rl.once('line', () => resolve()));
      rl.on('line', (l) => lines.push(l));
      const d = startDaemon(config, { NOTIFY_SOCKET: notifySocket });
      daemon = d;
      const ready = await d.waitLog(isReady);
      for (let i = 0; i < 50 && lines.length === 0; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(lines[0]).toMatch(/^READY=1\|STATUS=serving/);
      // The ready log line (written after the first reconcile) precedes the notification.
      expect(d.logs.indexOf(ready)).toBeGreaterThan(
        d.logs.findIndex((l) => l.msg === 'state file'),
      );
      client = new TenetClient(socket());
      expect(await down()).toBe(0);
      for (let i = 0; i < 50 && lines.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      expect(lines[1]).toBe('STOPPING=1');
    } finally {
      listener.kill();
    }
  });
});

describe('tenetd --check-config', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tenetd-cfg-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function check(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await runFile(process.execPath, [...NODE_ARGS, TENETD, ...args], {
        cwd: ROOT,
      });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  }

  it('accepts a good config, and a good policy with it', async () => {
    const config = writeConfig(dir);
    const r = await check(['--config', config, '--check-config', '--policy', DEMO_POLICY_PATH]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/config OK: .*host hv1/);
    expect(r.stdout).toMatch(/policy OK: .*5 ports, 10 lookup records/);
  });

  it('rejects a bad config with the field named, exit 1', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'socket:\n  path: relative.sock\n  allowedUidz: [0]\nmetrics:\n  listen: 0.0.0.0:9464\n',
    );
    const r = await check(['--config', bad, '--check-config']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/hostName: is required/);
    expect(r.stderr).toMatch(/socket\.path: must be an absolute path/);
    expect(r.stderr).toMatch(/socket\.allowedUidz: unknown field/);
    expect(r.stderr).toMatch(/metrics\.listen: 0\.0\.0\.0 is not a loopback address/);
  });

  it('rejects a bad policy, exit 1; a missing config file, exit 1', async () => {
    const config = writeConfig(dir);
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, demoPolicyText().replace('vsid: 5002', 'vsid: 5'));
    const r = await check(['--config', config, '--check-config', '--policy', policy]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/routingDomains\[0\]\.virtualSubnets\[1\]\.vsid: 5 is outside/);
    const missing = await check(['--config', join(dir, 'nope.yaml'), '--check-config']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ENOENT/);
  });
});
