// Host facts: `ip -j address show` parsed (unit), and read from a lab namespace through nsenter,
// where /sys/class/net would show the root namespace instead.

import { expect, it, describe } from 'vitest';
import { commandRunner, CommandError } from '../../agent/host/command.js';
import { parseIpAddressJson, readHostInterfaces } from '../../agent/host/facts.js';
import { useLab } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';

const SAMPLE = JSON.stringify([
  {
    ifindex: 1,
    ifname: 'lo',
    flags: ['LOOPBACK', 'UP', 'LOWER_UP'],
    mtu: 65536,
    operstate: 'UNKNOWN',
    link_type: 'loopback',
    address: '00:00:00:00:00:00',
    addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }],
  },
  {
    ifindex: 7,
    link_index: 6,
    ifname: 'eth0',
    flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
    mtu: 9000,
    operstate: 'UP',
    link_type: 'ether',
    address: '02:AA:bb:00:00:01',
    link_netnsid: 0,
    addr_info: [
      { family: 'inet', local: '198.18.0.1', prefixlen: 24, scope: 'global' },
      { family: 'inet6', local: 'fe80::aa:bbff:fe00:1', prefixlen: 64, scope: 'link' },
    ],
  },
  { ifindex: 9, ifname: 'tun0', flags: ['POINTOPOINT'], mtu: 1500, link_type: 'none' },
  { garbage: true },
]);

describe('parseIpAddressJson', () => {
  it('reads ifindex, MAC, MTU, state and addresses by name', () => {
    const m = parseIpAddressJson(SAMPLE);
    expect([...m.keys()]).toEqual(['lo', 'eth0', 'tun0']);
    expect(m.get('eth0')).toEqual({
      name: 'eth0',
      ifindex: 7,
      mac: '02:aa:bb:00:00:01',
      mtu: 9000,
      flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      operstate: 'UP',
      linkType: 'ether',
      addresses: [
        { family: 4, address: '198.18.0.1', prefixLength: 24 },
        { family: 6, address: 'fe80::aa:bbff:fe00:1', prefixLength: 64 },
      ],
    });
    // No Ethernet address: the all-zero MAC, which the compiler refuses where it needs one.
    expect(m.get('tun0')).toMatchObject({ mac: '00:00:00:00:00:00', addresses: [] });
    expect(parseIpAddressJson('')).toEqual(new Map());
    expect(() => parseIpAddressJson('{}')).toThrow(/JSON array/);
  });
});

describePrivileged('host facts from a lab namespace', () => {
  const ref = useLab('host-facts', async (lab) => {
    const a = await lab.netns('a');
    const b = await lab.netns('b');
    await lab.veth(
      { ns: a, name: 'nic0', mac: '02:00:00:00:fa:c7', mtu: 1400, addrs: ['198.18.7.1/24'] },
      { ns: b, name: 'nic1' },
    );
    return { a };
  });

  it('sees the namespace`s own interfaces (not the root namespace`s)', async () => {
    const { a } = ref.value;
    const m = await readHostInterfaces(commandRunner({ netns: a.path }));
    expect([...m.keys()].sort()).toEqual(['lo', 'nic0']);
    expect(m.get('nic0')).toMatchObject({
      ifindex: await a.ifindex('nic0'),
      mac: '02:00:00:00:fa:c7',
      mtu: 1400,
    });
    expect(m.get('nic0')?.addresses).toContainEqual({
      family: 4,
      address: '198.18.7.1',
      prefixLength: 24,
    });
  });

  it('a command that fails says what failed', async () => {
    const r = commandRunner({ netns: ref.value.a.path });
    const res = await r.run(['ip', 'link', 'show', 'dev', 'nope0']);
    expect(res.code).not.toBe(0);
    expect(new CommandError(res).message).toMatch(/ip link show dev nope0.*exited with code/);
    const slow = await r.run(['sleep', '5'], { timeoutMs: 200 });
    expect(slow.timedOut).toBe(true);
  });
});
