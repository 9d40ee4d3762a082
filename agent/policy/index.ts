export * from './addr.js';
export * from './errors.js';
export * from './load.js';
export * from './model.js';
export { subnetsByVsid, caKey, type SubnetRef } from './validate.js';
export * from './validate-meter.js';
export * from './schema-steering.js';
