// Every RPC of tenet.v1.PolicyService and AgentService over a real unix socket, and every status
// code path; a rejected request leaves the policy, its version and the datapath tables as they
// were.

import { status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fieldViolations } from '../../agent/api/client.js';
import {
  demoPolicyText,
  rejection,
  snapshot,
  startTestApi,
  tablesSnapshot,
  type TestApi,
} from './helpers.js';

let api: TestApi;

async function applyDemo(): Promise<void> {
  await api.client.policy('Apply', { text: demoPolicyText() });
}

/** Runs a call that must fail with `code`; checks that nothing changed. */
async function refused(
  call: () => Promise<unknown>,
  code: status,
  detail?: RegExp,
): Promise<string> {
  const before = await snapshot(api.client);
  const tables = tablesSnapshot(api.tables);
  const err = await rejection(call());
  expect(status[err.code], err.details).toBe(status[code]);
  if (detail) expect(err.details).toMatch(detail);
  expect(await snapshot(api.client)).toEqual(before);
  expect(tablesSnapshot(api.tables)).toEqual(tables);
  return err.details;
}

const newPort = {
  name: 'blue-vm3',
  host: 'hv1',
  interface: 'vm-blue1x',
  mac: '02:00:00:b1:00:13',
  vsid: 5001,
  addresses: ['198.19.1.13'],
};
const newRecord = { vsid: 5001, ca: '198.19.1.13', mac: '02:00:00:b1:00:13', pa: '198.18.0.1' };

