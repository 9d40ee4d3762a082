// Test-side entry to the lab. The reusable core lives in agent/lab/ (also used by the demo and
// benchmarks); this file re-exports it and adds the vitest lifecycle helper.

import { afterAll, beforeAll } from 'vitest';
import { Lab, type LabOptions } from '../../agent/lab/lab.js';

export * from '../../agent/lab/index.js';

export interface LabRef {
  /** The lab; throws if accessed before beforeAll ran or after afterAll. */
  readonly lab: Lab;
}

/**
 * Create a lab in beforeAll and tear it down in afterAll of the enclosing describe block:
 *
 *   const ref = useLab('attach');
 *   it('...', async () => { const ns = await ref.lab.netns('h1'); ... });
 *
 * `setup` (optional) runs right after creation, e.g. to build a topology; its result is `ref.value`.
 */
export function useLab<T = undefined>(
  label: string,
  setup?: (lab: Lab) => Promise<T> | T,
  opts: LabOptions & { timeoutMs?: number } = {},
): LabRef & { readonly value: T } {
  let lab: Lab | undefined;
  let value: T | undefined;
  let ready = false;
  beforeAll(async () => {
    lab = await Lab.create(label, opts);
    if (setup) value = await setup(lab);
    ready = true;
  }, opts.timeoutMs ?? 60_000);
  afterAll(async () => {
    const l = lab;
    lab = undefined;
    ready = false;
    if (l) await l.teardown();
  }, 60_000);
  return {
    get lab(): Lab {
      if (!lab)
        throw new Error(`useLab(${label}): lab not available (outside beforeAll/afterAll window)`);
      return lab;
    },
    get value(): T {
      if (!ready) throw new Error(`useLab(${label}): setup has not completed`);
      return value as T;
    },
  };
}
