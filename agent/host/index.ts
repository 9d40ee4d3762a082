// The host agent core: facts about the host, underlay next hops, attachments and the HostAgent
// that ties them to the compiler and reconciler.

export * from './agent.js';
export * from './attach.js';
export * from './command.js';
export * from './facts.js';
export * from './log.js';
export * from './migrate.js';
export * from './pins.js';
export * from './underlay.js';
export { BpfPolicyTables, MapFullError, isMapFull } from '../reconciler/bpf-tables.js';
