// The policy model: the demo document is valid, and every validation rule rejects the whole
// document with issues naming the field path. Each case mutates a copy of the demo policy
// (scripts/lab/demo-policy.yaml) and lists exactly the issues expected.
//
// Demo indices used below:
//   providerAddresses  [0] hv1 198.18.0.1 eth0, [1] hv2 198.18.0.2 eth0
//   routingDomains     [0] blue: [0] blue-web 5001, [1] blue-db 5002; [1] red: [0] red-web 6001
//   ports              [0] blue-vm1 hv1, [1] red-vm1 hv1, [2] blue-vm2 hv2, [3] red-vm2 hv2,
//                      [4] blue-db1 hv2
//   lookupRecords      [0,1] blue-vm1, [2,3] blue-vm2, [4,5] blue-db1, [6,7] red-vm1, [8,9] red-vm2
//   customerRoutes     [0] blue 198.19.100.0/24 via 198.19.2.21, [1] its IPv6 twin

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  loadPolicyFile,
  parsePolicy,
  PolicyError,
  type PolicyIssue,
} from '../../agent/policy/index.js';

const DEMO_PATH = new URL('../../scripts/lab/demo-policy.yaml', import.meta.url).pathname;
const DEMO_TEXT = readFileSync(DEMO_PATH, 'utf8');

/* eslint-disable @typescript-eslint/no-explicit-any -- the cases mutate raw documents */
type Doc = any;
const demo = (): Doc => parseYaml(DEMO_TEXT);

function issuesOf(input: unknown): PolicyIssue[] {
  try {
    parsePolicy(input);
  } catch (e) {
    if (e instanceof PolicyError) return [...e.issues];
    throw e;
  }
  return [];
}

const BLUE_WEB = 'virtual subnet "blue-web" (VSID 5001): 198.19.1.0/24, fd00:1:1::/64';

interface Case {
  name: string;
  mutate: (d: Doc) => void;
  issues: PolicyIssue[];
}

