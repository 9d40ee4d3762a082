// The sections of `npm run bench`, in the order they run and appear in the report. A feature's
// benchmark (scripts/bench/<feature>.ts exporting a Section) is added here with one line.

import type { Section } from './section.js';
import { perPacket } from './per-packet.js';
import { endToEnd } from './end-to-end.js';
import { controlPlane } from './control-plane-section.js';
import { restart } from './restart.js';
import { aclSection } from './acl.js';
import { meteringSection } from './metering.js';
import { steeringSection } from './steering.js';
import { qosSection } from './qos.js';

export const SECTIONS: ReadonlyArray<readonly [key: string, run: Section]> = [
  ['per_packet', perPacket],
  ['end_to_end', endToEnd],
  ['control_plane', controlPlane],
  ['restart', restart],
  ['acl', aclSection],
  ['metering', meteringSection],
  ['steering', steeringSection],
  ['qos', qosSection],
];
