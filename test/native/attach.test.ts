// Attaching XDP and tc programs through the binding, on a veth pair between two namespaces the
// lab creates (nothing in the root namespace is touched). Real pings cross the veth; per-CPU
// counters bumped by the programs prove which program saw them; every detach is checked against
// what the kernel and iproute2 report.

import { afterAll, expect, it } from 'vitest';
import { U32, U64 } from '../../agent/abi/codec.js';
import {
  AttachType,
  BpfLink,
  BpfObject,
  type BpfProgram,
  LinkType,
  PerCpuTypedMap,
  attachTc,
  ifNameToIndex,
  sumPerCpu,
  tcAttach,
  tcDetach,
  tcHookDestroy,
  tcQuery,
  tcxLinkAttach,
  xdpAttach,
  xdpDetach,
  xdpLinkAttach,
  xdpQuery,
} from '../../agent/bpf/index.js';
import { type Netns, ping, useLab } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';
import { fixture } from './fixtures.js';

// Slots of `hits` in binding_counter.bpf.c.
const SLOT = { XDP: 0, XDP_ALT: 1, TC: 2, TC_ALT: 3 } as const;

const A_ADDR = '198.18.0.1';
const B_ADDR = '198.18.0.2';

interface Setup {
  a: Netns;
  b: Netns;
  progs: Record<'xdp' | 'xdpAlt' | 'tc' | 'tcAlt', BpfProgram>;
  hits: PerCpuTypedMap<number, bigint>;
  pinDir: string;
}

