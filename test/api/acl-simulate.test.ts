// Simulate (the RPC behind `tenetctl simulate`) applies the host's port ACLs through the
// reference model: a packet a rule denies is reported dropped with reason acl_deny, at the
// sender's outbound ACL and at a local receiver's inbound ACL; what no rule covers goes on.

import { afterAll, beforeAll, expect, it, describe } from 'vitest';
import { parse } from 'yaml';
import type { UnderlayNh } from '../../agent/abi/generated.js';
import type { InterfaceFacts } from '../../agent/compiler/index.js';
import { demoPolicyText, startTestApi, type TestApi } from './helpers.js';

type Plain = Record<string, unknown>;

const FACTS: Record<string, InterfaceFacts> = {
  eth0: { ifindex: 2, mac: '02:00:00:00:0e:01', mtu: 1500 },
  'vm-blue1': { ifindex: 10, mac: 'fe:00:00:00:00:0a', mtu: 1500 },
  'vm-red1': { ifindex: 11, mac: 'fe:00:00:00:00:0b', mtu: 1500 },
};
const UNDERLAY = new Map<number, UnderlayNh>([
  [0xc6120002, { mac: Uint8Array.from([2, 0, 0, 0, 0x0e, 2]) }],
]);

function aclPolicyText(): string {
  const doc = parse(demoPolicyText()) as Plain;
  doc.portAcls = [
    {
      port: 'blue-vm1',
      rules: [
        {
          name: 'no-ping-vm2',
          direction: 'outbound',
          action: 'deny',
          protocol: 'icmp',
          remotePrefix: '198.19.1.12/32',
        },
      ],
    },
  ];
  return JSON.stringify(doc);
}

describe('Simulate with port ACLs', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ facts: () => FACTS, underlay: () => UNDERLAY });
    await api.client.policy('Apply', { text: aclPolicyText() });
  });
  afterAll(async () => {
    await api.close();
  });

  it('reports the ACL drop for a denied packet and forwards an allowed one', async () => {
    const denied = (await api.client.agent('Simulate', {
      port: 'blue-vm1',
      description: { dstIp: '198.19.1.12', protocol: 'PACKET_PROTOCOL_ICMP' },
    })) as Plain;
    expect(denied.dropReason).toBe('acl_deny');
    const udp = (await api.client.agent('Simulate', {
      port: 'blue-vm1',
      description: { dstIp: '198.19.1.12', protocol: 'PACKET_PROTOCOL_UDP', dstPort: 53 },
    })) as Plain;
    expect(udp.dropReason ?? '').toBe('');
    expect(udp.outputInterface).toBe('eth0');
  });
});
