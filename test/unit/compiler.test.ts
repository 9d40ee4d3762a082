// The compiler on the demo policy (scripts/lab/demo-policy.yaml) for hv1 and hv2: specific
// entries of every table, determinism, and the errors it can still raise on a valid policy.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  compile,
  CompileError,
  fnv1a32,
  gatewayMac,
  routingDomainId,
  TABLES,
  type CaKey,
  type CompiledTables,
  type HostFacts,
  type RouteKey,
} from '../../agent/compiler/index.js';
import { parsePolicy, type Policy } from '../../agent/policy/index.js';

const DEMO_TEXT = readFileSync(
  new URL('../../scripts/lab/demo-policy.yaml', import.meta.url).pathname,
  'utf8',
);
const demo = (): Policy => parsePolicy(DEMO_TEXT);

const HV1: HostFacts = new Map([
  ['eth0', { ifindex: 2, mac: '02:00:00:00:0e:01', mtu: 1500 }],
  ['vm-blue1', { ifindex: 10, mac: 'fe:00:00:00:00:0a', mtu: 1500 }],
  ['vm-red1', { ifindex: 11, mac: 'fe:00:00:00:00:0b', mtu: 1500 }],
]);
const HV2: HostFacts = {
  eth0: { ifindex: 3, mac: '02:00:00:00:0e:02', mtu: 9000 },
  'vm-blue2': { ifindex: 20, mac: 'fe:00:00:00:00:14', mtu: 1500 },
  'vm-red2': { ifindex: 21, mac: 'fe:00:00:00:00:15', mtu: 1500 },
  'vm-bluedb1': { ifindex: 22, mac: 'fe:00:00:00:00:16', mtu: 1500 },
};

const PA1 = 0xc6120001; // 198.18.0.1
const PA2 = 0xc6120002;
const BLUE = fnv1a32('blue');
const RED = fnv1a32('red');
const mac = (s: string) => Uint8Array.from(s.split(':').map((h) => parseInt(h, 16)));

function ca(vsid: number, text: string): CaKey {
  const addr = new Uint8Array(16);
  if (text.includes(':')) {
    const [head = '', tail = ''] = text.split('::');
    const h = head === '' ? [] : head.split(':');
    const t = tail === '' ? [] : tail.split(':');
    const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    groups.forEach((g, i) => {
      const n = parseInt(g, 16);
      addr[2 * i] = n >> 8;
      addr[2 * i + 1] = n & 0xff;
    });
    return { vsid, family: 6, addr };
  }
  addr.set(text.split('.').map(Number), 0);
  return { vsid, family: 4, addr };
}

function route(rdid: number, prefix: string): RouteKey {
  const [addr = '', len = ''] = prefix.split('/');
  const k = ca(0, addr);
  return { prefixlen: 64 + Number(len), rdid, family: k.family, addr: k.addr };
}

const rec = (t: CompiledTables, key: CaKey) => t.records.get(TABLES.records.keyId(key))?.value;
const rt = (t: CompiledTables, key: RouteKey) => t.routes.get(TABLES.routes.keyId(key))?.value;

