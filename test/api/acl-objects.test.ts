// Port ACLs as policy objects (tenet.v1.AclService) on a real server with the real store,
// compiler and reconciler (memory tables): create/get/list/update/delete, the proto <-> document
// round trip through Apply (structured and text), INVALID_ARGUMENT with the request's field paths
// for bad input with nothing applied, and tenetctl acl.

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { fieldViolations } from '../../agent/api/client.js';
import type { Plain } from '../../agent/api/proto.js';
import {
  DEMO_POLICY_PATH,
  ROOT,
  rejection,
  snapshot,
  startTestApi,
  tablesSnapshot,
  type TestApi,
} from './helpers.js';
import { readFileSync } from 'node:fs';

const execFileP = promisify(execFile);
const CLI = join(ROOT, 'agent/cli/main.ts');

const WEB_ACL = {
  port: 'blue-vm1',
  rules: [
    {
      name: 'https-in',
      direction: 'inbound',
      action: 'allow',
      weight: 100,
      protocol: 6,
      localPorts: { from: 443, to: 443 },
      remotePorts: { from: 1024, to: 65535 },
      stateful: true,
      idleTimeoutSeconds: 300,
    },
    {
      name: 'deny-rest',
      direction: 'inbound',
      action: 'deny',
      weight: 1,
      remotePrefix: '0.0.0.0/0',
    },
    {
      name: 'meter-dc',
      direction: 'both',
      action: 'meter',
      meteringClass: 'intranet',
      remotePrefix: '198.18.0.0/15',
    },
    {
      name: 'meter-v6',
      direction: 'outbound',
      action: 'meter',
      meteringClass: 'internet',
      remotePrefix: '::/0',
    },
  ],
};

let api: TestApi;
const acl = (method: string, req: Plain = {}) => api.client.call('AclService', method, req);

async function refused(p: Promise<unknown>): Promise<{ code: string; fields: string[] }> {
  const e = await rejection(p);
  return { code: status[e.code] as string, fields: fieldViolations(e).map((v) => v.field) };
}

async function state(): Promise<unknown> {
  return {
    policy: await snapshot(api.client),
    acls: await acl('ListPortAcls'),
    tables: tablesSnapshot(api.tables),
    meters: [...api.tables.rows('meterClasses').keys()].sort(),
  };
}

