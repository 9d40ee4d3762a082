// XDP attach for steering on any netdev: 'auto' takes the driver's XDP where the driver has one
// (a veth: native, no warning) and otherwise falls back to generic (skb) mode with a logged
// warning (a bridge has no driver XDP). The programs work in both modes; the end-to-end steering
// test in generic mode is in test/e2e/steering.test.ts.

import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { BpfObject, xdpQuery, type BpfProgram } from '../../agent/bpf/index.js';
import { Attachments, type AttachSpec } from '../../agent/host/attach.js';
import { recordingLogger } from '../../agent/host/log.js';
import { useLab } from '../helpers/lab.js';
import { describePrivileged } from '../helpers/privilege.js';
import { fixture } from '../native/fixtures.js';

const XDP: AttachSpec = { object: 'tenet_xdp', program: 'count_xdp', hook: 'xdp', role: 'pa-nic' };

describePrivileged('XDP attach mode for steering (driver where supported, else generic)', () => {
  const ref = useLab('steer-attach', async (lab) => {
    const h = await lab.netns('h');
    const peer = await lab.netns('peer');
    await lab.veth({ ns: h, name: 'nic0' }, { ns: peer, name: 'p0' });
    await lab.bridge(h, 'br0');
    const obj = BpfObject.open(fixture('binding_counter'));
    await obj.load();
    const prog: BpfProgram = obj.program('count_xdp');
    obj.close();
    return { h, prog, pinRoot: join(await lab.bpffsDir(), 'attach') };
  });
  afterAll(() => ref.value.prog.close());

  it('native on a veth without a warning, generic on a bridge with one', async () => {
    const { h, prog, pinRoot } = ref.value;
    const log = recordingLogger();
    const links = new Attachments({ pinRoot, netns: h.path, specs: [XDP], logger: log });
    links.ensure([
      { spec: XDP, ifname: 'nic0', ifindex: await h.ifindex('nic0'), prog },
      { spec: XDP, ifname: 'br0', ifindex: await h.ifindex('br0'), prog },
    ]);
    expect(xdpQuery({ ifname: 'nic0', netns: h.path }).mode).toBe('native');
    expect(xdpQuery({ ifname: 'br0', netns: h.path }).mode).toBe('generic');
    const warnings = log.records.filter((r) => r.level === 'warn');
    expect(warnings).toEqual([
      {
        level: 'warn',
        fields: { interface: 'br0', program: 'count_xdp' },
        message: 'the driver has no native XDP: attached in generic (skb) mode, which is slower',
      },
    ]);
    links.removeExcept(new Set());
  });
});