describe('PolicyService CRUD', () => {
  beforeEach(async () => {
    api = await startTestApi({
      facts: {
        eth0: { ifindex: 2, mac: '02:00:00:00:0e:01', mtu: 1500 },
        'vm-blue1': { ifindex: 10, mac: 'fe:00:00:00:00:0a', mtu: 1500 },
        'vm-red1': { ifindex: 11, mac: 'fe:00:00:00:00:0b', mtu: 1500 },
        'vm-blue1x': { ifindex: 12, mac: 'fe:00:00:00:00:0c', mtu: 1500 },
      },
    });
    await applyDemo();
  });
  afterEach(async () => {
    await api.close();
  });

  it('provider addresses: create, get, list, update, delete', async () => {
    const c = api.client;
    const pa = { host: 'hv3', address: '198.18.0.3', interface: 'eth0', prefixLength: 24 };
    const created = await c.policy('CreateProviderAddress', { providerAddress: pa });
    expect(created).toEqual({ providerAddress: pa, version: '2' });
    expect(await c.policy('GetProviderAddress', { address: '198.18.0.3' })).toEqual({
      providerAddress: pa,
    });
    const list = await c.policy('ListProviderAddresses', { host: 'hv3' });
    expect(list.providerAddresses).toEqual([pa]);
    expect((await c.policy('ListProviderAddresses')).providerAddresses).toHaveLength(3);
    const updated = await c.policy('UpdateProviderAddress', {
      providerAddress: { ...pa, underlayNextHop: '198.18.0.254' },
    });
    expect(updated.providerAddress).toMatchObject({ underlayNextHop: '198.18.0.254' });
    expect(updated.version).toBe('3');
    expect(await c.policy('DeleteProviderAddress', { address: '198.18.0.3' })).toEqual({
      version: '4',
    });
    await refused(
      () => c.policy('GetProviderAddress', { address: '198.18.0.3' }),
      status.NOT_FOUND,
    );
  });

  it('provider addresses: each refusal has its status and changes nothing', async () => {
    const c = api.client;
    const pa = { host: 'hv1', address: '198.18.0.1', interface: 'eth0' };
    await refused(
      () => c.policy('CreateProviderAddress', { providerAddress: pa }),
      status.ALREADY_EXISTS,
    );
    await refused(
      () =>
        c.policy('UpdateProviderAddress', { providerAddress: { ...pa, address: '198.18.0.9' } }),
      status.NOT_FOUND,
    );
    await refused(
      () => c.policy('DeleteProviderAddress', { address: '198.18.0.1' }),
      status.FAILED_PRECONDITION,
      /still used by 4 lookup records/,
    );
    await refused(
      () => c.policy('DeleteProviderAddress', { address: '198.18.0.77' }),
      status.NOT_FOUND,
    );
    await refused(
      () => c.policy('GetProviderAddress', { address: 'not-an-ip' }),
      status.INVALID_ARGUMENT,
      /^address: /,
    );
    const details = await refused(
      () =>
        c.policy('CreateProviderAddress', {
          providerAddress: { host: 'hv9', address: '198.18.0.300', interface: 'eth0' },
        }),
      status.INVALID_ARGUMENT,
    );
    expect(details).toMatch(/provider_address\.address: "198\.18\.0\.300" is not an IPv4/);
    await refused(
      () => c.policy('CreateProviderAddress', {}),
      status.INVALID_ARGUMENT,
      /provider_address: is required/,
    );
  });

  it('routing domains: create, get, list, update, delete', async () => {
    const c = api.client;
    const rd = {
      name: 'green',
      virtualSubnets: [{ name: 'green-web', vsid: 7001, prefixes: ['198.19.1.0/24'], gateway: {} }],
    };
    const created = await c.policy('CreateRoutingDomain', { routingDomain: rd });
    expect(created.routingDomain).toMatchObject({ name: 'green' });
    expect((await c.policy('GetRoutingDomain', { name: 'green' })).routingDomain).toMatchObject(rd);
    expect((await c.policy('ListRoutingDomains')).routingDomains).toHaveLength(3);
    const sub2 = { name: 'green-db', vsid: 7002, prefixes: ['198.19.2.0/24'] };
    const updated = await c.policy('UpdateRoutingDomain', {
      routingDomain: { name: 'green', virtualSubnets: [...rd.virtualSubnets, sub2] },
    });
    expect((updated.routingDomain as { virtualSubnets: unknown[] }).virtualSubnets).toHaveLength(2);
    await c.policy('DeleteRoutingDomain', { name: 'green' });
    await refused(() => c.policy('GetRoutingDomain', { name: 'green' }), status.NOT_FOUND);
  });

  it('routing domains: refusals', async () => {
    const c = api.client;
    await refused(
      () =>
        c.policy('CreateRoutingDomain', {
          routingDomain: {
            name: 'blue',
            virtualSubnets: [{ name: 'x', vsid: 7001, prefixes: ['198.19.9.0/24'] }],
          },
        }),
      status.ALREADY_EXISTS,
    );
    await refused(
      () =>
        c.policy('CreateRoutingDomain', {
          routingDomain: {
            name: 'green',
            virtualSubnets: [{ name: 'x', vsid: 5001, prefixes: ['198.19.9.0/24'] }],
          },
        }),
      status.ALREADY_EXISTS,
      /VSID 5001/,
    );
    await refused(
      () => c.policy('CreateRoutingDomain', { routingDomain: { name: 'green' } }),
      status.INVALID_ARGUMENT,
      /routing_domain\.virtual_subnets: is required/,
    );
    await refused(
      () => c.policy('DeleteRoutingDomain', { name: 'blue' }),
      status.FAILED_PRECONDITION,
      /still used by/,
    );
    await refused(() => c.policy('DeleteRoutingDomain', { name: 'nope' }), status.NOT_FOUND);
    await refused(
      () =>
        c.policy('UpdateRoutingDomain', {
          routingDomain: {
            name: 'nope',
            virtualSubnets: [{ name: 'x', vsid: 7001, prefixes: ['198.19.9.0/24'] }],
          },
        }),
      status.NOT_FOUND,
    );
    await refused(
      () =>
        c.policy('UpdateRoutingDomain', {
          routingDomain: {
            name: 'red',
            virtualSubnets: [{ name: 'x', vsid: 7001, prefixes: ['198.19.9.0/24'] }],
          },
        }),
      status.FAILED_PRECONDITION,
      /red-web.*still used by 2 ports, 4 lookup records/,
    );
    await refused(
      () => c.policy('GetRoutingDomain', {}),
      status.INVALID_ARGUMENT,
      /^name: is required/,
    );
  });

  it('virtual subnets: create, get, list, update, delete', async () => {
    const c = api.client;
    const vs = {
      name: 'blue-app',
      vsid: 5003,
      prefixes: ['198.19.3.0/24'],
      gateway: { ipv4: '198.19.3.1' },
    };
    const created = await c.policy('CreateVirtualSubnet', {
      routingDomain: 'blue',
      virtualSubnet: vs,
    });
    expect(created.virtualSubnet).toEqual({ routingDomain: 'blue', virtualSubnet: vs });
    expect(await c.policy('GetVirtualSubnet', { vsid: 5003 })).toEqual({
      virtualSubnet: { routingDomain: 'blue', virtualSubnet: vs },
    });
    const list = await c.policy('ListVirtualSubnets', { routingDomain: 'blue' });
    expect((list.virtualSubnets as unknown[]).length).toBe(3);
    expect(((await c.policy('ListVirtualSubnets')).virtualSubnets as unknown[]).length).toBe(4);
    const updated = await c.policy('UpdateVirtualSubnet', {
      virtualSubnet: { ...vs, prefixes: ['198.19.3.0/24', 'fd00:1:3::/64'] },
    });
    expect(updated.virtualSubnet).toMatchObject({ routingDomain: 'blue' });
    await c.policy('DeleteVirtualSubnet', { vsid: 5003 });
    await refused(() => c.policy('GetVirtualSubnet', { vsid: 5003 }), status.NOT_FOUND);
  });

  it('virtual subnets: a subnet still referenced cannot be deleted, and other refusals', async () => {
    const c = api.client;
    await refused(
      () => c.policy('DeleteVirtualSubnet', { vsid: 5002 }),
      status.FAILED_PRECONDITION,
      /blue-db.*still used by 1 port, 2 lookup records/,
    );
    await refused(
      () => c.policy('DeleteVirtualSubnet', { vsid: 6001 }),
      status.FAILED_PRECONDITION,
    );
    await refused(
      () =>
        c.policy('CreateVirtualSubnet', {
          routingDomain: 'nope',
          virtualSubnet: { name: 'x', vsid: 7001, prefixes: ['198.19.9.0/24'] },
        }),
      status.NOT_FOUND,
      /routing domain "nope"/,
    );
    await refused(
      () =>
        c.policy('CreateVirtualSubnet', {
          routingDomain: 'red',
          virtualSubnet: { name: 'x', vsid: 5001, prefixes: ['198.19.9.0/24'] },
        }),
      status.ALREADY_EXISTS,
    );
    const d = await refused(
      () =>
        c.policy('CreateVirtualSubnet', {
          routingDomain: 'blue',
          virtualSubnet: { name: 'x', vsid: 5009, prefixes: ['198.19.1.0/25'] },
        }),
      status.INVALID_ARGUMENT,
    );
    expect(d).toMatch(
      /virtual_subnet\.prefixes\[0\]: 198\.19\.1\.0\/25 overlaps 198\.19\.1\.0\/24/,
    );
    await refused(
      () =>
        c.policy('UpdateVirtualSubnet', {
          virtualSubnet: { name: 'x', vsid: 7777, prefixes: ['198.19.9.0/24'] },
        }),
      status.NOT_FOUND,
    );
    await refused(
      () => c.policy('GetVirtualSubnet', {}),
      status.INVALID_ARGUMENT,
      /^vsid: is required/,
    );
    // A single-subnet domain keeps its subnet: delete the domain instead.
    await c.policy('CreateRoutingDomain', {
      routingDomain: {
        name: 'solo',
        virtualSubnets: [{ name: 's', vsid: 8001, prefixes: ['198.19.9.0/24'] }],
      },
    });
    await refused(
      () => c.policy('DeleteVirtualSubnet', { vsid: 8001 }),
      status.FAILED_PRECONDITION,
      /last one of routing domain "solo"/,
    );
  });

  it('ports and lookup records: create, get, list, update, delete', async () => {
    const c = api.client;
    const rec = await c.policy('CreateLookupRecord', { lookupRecord: newRecord });
    expect(rec).toEqual({ lookupRecord: newRecord, version: '2' });
    const port = await c.policy('CreatePort', { port: newPort });
    expect(port).toEqual({ port: newPort, version: '3' });
    expect(api.tables.rows('ports').size).toBe(3);
    expect(await c.policy('GetPort', { name: 'blue-vm3' })).toEqual({ port: newPort });
    expect(((await c.policy('ListPorts', { host: 'hv1' })).ports as unknown[]).length).toBe(3);
    expect(((await c.policy('ListPorts', { vsid: 6001 })).ports as unknown[]).length).toBe(2);
    const upd = await c.policy('UpdatePort', { port: { ...newPort, mtu: 1400 } });
    expect(upd.port).toMatchObject({ mtu: 1400 });
    expect(await c.policy('GetLookupRecord', { vsid: 5001, ca: '198.19.1.13' })).toEqual({
      lookupRecord: newRecord,
    });
    await c.policy('DeletePort', { name: 'blue-vm3' });
    expect(api.tables.rows('ports').size).toBe(2);
    // The canonical form finds the record whatever form the key is given in.
    const v6 = { vsid: 5001, ca: 'FD00:1:1:0::99', mac: '02:00:00:b1:00:99', pa: '198.18.0.2' };
    const created = await c.policy('CreateLookupRecord', { lookupRecord: v6 });
    expect((created.lookupRecord as { ca: string }).ca).toBe('fd00:1:1::99');
    const moved = await c.policy('UpdateLookupRecord', {
      lookupRecord: { ...v6, pa: '198.18.0.1' },
    });
    expect(moved.lookupRecord).toMatchObject({ ca: 'fd00:1:1::99', pa: '198.18.0.1' });
    expect(await c.policy('GetLookupRecord', { vsid: 5001, ca: 'fd00:1:1::0099' })).toMatchObject({
      lookupRecord: { pa: '198.18.0.1' },
    });
    await c.policy('DeleteLookupRecord', { vsid: 5001, ca: 'fd00:1:1::99' });
    await c.policy('DeleteLookupRecord', { vsid: 5001, ca: '198.19.1.13' });
    await refused(
      () => c.policy('GetLookupRecord', { vsid: 5001, ca: '198.19.1.13' }),
      status.NOT_FOUND,
    );
  });

  it('ports and lookup records: refusals name the request fields', async () => {
    const c = api.client;
    await refused(
      () => c.policy('CreatePort', { port: { ...newPort, name: 'blue-vm1' } }),
      status.ALREADY_EXISTS,
    );
    // The port's CA has no lookup record: the whole resulting document is checked.
    const d = await refused(
      () => c.policy('CreatePort', { port: newPort }),
      status.INVALID_ARGUMENT,
    );
    expect(d).toMatch(/port\.addresses\[0\]: 198\.19\.1\.13 has no lookup record in VSID 5001/);
    const err = await rejection(
      c.policy('CreatePort', { port: { ...newPort, mac: 'zz', vsid: 3, addresses: ['x'] } }),
    );
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    const fields = fieldViolations(err).map((v) => v.field);
    expect(fields).toEqual(expect.arrayContaining(['port.mac', 'port.vsid', 'port.addresses[0]']));
    await refused(
      () => c.policy('CreatePort', { port: { name: 'p' } }),
      status.INVALID_ARGUMENT,
      /port\.host: is required/,
    );
    await refused(
      () => c.policy('UpdatePort', { port: { ...newPort, name: 'nope' } }),
      status.NOT_FOUND,
    );
    await refused(() => c.policy('DeletePort', { name: 'nope' }), status.NOT_FOUND);
    await refused(() => c.policy('GetPort', { name: 'nope' }), status.NOT_FOUND);
    await refused(
      () => c.policy('CreateLookupRecord', { lookupRecord: { ...newRecord, ca: '198.19.1.11' } }),
      status.ALREADY_EXISTS,
    );
    await refused(
      () => c.policy('CreateLookupRecord', { lookupRecord: { ...newRecord, pa: '198.18.0.99' } }),
      status.INVALID_ARGUMENT,
      /lookup_record\.pa: 198\.18\.0\.99 is not a provider address/,
    );
    await refused(
      () => c.policy('DeleteLookupRecord', { vsid: 5001, ca: '198.19.1.11' }),
      status.FAILED_PRECONDITION,
      /address of port "blue-vm1"/,
    );
    await refused(
      () => c.policy('DeleteLookupRecord', { vsid: 5002, ca: '198.19.2.21' }),
      status.FAILED_PRECONDITION,
      /address of port "blue-db1"/,
    );
    await refused(
      () => c.policy('UpdateLookupRecord', { lookupRecord: { ...newRecord, ca: '198.19.1.99' } }),
      status.NOT_FOUND,
    );
    await refused(
      () => c.policy('GetLookupRecord', { vsid: 5001, ca: '1.2.3' }),
      status.INVALID_ARGUMENT,
      /^ca: /,
    );
  });

  it('a port whose interface is missing on this host is FAILED_PRECONDITION', async () => {
    const c = api.client;
    await c.policy('CreateLookupRecord', { lookupRecord: newRecord });
    await refused(
      () => c.policy('CreatePort', { port: { ...newPort, interface: 'vm-ghost' } }),
      status.FAILED_PRECONDITION,
      /interface "vm-ghost" of port "blue-vm3" does not exist on host hv1/,
    );
  });

  it('lookup records list in pages', async () => {
    const c = api.client;
    const seen: unknown[] = [];
    let token = '';
    for (let i = 0; i < 10; i++) {
      const page = await c.policy('ListLookupRecords', { pageSize: 3, pageToken: token });
      expect(page.totalSize).toBe(10);
      seen.push(...(page.lookupRecords as unknown[]));
      token = (page.nextPageToken as string | undefined) ?? '';
      if (token === '') break;
    }
    expect(seen).toHaveLength(10);
    expect(new Set(seen.map((r) => JSON.stringify(r))).size).toBe(10);
    const only = await c.policy('ListLookupRecords', { vsid: 5002 });
    expect(only.lookupRecords).toHaveLength(2);
    const byPa = await c.policy('ListLookupRecords', { pa: '198.18.0.1' });
    expect(byPa.lookupRecords).toHaveLength(4);
    await refused(
      () => c.policy('ListLookupRecords', { pageSize: 100000 }),
      status.INVALID_ARGUMENT,
      /page_size/,
    );
    await refused(
      () => c.policy('ListLookupRecords', { pageToken: '!!' }),
      status.INVALID_ARGUMENT,
      /page_token/,
    );
  });

  it('customer routes: create, get, list, update, delete and refusals', async () => {
    const c = api.client;
    const route = { routingDomain: 'blue', prefix: '198.19.200.0/24', virtualSubnet: 5002 };
    expect((await c.policy('CreateCustomerRoute', { customerRoute: route })).customerRoute).toEqual(
      route,
    );
    expect(
      await c.policy('GetCustomerRoute', { routingDomain: 'blue', prefix: '198.19.200.0/24' }),
    ).toEqual({ customerRoute: route });
    expect(
      (await c.policy('ListCustomerRoutes', { routingDomain: 'blue' })).customerRoutes,
    ).toHaveLength(3);
    expect(
      (await c.policy('ListCustomerRoutes', { routingDomain: 'red' })).customerRoutes,
    ).toBeUndefined();
    const upd = await c.policy('UpdateCustomerRoute', {
      customerRoute: { routingDomain: 'blue', prefix: '198.19.200.0/24', nextHop: '198.19.2.21' },
    });
    expect(upd.customerRoute).toEqual({
      routingDomain: 'blue',
      prefix: '198.19.200.0/24',
      nextHop: '198.19.2.21',
    });
    await refused(
      () => c.policy('CreateCustomerRoute', { customerRoute: route }),
      status.ALREADY_EXISTS,
    );
    await refused(
      () => c.policy('CreateCustomerRoute', { customerRoute: { ...route, routingDomain: 'nope' } }),
      status.NOT_FOUND,
    );
    await refused(
      () =>
        c.policy('CreateCustomerRoute', {
          customerRoute: {
            routingDomain: 'blue',
            prefix: '198.19.201.0/24',
            virtualSubnet: 5002,
            nextHop: '198.19.2.21',
          },
        }),
      status.INVALID_ARGUMENT,
      /customer_route: give exactly one of virtualSubnet and nextHop/,
    );
    await refused(
      () => c.policy('DeleteLookupRecord', { vsid: 5002, ca: 'fd00:1:2::21' }),
      status.FAILED_PRECONDITION,
    );
    await c.policy('DeleteCustomerRoute', { routingDomain: 'blue', prefix: '198.19.200.0/24' });
    await refused(
      () => c.policy('DeleteCustomerRoute', { routingDomain: 'blue', prefix: '198.19.200.0/24' }),
      status.NOT_FOUND,
    );
    await refused(
      () =>
        c.policy('UpdateCustomerRoute', { customerRoute: { ...route, prefix: '198.19.202.0/24' } }),
      status.NOT_FOUND,
    );
    await refused(
      () => c.policy('GetCustomerRoute', { routingDomain: 'blue', prefix: '198.19.200.1/24' }),
      status.INVALID_ARGUMENT,
      /host bits set/,
    );
  });
});

