// The control socket: its modes, access control by peer credentials (a caller of another uid
// gets PERMISSION_DENIED and a log line), standard health (NOT_SERVING until the first
// reconcile) and reflection (generic clients can discover tenet.v1).

import { execFile } from 'node:child_process';
import { chmodSync, lstatSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  credentials,
  loadPackageDefinition,
  status,
  type Client,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor.js';
import { afterEach, describe, expect, it } from 'vitest';
import { describePrivileged } from '../helpers/privilege.js';
import { TenetClient } from '../../agent/api/client.js';
import { rejection, ROOT, startTestApi, type TestApi } from './helpers.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

let api: TestApi | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

type Cb<T> = (err: ServiceError | null, res?: T) => void;

function healthClient(socketPath: string): Client & {
  Check(req: { service: string }, cb: Cb<{ status: string }>): void;
} {
  const { protoPath } = require('grpc-health-check') as { protoPath: string };
  const pkg = loadPackageDefinition(loadSync(protoPath, { enums: String })) as unknown as {
    grpc: { health: { v1: { Health: new (addr: string, creds: unknown) => never } } };
  };
  return new pkg.grpc.health.v1.Health(`unix:${socketPath}`, credentials.createInsecure());
}

function check(socketPath: string, service = ''): Promise<string> {
  const c = healthClient(socketPath);
  return new Promise((resolve, reject) =>
    c.Check({ service }, (err, res) => {
      c.close();
      if (err) reject(err);
      else resolve(res?.status ?? '');
    }),
  );
}

describe('control socket', () => {
  it('is 0660 in a 0750 runtime directory, owned by us', async () => {
    api = await startTestApi();
    const sock = lstatSync(api.socketPath);
    expect(sock.isSocket()).toBe(true);
    expect((sock.mode & 0o777).toString(8)).toBe('660');
    const dir = lstatSync(join(api.dir, 'run'));
    expect((dir.mode & 0o777).toString(8)).toBe('750');
    expect(sock.uid).toBe(process.getuid?.());
  });

  it('a restarted server takes the path over atomically; each removes only its own socket', async () => {
    api = await startTestApi();
    const first = api;
    await first.client.policy('CreateProviderAddress', {
      providerAddress: { host: 'hv1', address: '198.18.0.1', interface: 'eth0' },
    });
    const second = await startTestApi({ socketPath: first.socketPath });
    try {
      const fresh = new TenetClient(first.socketPath);
      // New connections reach the new server (version 0), not the old one (version 1).
      expect((await fresh.agent('GetStatus')).policyVersion).toBeUndefined();
      fresh.close();
      await first.server.close();
      expect(lstatSync(first.socketPath).isSocket()).toBe(true);
      await second.server.close();
      expect(() => lstatSync(first.socketPath)).toThrow();
    } finally {
      await second.close();
    }
  });

  it('health is NOT_SERVING until the first reconcile, then SERVING', async () => {
    api = await startTestApi({ deferInit: true });
    expect(await check(api.socketPath)).toBe('NOT_SERVING');
    expect(await check(api.socketPath, 'tenet.v1.PolicyService')).toBe('NOT_SERVING');
    await api.store.initialize();
    api.server.setServing(true);
    expect(await check(api.socketPath)).toBe('SERVING');
    expect(await check(api.socketPath, 'tenet.v1.AgentService')).toBe('SERVING');
    const err = await rejection(check(api.socketPath, 'nope'));
    expect(err.code).toBe(status.NOT_FOUND);
  });

  it('reflection lists the tenet.v1 services and describes them', async () => {
    api = await startTestApi();
    const protoPath = join(
      ROOT,
      'node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto',
    );
    const pkg = loadPackageDefinition(loadSync(protoPath, { longs: String })) as unknown as {
      grpc: {
        reflection: {
          v1: {
            ServerReflection: new (
              addr: string,
              creds: unknown,
            ) => Client & Record<string, () => unknown>;
          };
        };
      };
    };
    const client = new pkg.grpc.reflection.v1.ServerReflection(
      `unix:${api.socketPath}`,
      credentials.createInsecure(),
    );
    const ask = (req: object): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const stream = (
          client as unknown as { ServerReflectionInfo(): NodeJS.ReadWriteStream & { end(): void } }
        ).ServerReflectionInfo();
        stream.on('data', (d: Record<string, unknown>) => {
          resolve(d);
          stream.end();
        });
        stream.on('error', reject);
        stream.write(req as never);
      });
    const list = await ask({ listServices: '' });
    const names = (list.listServicesResponse as { service: { name: string }[] }).service.map(
      (s) => s.name,
    );
    expect(names).toEqual(
      expect.arrayContaining(['tenet.v1.PolicyService', 'tenet.v1.AgentService']),
    );
    const file = await ask({ fileContainingSymbol: 'tenet.v1.PolicyService' });
    const protos = (file.fileDescriptorResponse as { fileDescriptorProto: Buffer[] })
      .fileDescriptorProto;
    const root = protobuf.Root.fromDescriptor(
      descriptor.FileDescriptorSet.encode({
        file: protos.map((b) => descriptor.FileDescriptorProto.decode(b)),
      }).finish(),
    );
    const svc = root.lookupService('tenet.v1.PolicyService');
    expect(Object.keys(svc.methods)).toEqual(
      expect.arrayContaining(['CreatePort', 'Apply', 'BulkLoadLookupRecords', 'Watch']),
    );
    expect(svc.methods.BulkLoadLookupRecords?.requestStream).toBe(true);
    const port = root.lookupType('tenet.v1.Port');
    expect(Object.keys(port.fields)).toEqual(
      expect.arrayContaining(['name', 'host', 'interface', 'mac', 'vsid', 'addresses', 'mtu']),
    );
    client.close();
  });

  it('refuses a caller whose credentials are not allowed, with PERMISSION_DENIED and a log line', async () => {
    // Peer credentials injected: the real SO_PEERCRED path is covered below with another uid.
    let refused = 0;
    api = await startTestApi({
      peerCredentials: () => ({ pid: 4242, uid: 1234, gid: 1234 }),
      onRefused: () => refused++,
    });
    const err = await rejection(api.client.agent('GetStatus'));
    expect(status[err.code]).toBe('PERMISSION_DENIED');
    const err2 = await rejection(api.client.policy('Apply', { text: '{}' }));
    expect(status[err2.code]).toBe('PERMISSION_DENIED');
    expect(api.store.version).toBe(0n);
    const health = await rejection(check(api.socketPath));
    expect(status[health.code]).toBe('PERMISSION_DENIED');
    expect(refused).toBeGreaterThan(0);
    const line = api.logs.find((l) => (l.obj as { event?: string }).event === 'permission_denied');
    expect(line?.obj).toMatchObject({ pid: 4242, uid: 1234, gid: 1234 });
  });

  it('a caller whose credentials cannot be read is refused', async () => {
    api = await startTestApi({
      peerCredentials: () => {
        throw new Error('EBADF');
      },
    });
    const err = await rejection(api.client.agent('GetStatus'));
    expect(status[err.code]).toBe('PERMISSION_DENIED');
  });
});

