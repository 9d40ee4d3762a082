// Lab core: namespaces, veths, bridges, topology, bounded traffic. Used by tests
// (via test/helpers/lab.ts), the demo script and benchmarks.
export * from '../process/exec.js';
export * from './lab.js';
export * from './topology.js';
export * from './traffic.js';
export * from './lab-file.js';
