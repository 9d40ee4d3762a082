// The BPF layer of the agent: the typed native binding (native.ts), its errors, ABI constants,
// typed maps and attach helpers.

export * from './attach.js';
export * from './constants.js';
export * from './errors.js';
export * from './knobs.js';
export * from './native.js';
export * from './typed-map.js';
