import { defineConfig } from 'vitest/config';

// Three layers live under test/: unit (no privileges), datapath (BPF_PROG_TEST_RUN against the
// real kernel) and e2e (namespaces with real traffic). They run together; privileged ones are
// gated by test/helpers/privilege.ts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['./test/helpers/global-setup.ts'],
    // Child processes, not worker threads: the native addon switches network namespaces on the
    // calling thread, and fork isolation keeps a misbehaving test from taking others down.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
