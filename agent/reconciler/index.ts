export * from './apply.js';
export * from './memory.js';
export * from './plan.js';
export * from './tables.js';
export * from './delta.js';
