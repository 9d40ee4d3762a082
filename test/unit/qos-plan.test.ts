// The QoS compiler (agent/compiler/qos.ts): the HTB tree per uplink and the QoS map rows, from
// policies whose expected rates are worked out here from the documented formulas.

import { describe, expect, it } from 'vitest';
import {
  classid,
  compileQos,
  htbBurst,
  QosCompileError,
  wireScale,
} from '../../agent/compiler/qos.js';
import type { HostFacts } from '../../agent/compiler/index.js';
import { qosPolicy } from '../../agent/lab/qos.js';
import { parseHtbClasses, parseHtbStats, parseTcRate } from '../../agent/host/qos.js';

const facts = (over: Record<string, number> = {}): HostFacts => {
  const m = new Map<string, { ifindex: number; mac: string; mtu: number }>();
  m.set('eth0', { ifindex: 2, mac: '02:00:00:00:00:01', mtu: 1500 });
  ['q1', 'q2', 'q3', 'q4'].forEach((n, i) =>
    m.set(`vm-${n}`, { ifindex: over[n] ?? 10 + i, mac: '02:00:00:00:01:01', mtu: 1458 }),
  );
  return m;
};
const uplink = { host: 'hv1', interface: 'eth0', capacityMbps: 1000 };

describe('QoS plan', () => {
  it('weights: rate = capacity * weight / (sum + default weight); ceil = the scaled cap', () => {
    const plan = compileQos(
      qosPolicy({
        uplinks: [{ ...uplink, defaultBucket: { weight: 2 } }],
        portQos: [
          { port: 'q1', minimum: { weight: 1 } },
          { port: 'q2', minimum: { weight: 2 }, maximum: { outbound: { mbps: 100 } } },
          { port: 'q3', minimum: { weight: 5 } },
        ],
      }),
      'hv1',
      facts(),
    );
    const u = plan.uplinks[0]!;
    const byMinor = new Map(u.classes.map((c) => [c.minor, c]));
    expect(byMinor.get(1)).toMatchObject({ parent: 0, rateBps: 1e9, ceilBps: 1e9 });
    expect(byMinor.get(2)).toMatchObject({ parent: 1, rateBps: 200e6 }); // 2 of 10
    expect(byMinor.get(0x1000 + 10)).toMatchObject({ parent: 1, rateBps: 100e6, ceilBps: 1e9 });
    // q2: 2 of 10, capped at 100 Mbit/s of IP bytes = 100 * (1458 + 56) / 1458 on the wire.
    expect(byMinor.get(0x1000 + 11)?.rateBps).toBe(Math.round((100e6 * 1514) / 1458 / 1000) * 1000);
    expect(byMinor.get(0x1000 + 11)?.ceilBps).toBe(Math.round((100e6 * 1514) / 1458 / 1000) * 1000);
    expect(byMinor.get(0x1000 + 12)).toMatchObject({ rateBps: 500e6, ceilBps: 1e9 });
    // Rates of the root's children add up to the capacity: nothing is promised twice.
    const children = u.classes.filter((c) => c.parent === 1);
    expect(children.reduce((s, c) => s + c.rateBps, 0)).toBeLessThanOrEqual(1e9);
    // Quanta follow the rates (borrowing follows the weights).
    expect(byMinor.get(0x1000 + 12)!.quantum / byMinor.get(0x1000 + 10)!.quantum).toBe(5);
    // Maps: each port's leaf; q4 (no QoS) still gets an entry (the default leaf) so it cannot
    // choose a class through its own skb->priority.
    expect(plan.ports.get(10)?.classid).toBe(classid(0x100a));
    expect(plan.ports.get(13)?.classid).toBe(classid(3));
    expect(plan.ports.get(13)?.inbound.bytes_per_sec).toBe(0n);
  });

  it('absolute: rates are the minimums, the default bucket gets what is left', () => {
    const plan = compileQos(
      qosPolicy({
        uplinks: [uplink],
        portQos: [
          { port: 'q1', minimum: { mbps: 300 } },
          { port: 'q2', minimum: { mbps: 200 } },
        ],
      }),
      'hv1',
      facts(),
    );
    const byMinor = new Map(plan.uplinks[0]!.classes.map((c) => [c.minor, c]));
    expect(plan.uplinks[0]?.mode).toBe('absolute');
    expect(byMinor.get(0x100a)?.rateBps).toBe(300e6);
    expect(byMinor.get(0x100b)?.rateBps).toBe(200e6);
    expect(byMinor.get(2)?.rateBps).toBe(500e6);
  });

  it('unreserved capped ports share the default bucket; classes hang under the port', () => {
    const plan = compileQos(
      qosPolicy({
        uplinks: [uplink],
        portQos: [
          {
            port: 'q1',
            maximum: { outbound: { mbps: 50 }, inbound: { mbps: 20, burstKiB: 100 } },
            classCaps: [{ name: 'inet', remotePrefixes: ['0.0.0.0/0'], mbps: 5 }],
          },
        ],
      }),
      'hv1',
      facts(),
    );
    const byMinor = new Map(plan.uplinks[0]!.classes.map((c) => [c.minor, c]));
    const scale = wireScale(1458);
    expect(byMinor.get(0x100a)).toMatchObject({ parent: 2, leaf: false });
    expect(byMinor.get(0x200a)).toMatchObject({ parent: 0x100a, leaf: true });
    expect(byMinor.get(0x300a)?.ceilBps).toBe(Math.round((5e6 * scale) / 1000) * 1000);
    expect(byMinor.get(3)?.rateBps).toBe(500e6); // default 1000 split between q1 and the leaf
    const row = plan.ports.get(10)!;
    expect(row.classid).toBe(classid(0x200a));
    expect(row.flags).toBe(1);
    expect(row.inbound).toEqual({ bytes_per_sec: 2_500_000n, burst_bytes: 102_400n });
    expect(plan.classes).toHaveLength(1);
    expect(plan.classes[0]?.key.prefixlen).toBe(64);
    expect(plan.classes[0]?.value.classid).toBe(classid(0x300a));
  });

  it('HTB bursts are 20 ms at the rate, at least a 64 KiB packet and a frame', () => {
    expect(htbBurst(1e9)).toBe(2_500_000);
    expect(htbBurst(10e6)).toBe(65536 + 1514);
  });

  it('refuses a port whose ifindex has no HTB minor, naming the port', () => {
    expect(() =>
      compileQos(
        qosPolicy({ uplinks: [uplink], portQos: [{ port: 'q1', minimum: { weight: 1 } }] }),
        'hv1',
        facts({ q1: 5000 }),
      ),
    ).toThrow(QosCompileError);
    expect(() =>
      compileQos(qosPolicy({ uplinks: [{ ...uplink, interface: 'eth0' }] }), 'hv1', new Map()),
    ).toThrow(/eth0" does not exist/);
  });

  it('is empty for a host without QoS', () => {
    const plan = compileQos(qosPolicy(), 'hv1', facts());
    expect(plan.uplinks).toEqual([]);
    expect(plan.ports.size).toBe(0);
  });
});

describe('tc output parsing', () => {
  it('reads rates as tc prints them', () => {
    expect(parseTcRate('100Mbit')).toBe(100e6);
    expect(parseTcRate('103841Kbit')).toBe(103_841_000);
    expect(parseTcRate('1Gbit')).toBe(1e9);
    expect(() => parseTcRate('fast')).toThrow(/unexpected tc rate/);
  });

  it('reads HTB classes and their statistics', () => {
    const detail =
      'class htb 7e:100a parent 7e:2 leaf 100a: prio 0 quantum 129801 rate 103841Kbit ceil 103841Kbit linklayer ethernet burst 259600b/1 mpu 0b cburst 253.5Kb/1 mpu 0b level 0 \n' +
      'class htb 7e:1 root rate 1Gbit ceil 1Gbit linklayer ethernet burst 2500000b/1 mpu 0b cburst 2500000b/1 mpu 0b level 7 \n' +
      'class htb 1:5 parent 1:1 prio 0 rate 1Mbit ceil 1Mbit burst 1600b cburst 1600b \n';
    const cls = parseHtbClasses(detail);
    expect(cls).toEqual([
      {
        minor: 0x100a,
        parent: 2,
        rateBps: 103_841_000,
        ceilBps: 103_841_000,
        burstBytes: 259_600,
        cburstBytes: 259_584,
        quantum: 129_801,
      },
      {
        minor: 1,
        parent: 0,
        rateBps: 1e9,
        ceilBps: 1e9,
        burstBytes: 2_500_000,
        cburstBytes: 2_500_000,
      },
    ]);
    const stats = parseHtbStats(
      'class htb 7e:100a parent 7e:2 leaf 100a: prio 0 rate 100Mbit ceil 1Gbit burst 70000b cburst 70000b \n' +
        ' Sent 12345 bytes 67 pkt (dropped 3, overlimits 89 requeues 0) \n backlog 1514b 1p requeues 0\n',
    );
    expect(stats).toEqual([
      {
        minor: 0x100a,
        sentBytes: 12345,
        sentPackets: 67,
        dropped: 3,
        overlimits: 89,
        backlogBytes: 1514,
        backlogPackets: 1,
      },
    ]);
  });
});

describe('tenant class caps', () => {
  it('give every port of the tenant the shared bucket, merged with its own classes', () => {
    const plan = compileQos(
      qosPolicy({
        uplinks: [uplink],
        portQos: [
          {
            port: 'q1',
            classCaps: [{ name: 'dns', remotePrefixes: ['198.51.100.0/24'], mbps: 1 }],
          },
        ],
        tenantQos: [
          {
            routingDomain: 'qt',
            classCaps: [{ name: 'internet', remotePrefixes: ['0.0.0.0/0'], mbps: 50 }],
          },
        ],
      }),
      'hv1',
      facts(),
    );
    expect(plan.tenantCaps.get(1)).toEqual({
      bytes_per_sec: 6_250_000n,
      burst_bytes: BigInt(Math.ceil(6_250_000 * 0.3)),
    });
    // q1: its /24 class carries the tenant bucket too (the trie returns one entry), and the
    // tenant's /0 entry carries q1's rest-of-traffic leaf (no own class covers it: classid 0).
    const q1 = plan.classes.filter((c) => c.key.ifindex === 10);
    expect(q1.map((c) => [c.key.prefixlen, c.value.classid, c.value.tenant_bucket])).toEqual([
      [64 + 24, classid(0x300a), 1],
      [64, 0, 1],
    ]);
    // q2..q4 (no QoS of their own) get the tenant's entry and the classes flag.
    for (const ifindex of [11, 12, 13]) {
      expect(plan.classes.filter((c) => c.key.ifindex === ifindex)).toHaveLength(1);
      expect(plan.ports.get(ifindex)?.flags).toBe(1);
    }
  });
});
