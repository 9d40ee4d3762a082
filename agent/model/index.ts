// The reference model of the datapath (the tests' oracle): tables, FlowID, simulate().
export * from './checksum.js';
export * from './flow-hash.js';
export * from './simulate.js';
export * from './tables.js';
export * from './acl.js';
export * from './meter.js';
export * from './steer.js';
export * from './qos.js';