describe('Apply, BulkLoad, Watch, status and counters', () => {
  beforeAll(async () => {
    api = await startTestApi({ memory: { capacity: { records: 40 } } });
  });
  afterAll(async () => {
    await api.close();
  });

  it('Apply: dry run says what would change and changes nothing', async () => {
    const c = api.client;
    const tables = tablesSnapshot(api.tables);
    const dry = await c.policy('Apply', { text: demoPolicyText(), dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, changed: true });
    expect(dry.version).toBeUndefined(); // version 0: the proto3 default is not sent
    expect((dry.diff as Record<string, { addedCount: number }>).ports?.addedCount).toBe(5);
    const dp = dry.datapath as { table: string; added?: number }[];
    expect(dp.find((t) => t.table === 'tenet_ports')?.added).toBe(2);
    expect(tablesSnapshot(api.tables)).toEqual(tables);
    expect((await c.agent('GetStatus')).policyVersion).toBeUndefined();
  });

  it('Apply: text and structured documents, diff per kind, no-op, expected_version', async () => {
    const c = api.client;
    const first = await c.policy('Apply', { text: demoPolicyText() });
    expect(first).toMatchObject({ version: '1', changed: true });
    expect(api.tables.rows('ports').size).toBe(2);
    const again = await c.policy('Apply', { text: demoPolicyText() });
    expect(again).toMatchObject({ version: '1' });
    expect(again.changed).toBeUndefined(); // proto3: false is the default, not sent
    const { routingDomains } = await c.policy('ListRoutingDomains');
    const structured = {
      providerAddresses: (await c.policy('ListProviderAddresses')).providerAddresses,
      routingDomains,
      ports: ((await c.policy('ListPorts')).ports as { name: string }[]).filter(
        (p) => p.name !== 'red-vm2',
      ),
      lookupRecords: (await c.policy('ListLookupRecords')).lookupRecords,
      customerRoutes: (await c.policy('ListCustomerRoutes')).customerRoutes,
    };
    const r = await c.policy('Apply', { policy: structured, expectedVersion: '1' });
    expect(r).toMatchObject({
      version: '2',
      changed: true,
      diff: { ports: { removedCount: 1, removed: ['red-vm2'] } },
    });
    await refused(
      () => c.policy('Apply', { policy: structured, expectedVersion: '1' }),
      status.ABORTED,
    );
    await refused(() => c.policy('Apply', {}), status.INVALID_ARGUMENT, /document/);
    await refused(
      () => c.policy('Apply', { text: 'routingDomains: [ {' }),
      status.INVALID_ARGUMENT,
      /YAML/,
    );
    const err = await rejection(
      c.policy('Apply', { text: demoPolicyText().replace('vsid: 5002', 'vsid: 12') }),
    );
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(fieldViolations(err).map((v) => v.field)).toContain(
      'routingDomains[0].virtualSubnets[1].vsid',
    );
    await c.policy('Apply', { text: demoPolicyText() });
  });

  it('RESOURCE_EXHAUSTED when a datapath map is full; nothing applied', async () => {
    const c = api.client;
    const records = Array.from({ length: 30 }, (_, i) => ({
      vsid: 5001,
      ca: `198.19.1.${100 + i}`,
      mac: `02:00:00:b1:01:${(i + 16).toString(16)}`,
      pa: '198.18.0.2',
    }));
    await refused(
      () => c.bulkLoad([{ mode: 'BULK_LOAD_MODE_MERGE', lookupRecords: records }]),
      status.RESOURCE_EXHAUSTED,
      /map full/,
    );
  });

  it('BulkLoadLookupRecords: chunks merged atomically; replace; dry run; a bad record rejects all', async () => {
    const c = api.client;
    const rec = (i: number) => ({
      vsid: 6001,
      ca: `fd00:1:1::${(0x100 + i).toString(16)}`,
      mac: `02:00:00:4e:01:${(i + 16).toString(16)}`,
      pa: '198.18.0.2',
    });
    const before = (await c.agent('GetStatus')).policyVersion;
    const dry = await c.bulkLoad([
      { mode: 'BULK_LOAD_MODE_MERGE', dryRun: true, lookupRecords: [rec(0), rec(1)] },
      { lookupRecords: [rec(2)] },
    ]);
    expect(dry).toMatchObject({ received: 3, version: before });
    const sent: number[] = [];
    const merged = await c.bulkLoad(
      [
        { mode: 'BULK_LOAD_MODE_MERGE', lookupRecords: [rec(0), rec(1)] },
        { lookupRecords: [rec(2)] },
      ],
      (i) => sent.push(i),
    );
    expect(sent).toEqual([0, 1]);
    expect(merged).toMatchObject({
      received: 3,
      changed: true,
      diff: { lookupRecords: { addedCount: 3 } },
    });
    expect((await c.policy('ListLookupRecords')).totalSize).toBe(13);
    // One bad record in the last chunk: nothing of the stream is applied.
    await refused(
      () =>
        c.bulkLoad([
          { mode: 'BULK_LOAD_MODE_MERGE', lookupRecords: [rec(3)] },
          { lookupRecords: [{ ...rec(4), pa: '198.18.7.7' }] },
        ]),
      status.INVALID_ARGUMENT,
      /198\.18\.7\.7/,
    );
    await refused(() => c.bulkLoad([{ lookupRecords: [rec(3)] }]), status.INVALID_ARGUMENT, /mode/);
    const { lookupRecords } = await c.policy('ListLookupRecords');
    const bulk = new Set([0, 1, 2].map((i) => rec(i).ca));
    const kept = (lookupRecords as { vsid: number; ca: string }[]).filter(
      (r) => !(r.vsid === 6001 && bulk.has(r.ca)),
    );
    const replaced = await c.bulkLoad([
      { mode: 'BULK_LOAD_MODE_REPLACE', lookupRecords: kept.slice(0, 5) },
      { lookupRecords: kept.slice(5) },
    ]);
    expect(replaced).toMatchObject({ received: 10, diff: { lookupRecords: { removedCount: 3 } } });
    const err = await rejection(
      c.bulkLoad([
        { mode: 'BULK_LOAD_MODE_REPLACE', lookupRecords: [...kept, { ...rec(9), mac: 'x' }] },
      ]),
    );
    expect(fieldViolations(err).map((v) => v.field)).toContain('lookup_records[10].mac');
  });

  it('Watch streams each change with its diff, after an optional snapshot', async () => {
    const c = api.client;
    const stream = c.watch({ includeCurrent: true });
    stream.on('error', () => {}); // CANCELLED by our own cancel() below
    const events: Record<string, unknown>[] = [];
    const got = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => (events.length >= n ? resolve() : undefined);
        stream.on('data', (e: Record<string, unknown>) => {
          events.push(e);
          check();
        });
        check();
      });
    const firstTwo = got(2);
    await new Promise((r) => setTimeout(r, 100));
    const pa = { host: 'hv5', address: '198.18.0.5', interface: 'eth0' };
    const created = await c.policy('CreateProviderAddress', { providerAddress: pa });
    await firstTwo;
    stream.cancel();
    expect(events[0]).toMatchObject({ policyChanged: { method: 'Snapshot' } });
    expect(events[1]).toMatchObject({
      version: created.version,
      policyChanged: {
        method: 'CreateProviderAddress',
        diff: { providerAddresses: { addedCount: 1, added: ['198.18.0.5'] } },
      },
    });
    await c.policy('DeleteProviderAddress', { address: '198.18.0.5' });
  });

  it('GetStatus and GetCounters', async () => {
    const s = await api.client.agent('GetStatus');
    expect(s).toMatchObject({
      hostName: 'hv1',
      ready: true,
      policyKnown: true,
      abiVersion: 1,
      objects: { ports: 5, routingDomains: 2, virtualSubnets: 3 },
    });
    const counters = await api.client.agent('GetCounters');
    const maps = counters.maps as { map: string; entries: string; capacity: string }[];
    expect(maps.find((m) => m.map === 'tenet_ports')).toEqual({
      map: 'tenet_ports',
      entries: '2',
      capacity: '1024',
    });
    expect(maps.find((m) => m.map === 'tenet_records')?.capacity).toBe('40');
  });

  it('an unknown method is UNIMPLEMENTED', async () => {
    const err = await rejection(api.client.call('PolicyService', 'Nope' as string));
    expect(err.message).toMatch(/no method/);
  });
});

