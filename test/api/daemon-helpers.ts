// tenetd as a child process for the API tests: the runner lives in test/helpers/tenetd.ts; this
// file adds a config whose memory backend knows hv1's interfaces.

import { join } from 'node:path';
import { tenetdConfig } from '../helpers/tenetd.js';
import { HV1_FACTS } from './helpers.js';

export { NODE_ARGS, startDaemon, TENETD, type DaemonProc } from '../helpers/tenetd.js';

/** A tenetd config in dir; by default the memory backend with hv1's interfaces. */
export function writeConfig(
  dir: string,
  opts: { pinRoot?: string; datapath?: string } = {},
): string {
  const interfaces = Object.entries(HV1_FACTS)
    .map(([name, f]) => `    ${name}: { ifindex: ${f.ifindex}, mac: '${f.mac}', mtu: ${f.mtu} }`)
    .join('\n');
  return tenetdConfig(dir, {
    pinRoot: opts.pinRoot ?? join(dir, 'pins'),
    datapath: opts.datapath ?? `datapath:\n  backend: memory\n  interfaces:\n${interfaces}\n`,
  });
}
