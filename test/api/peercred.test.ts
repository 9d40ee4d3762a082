// The addon's two unix-socket calls: SO_PEERCRED of a real connection, and their errors.

import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BpfError } from '../../agent/bpf/index.js';
import { native } from '../../agent/bpf/native.js';

const fdOf = (s: Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;

describe('peerCredentials', () => {
  it('reports the pid, uid and gid of the connected peer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenet-peercred-'));
    const path = join(dir, 's');
    try {
      const accepted = new Promise<Socket>((resolve) => {
        const server = createServer((s) => {
          resolve(s);
          server.close();
        });
        server.listen(path);
      });
      const client = createConnection(path);
      const s = await accepted;
      const cred = native.peerCredentials(fdOf(s));
      expect({ ...cred, groups: undefined }).toEqual({
        pid: process.pid,
        uid: process.getuid?.(),
        gid: process.getgid?.(),
        groups: undefined,
      });
      // SO_PEERGROUPS: this process's supplementary groups (what /proc/self/status lists).
      const proc = /^Groups:\s*([\d ]*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
      const want = (proc ?? '').trim() === '' ? [] : (proc ?? '').trim().split(/\s+/).map(Number);
      expect([...(cred.groups ?? [])].sort()).toEqual(want.sort());
      // Both ends know each other: the client sees the server (this process too).
      await new Promise((r) => client.once('connect', r).once('ready', r));
      expect(native.peerCredentials(fdOf(client)).pid).toBe(process.pid);
      client.destroy();
      s.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('throws BpfError for an fd that is not a socket, TypeError for a bad argument', () => {
    const fd = openSync('/dev/null', 'r');
    try {
      let err: unknown;
      try {
        native.peerCredentials(fd);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BpfError);
      expect(err).toMatchObject({ code: 'ENOTSOCK', op: 'getsockopt(SO_PEERCRED)' });
    } finally {
      closeSync(fd);
    }
    expect(() => native.peerCredentials(-1)).toThrow(TypeError);
    expect(() => native.peerCredentials('3' as unknown as number)).toThrow(TypeError);
  });
});

describe('sdNotify', () => {
  it('fails with the errno when nobody listens, and checks its arguments', () => {
    expect(() => native.sdNotify('/nonexistent/notify.sock', 'READY=1')).toThrow(
      expect.objectContaining({ code: 'ENOENT', op: 'sendto' }),
    );
    expect(() => native.sdNotify('relative', 'READY=1')).toThrow(TypeError);
    expect(() => native.sdNotify(`/${'x'.repeat(200)}`, 'READY=1')).toThrow(TypeError);
  });
});
