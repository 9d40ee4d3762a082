// Load-time knobs through the binding: BpfObject.initialValue / writeInitialValue on '.rodata',
// the typed layer (setKnobs from the generated Objects[...].knobs), what the kernel then holds, and
// what the knob does: tenet_cfg_drop_events = 1 makes a dropped packet send a record to the
// tenet_events ring buffer, 0 does not. Two loads that differ only in a knob have the same tag but
// different program identities (tag + .rodata), which is what adoption compares.

import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  DropReason,
  EVENT_RECORD_SIZE,
  EventKind,
  EventRecordCodec,
  Objects,
  type EventRecord,
} from '../../agent/abi/generated.js';
import {
  BpfMap,
  BpfObject,
  RingBuffer,
  encodeKnob,
  programIdentity,
  programIdentityById,
  readKnobs,
  setKnobs,
  type BpfProgram,
} from '../../agent/bpf/index.js';
import { loadObject, objectPath } from '../../agent/datapath/objects.js';
import { packet } from '../../agent/packet/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { makeBpffsDir, removeBpffsDir } from './fixtures.js';

const KNOBS = Objects.tenet_port.knobs;
const DROP_EVENTS = KNOBS.tenet_cfg_drop_events;

/** A frame the port program drops: no port entry for the loopback (ifindex 1) in empty tables. */
const FRAME = packet()
  .eth({ src: '02:00:00:00:00:11', dst: '02:00:00:00:00:12' })
  .ipv4({ src: '198.19.1.11', dst: '198.19.1.12' })
  .udp({ sport: 1000, dport: 2000 })
  .payload(100)
  .build();

