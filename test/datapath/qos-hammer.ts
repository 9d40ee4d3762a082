// Child process of test/datapath/qos.test.ts (per-CPU correctness): loads tenet_port against the
// test's pin root (so it shares the test's maps and the one token bucket), prints "ready", reads
// "<startNs> <stopNs>" (CLOCK_MONOTONIC) from stdin, waits until the start, runs the frame through
// tenet_port_ingress in batches until the stop time, and prints how many runs it made and when
// the last one ended. The parent pins two of these to CPU 0 and CPU 1.
//
//   node --import tsx test/datapath/qos-hammer.ts <pinRoot> <frameHex>

import { createInterface } from 'node:readline';
import { loadObject } from '../../agent/datapath/objects.js';

const [pinRoot, frameHex] = process.argv.slice(2) as [string, string];
const obj = await loadObject('tenet_port', pinRoot);
const prog = obj.program('tenet_port_ingress');
const data = Buffer.from(frameHex, 'hex');
process.stdout.write('ready\n');
const line = await new Promise<string>((resolve) => {
  createInterface({ input: process.stdin }).once('line', resolve);
});
const [start, stop] = line.trim().split(' ').map(BigInt) as [bigint, bigint];
while (process.hrtime.bigint() < start) {
  /* spin until both children start together */
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
process.exit(0);