describe('before the first reconcile, and with an unknown policy', () => {
  it('calls are UNAVAILABLE until the store is ready', async () => {
    const t = await startTestApi({ deferInit: true });
    try {
      const err = await rejection(t.client.policy('ListPorts'));
      expect(status[err.code]).toBe('UNAVAILABLE');
      await t.store.initialize();
      expect(await t.client.policy('ListPorts')).toEqual({}); // no ports, version 0
    } finally {
      await t.close();
    }
  });

  it('a datapath holding entries but no known policy refuses partial changes until Apply', async () => {
    const t = await startTestApi({ deferInit: true });
    try {
      // What a restarted agent whose state file is gone finds: entries in the maps.
      await t.store.initialize();
      await t.client.policy('Apply', { text: demoPolicyText() });
      const { PolicyStore } = await import('../../agent/api/store.js');
      const fresh = new PolicyStore(t.store.backend);
      await fresh.initialize();
      expect(fresh.known).toBe(false);
      expect(() => fresh.read()).toThrow(/unknown/);
      await expect(fresh.commit('CreatePort', (d) => d)).rejects.toMatchObject({
        code: status.FAILED_PRECONDITION,
      });
      expect(t.tables.rows('ports').size).toBe(2);
      const r = await fresh.commit('Apply', () => demoPolicyText(), { whole: true });
      expect(r.changed).toBe(true);
      expect(fresh.known).toBe(true);
    } finally {
      await t.close();
    }
  });
});