describePrivileged('load-time knobs', () => {
  let dir: string;
  const objects: BpfObject[] = [];
  const open = (): BpfObject => {
    const o = BpfObject.open(objectPath('tenet_port'), { pinRoot: dir });
    objects.push(o);
    return o;
  };
  beforeAll(() => {
    dir = makeBpffsDir('knobs');
  });
  afterAll(() => {
    for (const o of objects) o.close();
    removeBpffsDir(dir);
  });

  it('writes and reads .rodata before load; the kernel holds the written value', async () => {
    const obj = open();
    const image = obj.initialValue('.rodata');
    expect(image).toHaveLength(Objects.tenet_port.rodataSize);
    expect(readKnobs(image, KNOBS)).toEqual({ tenet_cfg_drop_events: 0n });
    setKnobs(obj, KNOBS, { tenet_cfg_drop_events: true });
    const after = obj.initialValue('.rodata');
    expect(after[DROP_EVENTS.offset]).toBe(1);
    // Nothing else in .rodata moved.
    expect(Buffer.concat([after.subarray(0, DROP_EVENTS.offset)])).toEqual(
      image.subarray(0, DROP_EVENTS.offset),
    );
    // The returned buffer is a copy.
    after[0] = 0xee;
    expect(obj.initialValue('.rodata')[0]).toBe(image[0]);
    await obj.load();
    const rodata = obj.map('.rodata');
    try {
      const value = rodata.lookup(Buffer.alloc(4));
      expect(value && readKnobs(value, KNOBS)).toEqual({ tenet_cfg_drop_events: 1n });
    } finally {
      rodata.close();
    }
  });

  it('refuses writes after load, unknown and ordinary maps, and bytes out of range', async () => {
    const obj = open();
    expect(() => obj.initialValue('tenet_nope')).toThrow(
      expect.objectContaining({ code: 'ENOENT', op: 'BpfObject.initialValue' }),
    );
    expect(() => obj.writeInitialValue('tenet_ports', 0, Uint8Array.of(1))).toThrow(
      expect.objectContaining({ code: 'EINVAL', op: 'BpfObject.writeInitialValue' }),
    );
    expect(() =>
      obj.writeInitialValue('.rodata', Objects.tenet_port.rodataSize, Uint8Array.of(1)),
    ).toThrow(TypeError);
    expect(() => obj.writeInitialValue('.rodata', 0, 'x' as never)).toThrow(TypeError);
    expect(() => obj.writeInitialValue('.rodata', -1, Uint8Array.of(1))).toThrow(TypeError);
    obj.writeInitialValue('.rodata', 0, new Uint8Array(0));
    expect(() => setKnobs(obj, KNOBS, { tenet_cfg_nope: 1 })).toThrow(
      /has no knob tenet_cfg_nope \(it has: tenet_cfg_drop_events\)/,
    );
    expect(() => encodeKnob(DROP_EVENTS, 256)).toThrow(RangeError);
    expect(() => encodeKnob(DROP_EVENTS, -1)).toThrow(RangeError);
    expect([...encodeKnob({ ...DROP_EVENTS, type: 's32', size: 4 }, -2)]).toEqual([
      0xfe, 0xff, 0xff, 0xff,
    ]);
    await obj.load();
    expect(() => obj.writeInitialValue('.rodata', DROP_EVENTS.offset, Uint8Array.of(1))).toThrow(
      expect.objectContaining({ code: 'EBUSY', op: 'BpfObject.writeInitialValue' }),
    );
    obj.close();
    expect(() => obj.writeInitialValue('.rodata', 0, Uint8Array.of(1))).toThrow(
      expect.objectContaining({ code: 'EBADF' }),
    );
    expect(() => obj.initialValue('.rodata')).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it('tenet_cfg_drop_events: 1 sends a ring-buffer record per drop, 0 none', async () => {
    const on = await loadObject('tenet_port', dir, { knobs: { tenet_cfg_drop_events: 1 } });
    const off = await loadObject('tenet_port', dir, { knobs: { tenet_cfg_drop_events: 0 } });
    objects.push(on, off);
    const events = BpfMap.openPinned(`${dir}/tenet_events`);
    const records: EventRecord[] = [];
    const ring = new RingBuffer(events, (data) => {
      expect(data).toHaveLength(EVENT_RECORD_SIZE);
      records.push(EventRecordCodec.decode(data));
    });
    const progs: BpfProgram[] = [];
    try {
      const pOn = on.program('tenet_port_ingress');
      const pOff = off.program('tenet_port_ingress');
      progs.push(pOn, pOff);
      ring.consume();
      records.length = 0;

      const before = process.hrtime.bigint();
      expect(pOn.testRun({ data: FRAME }).retval).toBe(2); // TC_ACT_SHOT
      expect(ring.consume()).toBe(1);
      const [r] = records;
      expect(r).toMatchObject({
        kind: EventKind.drop,
        reason: DropReason.port_unknown,
        ifindex: 1,
        pkt_len: FRAME.length,
        sample_len: 64,
      });
      expect(Buffer.from(r?.sample ?? []).equals(FRAME.subarray(0, 64))).toBe(true);
      // bpf_ktime_get_ns and process.hrtime are both CLOCK_MONOTONIC.
      expect(r?.timestamp_ns).toBeGreaterThanOrEqual(before);
      expect(r?.timestamp_ns).toBeLessThanOrEqual(process.hrtime.bigint());

      expect(pOff.testRun({ data: FRAME }).retval).toBe(2);
      expect(ring.consume()).toBe(0);

      // Same tag, other knob: a different program identity; same knob: the same identity.
      expect(pOn.info().tag).toBe(pOff.info().tag);
      expect(programIdentity(pOn)).not.toBe(programIdentity(pOff));
      const again = await loadObject('tenet_port', dir, { knobs: { tenet_cfg_drop_events: 1 } });
      objects.push(again);
      const pAgain = again.program('tenet_port_ingress');
      progs.push(pAgain);
      expect(pAgain.info().id).not.toBe(pOn.info().id);
      expect(programIdentity(pAgain)).toBe(programIdentity(pOn));
      expect(programIdentityById(pOn.info().id)).toBe(programIdentity(pOn));
      expect(programIdentityById(0x7ffffff0)).toBeUndefined();
      // The program uses the pinned event ring.
      expect(pOn.info().mapIds).toContain(events.info().id);
    } finally {
      ring.close();
      events.close();
      for (const p of progs) p.close();
    }
  });
});
