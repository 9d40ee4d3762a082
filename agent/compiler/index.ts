export * from './compile.js';
export * from './tables.js';
export * from './steering.js';
