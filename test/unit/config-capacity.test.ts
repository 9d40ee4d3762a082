// tenetd's capacity setting (agent/daemon/config.ts): the default is the compiled-in size of the
// lookup-records map (existing pins keep working), values are checked with the field named.

import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../agent/daemon/config.js';

const base = 'hostName: hv1\n';

function problems(text: string): readonly string[] {
  try {
    parseConfig(text, 'tenetd.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('accepted');
}

describe('config capacity.lookupRecords', () => {
  it('defaults to 65536 (TENET_RECORDS_MAX, the size of existing pins)', () => {
    expect(parseConfig(base).capacity).toEqual({ lookupRecords: 65536 });
    expect(parseConfig(`${base}capacity: {}\n`).capacity).toEqual({ lookupRecords: 65536 });
  });

  it('takes a size in 1024..16777216', () => {
    expect(parseConfig(`${base}capacity: { lookupRecords: 1048576 }\n`).capacity).toEqual({
      lookupRecords: 1048576,
    });
    expect(parseConfig(`${base}capacity: { lookupRecords: 1024 }\n`).capacity.lookupRecords).toBe(
      1024,
    );
  });

  it('refuses sizes out of range, fractions, strings and unknown fields, naming the field', () => {
    expect(problems(`${base}capacity: { lookupRecords: 1000 }\n`)).toEqual([
      'capacity.lookupRecords: Too small: expected number to be >=1024',
    ]);
    expect(problems(`${base}capacity: { lookupRecords: 20000000 }\n`)).toEqual([
      'capacity.lookupRecords: Too big: expected number to be <=16777216',
    ]);
    expect(problems(`${base}capacity: { lookupRecords: 2048.5 }\n`)[0]).toMatch(
      /^capacity\.lookupRecords: /,
    );
    expect(problems(`${base}capacity: { lookupRecords: big }\n`)[0]).toMatch(
      /^capacity\.lookupRecords: /,
    );
    expect(problems(`${base}capacity: { records: 4096 }\n`)).toEqual([
      'capacity.records: unknown field',
    ]);
  });
});