describe('durable state around a change', () => {
  it('writes ahead, and puts the state back when the datapath refuses', async () => {
    const saved: bigint[] = [];
    let fail = false;
    const t = await startTestApi({
      memory: { capacity: { records: 20 } },
      hooks: {
        persist: async (_p, v) => {
          if (fail) throw new Error('disk full');
          saved.push(v);
        },
      },
    });
    try {
      await t.client.policy('Apply', { text: demoPolicyText() });
      expect(saved).toEqual([1n]);
      const rec = (i: number) => ({
        vsid: 5001,
        ca: `198.19.1.${100 + i}`,
        mac: `02:00:00:b1:01:${(i + 16).toString(16)}`,
        pa: '198.18.0.2',
      });
      // The records map holds 20: this change is persisted first, refused, and the state put back.
      const err = await rejection(
        t.client.bulkLoad([
          { mode: 'BULK_LOAD_MODE_MERGE', lookupRecords: [0, 1, 2, 3, 4].map(rec) },
        ]),
      );
      expect(status[err.code]).toBe('RESOURCE_EXHAUSTED');
      expect(saved).toEqual([1n, 2n, 1n]);
      expect(t.store.version).toBe(1n);
      // A state that cannot be written: UNAVAILABLE, the datapath untouched.
      fail = true;
      const tables = tablesSnapshot(t.tables);
      const err2 = await rejection(t.client.policy('DeletePort', { name: 'blue-vm1' }));
      expect(status[err2.code]).toBe('UNAVAILABLE');
      expect(err2.details).toMatch(/disk full/);
      expect(tablesSnapshot(t.tables)).toEqual(tables);
      expect(t.store.version).toBe(1n);
    } finally {
      await t.close();
    }
  });
});