// A client running as another uid, over the real SO_PEERCRED path. The runtime directory and the
// socket belong to nogroup (65534), so nobody (65534:65534) can reach and connect; whether it may
// call is up to the allowed lists.
const RAW_CLIENT = `
const grpc = require(${JSON.stringify(join(ROOT, 'node_modules/@grpc/grpc-js'))});
const id = (b) => b;
const def = { GetStatus: { path: '/tenet.v1.AgentService/GetStatus', requestStream: false,
  responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id,
  responseDeserialize: id } };
const Ctor = grpc.makeGenericClientConstructor(def, 'AgentService');
const c = new Ctor('unix:' + process.argv[2], grpc.credentials.createInsecure());
c.GetStatus(Buffer.alloc(0), { deadline: Date.now() + 10000 }, (err) => {
  console.log(JSON.stringify({ uid: process.getuid(), code: err ? err.code : 0, details: err ? err.details : '' }));
  c.close();
});
`;

describePrivileged('control socket with real peer credentials', () => {
  async function asNobody(socketPath: string, dir: string): Promise<{ uid: number; code: number }> {
    const script = join(dir, 'client.cjs');
    writeFileSync(script, RAW_CLIENT);
    chmodSync(dir, 0o755);
    chmodSync(script, 0o644);
    const { stdout } = await run(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, script, socketPath],
      { timeout: 20_000 },
    );
    return JSON.parse(stdout.trim()) as { uid: number; code: number };
  }

  it('refuses uid 65534 with PERMISSION_DENIED when neither its uid nor its gid is allowed', async () => {
    api = await startTestApi({ allowedUids: [0], allowedGids: [], socketGid: 65534 });
    const r = await asNobody(api.socketPath, api.dir);
    expect(r).toMatchObject({ uid: 65534, code: status.PERMISSION_DENIED });
    const line = api.logs.find((l) => (l.obj as { event?: string }).event === 'permission_denied');
    expect(line?.obj).toMatchObject({ uid: 65534, gid: 65534 });
    // root (allowed) still gets through on the same socket
    expect(await api.client.agent('GetStatus')).toMatchObject({ ready: true });
  });

  it('admits uid 65534 through its allowed gid', async () => {
    api = await startTestApi({ allowedUids: [0], allowedGids: [65534], socketGid: 65534 });
    const r = await asNobody(api.socketPath, api.dir);
    expect(r).toMatchObject({ uid: 65534, code: status.OK });
    const sock = lstatSync(api.socketPath);
    expect(sock.gid).toBe(65534);
  });
});
