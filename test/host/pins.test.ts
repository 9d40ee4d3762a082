// The pin root checks a starting agent makes before it loads anything: bpffs, the versioned
// directory, and the layout of every map already pinned there. A mismatch stops the agent and
// leaves the pins as they were.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { Maps, TENET_ABI_VERSION } from '../../agent/abi/generated.js';
import { BpfMap, MapType } from '../../agent/bpf/index.js';
import {
  AbiMismatchError,
  checkPinnedMaps,
  HostAgent,
  PinRootError,
  preparePinRoot,
} from '../../agent/host/index.js';
import { describePrivileged } from '../helpers/privilege.js';

describePrivileged('pin root checks', () => {
  const root = `/sys/fs/bpf/tenet-test-pins-${randomBytes(4).toString('hex')}`;
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('creates the pin root on bpffs and refuses one elsewhere', () => {
    preparePinRoot(join(root, 'fresh'));
    expect(checkPinnedMaps(join(root, 'fresh'))).toMatchObject({ adopted: [] });
    const tmp = mkdtempSync(join(tmpdir(), 'tenet-pins-'));
    try {
      expect(() => preparePinRoot(tmp)).toThrow(PinRootError);
      expect(() => preparePinRoot(tmp)).toThrow(/not on a bpffs mount/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('refuses a pin root of another ABI version', () => {
    const other = join(root, `v${TENET_ABI_VERSION + 1}`);
    expect(() => preparePinRoot(other)).toThrow(AbiMismatchError);
    expect(() => preparePinRoot(join(root, `v${TENET_ABI_VERSION}`))).not.toThrow();
  });

  it('refuses pinned maps of another layout, and HostAgent.start leaves them alone', async () => {
    const dir = join(root, 'mismatch');
    preparePinRoot(dir);
    const d = Maps.tenet_records;
    const wrong = BpfMap.create({
      type: MapType.HASH,
      keySize: d.keySize,
      valueSize: d.valueSize + 8,
      maxEntries: d.maxEntries,
      name: d.name,
    });
    const id = wrong.info().id;
    wrong.pin(join(dir, d.name));
    wrong.close();

    expect(() => checkPinnedMaps(dir)).toThrow(
      new RegExp(`tenet_records: valueSize ${d.valueSize + 8} \\(expected ${d.valueSize}\\)`),
    );
    await expect(HostAgent.start({ hostName: 'hv1', pinRoot: dir })).rejects.toThrow(
      AbiMismatchError,
    );
    // Untouched: the same map is still pinned, and nothing else was created.
    const again = BpfMap.openPinned(join(dir, d.name));
    expect(again.info().id).toBe(id);
    again.close();
    expect(() => BpfMap.openPinned(join(dir, Maps.tenet_ports.name))).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
  });
});
