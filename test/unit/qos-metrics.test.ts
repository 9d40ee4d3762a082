// QoS metrics (agent/metrics/qos.ts): the QoS state read at scrape time becomes counters and a
// gauge with port/direction and uplink/class/port labels; a failing read exports nothing.

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { QosStatus } from '../../agent/host/qos.js';
import { registerQosMetrics } from '../../agent/metrics/qos.js';

const status: QosStatus = {
  capabilities: { htb: true, fq: false, fqCodel: false },
  outboundMethod: 'htb',
  inboundMethod: 'policer',
  leafQdisc: 'bfifo',
  uplinks: [
    {
      interface: 'eth0',
      capacityBps: 1e9,
      mode: 'weight',
      classes: [
        {
          classid: '7e:100a',
          label: 'port:q1',
          port: 'q1',
          rateBps: 1e8,
          ceilBps: 1e9,
          sentBytes: 123456,
          sentPackets: 100,
          droppedPackets: 3,
          overlimits: 42,
          backlogBytes: 1514,
          backlogPackets: 1,
        },
      ],
    },
  ],
  ports: [
    {
      port: 'q1',
      ifindex: 10,
      direction: 'inbound',
      passedPackets: 7n,
      passedBytes: 7000n,
      droppedPackets: 2n,
      droppedBytes: 2000n,
    },
  ],
};

describe('QoS metrics', () => {
  it('exports the QoS counters and HTB class statistics', async () => {
    const registry = new Registry();
    let reads = 0;
    registerQosMetrics(registry, () => {
      reads++;
      return Promise.resolve(status);
    });
    const text = await registry.metrics();
    expect(text).toContain('tenet_qos_passed_packets_total{port="q1",direction="inbound"} 7');
    expect(text).toContain('tenet_qos_dropped_bytes_total{port="q1",direction="inbound"} 2000');
    expect(text).toContain('tenet_qos_delayed_total{uplink="eth0",class="port:q1",port="q1"} 42');
    expect(text).toContain(
      'tenet_qos_shaper_dropped_packets_total{uplink="eth0",class="port:q1",port="q1"} 3',
    );
    expect(text).toContain('tenet_qos_backlog_bytes{uplink="eth0",class="port:q1",port="q1"} 1514');
    expect(reads).toBe(1); // one read per scrape, shared by every collector
  });

  it('exports nothing when the state cannot be read', async () => {
    const registry = new Registry();
    registerQosMetrics(registry, () => Promise.reject(new Error('gone')));
    const text = await registry.metrics();
    expect(text).not.toMatch(/tenet_qos_passed_packets_total\{/);
  });
});