describe('compiler on the demo policy', () => {
  const hv1 = compile(demo(), 'hv1', HV1);
  const hv2 = compile(demo(), 'hv2', HV2);

  it('uses FNV-1a for routing domain ids', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    expect(routingDomainId('blue')).toBe(0x82fbf5cd);
  });

  it('has every virtual subnet with its rdid and gateway MAC on every host', () => {
    for (const t of [hv1, hv2]) {
      const subnet = (rdid: number, gwMac: string, gw4: number, gw6: string) => ({
        rdid,
        gw_mac: mac(gwMac),
        flags: 0,
        gw_ip4: gw4,
        gw_ip6: ca(0, gw6).addr,
      });
      const rows = [...t.vsubnets.values()].sort((a, b) => a.key - b.key);
      expect(rows.map((r) => [r.key, r.value])).toEqual([
        [5001, subnet(BLUE, '02:74:6e:00:13:89', 0xc6130101, 'fd00:1:1::1')],
        [5002, subnet(BLUE, '02:74:6e:00:13:8a', 0xc6130201, 'fd00:1:2::1')],
        [6001, subnet(RED, '02:74:6e:00:17:71', 0xc6130101, 'fd00:1:1::1')],
      ]);
    }
    expect(gatewayMac(0xabcdef)).toEqual(mac('02:74:6e:ab:cd:ef'));
  });

  it('keeps the overlapping CAs of blue and red apart by VSID', () => {
    const blue = rec(hv2, ca(5001, '198.19.1.11'));
    const red = rec(hv2, ca(6001, '198.19.1.11'));
    expect(blue).toEqual({ mac: mac('02:00:00:b1:00:11'), flags: 0, pa: PA1, ifindex: 0 });
    expect(red).toEqual({ mac: mac('02:00:00:4e:00:11'), flags: 0, pa: PA1, ifindex: 0 });
    expect(TABLES.records.keyId(ca(5001, '198.19.1.11'))).not.toBe(
      TABLES.records.keyId(ca(6001, '198.19.1.11')),
    );
  });

  it('marks records LOCAL with the port ifindex on the host of the port only', () => {
    expect(rec(hv1, ca(5001, '198.19.1.11'))).toEqual({
      mac: mac('02:00:00:b1:00:11'),
      flags: 1,
      pa: PA1,
      ifindex: 10,
    });
    expect(rec(hv1, ca(6001, 'fd00:1:1::11'))).toMatchObject({ flags: 1, ifindex: 11, pa: PA1 });
    expect(rec(hv1, ca(5002, '198.19.2.21'))).toMatchObject({ flags: 0, ifindex: 0, pa: PA2 });
    expect(rec(hv2, ca(5002, 'fd00:1:2::21'))).toMatchObject({ flags: 1, ifindex: 22, pa: PA2 });
    expect(rec(hv2, ca(5001, 'fd00:1:1::11'))).toMatchObject({ flags: 0, ifindex: 0 });
    const localOn = (t: CompiledTables) =>
      [...t.records.values()].filter((r) => r.value.flags === 1).length;
    expect(localOn(hv1)).toBe(4);
    expect(localOn(hv2)).toBe(6);
  });

  it('adds a GATEWAY record per subnet gateway address', () => {
    for (const t of [hv1, hv2]) {
      expect(rec(t, ca(5001, '198.19.1.1'))).toEqual({
        mac: mac('02:74:6e:00:13:89'),
        flags: 2,
        pa: 0,
        ifindex: 0,
      });
      expect(rec(t, ca(6001, 'fd00:1:1::1'))).toEqual({
        mac: mac('02:74:6e:00:17:71'),
        flags: 2,
        pa: 0,
        ifindex: 0,
      });
      expect(t.records.size).toBe(10 + 6);
    }
  });

  it('has an ONLINK route per subnet prefix with prefixlen 64 + p, and the customer routes', () => {
    expect(hv1.routes.size).toBe(6 + 2);
    expect(rt(hv1, route(BLUE, '198.19.1.0/24'))).toEqual({
      vsid: 5001,
      flags: 1,
      nexthop: new Uint8Array(16),
    });
    expect(rt(hv1, route(RED, '198.19.1.0/24'))).toEqual({
      vsid: 6001,
      flags: 1,
      nexthop: new Uint8Array(16),
    });
    expect(rt(hv1, route(BLUE, 'fd00:1:2::/64'))).toMatchObject({ vsid: 5002, flags: 1 });
    expect(route(BLUE, '198.19.1.0/24').prefixlen).toBe(88);
    expect(route(BLUE, 'fd00:1:2::/64').prefixlen).toBe(128);
    expect(rt(hv2, route(BLUE, '198.19.100.0/24'))).toEqual({
      vsid: 5002,
      flags: 2,
      nexthop: ca(0, '198.19.2.21').addr,
    });
    expect(rt(hv2, route(BLUE, 'fd00:1:64::/64'))).toEqual({
      vsid: 5002,
      flags: 2,
      nexthop: ca(0, 'fd00:1:2::21').addr,
    });
    expect(rt(hv2, route(RED, '198.19.100.0/24'))).toBeUndefined();
    const keys = [...hv1.routes.values()].map((r) => r.key);
    expect(keys.map((k) => k.prefixlen).sort()).toEqual([128, 128, 128, 128, 88, 88, 88, 88]);
  });

  it("has only this host's ports, with MTU = NIC MTU - 42 and the port's PA", () => {
    expect([...hv1.ports.values()]).toEqual([
      {
        key: 10,
        value: {
          vsid: 5001,
          rdid: BLUE,
          mac: mac('02:00:00:b1:00:11'),
          mtu: 1458,
          pa: PA1,
          flags: 0,
        },
      },
      {
        key: 11,
        value: {
          vsid: 6001,
          rdid: RED,
          mac: mac('02:00:00:4e:00:11'),
          mtu: 1458,
          pa: PA1,
          flags: 0,
        },
      },
    ]);
    expect(
      [...hv2.ports.values()].map((r) => [r.key, r.value.vsid, r.value.mtu, r.value.pa]),
    ).toEqual([
      [20, 5001, 8958, PA2],
      [21, 6001, 8958, PA2],
      [22, 5002, 8958, PA2],
    ]);
  });

  it("has this host's provider addresses with their NIC", () => {
    expect([...hv1.localPas.values()]).toEqual([
      { key: PA1, value: { ifindex: 2, mac: mac('02:00:00:00:0e:01'), mtu: 1500 } },
    ]);
    expect([...hv2.localPas.values()]).toEqual([
      { key: PA2, value: { ifindex: 3, mac: mac('02:00:00:00:0e:02'), mtu: 9000 } },
    ]);
  });

  it('encodes keys and values with the generated codecs (network order where C says __be32)', () => {
    const key = ca(5001, '198.19.1.11');
    expect(TABLES.records.keyId(key)).toBe(
      '89130000' + '04000000' + 'c613010b' + '00'.repeat(12), // vsid LE, family, pad, CA
    );
    const value = rec(hv2, key);
    expect(TABLES.records.value.encode(value!).toString('hex')).toBe(
      '0200' + '00b10011' + '0000' + 'c6120001' + '00000000', // MAC, flags, PA big-endian, ifindex
    );
    const routeKey = TABLES.routes.key.encode(route(BLUE, '198.19.1.0/24')).toString('hex');
    expect(routeKey).toBe('58000000' + 'cdf5fb82' + '04000000' + 'c6130100' + '00'.repeat(12));
    expect(TABLES.localPas.keyId(PA1)).toBe('c6120001');
    expect(TABLES.ports.entry.size).toBe(56);
  });

  it('caps the port MTU at the policy value', () => {
    const doc = parseYaml(DEMO_TEXT);
    doc.ports[0].mtu = 1400;
    const t = compile(parsePolicy(doc), 'hv1', HV1);
    expect(t.ports.get(TABLES.ports.keyId(10))?.value.mtu).toBe(1400);
  });

  it('is deterministic and does not depend on the order of the document', () => {
    expect(compile(demo(), 'hv1', HV1)).toEqual(hv1);
    const doc = parseYaml(DEMO_TEXT);
    for (const list of ['ports', 'lookupRecords', 'customerRoutes', 'routingDomains']) {
      doc[list].reverse();
    }
    const shuffled = compile(parsePolicy(doc), 'hv1', HV1);
    for (const t of Object.keys(TABLES) as (keyof CompiledTables)[]) {
      expect([...shuffled[t].keys()]).toEqual([...hv1[t].keys()]);
      expect([...shuffled[t].values()]).toEqual([...hv1[t].values()]);
    }
  });

  it('does not change its input', () => {
    const policy = demo();
    const before = JSON.stringify(policy);
    compile(policy, 'hv2', HV2);
    expect(JSON.stringify(policy)).toBe(before);
  });
});

