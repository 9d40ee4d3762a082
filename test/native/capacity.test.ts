// Map capacity chosen at load time through the binding: BpfObject.setMaxEntries (libbpf's
// bpf_map__set_max_entries) before load creates the map with that max_entries, and the kernel
// enforces it; a map pinned by name is reused only at its own size; argument and state errors.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { Maps } from '../../agent/abi/generated.js';
import { BpfMap, BpfObject, isBpfError } from '../../agent/bpf/index.js';
import { objectPath } from '../../agent/datapath/objects.js';
import { describePrivileged } from '../helpers/privilege.js';
import { makeBpffsDir, removeBpffsDir } from './fixtures.js';

const RECORDS = Maps.tenet_records.name;

describePrivileged('map capacity at load time', () => {
  let dir: string;
  const objects: BpfObject[] = [];
  const open = (pinRoot: string): BpfObject => {
    const o = BpfObject.open(objectPath('tenet_port'), { pinRoot });
    objects.push(o);
    return o;
  };
  beforeAll(() => {
    dir = makeBpffsDir('capacity');
  });
  afterAll(() => {
    for (const o of objects) o.close();
    removeBpffsDir(dir);
  });

  it('creates the map with the capacity set before load; the kernel enforces it', async () => {
    const obj = open(dir);
    obj.setMaxEntries(RECORDS, 8);
    await obj.load();
    const map = obj.map(RECORDS);
    try {
      expect(map.maxEntries).toBe(8);
      expect(map.info().maxEntries).toBe(8);
      const value = Buffer.alloc(map.valueSize);
      for (let i = 0; i < 8; i++) {
        const key = Buffer.alloc(map.keySize);
        key.writeUInt32LE(5000 + i, 0);
        map.update(key, value);
      }
      const ninth = Buffer.alloc(map.keySize);
      ninth.writeUInt32LE(9999, 0);
      expect(() => map.update(ninth, value)).toThrow(expect.objectContaining({ code: 'E2BIG' }));
    } finally {
      map.close();
    }
    // Pinned with that size under the pin root.
    const pinned = BpfMap.openPinned(`${dir}/${RECORDS}`);
    expect(pinned.maxEntries).toBe(8);
    pinned.close();
  });

  it('reuses the pinned map at its size, refuses it at another', async () => {
    const same = open(dir);
    same.setMaxEntries(RECORDS, 8);
    await same.load();
    const reused = same.map(RECORDS);
    const pinned = BpfMap.openPinned(`${dir}/${RECORDS}`);
    expect(reused.info().id).toBe(pinned.info().id);
    reused.close();
    pinned.close();

    const other = open(dir);
    other.setMaxEntries(RECORDS, 16);
    const err = await other.load().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isBpfError(err)).toBe(true);
    expect((err as { code: string }).code).toBe('EINVAL');
  });

  it('checks its arguments and refuses after load', async () => {
    const obj = open(dir);
    expect(() => obj.setMaxEntries('no_such_map', 8)).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
    expect(() => obj.setMaxEntries(RECORDS, 0)).toThrow(TypeError);
    expect(() => obj.setMaxEntries(RECORDS, -1)).toThrow(TypeError);
    obj.setMaxEntries(RECORDS, 8);
    await obj.load();
    expect(() => obj.setMaxEntries(RECORDS, 32)).toThrow(
      expect.objectContaining({ code: 'EBUSY' }),
    );
  });
});