describePrivileged('attaching programs to interfaces in a namespace', () => {
  const ref = useLab('native-attach', async (lab): Promise<Setup> => {
    const a = await lab.netns('a');
    const b = await lab.netns('b');
    await lab.veth(
      { ns: a, name: 'v0', addrs: [`${A_ADDR}/24`] },
      { ns: b, name: 'v1', addrs: [`${B_ADDR}/24`] },
    );
    const obj = BpfObject.open(fixture('binding_counter'));
    await obj.load();
    const progs = {
      xdp: obj.program('count_xdp'),
      xdpAlt: obj.program('count_xdp_alt'),
      tc: obj.program('count_tc'),
      tcAlt: obj.program('count_tc_alt'),
    };
    const hits = new PerCpuTypedMap(obj.map('hits'), U32, U64);
    obj.close();
    return { a, b, progs, hits, pinDir: await lab.bpffsDir() };
  });

  afterAll(() => {
    // Namespace deletion (lab teardown) removes every attachment; these are just our fds.
    for (const p of Object.values(ref.value.progs)) p.close();
    ref.value.hits.close();
  });

  /** v0 inside namespace a: where programs are attached. */
  const v0 = (): { ifname: string; netns: string } => ({ ifname: 'v0', netns: ref.value.a.path });

  const count = (slot: number): bigint => sumPerCpu(ref.value.hits.get(slot) ?? []);

  /** Pings a's v0 from b; returns how many echo replies came back. */
  async function pingA(n = 3): Promise<number> {
    const r = await ping(ref.value.b, A_ADDR, { count: n, intervalMs: 50, timeoutS: 5 });
    return r.received;
  }

  /** `ip -d link show v0` in namespace a. */
  async function linkDetails(): Promise<string> {
    return (await ref.value.a.execOk(['ip', '-d', 'link', 'show', 'dev', 'v0'])).stdout;
  }

  async function tcFilters(dir: 'ingress' | 'egress'): Promise<string> {
    return (await ref.value.a.execOk(['tc', 'filter', 'show', 'dev', 'v0', dir])).stdout;
  }

  it('resolves interface names inside the namespace', () => {
    const idx = ifNameToIndex(v0());
    expect(idx).toBeGreaterThan(0);
    expect(() => ifNameToIndex({ ifname: 'nope0', netns: ref.value.a.path })).toThrow(
      expect.objectContaining({ code: 'ENODEV', op: 'if_nametoindex' }),
    );
    expect(xdpQuery({ ifindex: idx, netns: ref.value.a.path })).toEqual({
      progId: 0,
      mode: 'none',
      ifindex: idx,
    });
  });

  for (const mode of ['native', 'generic'] as const) {
    it(`XDP ${mode} mode via netlink: attach, count real packets, detach`, async () => {
      const { progs } = ref.value;
      const before = count(SLOT.XDP);
      xdpAttach({ ...v0(), prog: progs.xdp, mode });
      try {
        expect(xdpQuery(v0())).toMatchObject({ progId: progs.xdp.info().id, mode });
        // iproute2 flags the mode on the first line ("xdp" / "xdpgeneric") and lists the program.
        const details = await linkDetails();
        expect(details.split('\n')[0]).toMatch(mode === 'native' ? / xdp / : / xdpgeneric /);
        expect(details).toMatch(/prog\/xdp id \d+ name count_xdp/);
        expect(await pingA()).toBe(3);
        expect(count(SLOT.XDP) - before).toBeGreaterThanOrEqual(3n);
      } finally {
        xdpDetach({ ...v0(), mode });
      }
      expect(xdpQuery(v0())).toMatchObject({ progId: 0, mode: 'none' });
      expect(await linkDetails()).not.toMatch(/xdp/);
      const after = count(SLOT.XDP);
      expect(await pingA()).toBe(3);
      expect(count(SLOT.XDP)).toBe(after);
    });
  }

  it('XDP atomic replace and guarded detach', async () => {
    const { progs } = ref.value;
    xdpAttach({ ...v0(), prog: progs.xdp, mode: 'native' });
    try {
      xdpAttach({ ...v0(), prog: progs.xdpAlt, mode: 'native', replace: progs.xdp });
      expect(xdpQuery(v0()).progId).toBe(progs.xdpAlt.info().id);
      // The expected program is no longer attached: refused, nothing changes.
      expect(() =>
        xdpAttach({ ...v0(), prog: progs.xdp, mode: 'native', replace: progs.xdp }),
      ).toThrow(expect.objectContaining({ code: 'EEXIST', op: 'bpf_xdp_attach' }));
      expect(() =>
        xdpAttach({ ...v0(), prog: progs.xdp, mode: 'native', exclusive: true }),
      ).toThrow(expect.objectContaining({ code: 'EBUSY', op: 'bpf_xdp_attach' }));
      // Native and generic cannot be active together; libbpf relays the kernel's reason.
      expect(() => xdpAttach({ ...v0(), prog: progs.xdp, mode: 'generic' })).toThrow(
        expect.objectContaining({ code: 'EEXIST', libbpfLog: expect.stringMatching(/generic/i) }),
      );
      expect(xdpQuery(v0()).progId).toBe(progs.xdpAlt.info().id);

      const xdpBefore = count(SLOT.XDP);
      const altBefore = count(SLOT.XDP_ALT);
      expect(await pingA()).toBe(3);
      expect(count(SLOT.XDP_ALT) - altBefore).toBeGreaterThanOrEqual(3n);
      expect(count(SLOT.XDP)).toBe(xdpBefore);

      expect(() => xdpDetach({ ...v0(), mode: 'native', expected: progs.xdp })).toThrow(
        expect.objectContaining({ code: 'EEXIST', op: 'bpf_xdp_detach' }),
      );
      xdpDetach({ ...v0(), mode: 'native', expected: progs.xdpAlt });
      expect(xdpQuery(v0()).mode).toBe('none');
    } finally {
      xdpDetach({ ...v0(), mode: 'native' });
    }
  });

  it('XDP link: pinned, survives closing its fd, updated atomically, detached', async () => {
    const { progs, pinDir } = ref.value;
    const pin = `${pinDir}/xdp_link`;
    const link = xdpLinkAttach(progs.xdp, { ...v0(), mode: 'native' });
    let reopened: BpfLink | undefined;
    try {
      const idx = ifNameToIndex(v0());
      expect(link.info()).toMatchObject({
        type: LinkType.XDP,
        progId: progs.xdp.info().id,
        ifindex: idx,
      });
      link.pin(pin);
      link.close();
      expect(link.closed).toBe(true);

      // Pinned: still attached with no fd open.
      expect(xdpQuery(v0())).toMatchObject({ progId: progs.xdp.info().id, mode: 'native' });
      const before = count(SLOT.XDP);
      expect(await pingA()).toBe(3);
      expect(count(SLOT.XDP) - before).toBeGreaterThanOrEqual(3n);
      // netlink cannot override a link-owned attachment.
      expect(() => xdpAttach({ ...v0(), prog: progs.xdpAlt, mode: 'native' })).toThrow(
        expect.objectContaining({ code: 'EBUSY' }),
      );

      reopened = BpfLink.openPinned(pin);
      expect(() => reopened?.update(progs.xdpAlt, { oldProg: progs.xdpAlt })).toThrow(
        expect.objectContaining({ code: 'EPERM', op: 'bpf_link_update' }),
      );
      reopened.update(progs.xdpAlt, { oldProg: progs.xdp });
      expect(xdpQuery(v0()).progId).toBe(progs.xdpAlt.info().id);
      expect(reopened.info().progId).toBe(progs.xdpAlt.info().id);
      const altBefore = count(SLOT.XDP_ALT);
      expect(await pingA()).toBe(3);
      expect(count(SLOT.XDP_ALT) - altBefore).toBeGreaterThanOrEqual(3n);

      reopened.detach();
      expect(xdpQuery(v0())).toMatchObject({ progId: 0, mode: 'none' });
      expect(reopened.info().ifindex).toBe(0);
      BpfLink.unpin(pin);
    } finally {
      reopened?.close();
      link.close();
      try {
        BpfLink.unpin(pin);
      } catch {
        /* already unpinned */
      }
    }
    expect(await linkDetails()).not.toMatch(/xdp/);
  });

  it('tc via netlink: clsact filter, replace, query, detach, hook destroy', async () => {
    const { progs } = ref.value;
    const r = tcAttach({ ...v0(), direction: 'ingress', prog: progs.tc });
    try {
      expect(r.handle).toBeGreaterThan(0);
      expect(r.priority).toBeGreaterThan(0);
      expect(r.progId).toBe(progs.tc.info().id);
      const id = { ...v0(), direction: 'ingress' as const, handle: r.handle, priority: r.priority };
      expect(tcQuery(id)).toEqual({ progId: progs.tc.info().id });
      expect(await tcFilters('ingress')).toMatch(/bpf .*count_tc.* direct-action/);
      expect(tcQuery({ ...id, direction: 'egress' })).toBeNull();

      const before = count(SLOT.TC);
      expect(await pingA()).toBe(3);
      expect(count(SLOT.TC) - before).toBeGreaterThanOrEqual(3n);

      tcAttach({ ...id, prog: progs.tcAlt, replace: true });
      expect(tcQuery(id)).toEqual({ progId: progs.tcAlt.info().id });
      const altBefore = count(SLOT.TC_ALT);
      expect(await pingA()).toBe(3);
      expect(count(SLOT.TC_ALT) - altBefore).toBeGreaterThanOrEqual(3n);

      tcDetach(id);
      expect(tcQuery(id)).toBeNull();
      expect(() => tcDetach(id)).toThrow(expect.objectContaining({ op: 'bpf_tc_detach' }));
      expect((await tcFilters('ingress')).trim()).toBe('');
    } finally {
      tcHookDestroy(v0());
    }
    expect(tcHookDestroy(v0())).toBe(false);
    expect((await ref.value.a.execOk(['tc', 'qdisc', 'show', 'dev', 'v0'])).stdout).not.toMatch(
      /clsact/,
    );
  });

  it('tcx links: ingress and egress, update, detach', async () => {
    const { progs } = ref.value;
    const ingress = tcxLinkAttach(progs.tc, { ...v0(), direction: 'ingress' });
    const egress = tcxLinkAttach(progs.tcAlt, { ...v0(), direction: 'egress' });
    try {
      const idx = ifNameToIndex(v0());
      expect(ingress.info()).toMatchObject({
        type: LinkType.TCX,
        progId: progs.tc.info().id,
        ifindex: idx,
        attachType: AttachType.TCX_INGRESS,
      });
      expect(egress.info()).toMatchObject({ attachType: AttachType.TCX_EGRESS });

      const inBefore = count(SLOT.TC);
      const outBefore = count(SLOT.TC_ALT);
      expect(await pingA()).toBe(3);
      // Requests arrive on v0 (ingress), replies leave through it (egress).
      expect(count(SLOT.TC) - inBefore).toBeGreaterThanOrEqual(3n);
      expect(count(SLOT.TC_ALT) - outBefore).toBeGreaterThanOrEqual(3n);

      ingress.update(progs.tcAlt, { oldProg: progs.tc });
      expect(ingress.info().progId).toBe(progs.tcAlt.info().id);

      ingress.detach();
      egress.detach();
      expect(ingress.info().ifindex).toBe(0);
      const tc = count(SLOT.TC);
      const alt = count(SLOT.TC_ALT);
      expect(await pingA()).toBe(3);
      expect([count(SLOT.TC), count(SLOT.TC_ALT)]).toEqual([tc, alt]);
      // tcx needs no qdisc: none was created.
      expect((await ref.value.a.execOk(['tc', 'qdisc', 'show', 'dev', 'v0'])).stdout).not.toMatch(
        /clsact/,
      );
    } finally {
      ingress.close();
      egress.close();
    }
  });

  it('attachTc prefers tcx and can be told to use netlink', async () => {
    const { progs } = ref.value;
    const viaTcx = attachTc(progs.tc, { ...v0(), direction: 'ingress' });
    expect(viaTcx.kind).toBe('tcx');
    viaTcx.detach();
    const viaNetlink = attachTc(progs.tc, { ...v0(), direction: 'ingress', preferTcx: false });
    try {
      expect(viaNetlink.kind).toBe('netlink');
      const before = count(SLOT.TC);
      expect(await pingA()).toBe(3);
      expect(count(SLOT.TC) - before).toBeGreaterThanOrEqual(3n);
    } finally {
      viaNetlink.detach();
      tcHookDestroy(v0());
    }
    expect((await tcFilters('ingress')).trim()).toBe('');
  });
});