describe('compiler errors', () => {
  const issues = (policy: Policy, host: string, facts: HostFacts) => {
    try {
      compile(policy, host, facts);
    } catch (e) {
      if (e instanceof CompileError) return e.issues;
      throw e;
    }
    return [];
  };

  it('names the port whose interface is missing', () => {
    const facts = new Map(HV1 as Map<string, never>);
    facts.delete('vm-red1');
    expect(issues(demo(), 'hv1', facts)).toEqual([
      {
        path: 'ports[1].interface',
        message: 'interface "vm-red1" of port "red-vm1" does not exist on host hv1',
      },
    ]);
  });

  it("names the PA whose NIC is missing (its host's ports then cannot get an MTU)", () => {
    const facts = new Map(HV1 as Map<string, never>);
    facts.delete('eth0');
    expect(issues(demo(), 'hv1', facts)).toEqual([
      {
        path: 'providerAddresses[0].interface',
        message: 'interface "eth0" of PA 198.18.0.1 does not exist on host hv1',
      },
    ]);
  });

  it('refuses a host that has no provider address', () => {
    expect(issues(demo(), 'hv9', HV1)).toEqual([
      { path: 'providerAddresses', message: 'host hv9 has no provider address in this policy' },
    ]);
  });

  it('refuses an underlay MTU that leaves IPv6 tenants below 1280', () => {
    const facts = new Map(HV1 as Map<string, { ifindex: number; mac: string; mtu: number }>);
    facts.set('eth0', { ifindex: 2, mac: '02:00:00:00:0e:01', mtu: 1300 });
    expect(issues(demo(), 'hv1', facts)).toEqual([
      {
        path: 'ports[0].mtu',
        message: 'port "blue-vm1" would get tenant MTU 1258 (underlay MTU 1300 - 42), below 1280',
      },
      {
        path: 'ports[1].mtu',
        message: 'port "red-vm1" would get tenant MTU 1258 (underlay MTU 1300 - 42), below 1280',
      },
    ]);
  });

  it('detects routing domain names whose ids collide', () => {
    expect(fnv1a32('tenant-97018')).toBe(fnv1a32('tenant-180400'));
    const doc = parseYaml(DEMO_TEXT);
    doc.routingDomains.push(
      {
        name: 'tenant-97018',
        virtualSubnets: [{ name: 'a', vsid: 7001, prefixes: ['198.19.71.0/24'] }],
      },
      {
        name: 'tenant-180400',
        virtualSubnets: [{ name: 'b', vsid: 7002, prefixes: ['198.19.72.0/24'] }],
      },
    );
    expect(issues(parsePolicy(doc), 'hv1', HV1)).toEqual([
      {
        path: 'routingDomains[3].name',
        message:
          'routing domain "tenant-180400" hashes to rdid 0x76e83c65 like "tenant-97018"; rename one of them',
      },
    ]);
  });
});