const cases: Case[] = [
  // Field formats and shape.
  {
    name: 'VSID above the range',
    mutate: (d) => (d.routingDomains[0].virtualSubnets[1].vsid = 17000000),
    issues: [
      {
        path: 'routingDomains[0].virtualSubnets[1].vsid',
        message: '17000000 is outside 4096..16777214',
      },
    ],
  },
  {
    name: 'VSID in the reserved low range',
    mutate: (d) => (d.lookupRecords[0].vsid = 4095),
    issues: [{ path: 'lookupRecords[0].vsid', message: '4095 is outside 4096..16777214' }],
  },
  {
    name: 'VSID 0xffffff is reserved',
    mutate: (d) => (d.ports[0].vsid = 0xffffff),
    issues: [{ path: 'ports[0].vsid', message: '16777215 is outside 4096..16777214' }],
  },
  {
    name: 'VSID not an integer',
    mutate: (d) => (d.ports[0].vsid = 5001.5),
    issues: [{ path: 'ports[0].vsid', message: '5001.5 is not an integer' }],
  },
  {
    name: 'VSID as a string',
    mutate: (d) => (d.ports[0].vsid = '5001'),
    issues: [{ path: 'ports[0].vsid', message: 'expected a number, got the string "5001"' }],
  },
  {
    name: 'malformed MAC',
    mutate: (d) => (d.ports[0].mac = '02:00:00:b1:00'),
    issues: [
      {
        path: 'ports[0].mac',
        message: '"02:00:00:b1:00" is not a MAC address (six hex octets like 02:00:5e:10:00:01)',
      },
    ],
  },
  {
    name: 'multicast MAC',
    mutate: (d) => (d.lookupRecords[9].mac = '33:33:00:00:00:01'),
    issues: [
      {
        path: 'lookupRecords[9].mac',
        message: '33:33:00:00:00:01 is a multicast MAC; an adapter needs a unicast MAC',
      },
    ],
  },
  {
    name: 'all-zero MAC',
    mutate: (d) => (d.ports[1].mac = '00:00:00:00:00:00'),
    issues: [{ path: 'ports[1].mac', message: '00:00:00:00:00:00 is not a usable MAC' }],
  },
  {
    name: 'malformed CA',
    mutate: (d) => (d.ports[0].addresses[0] = '198.19.1.300'),
    issues: [{ path: 'ports[0].addresses[0]', message: '"198.19.1.300" is not an IP address' }],
  },
  {
    name: 'IPv4 shorthand is not accepted',
    mutate: (d) => (d.lookupRecords[0].ca = '198.19.267'),
    issues: [{ path: 'lookupRecords[0].ca', message: '"198.19.267" is not an IP address' }],
  },
  {
    name: 'IPv6 zone IDs are not CAs',
    mutate: (d) => (d.lookupRecords[1].ca = 'fe80::1%eth0'),
    issues: [{ path: 'lookupRecords[1].ca', message: '"fe80::1%eth0" is not an IP address' }],
  },
  {
    name: 'IPv6 PA (IPv4 only for now)',
    mutate: (d) => (d.providerAddresses[0].address = 'fd00::1'),
    issues: [{ path: 'providerAddresses[0].address', message: 'fd00::1 is not an IPv4 address' }],
  },
  {
    name: 'IPv6 gateway in the ipv4 field',
    mutate: (d) => (d.routingDomains[0].virtualSubnets[0].gateway.ipv4 = 'fd00:1:1::1'),
    issues: [
      {
        path: 'routingDomains[0].virtualSubnets[0].gateway.ipv4',
        message: 'fd00:1:1::1 is not an IPv4 address',
      },
    ],
  },
  {
    name: 'malformed CIDR',
    mutate: (d) => (d.routingDomains[1].virtualSubnets[0].prefixes[0] = '198.19.1.0'),
    issues: [
      {
        path: 'routingDomains[1].virtualSubnets[0].prefixes[0]',
        message: '"198.19.1.0" is not a CIDR prefix (address/length)',
      },
    ],
  },
  {
    name: 'CIDR longer than the family allows',
    mutate: (d) => (d.routingDomains[1].virtualSubnets[0].prefixes[1] = 'fd00:1:1::/129'),
    issues: [
      {
        path: 'routingDomains[1].virtualSubnets[0].prefixes[1]',
        message: 'fd00:1:1::/129: prefix length 129 is longer than 128, the IPv6 maximum',
      },
    ],
  },
  {
    name: 'CIDR with host bits',
    mutate: (d) => (d.customerRoutes[0].prefix = '198.19.100.7/24'),
    issues: [
      {
        path: 'customerRoutes[0].prefix',
        message: '198.19.100.7/24 has host bits set (did you mean 198.19.100.0/24?)',
      },
    ],
  },
  {
    name: 'port interface name too long',
    mutate: (d) => (d.ports[0].interface = 'vm-blue1-too-long'),
    issues: [
      {
        path: 'ports[0].interface',
        message: '"vm-blue1-too-long" is 17 characters; Linux interface names have at most 15',
      },
    ],
  },
  {
    name: 'PA interface name too long',
    mutate: (d) => (d.providerAddresses[1].interface = 'enp0s31f6-uplink0'),
    issues: [
      {
        path: 'providerAddresses[1].interface',
        message: '"enp0s31f6-uplink0" is 17 characters; Linux interface names have at most 15',
      },
    ],
  },
  {
    name: 'interface name with a slash',
    mutate: (d) => (d.ports[0].interface = 'vm/blue1'),
    issues: [
      { path: 'ports[0].interface', message: '"vm/blue1" is not a valid Linux interface name' },
    ],
  },
  {
    name: 'bad name',
    mutate: (d) => (d.routingDomains[1].name = 'red tenant'),
    issues: [
      {
        path: 'routingDomains[1].name',
        message:
          "\"red tenant\" is not a valid name (1..63 letters, digits, '_', '.', '-', starting with a letter or digit)",
      },
    ],
  },
  {
    name: 'missing field',
    mutate: (d) => delete d.ports[2].mac,
    issues: [{ path: 'ports[2].mac', message: 'is required' }],
  },
  {
    name: 'unknown field (a typo)',
    mutate: (d) => {
      d.ports[2].vsids = d.ports[2].vsid;
    },
    issues: [{ path: 'ports[2].vsids', message: 'unknown field' }],
  },
  {
    name: 'a port without addresses',
    mutate: (d) => (d.ports[3].addresses = []),
    issues: [{ path: 'ports[3].addresses', message: 'needs at least 1 entry' }],
  },
  {
    name: 'a list where a mapping belongs',
    mutate: (d) => (d.routingDomains[0].virtualSubnets[0].gateway = ['198.19.1.1']),
    issues: [
      {
        path: 'routingDomains[0].virtualSubnets[0].gateway',
        message: 'expected a mapping, got a list',
      },
    ],
  },
  {
    name: 'PA prefix length out of range',
    mutate: (d) => (d.providerAddresses[0].prefixLength = 33),
    issues: [{ path: 'providerAddresses[0].prefixLength', message: '33 is outside 1..32' }],
  },

  // Virtual subnets and routing domains.
  {
    name: 'VSID duplicated across routing domains',
    mutate: (d) =>
      d.routingDomains.push({
        name: 'green',
        virtualSubnets: [{ name: 'green-web', vsid: 5002, prefixes: ['198.19.50.0/24'] }],
      }),
    issues: [
      {
        path: 'routingDomains[2].virtualSubnets[0].vsid',
        message:
          'VSID 5002 is already used by routingDomains[0].virtualSubnets[1] ("blue-db" in routing domain "blue")',
      },
    ],
  },
  {
    name: 'duplicate routing domain name',
    mutate: (d) =>
      d.routingDomains.push({
        name: 'blue',
        virtualSubnets: [{ name: 'x', vsid: 7001, prefixes: ['198.19.70.0/24'] }],
      }),
    issues: [
      {
        path: 'routingDomains[2].name',
        message: 'routing domain "blue" is already defined at routingDomains[0]',
      },
    ],
  },
  {
    name: 'duplicate virtual subnet name in a domain',
    mutate: (d) =>
      d.routingDomains[0].virtualSubnets.push({
        name: 'blue-db',
        vsid: 5003,
        prefixes: ['198.19.3.0/24'],
      }),
    issues: [
      {
        path: 'routingDomains[0].virtualSubnets[2].name',
        message:
          'virtual subnet "blue-db" is already defined in this routing domain at routingDomains[0].virtualSubnets[1]',
      },
    ],
  },
  {
    name: 'overlapping prefixes of two subnets of one domain',
    mutate: (d) => d.routingDomains[0].virtualSubnets[1].prefixes.push('198.19.1.128/25'),
    issues: [
      {
        path: 'routingDomains[0].virtualSubnets[1].prefixes[2]',
        message:
          '198.19.1.128/25 overlaps 198.19.1.0/24 of virtual subnet "blue-web" (routingDomains[0].virtualSubnets[0].prefixes[0]) in routing domain "blue"',
      },
    ],
  },
  {
    name: 'overlapping prefixes within one subnet',
    mutate: (d) => d.routingDomains[1].virtualSubnets[0].prefixes.push('fd00:1::/32'),
    issues: [
      {
        path: 'routingDomains[1].virtualSubnets[0].prefixes[2]',
        message:
          'fd00:1::/32 overlaps fd00:1:1::/64 of virtual subnet "red-web" (routingDomains[1].virtualSubnets[0].prefixes[1]) in routing domain "red"',
      },
    ],
  },
  {
    name: 'gateway outside the subnet',
    mutate: (d) => (d.routingDomains[0].virtualSubnets[0].gateway.ipv4 = '198.19.9.1'),
    issues: [
      {
        path: 'routingDomains[0].virtualSubnets[0].gateway.ipv4',
        message:
          '198.19.9.1 is not inside any IPv4 prefix of virtual subnet "blue-web" (198.19.1.0/24, fd00:1:1::/64)',
      },
    ],
  },
  {
    name: 'IPv6 gateway for a subnet without IPv6',
    mutate: (d) =>
      d.routingDomains[0].virtualSubnets.push({
        name: 'blue-v4only',
        vsid: 5003,
        prefixes: ['198.19.3.0/24'],
        gateway: { ipv6: 'fd00:1:3::1' },
      }),
    issues: [
      {
        path: 'routingDomains[0].virtualSubnets[2].gateway.ipv6',
        message:
          'fd00:1:3::1 is not inside any IPv6 prefix of virtual subnet "blue-v4only" (198.19.3.0/24)',
      },
    ],
  },

  // Provider addresses.
  {
    name: 'one PA on two hosts',
    mutate: (d) => {
      d.providerAddresses.push({ host: 'hv2', address: '198.18.0.1', interface: 'eth1' });
    },
    issues: [
      {
        path: 'providerAddresses[2].address',
        message: '198.18.0.1 is already the provider address of host hv1 (providerAddresses[0])',
      },
    ],
  },
  {
    name: 'PA that no host can own',
    mutate: (d) => {
      d.providerAddresses.push({ host: 'hv1', address: '224.0.0.5', interface: 'eth1' });
    },
    issues: [
      {
        path: 'providerAddresses[2].address',
        message: '224.0.0.5 is not a unicast address a host can own',
      },
    ],
  },
  {
    name: 'underlay next hop off-link',
    mutate: (d) => (d.providerAddresses[0].underlayNextHop = '198.18.1.254'),
    issues: [
      {
        path: 'providerAddresses[0].underlayNextHop',
        message: '198.18.1.254 is not on-link: outside 198.18.0.1/24',
      },
    ],
  },
  {
    name: 'underlay next hop is the PA itself',
    mutate: (d) => (d.providerAddresses[0].underlayNextHop = '198.18.0.1'),
    issues: [
      {
        path: 'providerAddresses[0].underlayNextHop',
        message: '198.18.0.1 is the provider address itself',
      },
    ],
  },

  // Lookup records.
  {
    name: 'CA outside its subnet',
    mutate: (d) =>
      d.lookupRecords.push({
        vsid: 5001,
        ca: '198.19.9.99',
        mac: '02:00:00:b1:00:99',
        pa: '198.18.0.2',
      }),
    issues: [
      {
        path: 'lookupRecords[10].ca',
        message: `198.19.9.99 is outside the prefixes of ${BLUE_WEB}`,
      },
    ],
  },
  {
    name: 'duplicate CA in a VSID',
    mutate: (d) =>
      d.lookupRecords.push({
        vsid: 5001,
        ca: '198.19.1.11',
        mac: '02:00:00:b1:00:99',
        pa: '198.18.0.2',
      }),
    issues: [
      {
        path: 'lookupRecords[10].ca',
        message: '198.19.1.11 in VSID 5001 already has a lookup record (lookupRecords[0])',
      },
    ],
  },
  {
    name: 'duplicate CA spelled differently (canonical forms compare)',
    mutate: (d) =>
      d.lookupRecords.push({
        vsid: 5001,
        ca: 'FD00:1:1:0:0:0:0:11',
        mac: '02:00:00:b1:00:99',
        pa: '198.18.0.2',
      }),
    issues: [
      {
        path: 'lookupRecords[10].ca',
        message: 'fd00:1:1::11 in VSID 5001 already has a lookup record (lookupRecords[1])',
      },
    ],
  },
  {
    name: 'record for an undefined VSID',
    mutate: (d) =>
      d.lookupRecords.push({
        vsid: 7000,
        ca: '198.19.1.50',
        mac: '02:00:00:b1:00:50',
        pa: '198.18.0.1',
      }),
    issues: [
      { path: 'lookupRecords[10].vsid', message: 'VSID 7000 is not defined by any routing domain' },
    ],
  },
  {
    name: 'record PA that is not a provider address',
    mutate: (d) =>
      d.lookupRecords.push({
        vsid: 5001,
        ca: '198.19.1.50',
        mac: '02:00:00:b1:00:50',
        pa: '198.18.0.9',
      }),
    issues: [
      { path: 'lookupRecords[10].pa', message: '198.18.0.9 is not a provider address of any host' },
    ],
  },
  {
    name: 'record for the gateway address',
    mutate: (d) =>
      d.lookupRecords.push({
        vsid: 5002,
        ca: 'fd00:1:2::1',
        mac: '02:00:00:b2:00:01',
        pa: '198.18.0.1',
      }),
    issues: [
      {
        path: 'lookupRecords[10].ca',
        message: 'fd00:1:2::1 is the gateway address of VSID 5002; the distributed router owns it',
      },
    ],
  },
  {
    name: 'record with the gateway MAC',
    mutate: (d) =>
      d.lookupRecords.push({
        vsid: 5001,
        ca: '198.19.1.50',
        mac: '02:74:6e:00:13:89',
        pa: '198.18.0.1',
      }),
    issues: [
      {
        path: 'lookupRecords[10].mac',
        message: '02:74:6e:00:13:89 is the gateway MAC of VSID 5001',
      },
    ],
  },
  {
    name: 'one MAC for adapters on two hosts',
    mutate: (d) => {
      d.lookupRecords.push({
        vsid: 5001,
        ca: '198.19.1.50',
        mac: '02:00:00:b1:00:50',
        pa: '198.18.0.1',
      });
      d.lookupRecords.push({
        vsid: 5001,
        ca: '198.19.1.51',
        mac: '02:00:00:b1:00:50',
        pa: '198.18.0.2',
      });
    },
    issues: [
      {
        path: 'lookupRecords[11].mac',
        message:
          '02:00:00:b1:00:50 already identifies an adapter on PA 198.18.0.1 in VSID 5001 (lookupRecords[10]); a MAC names one adapter',
      },
    ],
  },
  {
    name: "a port's MAC on a CA the port does not have",
    mutate: (d) =>
      d.lookupRecords.push({
        vsid: 5001,
        ca: '198.19.1.50',
        mac: '02:00:00:b1:00:11',
        pa: '198.18.0.1',
      }),
    issues: [
      {
        path: 'lookupRecords[10].mac',
        message:
          '02:00:00:b1:00:11 is the MAC of port "blue-vm1" (ports[0]) in VSID 5001, which does not have address 198.19.1.50',
      },
    ],
  },

  // Ports.
  {
    name: 'port CA without a lookup record',
    mutate: (d) => d.lookupRecords.splice(1, 1),
    issues: [
      { path: 'ports[0].addresses[1]', message: 'fd00:1:1::11 has no lookup record in VSID 5001' },
    ],
  },
  {
    name: 'port whose record has another MAC',
    mutate: (d) => (d.lookupRecords[1].mac = '02:00:00:b1:00:99'),
    issues: [
      {
        path: 'ports[0].addresses[1]',
        message:
          "the lookup record of fd00:1:1::11 (lookupRecords[1]) has MAC 02:00:00:b1:00:99, not the port's MAC 02:00:00:b1:00:11",
      },
    ],
  },
  {
    name: "port whose record points at another host's PA",
    mutate: (d) => (d.lookupRecords[1].pa = '198.18.0.2'),
    issues: [
      {
        path: 'lookupRecords[1].mac',
        message:
          '02:00:00:b1:00:11 already identifies an adapter on PA 198.18.0.1 in VSID 5001 (lookupRecords[0]); a MAC names one adapter',
      },
      {
        path: 'ports[0].addresses[1]',
        message:
          'the lookup record of fd00:1:1::11 (lookupRecords[1]) points at PA 198.18.0.2, which is not a provider address of host hv1 (198.18.0.1)',
      },
    ],
  },
  {
    name: 'port whose records name two PAs of its host',
    mutate: (d) => {
      d.providerAddresses.push({ host: 'hv1', address: '198.18.0.3', interface: 'eth1' });
      d.lookupRecords[7].pa = '198.18.0.3';
    },
    issues: [
      {
        path: 'lookupRecords[7].mac',
        message:
          '02:00:00:4e:00:11 already identifies an adapter on PA 198.18.0.1 in VSID 6001 (lookupRecords[6]); a MAC names one adapter',
      },
      {
        path: 'ports[1].addresses[1]',
        message:
          'the lookup record of fd00:1:1::11 (lookupRecords[7]) points at PA 198.18.0.3 but that of ports[1].addresses[0] at 198.18.0.1; a port sends from one PA',
      },
    ],
  },
  {
    name: 'port CA outside its subnet',
    mutate: (d) => d.ports[0].addresses.push('198.19.2.50'),
    issues: [
      {
        path: 'ports[0].addresses[2]',
        message: `198.19.2.50 is outside the prefixes of ${BLUE_WEB}`,
      },
    ],
  },
  {
    name: 'port CA listed twice',
    mutate: (d) => d.ports[0].addresses.push('198.19.1.11'),
    issues: [{ path: 'ports[0].addresses[2]', message: '198.19.1.11 is listed twice' }],
  },
  {
    name: 'port using the gateway address',
    mutate: (d) => d.ports[4].addresses.push('198.19.2.1'),
    issues: [
      {
        path: 'ports[4].addresses[2]',
        message: '198.19.2.1 is the gateway address of VSID 5002; the distributed router owns it',
      },
    ],
  },
  {
    name: 'port in an undefined VSID',
    mutate: (d) =>
      d.ports.push({
        name: 'ghost',
        host: 'hv1',
        interface: 'vm-ghost',
        mac: '02:00:00:00:00:99',
        vsid: 7000,
        addresses: ['198.19.1.99'],
      }),
    issues: [{ path: 'ports[5].vsid', message: 'VSID 7000 is not defined by any routing domain' }],
  },
  {
    name: 'port on a host without a PA',
    mutate: (d) => {
      d.ports.push({
        name: 'blue-vm3',
        host: 'hv3',
        interface: 'vm-blue3',
        mac: '02:00:00:b1:00:13',
        vsid: 5001,
        addresses: ['198.19.1.13'],
      });
      d.lookupRecords.push({
        vsid: 5001,
        ca: '198.19.1.13',
        mac: '02:00:00:b1:00:13',
        pa: '198.18.0.2',
      });
    },
    issues: [{ path: 'ports[5].host', message: 'host "hv3" has no provider address' }],
  },
  {
    name: 'two ports with one MAC in a VSID (MAC clash)',
    mutate: (d) => {
      d.ports.push({
        name: 'blue-vm3',
        host: 'hv1',
        interface: 'vm-blue3',
        mac: '02:00:00:b1:00:11',
        vsid: 5001,
        addresses: ['198.19.1.13'],
      });
      d.lookupRecords.push({
        vsid: 5001,
        ca: '198.19.1.13',
        mac: '02:00:00:b1:00:11',
        pa: '198.18.0.1',
      });
    },
    issues: [
      {
        path: 'ports[5].mac',
        message: '02:00:00:b1:00:11 is already the MAC of port "blue-vm1" (ports[0]) in VSID 5001',
      },
      {
        path: 'lookupRecords[10].mac',
        message:
          '02:00:00:b1:00:11 is the MAC of port "blue-vm1" (ports[0]) in VSID 5001, which does not have address 198.19.1.13',
      },
    ],
  },
  {
    name: 'one CA on two ports of a VSID',
    mutate: (d) =>
      d.ports.push({
        name: 'blue-vm3',
        host: 'hv1',
        interface: 'vm-blue3',
        mac: '02:00:00:b1:00:13',
        vsid: 5001,
        addresses: ['198.19.1.11'],
      }),
    issues: [
      {
        path: 'ports[5].addresses[0]',
        message: '198.19.1.11 in VSID 5001 is already an address of port "blue-vm1" (ports[0])',
      },
      {
        path: 'ports[5].addresses[0]',
        message:
          "the lookup record of 198.19.1.11 (lookupRecords[0]) has MAC 02:00:00:b1:00:11, not the port's MAC 02:00:00:b1:00:13",
      },
    ],
  },
  {
    name: 'two ports on one host interface',
    mutate: (d) => (d.ports[1].interface = 'vm-blue1'),
    issues: [
      {
        path: 'ports[1].interface',
        message: 'interface "vm-blue1" of host hv1 is already port "blue-vm1" (ports[0])',
      },
    ],
  },
  {
    name: "a port on the host's physical interface",
    mutate: (d) => (d.ports[2].interface = 'eth0'),
    issues: [
      {
        path: 'ports[2].interface',
        message: 'interface "eth0" of host hv2 is a provider address\'s physical interface',
      },
    ],
  },
  {
    name: 'duplicate port name',
    mutate: (d) => (d.ports[3].name = 'blue-vm2'),
    issues: [{ path: 'ports[3].name', message: 'port "blue-vm2" is already defined at ports[2]' }],
  },
  {
    name: 'port MTU below the IPv6 minimum on an IPv6 subnet',
    mutate: (d) => (d.ports[0].mtu = 1200),
    issues: [
      {
        path: 'ports[0].mtu',
        message: '1200 is below 1280, the IPv6 minimum, and VSID 5001 carries IPv6',
      },
    ],
  },
  {
    name: 'port with the gateway MAC',
    mutate: (d) => {
      d.ports[4].mac = '02:74:6e:00:13:8a';
      d.lookupRecords[4].mac = d.lookupRecords[5].mac = '02:74:6e:00:13:8a';
    },
    issues: [
      {
        path: 'lookupRecords[4].mac',
        message: '02:74:6e:00:13:8a is the gateway MAC of VSID 5002',
      },
      {
        path: 'lookupRecords[5].mac',
        message: '02:74:6e:00:13:8a is the gateway MAC of VSID 5002',
      },
      { path: 'ports[4].mac', message: '02:74:6e:00:13:8a is the gateway MAC of VSID 5002' },
    ],
  },

  // Customer routes.
  {
    name: 'route in an unknown routing domain',
    mutate: (d) => (d.customerRoutes[0].routingDomain = 'green'),
    issues: [
      { path: 'customerRoutes[0].routingDomain', message: 'routing domain "green" is not defined' },
    ],
  },
  {
    name: 'next hop outside the routing domain',
    mutate: (d) =>
      d.customerRoutes.push({
        routingDomain: 'red',
        prefix: '198.19.100.0/24',
        nextHop: '198.19.2.21',
      }),
    issues: [
      {
        path: 'customerRoutes[2].nextHop',
        message: '198.19.2.21 is not inside any virtual subnet of routing domain "red"',
      },
    ],
  },
  {
    name: 'next hop without a lookup record',
    mutate: (d) => (d.customerRoutes[0].nextHop = '198.19.2.99'),
    issues: [
      {
        path: 'customerRoutes[0].nextHop',
        message: '198.19.2.99 has no lookup record in VSID 5002',
      },
    ],
  },
  {
    name: 'next hop is the gateway',
    mutate: (d) => (d.customerRoutes[1].nextHop = 'fd00:1:2::1'),
    issues: [
      {
        path: 'customerRoutes[1].nextHop',
        message: 'fd00:1:2::1 is the gateway of VSID 5002, the distributed router itself',
      },
    ],
  },
  {
    name: 'next hop of the other family',
    mutate: (d) => (d.customerRoutes[0].nextHop = 'fd00:1:2::21'),
    issues: [
      {
        path: 'customerRoutes[0].nextHop',
        message: 'IPv6 next hop fd00:1:2::21 for an IPv4 prefix',
      },
    ],
  },
  {
    name: 'both targets',
    mutate: (d) => (d.customerRoutes[0].virtualSubnet = 5002),
    issues: [
      { path: 'customerRoutes[0]', message: 'give exactly one of virtualSubnet and nextHop' },
    ],
  },
  {
    name: 'no target',
    mutate: (d) => delete d.customerRoutes[0].nextHop,
    issues: [
      { path: 'customerRoutes[0]', message: 'give exactly one of virtualSubnet and nextHop' },
    ],
  },
  {
    name: 'on-link route to a subnet of another domain',
    mutate: (d) =>
      d.customerRoutes.push({
        routingDomain: 'red',
        prefix: '198.19.200.0/24',
        virtualSubnet: 5002,
      }),
    issues: [
      {
        path: 'customerRoutes[2].virtualSubnet',
        message: 'VSID 5002 belongs to routing domain "blue", not "red"',
      },
    ],
  },
  {
    name: 'on-link route to an undefined VSID',
    mutate: (d) =>
      d.customerRoutes.push({
        routingDomain: 'red',
        prefix: '198.19.200.0/24',
        virtualSubnet: 7000,
      }),
    issues: [
      {
        path: 'customerRoutes[2].virtualSubnet',
        message: 'VSID 7000 is not defined by any routing domain',
      },
    ],
  },
  {
    name: 'on-link IPv6 route to a subnet without IPv6',
    mutate: (d) => {
      d.routingDomains[1].virtualSubnets.push({
        name: 'red-v4only',
        vsid: 6002,
        prefixes: ['198.19.3.0/24'],
      });
      d.customerRoutes.push({ routingDomain: 'red', prefix: 'fd00:9::/64', virtualSubnet: 6002 });
    },
    issues: [
      {
        path: 'customerRoutes[2].virtualSubnet',
        message: 'virtual subnet "red-v4only" (VSID 6002) has no IPv6 prefix',
      },
    ],
  },
  {
    name: 'duplicate route',
    mutate: (d) =>
      d.customerRoutes.push({
        routingDomain: 'blue',
        prefix: '198.19.100.0/24',
        virtualSubnet: 5001,
      }),
    issues: [
      {
        path: 'customerRoutes[2].prefix',
        message: '198.19.100.0/24 in routing domain "blue" already has a route (customerRoutes[0])',
      },
    ],
  },
  {
    name: "route for a subnet's own on-link prefix",
    mutate: (d) =>
      d.customerRoutes.push({
        routingDomain: 'blue',
        prefix: 'fd00:1:1::/64',
        nextHop: 'fd00:1:2::21',
      }),
    issues: [
      {
        path: 'customerRoutes[2].prefix',
        message: 'fd00:1:1::/64 is the on-link prefix of virtual subnet "blue-web" (VSID 5001)',
      },
    ],
  },
];

