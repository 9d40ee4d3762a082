// Child process of test/datapath/qos.test.ts (per-CPU correctness): loads tenet_port against the
// test's pin root (so it shares the test's maps and the one token bucket), waits until the given
// CLOCK_MONOTONIC start time, then runs the frame through tenet_port_ingress in batches until the
// stop time, and prints how many runs it made and when the last one ended. The parent pins two of these to CPU 0 and CPU 1.
//
//   node --import tsx test/datapath/qos-hammer.ts <pinRoot> <frameHex> <startNs> <stopNs>

import { loadObject } from '../../agent/datapath/objects.js';

const [pinRoot, frameHex, startNs, stopNs] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
];
const start = BigInt(startNs);
const stop = BigInt(stopNs);
const obj = await loadObject('tenet_port', pinRoot);
const prog = obj.program('tenet_port_ingress');
const data = Buffer.from(frameHex, 'hex');
while (process.hrtime.bigint() < start) {
  /* spin until both children are ready */
}
let runs = 0;
while (process.hrtime.bigint() < stop) {
  prog.testRun({ data, repeat: 100 });
  runs += 100;
}
// When the last run finished: the parent's bound must cover a batch that ran past `stop`.
const end = process.hrtime.bigint();
prog.close();
obj.close();
process.stdout.write(`${JSON.stringify({ runs, endNs: String(end) })}\n`);
