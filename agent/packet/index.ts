// Packet toolkit: address helpers, checksums, fluent builder, never-throwing parser,
// one-line decoder and a pcap writer/reader.
export * from './addr.js';
export * from './checksum.js';
export * from './constants.js';
export * from './builder.js';
export * from './parser.js';
export * from './pcap.js';
