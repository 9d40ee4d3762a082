// Receive steering in the policy: portSteering entries are validated with the rest of the
// document (each problem names its field), and compiled per host against the host's online CPUs
// (a CPU the host lacks is refused, naming the field; nothing of the policy is applied then).

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  CompileError,
  compileSteering,
  formatCpuList,
  parseCpuList,
} from '../../agent/compiler/index.js';
import { parsePolicy, PolicyError, type PolicyIssue } from '../../agent/policy/index.js';

const DEMO_PATH = new URL('../../scripts/lab/demo-policy.yaml', import.meta.url).pathname;
const DEMO_TEXT = readFileSync(DEMO_PATH, 'utf8');

/* eslint-disable @typescript-eslint/no-explicit-any -- the cases build raw documents */
const withSteering = (entries: any[]): any => {
  const d = parseYaml(DEMO_TEXT);
  d.portSteering = entries;
  return d;
};

function issuesOf(input: unknown): PolicyIssue[] {
  try {
    parsePolicy(input);
  } catch (e) {
    if (e instanceof PolicyError) return [...e.issues];
    throw e;
  }
  return [];
}

describe('portSteering validation', () => {
  it('accepts fixed, spread and auto entries (auto without a set)', () => {
    const p = parsePolicy(
      withSteering([
        { port: 'blue-vm1', mode: 'fixed', cpus: [1] },
        { port: 'red-vm1', mode: 'spread', cpus: [0, 1] },
        { port: 'blue-vm2', mode: 'auto' },
        { port: 'red-vm2', mode: 'auto', cpus: [1, 0] },
      ]),
    );
    expect(p.portSteering).toHaveLength(4);
  });

  it('defaults to no steering', () => {
    expect(parsePolicy(parseYaml(DEMO_TEXT)).portSteering).toEqual([]);
  });

  const cases: Array<{ name: string; entries: any[]; issues: PolicyIssue[] }> = [
    {
      name: 'unknown port',
      entries: [{ port: 'nope', mode: 'fixed', cpus: [0] }],
      issues: [{ path: 'portSteering[0].port', message: 'port "nope" is not defined' }],
    },
    {
      name: 'empty set (fixed)',
      entries: [{ port: 'blue-vm1', mode: 'fixed', cpus: [] }],
      issues: [{ path: 'portSteering[0].cpus', message: 'is an empty set; name at least one CPU' }],
    },
    {
      name: 'empty set (spread)',
      entries: [{ port: 'blue-vm1', mode: 'spread', cpus: [] }],
      issues: [{ path: 'portSteering[0].cpus', message: 'is an empty set; name at least one CPU' }],
    },
    {
      name: 'empty set (auto)',
      entries: [{ port: 'blue-vm1', mode: 'auto', cpus: [] }],
      issues: [
        {
          path: 'portSteering[0].cpus',
          message: 'is an empty set; leave it out to let the agent use every online CPU',
        },
      ],
    },
    {
      name: 'no set for spread',
      entries: [{ port: 'blue-vm1', mode: 'spread' }],
      issues: [{ path: 'portSteering[0].cpus', message: 'is required for mode spread' }],
    },
    {
      name: 'two CPUs for fixed',
      entries: [{ port: 'blue-vm1', mode: 'fixed', cpus: [0, 1] }],
      issues: [
        {
          path: 'portSteering[0].cpus',
          message: 'mode fixed takes exactly one CPU, got 2; use mode spread for a set',
        },
      ],
    },
    {
      name: 'a CPU twice',
      entries: [{ port: 'blue-vm1', mode: 'spread', cpus: [0, 1, 0] }],
      issues: [
        { path: 'portSteering[0].cpus[2]', message: 'CPU 0 is already in the set at cpus[0]' },
      ],
    },
    {
      name: 'negative, fractional and too large CPU numbers',
      entries: [{ port: 'blue-vm1', mode: 'spread', cpus: [-1, 1.5, 256] }],
      issues: [
        { path: 'portSteering[0].cpus[0]', message: '-1 is not a CPU number (an integer 0..255)' },
        { path: 'portSteering[0].cpus[1]', message: '1.5 is not a CPU number (an integer 0..255)' },
        { path: 'portSteering[0].cpus[2]', message: '256 is not a CPU number (an integer 0..255)' },
      ],
    },
    {
      name: 'more than 16 CPUs',
      entries: [{ port: 'blue-vm1', mode: 'spread', cpus: [...Array(17).keys()] }],
      issues: [{ path: 'portSteering[0].cpus', message: 'holds 17 CPUs; at most 16' }],
    },
    {
      name: 'unknown mode',
      entries: [{ port: 'blue-vm1', mode: 'rss', cpus: [0] }],
      issues: [
        {
          path: 'portSteering[0].mode',
          message: expect.stringContaining('fixed') as unknown as string,
        },
      ],
    },
    {
      name: 'two entries for one port',
      entries: [
        { port: 'blue-vm1', mode: 'fixed', cpus: [0] },
        { port: 'blue-vm1', mode: 'fixed', cpus: [1] },
      ],
      issues: [
        {
          path: 'portSteering[1].port',
          message: 'port "blue-vm1" already has steering at portSteering[0]',
        },
      ],
    },
    {
      name: 'unknown field',
      entries: [{ port: 'blue-vm1', mode: 'fixed', cpus: [0], queue: 3 }],
      issues: [{ path: 'portSteering[0].queue', message: 'unknown field' }],
    },
  ];
  it.each(cases)('rejects $name, naming the field', (c) => {
    expect(issuesOf(withSteering(c.entries))).toEqual(c.issues);
  });
});