describe('AclService', () => {
  beforeAll(async () => {
    api = await startTestApi();
    await api.client.policy('Apply', { text: readFileSync(DEMO_POLICY_PATH, 'utf8') });
  });
  afterAll(async () => {
    await api.close();
  });

  it('create, get, list, update, delete; meter rules reach the datapath table', async () => {
    const created = await acl('CreatePortAcl', { portAcl: WEB_ACL });
    expect(created.portAcl).toEqual(WEB_ACL);
    expect(created.version).toBe('2');
    expect(await acl('GetPortAcl', { port: 'blue-vm1' })).toEqual({ portAcl: WEB_ACL });
    // blue-vm1 is on hv1: one class entry per prefix and direction (both = 2, outbound = 1).
    expect(api.tables.rows('meterClasses').size).toBe(3);
    expect((await acl('ListPortAcls', { host: 'hv1' })).portAcls).toEqual([WEB_ACL]);
    expect((await acl('ListPortAcls', { host: 'hv2' })).portAcls).toBeUndefined();

    const smaller = { port: 'blue-vm1', rules: WEB_ACL.rules.slice(0, 2) };
    const updated = await acl('UpdatePortAcl', { portAcl: smaller });
    expect(updated.portAcl).toEqual(smaller);
    expect(api.tables.rows('meterClasses').size).toBe(0);
    const empty = await acl('UpdatePortAcl', { portAcl: { port: 'blue-vm1' } });
    expect(empty.portAcl).toEqual({ port: 'blue-vm1' });
    await acl('DeletePortAcl', { port: 'blue-vm1' });
    expect(await refused(acl('GetPortAcl', { port: 'blue-vm1' }))).toEqual({
      code: 'NOT_FOUND',
      fields: [],
    });
  });

  it('bad input: INVALID_ARGUMENT naming the request field, and nothing applied', async () => {
    await acl('CreatePortAcl', { portAcl: WEB_ACL });
    const before = await state();
    const bad = (rule: Plain, port = 'blue-vm1') =>
      acl('UpdatePortAcl', { portAcl: { port, rules: [{ ...WEB_ACL.rules[1], ...rule }] } });
    expect(await refused(bad({ remotePrefix: '198.18.0.1/15' }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      fields: ['port_acl.rules[0].remote_prefix'],
    });
    expect(await refused(bad({ remotePrefix: 'not-a-prefix' }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      fields: ['port_acl.rules[0].remote_prefix'],
    });
    expect(await refused(bad({ protocol: 6, localPorts: { from: 2000, to: 1000 } }))).toMatchObject(
      { code: 'INVALID_ARGUMENT', fields: ['port_acl.rules[0].local_ports'] },
    );
    expect(await refused(bad({ localPorts: { from: 80, to: 80 } }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      fields: ['port_acl.rules[0].local_ports'],
    });
    expect(await refused(bad({ action: 'meter', weight: undefined }))).toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(
      await refused(acl('CreatePortAcl', { portAcl: { port: 'no-such-port', rules: [] } })),
    ).toEqual({ code: 'INVALID_ARGUMENT', fields: ['port_acl.port'] });
    expect(await refused(acl('CreatePortAcl', { portAcl: WEB_ACL }))).toMatchObject({
      code: 'ALREADY_EXISTS',
    });
    expect(
      await refused(acl('UpdatePortAcl', { portAcl: { port: 'red-vm1', rules: [] } })),
    ).toMatchObject({ code: 'NOT_FOUND' });
    expect(await refused(acl('CreatePortAcl', {}))).toEqual({
      code: 'INVALID_ARGUMENT',
      fields: ['port_acl'],
    });
    expect(await refused(acl('DeletePortAcl', {}))).toEqual({
      code: 'INVALID_ARGUMENT',
      fields: ['port'],
    });
    expect(await state()).toEqual(before);
  });

  it('round trip: a structured Policy with port_acls, and text, give the same objects', async () => {
    const doc = parseYaml(readFileSync(DEMO_POLICY_PATH, 'utf8'));
    doc.portAcls = [WEB_ACL];
    // Structured: the proto form (ranges as {from, to}).
    const applied = await api.client.policy('Apply', { policy: doc });
    expect(applied.changed ?? false).toBe(false); // the ACL is there already, identical
    // Text: the document's shorthands canonicalise to the same objects.
    const text = stringify({
      ...doc,
      portAcls: [
        {
          port: 'blue-vm1',
          rules: [
            { ...WEB_ACL.rules[0], protocol: 'tcp', localPorts: 443, remotePorts: '1024-65535' },
            ...WEB_ACL.rules.slice(1),
          ],
        },
      ],
    });
    const again = await api.client.policy('Apply', { text });
    expect(again.changed ?? false).toBe(false);
    const got = await acl('GetPortAcl', { port: 'blue-vm1' });
    expect(got.portAcl).toEqual(WEB_ACL);
    // A structured document with a bad ACL names the document path; nothing applied.
    const before = await state();
    const broken = {
      ...doc,
      portAcls: [
        { port: 'blue-vm1', rules: [{ ...WEB_ACL.rules[2], remotePrefix: '198.18.0.0/40' }] },
      ],
    };
    expect(await refused(api.client.policy('Apply', { policy: broken }))).toEqual({
      code: 'INVALID_ARGUMENT',
      fields: ['portAcls[0].rules[0].remotePrefix'],
    });
    expect(await state()).toEqual(before);
  });

  it('Simulate names the metering class a frame counts in', async () => {
    const sim = (dstIp: string) =>
      api.client.agent('Simulate', { port: 'blue-vm1', description: { dstIp } });
    expect((await sim('198.19.1.12')).meters).toEqual([
      {
        port: 'blue-vm1',
        direction: 'outbound',
        meterClass: 'intranet',
        packets: '1',
        bytes: expect.any(String),
      },
    ]);
    const v6 = await sim('fd00:1:1::12');
    expect(v6.meters).toEqual([
      {
        port: 'blue-vm1',
        direction: 'outbound',
        meterClass: 'internet',
        packets: '1',
        bytes: expect.any(String),
      },
    ]);
    // red-vm1 has no ACL: its traffic counts in the default class.
    const red = await api.client.agent('Simulate', {
      port: 'red-vm1',
      description: { dstIp: '198.19.1.12' },
    });
    expect((red.meters as Plain[])[0]).toMatchObject({ port: 'red-vm1', meterClass: 'default' });
  });

  it('MeteringService answers UNIMPLEMENTED on an agent without a meter ledger', async () => {
    expect(
      await refused(api.client.call('MeteringService', 'Measure', { port: 'blue-vm1' })),
    ).toEqual({ code: 'UNIMPLEMENTED', fields: [] });
  });

  it('tenetctl acl apply|get|list|delete', async () => {
    const run = async (...args: string[]) => {
      try {
        const r = await execFileP(
          process.execPath,
          ['--import', 'tsx', CLI, '--socket', api.socketPath, ...args],
          { cwd: ROOT, timeout: 60_000 },
        );
        return { code: 0, ...r };
      } catch (e) {
        const err = e as { code: number; stdout: string; stderr: string };
        return { code: err.code, stdout: err.stdout, stderr: err.stderr };
      }
    };
    const file = join(api.dir, 'red.yaml');
    writeFileSync(
      file,
      stringify({
        port: 'red-vm1',
        rules: [
          { name: 'ssh', direction: 'inbound', action: 'allow', protocol: 'tcp', localPorts: 22 },
          {
            name: 'm',
            direction: 'both',
            action: 'meter',
            meteringClass: 'internet',
            remotePrefix: '0.0.0.0/0',
          },
        ],
      }),
    );
    const created = await run('acl', 'apply', '-f', file);
    expect(created.stdout).toMatch(/created; policy version/);
    expect(created.code).toBe(0);
    expect((await run('acl', 'apply', '-f', file)).stdout).toMatch(/replaced; policy version/);
    const json = await run('acl', 'get', 'red-vm1', '-o', 'json');
    expect(JSON.parse(json.stdout).portAcl.rules[0]).toEqual({
      name: 'ssh',
      direction: 'inbound',
      action: 'allow',
      protocol: 6,
      localPorts: { from: 22, to: 22 },
    });
    const list = await run('acl', 'list');
    expect(list.stdout).toMatch(/red-vm1\s+ssh\s+inbound\s+allow/);
    expect(list.stdout).toMatch(/red-vm1\s+m\s+both\s+meter.*internet/);
    writeFileSync(
      file,
      stringify({ port: 'red-vm1', rules: [{ name: 'x', direction: 'up', action: 'allow' }] }),
    );
    const bad = await run('acl', 'apply', '-f', file);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/INVALID_ARGUMENT.*port_acl\.rules\[0\]\.direction/s);
    expect((await run('acl', 'delete', 'red-vm1')).code).toBe(0);
    expect((await run('acl', 'get', 'red-vm1')).code).toBe(1);
  }, 180_000);
});
