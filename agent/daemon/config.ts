// tenetd's configuration file (YAML). Everything has a default except the host name; unknown
// fields are errors (a typo must not silently fall back to a default).
//
//   hostName: hv1                       # this host in the policy (required)
//   socket:
//     path: /run/tenet/tenetd.sock      # its directory is the 0750 runtime directory
//     group: 0                          # gid of the runtime dir and socket (default: ours)
//     allowedUids: [0]                  # SO_PEERCRED uid allowed to call
//     allowedGids: []                   # ... or primary or supplementary gid (SO_PEERGROUPS)
//   metrics:
//     listen: 127.0.0.1:9464            # loopback only; omit (or null) to disable
//   stateDir: /var/lib/tenet            # durable desired policy
//   pinRoot: /sys/fs/bpf/tenet/v1       # bpffs directory of the datapath
//   log: { level: info }
//   datapath:
//     backend: host                     # host: the BPF datapath; memory: compiler and reconciler
//                                       # over in-memory tables (development, tests)
//     netns: /run/netns/NAME            # host backend: manage another network namespace
//     dropEvents: false                 # host backend: load the programs with drop events on
//                                       # (tenet_cfg_drop_events), for Watch's datapath events
//     aclConntrackEntries: 262144       # host backend: size of the ACL connection tracking LRU
//                                       # when created (a pinned table keeps its size)
//     steering: { capacityPps: 1000000, high: 0.8, low: 0.5 }  # host backend: dynamic steering
//                                       # (agent/steering/config.ts)
//     interfaces: { eth0: { ifindex: 2, mac: '02:00:00:00:00:01', mtu: 1500 } }  # memory only
//     underlay: { 198.18.0.2: '02:00:00:00:00:02' }  # memory only: next-hop MAC per remote PA
//   capacity:
//     lookupRecords: 65536              # entries of the lookup-records map (tenet_records),
//                                       # 1024..16777216; default TENET_RECORDS_MAX (65536). A
//                                       # change resizes a running datapath at the next start
//                                       # without a forwarding gap (docs/control-plane.md); a
//                                       # size below the records it holds is refused

import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { Maps, TENET_PIN_ROOT } from '../abi/generated.js';
import { formatPath } from '../policy/errors.js';
import { steeringConfig } from '../steering/config.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super([`invalid config ${file}:`, ...problems.map((p) => `  ${p}`)].join('\n'));
  }
}

const absPath = z.string().refine((p) => isAbsolute(p), 'must be an absolute path');
const id = z.number().int().min(0).max(0xfffffffe);

/** host:port with a loopback host: 127.0.0.0/8, ::1 or localhost. */
export function parseListen(text: string): { host: string; port: number } | string {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  if (m === null) return `"${text}" is not host:port`;
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} is out of range`;
  const loopback =
    host === 'localhost' ||
    (isIP(host) === 4 && host.startsWith('127.')) ||
    (isIP(host) === 6 && (host === '::1' || host === '0:0:0:0:0:0:0:1'));
  if (!loopback) {
    return `${host} is not a loopback address: metrics are served on 127.0.0.0/8 or ::1 only`;
  }
  return { host, port };
}

const listen = z.string().transform((s, ctx) => {
  const r = parseListen(s);
  if (typeof r === 'string') {
    ctx.addIssue(r);
    return z.NEVER;
  }
  return r;
});

const interfaceFacts = z.strictObject({
  ifindex: z.number().int().min(1),
  mac: z.string(),
  mtu: z.number().int().min(68).max(65535),
});

/** Bounds of capacity.lookupRecords: a hash map's max_entries, 40 bytes of value each. */
export const RECORDS_CAPACITY_MIN = 1024;
export const RECORDS_CAPACITY_MAX = 16 * 1024 * 1024;

export const configSchema = z.strictObject({
  hostName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'not a valid host name'),
  socket: z
    .strictObject({
      path: absPath.default('/run/tenet/tenetd.sock'),
      group: id.optional(),
      allowedUids: z.array(id).default([0]),
      allowedGids: z.array(id).default([]),
    })
    .default({ path: '/run/tenet/tenetd.sock', allowedUids: [0], allowedGids: [] }),
  metrics: z.strictObject({ listen: listen.nullable().default(null) }).default({ listen: null }),
  stateDir: absPath.default('/var/lib/tenet'),
  pinRoot: absPath.default(TENET_PIN_ROOT),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    })
    .default({ level: 'info' }),
  datapath: z
    .strictObject({
      backend: z.enum(['host', 'memory']).default('host'),
      netns: absPath.optional(),
      dropEvents: z.boolean().default(false),
      aclConntrackEntries: z.number().int().min(1024).max(16777216).default(262144),
      steering: steeringConfig.optional(),
      interfaces: z.record(z.string(), interfaceFacts).default({}),
      underlay: z
        .record(
          z.string(),
          z.string().regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/, 'is not a MAC address'),
        )
        .superRefine((rec, ctx) => {
          for (const pa of Object.keys(rec)) {
            if (isIP(pa) !== 4)
              ctx.addIssue({ code: 'custom', path: [pa], message: 'is not an IPv4 address' });
          }
        })
        .default({}),
    })
    .default({
      backend: 'host',
      dropEvents: false,
      aclConntrackEntries: 262144,
      interfaces: {},
      underlay: {},
    }),
  capacity: z
    .strictObject({
      lookupRecords: z
        .number()
        .int()
        .min(RECORDS_CAPACITY_MIN)
        .max(RECORDS_CAPACITY_MAX)
        .default(Maps.tenet_records.maxEntries),
    })
    .default({ lookupRecords: Maps.tenet_records.maxEntries }),
});

export type Config = z.output<typeof configSchema>;

export function parseConfig(text: string, file = '<config>'): Config {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0)
    throw new ConfigError(
      file,
      doc.errors.map((e) => `YAML: ${e.message}`),
    );
  const raw: unknown = doc.toJS() ?? {};
  const r = configSchema.safeParse(raw);
  if (!r.success) {
    throw new ConfigError(
      file,
      r.error.issues.map((i) => {
        const path = formatPath(i.path);
        if (i.code === 'unrecognized_keys') {
          return i.keys.map((k) => `${formatPath([...i.path, k])}: unknown field`).join('; ');
        }
        const msg = i.code === 'invalid_type' && i.input === undefined ? 'is required' : i.message;
        return path === '' ? msg : `${path}: ${msg}`;
      }),
    );
  }
  return r.data;
}

export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [(e as Error).message]);
  }
  return parseConfig(text, file);
}