describe('policy validation', () => {
  it('accepts the demo policy', async () => {
    const policy = await loadPolicyFile(DEMO_PATH);
    expect(policy.routingDomains.map((d) => d.name)).toEqual(['blue', 'red']);
    expect(policy.ports).toHaveLength(5);
    expect(policy.lookupRecords).toHaveLength(10);
  });

  it.each(cases)('rejects: $name', ({ mutate, issues }) => {
    const doc = demo();
    mutate(doc);
    expect(issuesOf(doc)).toEqual(issues);
  });

  it('collects independent problems from all over the document', () => {
    const doc = demo();
    doc.routingDomains[0].virtualSubnets[0].gateway.ipv4 = '198.19.9.1';
    doc.lookupRecords.push({
      vsid: 7000,
      ca: '198.19.1.50',
      mac: '02:00:00:b1:00:50',
      pa: '198.18.0.1',
    });
    doc.customerRoutes[0].routingDomain = 'green';
    doc.ports[1].interface = 'vm-blue1';
    expect(issuesOf(doc).map((i) => i.path)).toEqual([
      'routingDomains[0].virtualSubnets[0].gateway.ipv4',
      'lookupRecords[10].vsid',
      'ports[1].interface',
      'customerRoutes[0].routingDomain',
    ]);
  });

  it('collects every format problem of the document in one pass', () => {
    const doc = demo();
    doc.ports[0].mac = 'nope';
    doc.lookupRecords[3].ca = 'fd00::zz';
    doc.routingDomains[1].virtualSubnets[0].vsid = 1;
    expect(issuesOf(doc).map((i) => i.path)).toEqual([
      'routingDomains[1].virtualSubnets[0].vsid',
      'ports[0].mac',
      'lookupRecords[3].ca',
    ]);
  });

  it('lets tenants use the same CAs and the same MACs in different VSIDs', () => {
    const doc = demo();
    doc.ports[1].mac = doc.ports[0].mac; // red-vm1 takes blue-vm1's MAC
    doc.lookupRecords[6].mac = doc.lookupRecords[7].mac = doc.ports[0].mac;
    expect(issuesOf(doc)).toEqual([]);
  });

  it('lets one adapter have several CAs under one MAC', () => {
    const doc = demo();
    doc.ports[0].addresses.push('198.19.1.111');
    doc.lookupRecords.push({
      vsid: 5001,
      ca: '198.19.1.111',
      mac: '02:00:00:b1:00:11',
      pa: '198.18.0.1',
    });
    expect(issuesOf(doc)).toEqual([]);
  });

  it('accepts remote records that no port of the document backs', () => {
    const doc = demo();
    doc.lookupRecords.push({
      vsid: 6001,
      ca: '198.19.1.77',
      mac: '02:00:00:4e:00:77',
      pa: '198.18.0.2',
    });
    expect(issuesOf(doc)).toEqual([]);
  });

  it('canonicalises addresses, prefixes and MACs', () => {
    const doc = demo();
    doc.ports[0].mac = '02-00-00-B1-00-11';
    doc.ports[0].addresses[1] = 'FD00:1:1:0:0:0:0:11';
    doc.routingDomains[0].virtualSubnets[0].prefixes[1] = 'fd00:1:1:0::/64';
    const policy = parsePolicy(doc);
    expect(policy.ports[0]?.mac).toBe('02:00:00:b1:00:11');
    expect(policy.ports[0]?.addresses).toEqual(['198.19.1.11', 'fd00:1:1::11']);
    expect(policy.routingDomains[0]?.virtualSubnets[0]?.prefixes).toEqual([
      '198.19.1.0/24',
      'fd00:1:1::/64',
    ]);
  });

  it('parses JSON text as well as YAML', () => {
    const policy = parsePolicy(JSON.stringify(demo()));
    expect(policy.customerRoutes).toHaveLength(2);
  });

  it('treats omitted lists as empty', () => {
    expect(parsePolicy('{}')).toEqual({
      providerAddresses: [],
      routingDomains: [],
      ports: [],
      lookupRecords: [],
      customerRoutes: [],
      portAcls: [],
      portSteering: [],
      uplinks: [],
      portQos: [],
      tenantQos: [],
    });
  });

  it('reports YAML syntax errors and duplicate keys', () => {
    const [syntax] = issuesOf('ports: [\n  { name: a\n');
    expect(syntax?.path).toBe('');
    expect(syntax?.message).toMatch(/^YAML: /);
    const dup = issuesOf('ports: []\nports: []\n');
    expect(dup[0]?.message).toMatch(/^YAML: .*[Mm]ap keys must be unique/);
  });

  it('rejects an empty document and a document that is not a mapping', () => {
    expect(issuesOf('')).toEqual([{ path: '', message: 'the policy document is empty' }]);
    expect(issuesOf('- a\n- b\n')).toEqual([
      { path: '', message: 'expected a mapping, got a list' },
    ]);
  });

  it('names every problem in the error message, one per line', () => {
    const doc = demo();
    doc.routingDomains[0].virtualSubnets[1].vsid = 17000000;
    doc.ports[0].interface = 'vm-blue1-too-long';
    expect(() => parsePolicy(doc)).toThrow(
      [
        'policy rejected: 2 problems',
        '  routingDomains[0].virtualSubnets[1].vsid: 17000000 is outside 4096..16777214',
        '  ports[0].interface: "vm-blue1-too-long" is 17 characters; Linux interface names have at most 15',
      ].join('\n'),
    );
  });
});
