// UnderlayResolver on its own, in a lab namespace with a routed underlay: PAs on-link, behind a
// router (the route's gateway is the next hop), with an explicit next hop (the policy's
// underlayNextHop), and unreachable; entries kept, rewritten only when they change, and pruned.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { BE32 } from '../../agent/abi/codec.js';
import { Maps, UnderlayNhCodec, type UnderlayNh } from '../../agent/abi/generated.js';
import { BpfMap, TypedMap } from '../../agent/bpf/index.js';
import { commandRunner } from '../../agent/host/command.js';
import { UnderlayResolver } from '../../agent/host/underlay.js';
import { formatMac } from '../../agent/policy/index.js';
import { useLab } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';

const ROUTER_MAC = '02:00:00:00:5e:02';
const OTHER_MAC = '02:00:00:00:5e:03';

describePrivileged('UnderlayResolver', () => {
  const ref = useLab('host-underlay', async (lab) => {
    const h = await lab.netns('h');
    const sw = await lab.netns('sw');
    const rtr = await lab.netns('rtr');
    const o = await lab.netns('o');
    await lab.bridge(sw, 'br0');
    // h, a router and another host on one switched segment.
    for (const [ns, name, mac, addr, port] of [
      [h, 'uplink', undefined, '198.18.5.1/24', 'to-h'],
      [rtr, 'rt', ROUTER_MAC, '198.18.5.2/24', 'to-rtr'],
      [o, 'o0', OTHER_MAC, '198.18.5.3/24', 'to-o'],
    ] as const) {
      await lab.veth(
        { ns, name, addrs: [addr], ...(mac === undefined ? {} : { mac }) },
        { ns: sw, name: port },
      );
      await lab.bridgePort(sw, 'br0', port);
    }
    await h.addRoute('198.18.6.0/24', { via: '198.18.5.2' });
    return { h };
  });
  // Created in beforeAll: a skipped (unprivileged) run still collects this block.
  let map: BpfMap;
  let view: TypedMap<number, UnderlayNh>;
  let resolver: UnderlayResolver | undefined;
  beforeAll(() => {
    map = BpfMap.create({
      type: Maps.tenet_underlay.typeId,
      keySize: Maps.tenet_underlay.keySize,
      valueSize: Maps.tenet_underlay.valueSize,
      maxEntries: 64,
    });
    view = new TypedMap(map, BE32, UnderlayNhCodec);
  });
  afterAll(async () => {
    await resolver?.stop();
    map?.close();
  });

  const contents = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [pa, nh] of view.entries()) {
      out[[pa >>> 24, (pa >>> 16) & 255, (pa >>> 8) & 255, pa & 255].join('.')] = formatMac(nh.mac);
    }
    return out;
  };

  it('resolves on-link PAs, PAs behind a router and explicit next hops; counts the rest', async () => {
    resolver = new UnderlayResolver({
      runner: commandRunner({ netns: ref.value.h.path }),
      map,
      monitor: false,
      refreshIntervalMs: 0,
    });
    resolver.setTargets([
      { pa: '198.18.5.3', dev: 'uplink' }, // on-link
      { pa: '198.18.6.7', dev: 'uplink' }, // via the route's gateway 198.18.5.2
      { pa: '198.18.7.7', dev: 'uplink', nextHop: '198.18.5.3' }, // the policy's next hop
      { pa: '198.18.8.8' }, // no route at all
    ]);
    const s = await resolver.refresh();
    expect(contents()).toEqual({
      '198.18.5.3': OTHER_MAC,
      '198.18.6.7': ROUTER_MAC,
      '198.18.7.7': OTHER_MAC,
    });
    expect(s).toMatchObject({ targets: 4, resolved: 3, unresolved: ['198.18.8.8'] });
    expect(s.entries.find((e) => e.pa === '198.18.6.7')).toMatchObject({
      nextHop: '198.18.5.2',
      dev: 'uplink',
      resolved: true,
    });
    expect(s.entries.find((e) => e.pa === '198.18.8.8')?.reason).toMatch(/no route/);
    expect(resolver.ops).toEqual({ writes: 3, deletes: 0 });

    // Nothing changed: nothing written.
    await resolver.refresh({ reroute: true });
    expect(resolver.ops.writes).toBe(3);
  });

  it('a new resolver adopts the map; prune removes PAs that are no longer targets', async () => {
    await resolver?.stop();
    resolver = new UnderlayResolver({
      runner: commandRunner({ netns: ref.value.h.path }),
      map,
      monitor: false,
      refreshIntervalMs: 0,
    });
    expect(resolver.installedPas()).toEqual(['198.18.5.3', '198.18.6.7', '198.18.7.7']);
    resolver.setTargets([{ pa: '198.18.6.7', dev: 'uplink' }]);
    await resolver.refresh();
    expect(resolver.ops.writes).toBe(0);
    expect(await resolver.prune()).toBe(2);
    expect(contents()).toEqual({ '198.18.6.7': ROUTER_MAC });
    expect(() => resolver?.setTargets([{ pa: 'fd00::1' }])).toThrow(/not an IPv4 address/);
  });
});
