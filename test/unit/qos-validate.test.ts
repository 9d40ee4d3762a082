// Validation of the QoS parts of the policy document (schema-qos.ts, validate-qos.ts): bad values
// are refused with the path of the field at fault, and a refused document applies nothing (the
// whole document is refused). Documents come from the QoS lab's policy builder.

import { describe, expect, it } from 'vitest';
import { qosPolicy } from '../../agent/lab/qos.js';
import { parsePolicy, PolicyError, type PolicyDocument } from '../../agent/policy/index.js';

const base = (): PolicyDocument => ({ ...qosPolicy() });
const uplink = { host: 'hv1', interface: 'eth0', capacityMbps: 1000 };

function issues(doc: unknown): { path: string; message: string }[] {
  try {
    parsePolicy(doc);
  } catch (e) {
    if (e instanceof PolicyError) return [...e.issues];
    throw e;
  }
  return [];
}

describe('QoS policy validation', () => {
  it('accepts caps, weights, classes and a default bucket', () => {
    const p = parsePolicy({
      ...base(),
      uplinks: [{ ...uplink, defaultBucket: { weight: 2 } }],
      portQos: [
        {
          port: 'q1',
          maximum: { outbound: { mbps: 100, burstKiB: 128 }, inbound: { mbps: 50 } },
          minimum: { weight: 5 },
          classCaps: [{ name: 'internet', remotePrefixes: ['0.0.0.0/0', '::/0'], mbps: 10 }],
        },
        { port: 'q2', minimum: { weight: 1 } },
      ],
    });
    expect(p.portQos).toHaveLength(2);
    expect(p.uplinks[0]?.defaultBucket).toEqual({ weight: 2 });
  });

  const cases: {
    name: string;
    doc: Record<string, unknown>;
    path: string;
    message: RegExp;
  }[] = [
    {
      name: 'zero rate',
      doc: { uplinks: [uplink], portQos: [{ port: 'q1', maximum: { outbound: { mbps: 0 } } }] },
      path: 'portQos[0].maximum.outbound.mbps',
      message: /above 0/,
    },
    {
      name: 'negative rate',
      doc: { uplinks: [uplink], portQos: [{ port: 'q1', maximum: { inbound: { mbps: -5 } } }] },
      path: 'portQos[0].maximum.inbound.mbps',
      message: /above 0/,
    },
    {
      name: 'zero capacity',
      doc: { uplinks: [{ ...uplink, capacityMbps: 0 }] },
      path: 'uplinks[0].capacityMbps',
      message: /above 0/,
    },
    {
      name: 'burst below 64 KiB',
      doc: {
        uplinks: [uplink],
        portQos: [{ port: 'q1', maximum: { inbound: { mbps: 5, burstKiB: 16 } } }],
      },
      path: 'portQos[0].maximum.inbound.burstKiB',
      message: /outside 64\.\./,
    },
    {
      name: 'weight 0',
      doc: { uplinks: [uplink], portQos: [{ port: 'q1', minimum: { weight: 0 } }] },
      path: 'portQos[0].minimum.weight',
      message: /outside 1\.\.100/,
    },
    {
      name: 'unknown port',
      doc: { uplinks: [uplink], portQos: [{ port: 'nope', maximum: { inbound: { mbps: 5 } } }] },
      path: 'portQos[0].port',
      message: /"nope" is not defined/,
    },
    {
      name: 'weight and rate at once',
      doc: { uplinks: [uplink], portQos: [{ port: 'q1', minimum: { weight: 1, mbps: 10 } }] },
      path: 'portQos[0].minimum',
      message: /exactly one of weight and mbps/,
    },
    {
      name: 'absolute minimums above capacity',
      doc: {
        uplinks: [{ ...uplink, defaultBucket: { mbps: 100 } }],
        portQos: [
          { port: 'q1', minimum: { mbps: 500 } },
          { port: 'q2', minimum: { mbps: 450 } },
        ],
      },
      path: 'uplinks[0].capacityMbps',
      message: /sum to 1050 Mbit\/s, above the capacity of 1000/,
    },
    {
      name: 'weight and absolute on one uplink',
      doc: {
        uplinks: [uplink],
        portQos: [
          { port: 'q1', minimum: { weight: 1 } },
          { port: 'q2', minimum: { mbps: 10 } },
        ],
      },
      path: 'portQos[1].minimum',
      message: /one mode per uplink/,
    },
    {
      name: 'minimum above the own cap',
      doc: {
        uplinks: [uplink],
        portQos: [{ port: 'q1', minimum: { mbps: 200 }, maximum: { outbound: { mbps: 100 } } }],
      },
      path: 'portQos[0].minimum.mbps',
      message: /above the port's outbound maximum/,
    },
    {
      name: 'outbound shaping without an uplink',
      doc: { portQos: [{ port: 'q1', maximum: { outbound: { mbps: 10 } } }] },
      path: 'portQos[0].maximum.outbound',
      message: /no uplinks entry/,
    },
    {
      name: 'uplink that carries no provider address',
      doc: { uplinks: [{ ...uplink, interface: 'eth9' }] },
      path: 'uplinks[0].interface',
      message: /carries no provider address/,
    },
    {
      name: 'two QoS entries for one port',
      doc: {
        uplinks: [uplink],
        portQos: [
          { port: 'q1', maximum: { inbound: { mbps: 5 } } },
          { port: 'q1', maximum: { inbound: { mbps: 6 } } },
        ],
      },
      path: 'portQos[1].port',
      message: /already has QoS at portQos\[0\]/,
    },
    {
      name: 'duplicate class name',
      doc: {
        uplinks: [uplink],
        portQos: [
          {
            port: 'q1',
            classCaps: [
              { name: 'inet', remotePrefixes: ['0.0.0.0/0'], mbps: 5 },
              { name: 'inet', remotePrefixes: ['::/0'], mbps: 5 },
            ],
          },
        ],
      },
      path: 'portQos[0].classCaps[1].name',
      message: /already at classCaps\[0\]/,
    },
    {
      name: 'bad class prefix',
      doc: {
        uplinks: [uplink],
        portQos: [
          { port: 'q1', classCaps: [{ name: 'x', remotePrefixes: ['10.0.0.1/8'], mbps: 5 }] },
        ],
      },
      path: 'portQos[0].classCaps[0].remotePrefixes[0]',
      message: /./,
    },
    {
      name: 'unknown field',
      doc: { uplinks: [{ ...uplink, speed: 3 }] },
      path: 'uplinks[0].speed',
      message: /./,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}, naming ${c.path}`, () => {
      const found = issues({ ...base(), ...c.doc });
      const hit = found.find((i) => i.path === c.path);
      expect(hit, JSON.stringify(found)).toBeDefined();
      expect(hit?.message).toMatch(c.message);
    });
  }
});

describe('tenant QoS validation', () => {
  it('refuses an unknown routing domain and duplicate class names', () => {
    const found = issues({
      ...base(),
      tenantQos: [
        {
          routingDomain: 'nope',
          classCaps: [{ name: 'a', remotePrefixes: ['0.0.0.0/0'], mbps: 1 }],
        },
        {
          routingDomain: 'qt',
          classCaps: [
            { name: 'a', remotePrefixes: ['0.0.0.0/0'], mbps: 1 },
            { name: 'a', remotePrefixes: ['::/0'], mbps: 2 },
          ],
        },
      ],
    });
    expect(found).toEqual(
      expect.arrayContaining([
        { path: 'tenantQos[0].routingDomain', message: 'routing domain "nope" is not defined' },
        {
          path: 'tenantQos[1].classCaps[1].name',
          message: 'class "a" is already at classCaps[0]',
        },
      ]),
    );
    const zero = issues({
      ...base(),
      tenantQos: [
        { routingDomain: 'qt', classCaps: [{ name: 'a', remotePrefixes: ['::/0'], mbps: 0 }] },
      ],
    });
    expect(zero).toEqual([
      { path: 'tenantQos[0].classCaps[0].mbps', message: expect.stringMatching(/above 0/) },
    ]);
  });
});