describe('compileSteering (per host, against its online CPUs)', () => {
  const facts = new Map([
    ['vm-blue1', { ifindex: 11, mac: '02:00:00:b1:00:11', mtu: 1458 }],
    ['vm-red1', { ifindex: 12, mac: '02:00:00:4e:00:11', mtu: 1458 }],
  ]);
  const policy = parsePolicy(
    withSteering([
      { port: 'blue-vm1', mode: 'spread', cpus: [1, 0] },
      { port: 'red-vm1', mode: 'auto' },
      { port: 'blue-vm2', mode: 'fixed', cpus: [3] }, // on hv2: not this host's business
    ]),
  );

  it("compiles this host's entries with their ifindexes; auto gets every online CPU", () => {
    const c = compileSteering(policy, 'hv1', facts, [0, 1]);
    expect([...c.keys()]).toEqual(['blue-vm1', 'red-vm1']);
    expect(c.get('blue-vm1')).toMatchObject({ ifindex: 11, mode: 'spread', cpus: [1, 0] });
    expect(c.get('red-vm1')).toMatchObject({ ifindex: 12, mode: 'auto', cpus: [0, 1] });
    // The seed is a stable function of the port name: the same on every host and restart.
    expect(c.get('blue-vm1')!.seed).toBe(
      compileSteering(policy, 'hv1', facts, [0, 1]).get('blue-vm1')!.seed,
    );
    expect(c.get('blue-vm1')!.seed).not.toBe(c.get('red-vm1')!.seed);
  });

  it('refuses CPUs the host does not have, naming each', () => {
    let err: unknown;
    try {
      compileSteering(
        policy,
        'hv2',
        new Map([['vm-blue2', { ifindex: 5, mac: '02:00:00:b1:00:12', mtu: 1458 }]]),
        [0, 1],
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CompileError);
    expect((err as CompileError).issues).toEqual([
      {
        path: 'portSteering[2].cpus[0]',
        message: 'CPU 3 does not exist or is offline on host hv2 (online: 0-1)',
      },
    ]);
  });

  it('parses and prints kernel CPU lists', () => {
    expect(parseCpuList('0-3,6,8-9\n')).toEqual([0, 1, 2, 3, 6, 8, 9]);
    expect(formatCpuList([9, 0, 1, 2, 6])).toBe('0-2,6,9');
    expect(() => parseCpuList('0-x')).toThrow(/not a CPU list/);
  });
});
