// tenetctl as a process against a real server: tables, `-o json` (the proto3 JSON of the
// response) and `-o yaml`, apply (text and streamed with a progress bar), exit codes 0/1/2.

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEMO_POLICY_PATH, ROOT, startTestApi, type TestApi } from './helpers.js';

const execFileP = promisify(execFile);
const CLI = join(ROOT, 'agent/cli/main.ts');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let api: TestApi;

async function tenetctl(...args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await execFileP(
      process.execPath,
      ['--import', 'tsx', CLI, '--socket', api.socketPath, ...args],
      { cwd: ROOT, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
    );
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('tenetctl', () => {
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api.close();
  });

  it('apply --dry-run, apply, then tables', async () => {
    const dry = await tenetctl('apply', '-f', DEMO_POLICY_PATH, '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/^dry run: would change/);
    expect(api.store.version).toBe(0n);
    const r = await tenetctl('apply', '-f', DEMO_POLICY_PATH);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^applied: policy version 1/);
    expect(r.stdout).toMatch(/ports\s+5\s+0\s+0/);
    const list = await tenetctl('port', 'list', '--host', 'hv1');
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(
      /^NAME\s+HOST\s+INTERFACE\s+VSID\s+MAC\s+ADDRESSES\s+MTU$/,
    );
    expect(list.stdout).toMatch(/blue-vm1\s+hv1\s+vm-blue1\s+5001\s+02:00:00:b1:00:11/);
    expect(list.stdout).not.toMatch(/blue-vm2/);
  });

  it('-o json is the proto3 JSON of the response; -o yaml the same as YAML', async () => {
    const json = await tenetctl('port', 'get', 'blue-vm1', '-o', 'json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      port: {
        name: 'blue-vm1',
        host: 'hv1',
        interface: 'vm-blue1',
        mac: '02:00:00:b1:00:11',
        vsid: 5001,
        addresses: ['198.19.1.11', 'fd00:1:1::11'],
      },
    });
    const status = await tenetctl('-o', 'json', 'status');
    expect(JSON.parse(status.stdout)).toMatchObject({
      hostName: 'hv1',
      policyVersion: '1',
      ready: true,
    });
    const yaml = await tenetctl('record', 'list', '--vsid', '5002', '-o', 'yaml');
    expect(parse(yaml.stdout)).toEqual({
      lookupRecords: [
        { vsid: 5002, ca: '198.19.2.21', mac: '02:00:00:b2:00:21', pa: '198.18.0.2' },
        { vsid: 5002, ca: 'fd00:1:2::21', mac: '02:00:00:b2:00:21', pa: '198.18.0.2' },
      ],
      totalSize: 2,
      version: '1',
    });
  });

  it('create and delete from flags; exit 1 with the status when the server refuses', async () => {
    const bad = await tenetctl(
      'record',
      'create',
      '--vsid',
      '5001',
      '--ca',
      '198.19.1.50',
      '--mac',
      '02:00:00:b1:00:50',
      '--pa',
      '198.18.0.9',
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /^INVALID_ARGUMENT: policy rejected: lookup_record\.pa: 198\.18\.0\.9 is not a provider address/,
    );
    const ok = await tenetctl(
      'record',
      'create',
      '--vsid',
      '5001',
      '--ca',
      '198.19.1.50',
      '--mac',
      '02:00:00:b1:00:50',
      '--pa',
      '198.18.0.2',
    );
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/198\.19\.1\.50\s+02:00:00:b1:00:50\s+198\.18\.0\.2/);
    const missing = await tenetctl('port', 'get', 'nope');
    expect(missing).toMatchObject({ code: 1 });
    expect(missing.stderr).toMatch(/^NOT_FOUND: port "nope" does not exist/);
    const busy = await tenetctl('vsubnet', 'delete', '5002');
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/^FAILED_PRECONDITION/);
    const del = await tenetctl('record', 'delete', '5001', '198.19.1.50');
    expect(del).toMatchObject({ code: 0 });
  });

  it('exit 2 for usage errors and an unreachable socket', async () => {
    expect((await tenetctl('nope')).code).toBe(2);
    expect((await tenetctl('port', 'get')).code).toBe(2);
    expect((await tenetctl('port', 'list', '-o', 'xml')).code).toBe(2);
    expect((await tenetctl('record', 'get', 'abc', '1.2.3.4')).code).toBe(2);
    const gone = await tenetctl('--socket', join(api.dir, 'nope.sock'), 'status');
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/cannot reach tenetd/);
    expect((await tenetctl('--help')).code).toBe(0);
  });

  it('apply streams a large document with a progress bar on stderr, atomically', async () => {
    const lines = [
      'providerAddresses:',
      '  - { host: hv1, address: 198.18.0.1, interface: eth0 }',
      'routingDomains:',
      '  - name: big',
      '    virtualSubnets:',
      "      - { name: big-web, vsid: 7001, prefixes: ['fd00:7::/64'] }",
      'lookupRecords:',
    ];
    for (let i = 0; i < 25_000; i++) {
      const mac = [0x02, 0, (i >> 16) & 255, (i >> 8) & 255, i & 255, 1]
        .map((b) => b.toString(16).padStart(2, '0'))
        .join(':');
      lines.push(
        `  - { vsid: 7001, ca: 'fd00:7::${(i + 16).toString(16)}', mac: '${mac}', pa: 198.18.0.1 }`,
      );
    }
    const file = join(api.dir, 'big.yaml');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const bad = join(api.dir, 'big-bad.yaml');
    writeFileSync(
      bad,
      `${lines.join('\n')}\n  - { vsid: 7001, ca: 'fd00:8::1', mac: '02:00:00:00:00:02', pa: 198.18.0.1 }\n`,
    );
    const refused = await tenetctl('apply', '-f', bad);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/lookupRecords\[25000\]\.ca: fd00:8::1 is outside/);
    expect(api.store.policy?.lookupRecords).toHaveLength(10);
    const r = await tenetctl('apply', '-f', file);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[=+\] 100% 25000\/25000 lookup records/);
    expect(r.stdout).toMatch(/lookupRecords\s+25000\s+0\s+10/);
    expect(api.store.policy?.lookupRecords).toHaveLength(25_000);
  });
});
