// tenet.v1.QosService over a real unix socket (memory datapath backend): set, list and delete
// port QoS and uplinks; refused values name the request's field and change nothing (the policy
// version stays); GetQosStatus needs a datapath with QoS (FAILED_PRECONDITION here).

import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { demoPolicyText, rejection, startTestApi, type TestApi } from './helpers.js';

let api: TestApi;
const qos = (method: string, req: Record<string, unknown> = {}) =>
  api.client.call('QosService', method, req);
const version = async (): Promise<string> =>
  String((await api.client.agent('GetStatus')).policyVersion);

describe('QosService', () => {
  beforeAll(async () => {
    api = await startTestApi();
    await api.client.policy('Apply', { text: demoPolicyText() });
  });
  afterAll(async () => {
    await api?.close();
  });

  it('sets an uplink and a port QoS, lists them, deletes them', async () => {
    const v0 = BigInt(await version());
    await qos('SetUplink', {
      uplink: { host: 'hv1', interface: 'eth0', capacityMbps: 1000, defaultBucket: { weight: 1 } },
    });
    const r = await qos('SetPortQos', {
      portQos: {
        port: 'blue-vm1',
        maximumOutbound: { mbps: 100 },
        maximumInbound: { mbps: 50, burstKib: 512 },
        minimum: { weight: 3 },
        classCaps: [{ name: 'internet', remotePrefixes: ['0.0.0.0/0'], mbps: 10 }],
      },
    });
    expect(BigInt(r.policyVersion as string)).toBe(v0 + 2n);
    const list = await qos('ListPortQos');
    expect(list.portQos).toMatchObject([
      {
        port: 'blue-vm1',
        maximumOutbound: { mbps: 100 },
        maximumInbound: { mbps: 50, burstKib: 512 },
        minimum: { weight: 3 },
        classCaps: [{ name: 'internet', remotePrefixes: ['0.0.0.0/0'], mbps: 10 }],
      },
    ]);
    expect(api.store.policy?.portQos[0]?.maximum?.inbound).toEqual({ mbps: 50, burstKiB: 512 });
    expect((await qos('ListUplinks')).uplinks).toMatchObject([
      { host: 'hv1', interface: 'eth0', capacityMbps: 1000, defaultBucket: { weight: 1 } },
    ]);
    await qos('DeletePortQos', { port: 'blue-vm1' });
    await qos('DeleteUplink', { host: 'hv1', interface: 'eth0' });
    expect(api.store.policy?.portQos).toEqual([]);
    expect(api.store.policy?.uplinks).toEqual([]);
    expect(BigInt(await version())).toBe(v0 + 4n);
  });

  it('refuses zero rates, unknown ports and over-subscribed minimums, changing nothing', async () => {
    await qos('SetUplink', { uplink: { host: 'hv1', interface: 'eth0', capacityMbps: 1000 } });
    const v = await version();
    const zero = await rejection(
      qos('SetPortQos', { portQos: { port: 'blue-vm1', maximumOutbound: { mbps: 0 } } }),
    );
    expect(status[zero.code]).toBe('INVALID_ARGUMENT');
    expect(zero.details).toMatch(/port_qos\.maximum\.outbound\.mbps: 0 is not a rate/);
    const unknown = await rejection(
      qos('SetPortQos', { portQos: { port: 'nope', maximumInbound: { mbps: 5 } } }),
    );
    expect(status[unknown.code]).toBe('INVALID_ARGUMENT');
    expect(unknown.details).toMatch(/port_qos\.port: port "nope" is not defined/);
    await qos('SetPortQos', { portQos: { port: 'blue-vm1', minimum: { mbps: 600 } } });
    const v2 = await version();
    const over = await rejection(
      qos('SetPortQos', { portQos: { port: 'red-vm1', minimum: { mbps: 500 } } }),
    );
    expect(status[over.code]).toBe('INVALID_ARGUMENT');
    expect(over.details).toMatch(/sum to 1100 Mbit\/s, above the capacity of 1000/);
    expect(await version()).toBe(v2);
    expect(BigInt(v2)).toBe(BigInt(v) + 1n);
    const missing = await rejection(qos('DeletePortQos', { port: 'red-vm1' }));
    expect(status[missing.code]).toBe('NOT_FOUND');
  });

  it('a structured Policy carries uplinks, port QoS and tenant QoS (Apply)', async () => {
    const doc = parseYaml(demoPolicyText()) as Record<string, unknown>;
    // The proto form: caps as maximum_outbound/maximum_inbound messages, burst in burst_kib.
    doc.uplinks = [
      { host: 'hv1', interface: 'eth0', capacityMbps: 1000, defaultBucket: { weight: 2 } },
    ];
    doc.portQos = [
      {
        port: 'blue-vm1',
        maximumOutbound: { mbps: 100 },
        maximumInbound: { mbps: 50, burstKib: 512 },
        minimum: { weight: 3 },
      },
    ];
    doc.tenantQos = [
      {
        routingDomain: 'blue',
        classCaps: [{ name: 'internet', remotePrefixes: ['0.0.0.0/0'], mbps: 20, burstKib: 1024 }],
      },
    ];
    await api.client.policy('Apply', { policy: doc });
    const p = api.store.policy;
    expect(p?.uplinks).toEqual([
      { host: 'hv1', interface: 'eth0', capacityMbps: 1000, defaultBucket: { weight: 2 } },
    ]);
    expect(p?.portQos).toEqual([
      {
        port: 'blue-vm1',
        maximum: { outbound: { mbps: 100 }, inbound: { mbps: 50, burstKiB: 512 } },
        minimum: { weight: 3 },
      },
    ]);
    expect(p?.tenantQos).toEqual([
      {
        routingDomain: 'blue',
        classCaps: [{ name: 'internet', remotePrefixes: ['0.0.0.0/0'], mbps: 20, burstKiB: 1024 }],
      },
    ]);
    // The same document without QoS removes it (a whole-document Apply).
    await api.client.policy('Apply', { text: demoPolicyText() });
    expect(api.store.policy?.portQos).toEqual([]);
    expect(api.store.policy?.tenantQos).toEqual([]);
  });

  it('GetQosStatus needs a datapath with QoS', async () => {
    const err = await rejection(qos('GetQosStatus'));
    expect(status[err.code]).toBe('FAILED_PRECONDITION');
  });
});
