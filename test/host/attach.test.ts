// Attachments (agent/host/attach.ts) on interfaces of a lab namespace, with the binding's test
// programs (two XDP and two tc programs with different code, so different tags): pinned links
// adopted by a second instance, upgraded in place when the program changes (same link id), the
// netlink tc fallback for kernels without tcx, a foreign XDP program refused without side
// effects, and interface names with dots (bpffs forbids dots in pin names).

import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BpfLink,
  BpfObject,
  xdpAttach,
  xdpDetach,
  xdpQuery,
  type BpfProgram,
} from '../../agent/bpf/index.js';
import {
  Attachments,
  parsePinName,
  pinName,
  type AttachSpec,
  type DesiredAttachment,
} from '../../agent/host/attach.js';
import { useLab } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';
import { fixture } from '../native/fixtures.js';

const XDP: AttachSpec = { object: 'tenet_xdp', program: 'count_xdp', hook: 'xdp', role: 'pa-nic' };
const TC_IN: AttachSpec = {
  object: 'tenet_tc',
  program: 'count_tc',
  hook: 'tc-ingress',
  role: 'vm-port',
};
const TC_OUT: AttachSpec = { ...TC_IN, program: 'count_tc_out', hook: 'tc-egress' };

describe('pin names', () => {
  it('round-trip interface names with dots and percent signs, never containing a dot', () => {
    for (const ifname of ['eth0', 'eth0.100', 'a%2eb', 'x.y.z', 'vm-blue1']) {
      const n = pinName(ifname, 'tenet_xdp_rx');
      expect(n).not.toContain('.');
      expect(parsePinName(n)).toEqual({ ifname, program: 'tenet_xdp_rx' });
    }
    expect(parsePinName('nocolon')).toBeUndefined();
  });
});

