// Supplementary groups count for the control socket's access check: a caller running as another
// user (uid/gid 65534) with supplementary group 4242 is let in when allowedGids names 4242 and
// refused when it does not. The groups come from SO_PEERGROUPS (recorded at connect()); the
// peer is a real process started with setpriv(1), making a real gRPC call.

import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { isAllowed, procGroups } from '../../agent/api/server.js';
import { native } from '../../agent/bpf/native.js';
import { describePrivileged } from '../helpers/privilege.js';
import { ROOT, startTestApi, type TestApi } from './helpers.js';

const execFileP = promisify(execFile);
const fdOf = (s: Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;

describe('isAllowed', () => {
  const access = { allowedUids: [0], allowedGids: [4242] };
  it('takes the uid, the primary gid or any supplementary group', () => {
    expect(isAllowed({ pid: 1, uid: 0, gid: 1 }, access)).toBe(true);
    expect(isAllowed({ pid: 1, uid: 7, gid: 4242 }, access)).toBe(true);
    expect(isAllowed({ pid: 1, uid: 7, gid: 7, groups: [10, 4242] }, access)).toBe(true);
    expect(isAllowed({ pid: 1, uid: 7, gid: 7, groups: [10, 4243] }, access)).toBe(false);
    expect(isAllowed({ pid: 1, uid: 7, gid: 7 }, access)).toBe(false);
  });
  it('reads /proc/<pid>/status Groups as the fallback', () => {
    // Node's getgroups() adds the effective gid; the kernel's list is the supplementary one.
    const egid = process.getegid?.() ?? 0;
    const supplementary = (process.getgroups?.() ?? []).filter((g) => g !== egid);
    expect(
      procGroups(process.pid)
        ?.filter((g) => g !== egid)
        .sort(),
    ).toEqual(supplementary.sort());
    expect(procGroups(0x7ffffffe)).toBeUndefined();
  });
});

describePrivileged('supplementary groups of a real peer', () => {
  const dirs: string[] = [];
  const apis: TestApi[] = [];
  afterAll(async () => {
    for (const a of apis) await a.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A directory and socket anyone may reach (the peer runs as uid 65534). */
  function openDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'tenet-groups-'));
    chmodSync(dir, 0o755);
    dirs.push(dir);
    return dir;
  }

  it('SO_PEERGROUPS reports the groups the peer had at connect()', async () => {
    const dir = openDir();
    const path = join(dir, 's');
    const accepted = new Promise<Socket>((resolve) => {
      const server = createServer((s) => {
        resolve(s);
        server.close();
      });
      server.listen(path, () => chmodSync(path, 0o777));
    });
    await new Promise((r) => setTimeout(r, 50));
    const child = execFileP('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--groups=4242,4343',
      '/usr/bin/python3',
      '-c',
      `import socket,time; s=socket.socket(socket.AF_UNIX); s.connect(${JSON.stringify(path)}); time.sleep(1)`,
    ]);
    const s = await accepted;
    const cred = native.peerCredentials(fdOf(s));
    expect(cred).toMatchObject({ uid: 65534, gid: 65534 });
    expect([...(cred.groups ?? [])].sort()).toEqual([4242, 4343]);
    s.destroy();
    await child;
  });

  async function callAs(socketPath: string): Promise<{ code: number; out: string }> {
    try {
      const r = await execFileP(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--groups=4242',
          process.execPath,
          '--import',
          'tsx',
          'agent/cli/main.ts',
          '--socket',
          socketPath,
          'status',
          '-o',
          'json',
        ],
        { cwd: ROOT, env: { ...process.env, HOME: '/tmp' }, timeout: 30_000 },
      );
      return { code: 0, out: r.stdout };
    } catch (e) {
      const x = e as { code?: number; stderr?: string };
      return { code: x.code ?? -1, out: x.stderr ?? '' };
    }
  }

  it('lets in a caller by a supplementary group, refuses it without', async () => {
    for (const [gids, allowed] of [
      [[4242], true],
      [[4343], false],
    ] as const) {
      const dir = openDir();
      const api = await startTestApi({
        socketPath: join(dir, 'run', 'tenetd.sock'),
        allowedUids: [0],
        allowedGids: [...gids],
      });
      apis.push(api);
      chmodSync(join(dir, 'run'), 0o755);
      chmodSync(api.socketPath, 0o777);
      const r = await callAs(api.socketPath);
      if (allowed) expect(r, r.out).toMatchObject({ code: 0 });
      else {
        expect(r.code).not.toBe(0);
        expect(r.out).toMatch(/permission denied/i);
      }
    }
  }, 60_000);
});
