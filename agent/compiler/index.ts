export * from './compile.js';
export * from './tables.js';