describePrivileged('Attachments on a lab namespace', () => {
  const ref = useLab('host-attach', async (lab) => {
    const h = await lab.netns('h');
    const peer = await lab.netns('peer');
    await lab.veth({ ns: h, name: 'nic0', addrs: ['198.18.9.1/24'] }, { ns: peer, name: 'p0' });
    await lab.veth({ ns: h, name: 'port.1' }, { ns: peer, name: 'p1' });
    await lab.veth({ ns: h, name: 'foreign0' }, { ns: peer, name: 'p2' });
    const obj = BpfObject.open(fixture('binding_counter'));
    await obj.load();
    const progs = {
      xdp: obj.program('count_xdp'),
      xdpAlt: obj.program('count_xdp_alt'),
      tc: obj.program('count_tc'),
      tcAlt: obj.program('count_tc_alt'),
    };
    obj.close();
    return { h, progs, pinRoot: join(await lab.bpffsDir(), 'attach') };
  });
  afterAll(() => {
    for (const p of Object.values(ref.value.progs)) p.close();
  });

  const make = (opts: { preferTcx?: boolean; pinRoot?: string } = {}): Attachments =>
    new Attachments({
      pinRoot: opts.pinRoot ?? ref.value.pinRoot,
      netns: ref.value.h.path,
      specs: [XDP, TC_IN, TC_OUT],
      ...(opts.preferTcx === undefined ? {} : { preferTcx: opts.preferTcx }),
    });

  async function want(
    spec: AttachSpec,
    ifname: string,
    prog: BpfProgram,
  ): Promise<DesiredAttachment> {
    return { spec, ifname, ifindex: await ref.value.h.ifindex(ifname), prog };
  }

  it('attaches pinned links, a second instance adopts them, a new program upgrades in place', async () => {
    const { progs, h } = ref.value;
    const first = make();
    const desired = [
      await want(XDP, 'nic0', progs.xdp),
      await want(TC_IN, 'port.1', progs.tc),
      await want(TC_OUT, 'port.1', progs.tc),
    ];
    expect(first.ensure(desired)).toEqual({
      created: ['nic0:count_xdp', 'port%2e1:count_tc', 'port%2e1:count_tc_out'],
      updated: [],
      kept: [],
    });
    const links = first.list();
    expect(links.map((l) => [l.ifname, l.kind, l.ifindex])).toEqual([
      ['nic0', 'link', await h.ifindex('nic0')],
      ['port.1', 'link', await h.ifindex('port.1')],
      ['port.1', 'link', await h.ifindex('port.1')],
    ]);

    // A restarted agent: same links, nothing done.
    const second = make();
    expect(second.ensure(desired)).toEqual({ created: [], updated: [], kept: expect.any(Array) });
    expect(second.list()).toEqual(links);
    expect(second.ops).toEqual({ created: 0, updated: 0, removed: 0 });

    // A new build of the programs (other code, other tag): atomic link update, same link ids.
    const upgraded = [
      await want(XDP, 'nic0', progs.xdpAlt),
      await want(TC_IN, 'port.1', progs.tcAlt),
      await want(TC_OUT, 'port.1', progs.tc),
    ];
    const r = second.ensure(upgraded);
    expect(r.updated).toEqual(['nic0:count_xdp', 'port%2e1:count_tc']);
    expect(r.kept).toEqual(['port%2e1:count_tc_out']);
    const after = second.list();
    expect(after.map((l) => l.linkId)).toEqual(links.map((l) => l.linkId));
    expect(after.map((l) => l.progId)).toEqual([
      progs.xdpAlt.info().id,
      progs.tcAlt.info().id,
      progs.tc.info().id,
    ]);
    expect(xdpQuery({ ifname: 'nic0', netns: h.path }).progId).toBe(progs.xdpAlt.info().id);

    // Removing: detached and unpinned.
    const ids = after.map((l) => BpfLink.fromId(l.linkId as number));
    expect(second.removeExcept(new Set(['nic0:count_xdp']))).toEqual([
      'port%2e1:count_tc',
      'port%2e1:count_tc_out',
    ]);
    expect(ids.map((l) => l.info().ifindex)).toEqual([await h.ifindex('nic0'), 0, 0]);
    for (const l of ids) l.close();
    expect(second.remove(['nic0:count_xdp'])).toEqual(['nic0:count_xdp']);
    expect(second.names()).toEqual([]);
    expect(xdpQuery({ ifname: 'nic0', netns: h.path }).progId).toBe(0);
  });

  it('falls back to netlink tc filters, adopts and upgrades them, and removes them', async () => {
    const { progs, h } = ref.value;
    const pinRoot = join(ref.value.pinRoot, '..', 'attach-netlink');
    const a = make({ preferTcx: false, pinRoot });
    const desired = [await want(TC_IN, 'port.1', progs.tc)];
    expect(a.ensure(desired).created).toEqual(['port%2e1:count_tc']);
    expect(a.list()).toEqual([
      expect.objectContaining({ kind: 'netlink', progId: progs.tc.info().id }),
    ]);
    const filters = async (): Promise<string> =>
      (await h.execOk(['tc', 'filter', 'show', 'dev', 'port.1', 'ingress'])).stdout;
    expect(await filters()).toMatch(/pref 32257 bpf .*count_tc.* direct-action/);

    const b = make({ preferTcx: false, pinRoot });
    expect(b.ensure(desired)).toMatchObject({ created: [], kept: ['port%2e1:count_tc'] });
    expect(b.ensure([await want(TC_IN, 'port.1', progs.tcAlt)]).updated).toEqual([
      'port%2e1:count_tc',
    ]);
    expect(await filters()).toMatch(/count_tc_alt/);
    expect(b.removeExcept(new Set())).toEqual(['port%2e1:count_tc']);
    expect((await filters()).trim()).toBe('');
  });

  it('refuses an interface that runs a foreign XDP program, and undoes its own work', async () => {
    const { progs, h } = ref.value;
    xdpAttach({ ifname: 'foreign0', netns: h.path, prog: progs.xdpAlt, mode: 'native' });
    try {
      const a = make();
      const desired = [
        await want(TC_IN, 'port.1', progs.tc),
        await want(XDP, 'foreign0', progs.xdp),
      ];
      expect(() => a.ensure(desired)).toThrow(
        /cannot attach count_xdp to foreign0: another XDP program is attached .* not tenet's/,
      );
      // The tc link made before the failure is gone again; the foreign program is untouched.
      expect(a.names()).toEqual([]);
      expect(xdpQuery({ ifname: 'foreign0', netns: h.path }).progId).toBe(progs.xdpAlt.info().id);
    } finally {
      xdpDetach({ ifname: 'foreign0', netns: h.path });
    }
  });
});
