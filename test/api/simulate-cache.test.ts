// Simulate keeps the model's tables and their record index while the policy stays the same: a
// second Simulate builds nothing; a record-level change (a new policy document, through the
// incremental path) makes the next Simulate build them once more, and its answer follows it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordIndexBuilds } from '../../agent/model/index.js';
import { demoPolicyText, startTestApi, type TestApi } from './helpers.js';

type Plain = Record<string, unknown>;
/** A bytes field of a response (base64 text or bytes, as the client decodes it). */
const hex = (v: unknown): string =>
  (typeof v === 'string' ? Buffer.from(v, 'base64') : Buffer.from(v as Uint8Array)).toString('hex');
const REQ = { port: 'blue-vm1', description: { dstIp: '198.19.1.50' } };
const record = (mac: string) => ({ vsid: 5001, ca: '198.19.1.50', mac, pa: '198.18.0.2' });

describe('Simulate record index', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({
      underlay: () => new Map([[0xc6120002, { mac: Uint8Array.from([2, 0, 0, 0, 0x0e, 2]) }]]),
    });
    await api.client.policy('Apply', { text: demoPolicyText() });
    await api.client.policy('CreateLookupRecord', { lookupRecord: record('02:00:00:b1:00:50') });
  });
  afterAll(async () => api.close());

  it('is built once per policy and rebuilt after a record changes', async () => {
    const n0 = recordIndexBuilds();
    const a = (await api.client.agent('Simulate', REQ)) as Plain;
    const b = (await api.client.agent('Simulate', REQ)) as Plain;
    expect(recordIndexBuilds() - n0).toBe(1);
    expect(a.verdict).toBe('DATAPATH_VERDICT_REDIRECT');
    expect(hex(b.outputFrame)).toBe(hex(a.outputFrame));

    expect(hex(a.outputFrame)).toContain('020000b10050');
    await api.client.policy('UpdateLookupRecord', { lookupRecord: record('02:00:00:b1:00:99') });
    expect(api.store.paths.incremental).toBe(2);
    const c = (await api.client.agent('Simulate', REQ)) as Plain;
    const d = (await api.client.agent('Simulate', REQ)) as Plain;
    expect(recordIndexBuilds() - n0).toBe(2);
    // The encapsulated frame carries the record's new MAC as the inner destination.
    expect(hex(c.outputFrame)).toContain('020000b10099');
    expect(hex(c.outputFrame)).not.toContain('020000b10050');
    expect(hex(d.outputFrame)).toBe(hex(c.outputFrame));
  });
});
