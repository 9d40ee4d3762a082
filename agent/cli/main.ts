#!/usr/bin/env node
// tenetctl — talk to tenetd over its control socket.
//
//   tenetctl <object> <verb> [args]      objects: provider-address (pa), routing-domain (rd),
//                                        virtual-subnet (vsubnet), port, lookup-record (record),
//                                        customer-route (route); verbs: list, get, create,
//                                        update, delete
//   tenetctl apply -f policy.yaml [--dry-run]
//   tenetctl simulate --port blue-vm1 --dst 198.19.1.12 --proto icmp   (or --nic eth0, --frame)
//   tenetctl status | counters | watch | cleanup [--dry-run] [--all]
//
// Output: human tables by default; `-o json` prints the proto3 JSON of the response (what any
// gRPC client would see), `-o yaml` the same as YAML. Errors go to stderr.
// Exit codes: 0 done; 1 tenetd refused or the operation failed (the status code and message are
// printed); 2 usage error, or tenetd could not be reached.

import { qosCommand } from './qos.js';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { status, type ServiceError } from '@grpc/grpc-js';
import { Command, CommanderError, Option } from 'commander';
import { parseDocument, stringify } from 'yaml';
import { DEFAULT_SOCKET, fieldViolations, TenetClient } from '../api/client.js';
import { methodInfo, toProtoJson, type Plain, type ServiceName } from '../api/proto.js';
import { decodePcap, LINKTYPE_ETHERNET } from '../packet/pcap.js';
import { aclCommand } from './acl.js';
import { meterCommand } from './meter.js';
import type { CliHelpers } from './verbs.js';
import { steeringCommand, type CliKit } from './steering.js';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

class UsageError extends Error {}

type Format = 'table' | 'json' | 'yaml';

interface Globals {
  socket: string;
  output: Format;
  timeout: string;
}

// ---- output -------------------------------------------------------------------------------------

type Column = [header: string, get: (row: Plain) => unknown];

function cell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (Array.isArray(v)) return v.length === 0 ? '-' : v.map(cell).join(',');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function table(rows: readonly Plain[], columns: readonly Column[]): string {
  const cells = rows.map((r) => columns.map(([, get]) => cell(get(r))));
  const headers = columns.map(([h]) => h);
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...cells.map((c) => (c[i] as string).length)),
  );
  const line = (c: readonly string[]): string =>
    c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i] as number))).join('  ');
  return [line(headers), ...cells.map(line)].join('\n');
}

function print(
  g: Globals,
  service: ServiceName,
  method: string,
  res: Plain,
  human: (res: Plain) => string,
): void {
  const json = toProtoJson(methodInfo(service, method).responseType.fullName.slice(1), res);
  if (g.output === 'json') console.log(JSON.stringify(json, null, 2));
  else if (g.output === 'yaml') process.stdout.write(stringify(json));
  else console.log(human(res));
}

// ---- objects ------------------------------------------------------------------------------------

type FieldType = 'string' | 'int' | 'list';
interface FieldSpec {
  readonly flag: string;
  /** Path in the object: ['gateway', 'ipv4'] */
  readonly path: readonly string[];
  readonly type: FieldType;
  readonly help: string;
}

interface ObjectSpec {
  readonly name: string;
  readonly aliases: readonly string[];
  /** Proto name of the kind: ProviderAddress -> CreateProviderAddress, ... */
  readonly kind: string;
  /** List RPC and its response field. */
  readonly list: { method: string; field: string; filters: FieldSpec[] };
  /** Request field that carries the object in Create/Update. */
  readonly field: string;
  /** Key arguments of get/delete, in order, with their request fields and types. */
  readonly key: { arg: string; field: string; type: 'string' | 'int' }[];
  readonly fields: FieldSpec[];
  readonly columns: Column[];
  /** Extra request fields of create (virtual subnets: the routing domain). */
  readonly createExtra?: FieldSpec[];
  /** Rows of a list response for the table. */
  readonly rows?: (res: Plain) => Plain[];
}

const f = (flag: string, path: string | string[], type: FieldType, help: string): FieldSpec => ({
  flag,
  path: Array.isArray(path) ? path : [path],
  type,
  help,
});

const OBJECTS: readonly ObjectSpec[] = [
  {
    name: 'provider-address',
    aliases: ['pa', 'provider-addresses'],
    kind: 'ProviderAddress',
    list: {
      method: 'ListProviderAddresses',
      field: 'providerAddresses',
      filters: [f('host', 'host', 'string', 'only this host')],
    },
    field: 'providerAddress',
    key: [{ arg: 'address', field: 'address', type: 'string' }],
    fields: [
      f('host', 'host', 'string', 'host that owns the address'),
      f('address', 'address', 'string', 'IPv4 provider address'),
      f('interface', 'interface', 'string', 'physical interface'),
      f('prefix-length', 'prefixLength', 'int', 'on-link underlay prefix length'),
      f('underlay-next-hop', 'underlayNextHop', 'string', 'underlay router'),
    ],
    columns: [
      ['ADDRESS', (r) => r.address],
      ['HOST', (r) => r.host],
      ['INTERFACE', (r) => r.interface],
      ['PREFIX', (r) => r.prefixLength],
      ['NEXT-HOP', (r) => r.underlayNextHop],
    ],
  },
  {
    name: 'routing-domain',
    aliases: ['rd', 'routing-domains'],
    kind: 'RoutingDomain',
    list: { method: 'ListRoutingDomains', field: 'routingDomains', filters: [] },
    field: 'routingDomain',
    key: [{ arg: 'name', field: 'name', type: 'string' }],
    fields: [f('name', 'name', 'string', 'routing domain name (its virtual subnets: use -f)')],
    columns: [
      ['NAME', (r) => r.name],
      ['VSIDS', (r) => ((r.virtualSubnets as Plain[] | undefined) ?? []).map((s) => s.vsid)],
    ],
  },
  {
    name: 'virtual-subnet',
    aliases: ['vsubnet', 'virtual-subnets', 'vsubnets'],
    kind: 'VirtualSubnet',
    list: {
      method: 'ListVirtualSubnets',
      field: 'virtualSubnets',
      filters: [f('routing-domain', 'routingDomain', 'string', 'only this routing domain')],
    },
    field: 'virtualSubnet',
    key: [{ arg: 'vsid', field: 'vsid', type: 'int' }],
    fields: [
      f('name', 'name', 'string', 'subnet name'),
      f('vsid', 'vsid', 'int', 'VSID (4096..16777214)'),
      f('prefix', 'prefixes', 'list', 'customer address prefix (repeatable)'),
      f('gateway-ipv4', ['gateway', 'ipv4'], 'string', 'distributed router IPv4 address'),
      f('gateway-ipv6', ['gateway', 'ipv6'], 'string', 'distributed router IPv6 address'),
    ],
    createExtra: [
      f('routing-domain', 'routingDomain', 'string', 'routing domain of the new subnet'),
    ],
    rows: (res) =>
      ((res.virtualSubnets as Plain[] | undefined) ?? []).map((s) => ({
        routingDomain: s.routingDomain,
        ...(s.virtualSubnet as Plain),
      })),
    columns: [
      ['VSID', (r) => r.vsid],
      ['NAME', (r) => r.name],
      ['DOMAIN', (r) => r.routingDomain],
      ['PREFIXES', (r) => r.prefixes],
      [
        'GATEWAY',
        (r) =>
          [(r.gateway as Plain | undefined)?.ipv4, (r.gateway as Plain | undefined)?.ipv6].filter(
            (x) => x !== undefined,
          ),
      ],
    ],
  },
  {
    name: 'port',
    aliases: ['ports'],
    kind: 'Port',
    list: {
      method: 'ListPorts',
      field: 'ports',
      filters: [
        f('host', 'host', 'string', 'only this host'),
        f('vsid', 'vsid', 'int', 'only this VSID'),
      ],
    },
    field: 'port',
    key: [{ arg: 'name', field: 'name', type: 'string' }],
    fields: [
      f('name', 'name', 'string', 'port name'),
      f('host', 'host', 'string', 'host of the VM'),
      f('interface', 'interface', 'string', 'host-side interface'),
      f('mac', 'mac', 'string', 'the adapter MAC'),
      f('vsid', 'vsid', 'int', 'virtual subnet'),
      f('address', 'addresses', 'list', 'customer address (repeatable)'),
      f('mtu', 'mtu', 'int', 'tenant MTU cap'),
    ],
    columns: [
      ['NAME', (r) => r.name],
      ['HOST', (r) => r.host],
      ['INTERFACE', (r) => r.interface],
      ['VSID', (r) => r.vsid],
      ['MAC', (r) => r.mac],
      ['ADDRESSES', (r) => r.addresses],
      ['MTU', (r) => r.mtu],
    ],
  },
  {
    name: 'lookup-record',
    aliases: ['record', 'records', 'lookup-records'],
    kind: 'LookupRecord',
    list: {
      method: 'ListLookupRecords',
      field: 'lookupRecords',
      filters: [
        f('vsid', 'vsid', 'int', 'only this VSID'),
        f('pa', 'pa', 'string', 'only records pointing at this PA'),
        f('page-size', 'pageSize', 'int', 'records per page (default 1000)'),
        f('page-token', 'pageToken', 'string', 'next_page_token of the previous page'),
      ],
    },
    field: 'lookupRecord',
    key: [
      { arg: 'vsid', field: 'vsid', type: 'int' },
      { arg: 'ca', field: 'ca', type: 'string' },
    ],
    fields: [
      f('vsid', 'vsid', 'int', 'VSID'),
      f('ca', 'ca', 'string', 'customer address'),
      f('mac', 'mac', 'string', 'MAC of the adapter'),
      f('pa', 'pa', 'string', 'provider address of its host'),
    ],
    columns: [
      ['VSID', (r) => r.vsid],
      ['CA', (r) => r.ca],
      ['MAC', (r) => r.mac],
      ['PA', (r) => r.pa],
    ],
  },
  {
    name: 'customer-route',
    aliases: ['route', 'routes', 'customer-routes'],
    kind: 'CustomerRoute',
    list: {
      method: 'ListCustomerRoutes',
      field: 'customerRoutes',
      filters: [f('routing-domain', 'routingDomain', 'string', 'only this routing domain')],
    },
    field: 'customerRoute',
    key: [
      { arg: 'routing-domain', field: 'routingDomain', type: 'string' },
      { arg: 'prefix', field: 'prefix', type: 'string' },
    ],
    fields: [
      f('routing-domain', 'routingDomain', 'string', 'routing domain'),
      f('prefix', 'prefix', 'string', 'destination prefix'),
      f('virtual-subnet', 'virtualSubnet', 'int', 'on-link in this VSID'),
      f('next-hop', 'nextHop', 'string', 'via this customer address'),
    ],
    columns: [
      ['DOMAIN', (r) => r.routingDomain],
      ['PREFIX', (r) => r.prefix],
      ['VSUBNET', (r) => r.virtualSubnet],
      ['NEXT-HOP', (r) => r.nextHop],
    ],
  },
];

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function parseInt32(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${what}: "${text}" is not a number`);
  return Number(text);
}

function setPath(obj: Plain, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const p of path.slice(0, -1)) {
    cur[p] ??= {};
    cur = cur[p] as Plain;
  }
  cur[path[path.length - 1] as string] = value;
}

function addFieldOptions(cmd: Command, fields: readonly FieldSpec[]): Command {
  for (const fs of fields) {
    const arg = fs.type === 'list' ? `<value...>` : '<value>';
    cmd.addOption(new Option(`--${fs.flag} ${arg}`, fs.help));
  }
  return cmd;
}

function fieldsFrom(
  opts: Record<string, unknown>,
  fields: readonly FieldSpec[],
  into: Plain = {},
): Plain {
  for (const fs of fields) {
    const v = opts[camel(fs.flag)];
    if (v === undefined) continue;
    let value: unknown = v;
    if (fs.type === 'int') value = parseInt32(String(v), `--${fs.flag}`);
    if (fs.type === 'list') value = (v as string[]).flatMap((x) => x.split(','));
    setPath(into, fs.path, value);
  }
  return into;
}

/** A YAML or JSON file with one object (camelCase fields, as in a policy document). */
function readObject(file: string): Plain {
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new UsageError(`${file}: ${doc.errors[0]?.message}`);
  const v: unknown = doc.toJS();
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new UsageError(`${file}: expected one object`);
  return v as Plain;
}

// ---- running calls ------------------------------------------------------------------------------

let exitCode = EXIT_OK;

function globals(cmd: Command): Globals {
  return cmd.optsWithGlobals<Globals>();
}

function clientFor(g: Globals): TenetClient {
  if (!existsSync(g.socket)) {
    throw new UsageError(
      `cannot reach tenetd: ${g.socket} does not exist (is tenetd running? --socket)`,
    );
  }
  return new TenetClient(g.socket);
}

function isConnectionError(e: ServiceError): boolean {
  return (
    e.code === status.UNAVAILABLE &&
    /No connection|connect|ECONNREFUSED|ENOENT|EACCES|Connection dropped/i.test(e.details ?? '')
  );
}

function reportError(e: unknown): void {
  if (e instanceof UsageError) {
    console.error(`tenetctl: ${e.message}`);
    exitCode = EXIT_USAGE;
    return;
  }
  const se = e as ServiceError;
  if (typeof se?.code === 'number') {
    if (isConnectionError(se)) {
      console.error(`tenetctl: cannot reach tenetd: ${se.details}`);
      exitCode = EXIT_USAGE;
      return;
    }
    console.error(`${status[se.code] ?? se.code}: ${se.details}`);
    const violations = fieldViolations(se);
    if (violations.length > 0 && !(se.details ?? '').includes(violations[0]?.field ?? '\0')) {
      for (const v of violations) console.error(`  ${v.field}: ${v.description}`);
    }
    exitCode = EXIT_FAILED;
    return;
  }
  console.error(`tenetctl: ${e instanceof Error ? e.message : String(e)}`);
  exitCode = EXIT_FAILED;
}

function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      reportError(e);
    }
  };
}

async function call(
  g: Globals,
  service: ServiceName,
  method: string,
  req: Plain,
  human: (res: Plain) => string,
): Promise<void> {
  const client = clientFor(g);
  try {
    const res = await client.call(service, method, req, { timeoutMs: Number(g.timeout) });
    print(g, service, method, res, human);
  } finally {
    client.close();
  }
}

function objectCommand(spec: ObjectSpec): Command {
  const cmd = new Command(spec.name).description(`${spec.kind} objects`);
  for (const a of spec.aliases) cmd.alias(a);
  const rowsOf = spec.rows ?? ((res: Plain) => (res[spec.list.field] as Plain[] | undefined) ?? []);
  const one = (res: Plain): string => {
    const obj = (res[spec.field] ?? {}) as Plain;
    const row =
      spec.kind === 'VirtualSubnet'
        ? { routingDomain: obj.routingDomain, ...(obj.virtualSubnet as Plain) }
        : obj;
    return table([row], spec.columns);
  };
  const written = (res: Plain): string => `${one(res)}\n(policy version ${cell(res.version ?? 0)})`;
  const keyArgs = spec.key.map((k) => `<${k.arg}>`).join(' ');
  const keyReq = (args: string[]): Plain =>
    Object.fromEntries(
      spec.key.map((k, i) => [
        k.field,
        k.type === 'int' ? parseInt32(args[i] as string, k.arg) : args[i],
      ]),
    );

  addFieldOptions(
    withGlobals(cmd.command('list').description(`list ${spec.name}s`)),
    spec.list.filters,
  ).action(
    action(async (opts: Record<string, unknown>, c: Command) => {
      const req = fieldsFrom(opts, spec.list.filters);
      await call(globals(c), 'PolicyService', spec.list.method, req, (res) => {
        const out = table(rowsOf(res), spec.columns);
        return res.nextPageToken
          ? `${out}\n(more: --page-token ${String(res.nextPageToken)})`
          : out;
      });
    }),
  );
  withGlobals(cmd.command(`get ${keyArgs}`).description(`show one ${spec.name}`)).action(
    action(async (...args: unknown[]) => {
      const c = args[args.length - 1] as Command;
      await call(
        globals(c),
        'PolicyService',
        `Get${spec.kind}`,
        keyReq(args.slice(0, spec.key.length) as string[]),
        one,
      );
    }),
  );
  withGlobals(cmd.command(`delete ${keyArgs}`).description(`delete one ${spec.name}`)).action(
    action(async (...args: unknown[]) => {
      const c = args[args.length - 1] as Command;
      await call(
        globals(c),
        'PolicyService',
        `Delete${spec.kind}`,
        keyReq(args.slice(0, spec.key.length) as string[]),
        (res) => `deleted (policy version ${cell(res.version ?? 0)})`,
      );
    }),
  );
  for (const verb of ['create', 'update'] as const) {
    const sub = withGlobals(
      cmd
        .command(verb)
        .description(
          `${verb} a ${spec.name} from flags or -f FILE (YAML/JSON, document field names)`,
        )
        .option(
          '-f, --file <file>',
          'the object as YAML or JSON (- for stdin); flags override its fields',
        ),
    );
    addFieldOptions(sub, [...spec.fields, ...(verb === 'create' ? (spec.createExtra ?? []) : [])]);
    sub.action(
      action(async (opts: Record<string, unknown>, c: Command) => {
        const base = typeof opts.file === 'string' ? readObject(opts.file) : {};
        const object = fieldsFrom(opts, spec.fields, base);
        if (Object.keys(object).length === 0)
          throw new UsageError(`${spec.name} ${verb}: give flags or -f FILE`);
        const req: Plain = { [spec.field]: object };
        if (verb === 'create' && spec.createExtra) fieldsFrom(opts, spec.createExtra, req);
        if (
          spec.kind === 'VirtualSubnet' &&
          verb === 'create' &&
          typeof object.routingDomain === 'string'
        ) {
          req.routingDomain ??= object.routingDomain;
          delete object.routingDomain;
        }
        await call(
          globals(c),
          'PolicyService',
          `${verb === 'create' ? 'Create' : 'Update'}${spec.kind}`,
          req,
          written,
        );
      }),
    );
  }
  return cmd;
}

// ---- apply --------------------------------------------------------------------------------------

/** Lookup records above which apply streams the document (BulkLoadLookupRecords). */
const BULK_THRESHOLD = 20_000;
const BULK_CHUNK = 10_000;

function progress(done: number, total: number): void {
  const width = 30;
  const pct = total === 0 ? 100 : Math.floor((done * 100) / total);
  const fill = Math.round((pct / 100) * width);
  const bar = `[${'='.repeat(fill)}${' '.repeat(width - fill)}] ${pct}% ${done}/${total} lookup records`;
  if (process.stderr.isTTY) process.stderr.write(`\r${bar}${done >= total ? '\n' : ''}`);
  else if (
    done >= total ||
    Math.floor(((done - BULK_CHUNK) * 10) / total) !== Math.floor((done * 10) / total)
  ) {
    process.stderr.write(`${bar}\n`);
  }
}

function diffSummary(res: Plain): string {
  const diff = (res.diff ?? {}) as Record<string, Plain>;
  const rows = Object.entries(diff).map(([kind, d]) => ({
    kind,
    added: d.addedCount ?? 0,
    changed: d.changedCount ?? 0,
    removed: d.removedCount ?? 0,
  }));
  const head = res.dryRun
    ? `dry run: ${res.changed ? 'would change' : 'no change'} (policy version ${cell(res.version ?? 0)})`
    : `${res.changed ? 'applied' : 'unchanged'}: policy version ${cell(res.version ?? 0)}`;
  const warnings = ((res.warnings as string[] | undefined) ?? []).map((w) => `warning: ${w}`);
  return [
    head,
    table(rows, [
      ['KIND', (r) => r.kind],
      ['ADDED', (r) => r.added],
      ['CHANGED', (r) => r.changed],
      ['REMOVED', (r) => r.removed],
    ]),
    ...warnings,
  ].join('\n');
}

async function apply(
  opts: { file?: string; dryRun?: boolean; bulk?: boolean },
  c: Command,
): Promise<void> {
  const g = globals(c);
  if (opts.file === undefined) throw new UsageError('apply: give -f FILE');
  const text = opts.file === '-' ? readFileSync(0, 'utf8') : readFileSync(opts.file, 'utf8');
  // Small documents go as text (the server's errors then name the file's own paths); large ones
  // are parsed here and streamed: the document without its records first, then the records in
  // chunks, applied atomically by the server when the stream ends.
  let doc: Plain | undefined;
  if (opts.bulk || text.length > 4 * 1024 * 1024 || /lookupRecords/.test(text)) {
    const parsed = parseDocument(text, { uniqueKeys: true });
    if (parsed.errors.length === 0) {
      const v: unknown = parsed.toJS({ maxAliasCount: 100 });
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) doc = v as Plain;
    }
  }
  const records = Array.isArray(doc?.lookupRecords) ? (doc?.lookupRecords as Plain[]) : [];
  const client = clientFor(g);
  try {
    if (
      doc === undefined ||
      (!opts.bulk && records.length < BULK_THRESHOLD && text.length <= 4 * 1024 * 1024)
    ) {
      const res = await client.policy(
        'Apply',
        { text, dryRun: opts.dryRun === true },
        { timeoutMs: Number(g.timeout) },
      );
      print(g, 'PolicyService', 'Apply', res, diffSummary);
      return;
    }
    const document = { ...doc, lookupRecords: [] };
    function* chunks(): Generator<Plain> {
      yield { mode: 'BULK_LOAD_MODE_REPLACE', dryRun: opts.dryRun === true, document };
      for (let i = 0; i < records.length; i += BULK_CHUNK) {
        yield { lookupRecords: records.slice(i, i + BULK_CHUNK) };
      }
    }
    progress(0, records.length);
    const res = await client.bulkLoad(chunks(), (i) => {
      if (i > 0) progress(Math.min(i * BULK_CHUNK, records.length), records.length);
    });
    print(g, 'PolicyService', 'BulkLoadLookupRecords', res, (r) =>
      diffSummary({ ...r, dryRun: opts.dryRun === true }),
    );
  } finally {
    client.close();
  }
}

// ---- simulate -----------------------------------------------------------------------------------

interface SimulateOptions {
  port?: string;
  nic?: string;
  frame?: string;
  frameFile?: string;
  srcMac?: string;
  dstMac?: string;
  src?: string;
  dst?: string;
  proto?: string;
  sport?: string;
  dport?: string;
  icmpType?: string;
  icmpCode?: string;
  tcpFlags?: string;
  ttl?: string;
  dscp?: string;
  ecn?: string;
  df?: boolean;
  length?: string;
  arpOp?: string;
  vsid?: string;
  flowId?: string;
  outerSrc?: string;
  outerDst?: string;
  hex?: boolean;
}

const PROTOS: Record<string, string> = {
  icmp: 'PACKET_PROTOCOL_ICMP',
  icmpv6: 'PACKET_PROTOCOL_ICMPV6',
  tcp: 'PACKET_PROTOCOL_TCP',
  udp: 'PACKET_PROTOCOL_UDP',
  arp: 'PACKET_PROTOCOL_ARP',
};

/** A frame from --frame (hex, separators allowed) or --frame-file (raw bytes or a pcap's first). */
function frameFrom(opts: SimulateOptions): Buffer | undefined {
  if (opts.frame !== undefined) {
    const hex = opts.frame.replace(/^0x/i, '').replace(/[\s:.-]/g, '');
    if (hex === '' || !/^([0-9a-f]{2})+$/i.test(hex))
      throw new UsageError('--frame: give the frame as hex bytes');
    return Buffer.from(hex, 'hex');
  }
  if (opts.frameFile === undefined) return undefined;
  const raw = opts.frameFile === '-' ? readFileSync(0) : readFileSync(opts.frameFile);
  const magic = raw.length >= 4 ? raw.readUInt32LE(0) : 0;
  if ([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1].includes(magic)) {
    let pcap;
    try {
      pcap = decodePcap(raw);
    } catch (e) {
      throw new UsageError(`--frame-file: ${(e as Error).message}`);
    }
    if (pcap.linktype !== LINKTYPE_ETHERNET)
      throw new UsageError('--frame-file: the pcap is not of Ethernet frames');
    const first = pcap.records[0];
    if (first === undefined) throw new UsageError('--frame-file: the pcap holds no packet');
    return first.data;
  }
  return raw;
}

export function simulateRequestFrom(opts: SimulateOptions): Plain {
  if ((opts.port === undefined) === (opts.nic === undefined))
    throw new UsageError('simulate: give --port NAME or --nic INTERFACE (one of them)');
  const req: Plain = opts.port !== undefined ? { port: opts.port } : { nic: opts.nic };
  const frame = frameFrom(opts);
  const described = [
    opts.srcMac,
    opts.dstMac,
    opts.src,
    opts.dst,
    opts.proto,
    opts.sport,
    opts.dport,
    opts.icmpType,
    opts.icmpCode,
    opts.tcpFlags,
    opts.ttl,
    opts.dscp,
    opts.ecn,
    opts.df,
    opts.length,
    opts.arpOp,
    opts.vsid,
    opts.flowId,
    opts.outerSrc,
    opts.outerDst,
  ].some((v) => v !== undefined);
  if (frame !== undefined) {
    if (described)
      throw new UsageError('simulate: --frame/--frame-file and packet fields exclude each other');
    req.frame = frame;
    return req;
  }
  if (opts.dst === undefined) throw new UsageError('simulate: give --dst ADDRESS (or --frame)');
  const d: Plain = { dstIp: opts.dst };
  const num = (v: string | undefined, flag: string): number | undefined =>
    v === undefined ? undefined : parseInt32(v, flag);
  const set = (k: string, v: unknown): void => {
    if (v !== undefined) d[k] = v;
  };
  set('srcIp', opts.src);
  set('srcMac', opts.srcMac);
  set('dstMac', opts.dstMac);
  if (opts.proto !== undefined) {
    const p = PROTOS[opts.proto.toLowerCase()];
    if (p === undefined) throw new UsageError(`--proto: one of ${Object.keys(PROTOS).join(', ')}`);
    d.protocol = p;
  }
  set('srcPort', num(opts.sport, '--sport'));
  set('dstPort', num(opts.dport, '--dport'));
  set('icmpType', num(opts.icmpType, '--icmp-type'));
  set('icmpCode', num(opts.icmpCode, '--icmp-code'));
  set('tcpFlags', opts.tcpFlags);
  set('ttl', num(opts.ttl, '--ttl'));
  set('dscp', num(opts.dscp, '--dscp'));
  set('ecn', num(opts.ecn, '--ecn'));
  if (opts.df === true) d.df = true;
  set('length', num(opts.length, '--length'));
  if (opts.arpOp !== undefined) {
    const op = { request: 1, reply: 2 }[opts.arpOp] ?? num(opts.arpOp, '--arp-op');
    d.arpOp = op;
  }
  if (opts.vsid !== undefined || opts.flowId !== undefined || opts.outerSrc !== undefined) {
    const nv: Plain = {};
    if (opts.vsid !== undefined) nv.vsid = num(opts.vsid, '--vsid');
    if (opts.flowId !== undefined) nv.flowId = num(opts.flowId, '--flow-id');
    if (opts.outerSrc !== undefined) nv.srcPa = opts.outerSrc;
    if (opts.outerDst !== undefined) nv.dstPa = opts.outerDst;
    d.nvgre = nv;
  } else if (opts.outerDst !== undefined) {
    d.nvgre = { dstPa: opts.outerDst };
  }
  req.description = d;
  return req;
}

const plural = (n: unknown, what: string): string => `${cell(n)} ${what}${n === '1' ? '' : 's'}`;

/** The human form of a SimulateResponse. */
export function describeSimulation(res: Plain, hex = false): string {
  const where = (iface: unknown, port: unknown): string =>
    port !== undefined ? `${cell(iface)} (port ${cell(port)})` : cell(iface);
  const hook = res.hook === 'xdp' ? 'XDP' : 'tc ingress';
  const verdict = String(res.verdict ?? '')
    .replace(/^DATAPATH_VERDICT_/, '')
    .toLowerCase();
  const lines = [
    `input:    ${where(res.ingressInterface, res.ingressPort)}, ${hook}, policy version ${cell(res.policyVersion ?? 0)}`,
    `          ${cell(res.inputDecode)}`,
  ];
  switch (verdict) {
    case 'drop':
      lines.push(`verdict:  DROP (${cell(res.dropReason)})`);
      break;
    case 'redirect':
      lines.push(`verdict:  REDIRECT to ${where(res.outputInterface, res.outputPort)}`);
      break;
    case 'tx':
      lines.push(`verdict:  TX back out of ${where(res.outputInterface, res.outputPort)}`);
      break;
    case 'pass':
      lines.push('verdict:  PASS to the host stack');
      break;
    default:
      lines.push(`verdict:  ${verdict || '-'}`);
  }
  if (res.outputDecode !== undefined) lines.push(`output:   ${cell(res.outputDecode)}`);
  const e = res.encapsulation as Plain | undefined;
  if (e !== undefined) {
    lines.push(
      `nvgre:    PA ${cell(e.srcPa)} > ${cell(e.dstPa)}, VSID ${cell(e.vsid ?? 0)}, FlowID ${cell(e.flowId ?? 0)} (${cell(e.srcMac)} > ${cell(e.dstMac)})`,
    );
  }
  if (hex && typeof res.outputFrame === 'string') {
    lines.push(`bytes:    ${Buffer.from(res.outputFrame, 'base64').toString('hex')}`);
  }
  const c = (res.counters ?? {}) as Record<string, Plain[] | undefined>;
  const counters = [
    ...(c.ports ?? []).map(
      (p) =>
        `${cell(p.direction)} ${where(p.interface, p.port)}: ${plural(p.packets ?? '0', 'packet')}, ${plural(p.bytes ?? '0', 'byte')}`,
    ),
    ...(c.vsids ?? []).map(
      (v) =>
        `${cell(v.direction)} VSID ${cell(v.vsid)}${v.virtualSubnet ? ` (${cell(v.virtualSubnet)})` : ''}: ${plural(v.packets ?? '0', 'packet')}, ${plural(v.bytes ?? '0', 'byte')}`,
    ),
    ...(c.drops ?? []).map(
      (d) =>
        `drop ${cell(d.reason)}: ${plural(d.packets ?? '0', 'packet')}, ${plural(d.bytes ?? '0', 'byte')}`,
    ),
    ...((res.meters as Plain[] | undefined) ?? []).map(
      (m) =>
        `meter ${cell(m.port)} ${cell(m.direction)} class ${cell(m.meterClass)}: ${plural(m.packets ?? '0', 'packet')}, ${plural(m.bytes ?? '0', 'byte')}`,
    ),
  ];
  lines.push(`counters: ${counters.length === 0 ? '-' : counters[0]}`);
  for (const x of counters.slice(1)) lines.push(`          ${x}`);
  return lines.join('\n');
}

/** One line of `tenetctl watch` for a WatchResponse. */
export function watchLine(ev: Plain): string {
  const d = ev.datapathEvent as Plain | undefined;
  if (d !== undefined) {
    const when = new Date(Number(BigInt(String(d.timeUnixNs ?? 0)) / 1_000_000n)).toISOString();
    const where = d.port
      ? `${cell(d.interface)} (port ${cell(d.port)})`
      : cell(d.interface || `ifindex ${cell(d.ifindex)}`);
    return `${when} ${cell(d.kind)} ${cell(d.reason)} ${where} ${cell(d.direction)} ${cell(d.packetLength ?? 0)} bytes: ${cell(d.sampleDecode)}`;
  }
  const sup = ev.eventsSuppressed as Plain | undefined;
  if (sup !== undefined) {
    return `suppressed ${cell(sup.rateLimited ?? '0')} over the rate, ${cell(sup.backpressure ?? '0')} for backpressure (${cell(sup.total ?? '0')} in all)`;
  }
  const pc = (ev.policyChanged ?? {}) as Plain;
  return `version ${cell(ev.version ?? 0)} ${cell(pc.method)} ${pc.diff ? JSON.stringify(toProtoJson('tenet.v1.PolicyDiff', pc.diff as Plain)) : ''}`;
}

function simulateCommand(program: Command): void {
  withGlobals(
    program
      .command('simulate')
      .description(
        'what the datapath would do to a packet (the reference model over the current policy)',
      )
      .option('--port <name>', 'the packet comes from this VM port (tc ingress)')
      .option('--nic <interface>', 'the packet arrives on this physical NIC (XDP)')
      .option('--frame <hex>', 'the whole Ethernet frame as hex')
      .option('--frame-file <file>', 'the frame as raw bytes, or the first packet of a pcap')
      .option('--src-mac <mac>', "source MAC (default: the port's)")
      .option('--dst-mac <mac>', "destination MAC (default: the destination's, or the gateway's)")
      .option('--src <ip>', "source address (default: the port's)")
      .option('--dst <ip>', 'destination address (ARP: the address asked for)')
      .option('--proto <proto>', 'icmp, icmpv6, tcp, udp or arp (default: ICMP echo)')
      .option('--sport <port>', 'TCP/UDP source port')
      .option('--dport <port>', 'TCP/UDP destination port')
      .option('--icmp-type <type>', 'ICMP/ICMPv6 type (135: neighbour solicitation)')
      .option('--icmp-code <code>', 'ICMP/ICMPv6 code')
      .option('--tcp-flags <flags>', 'TCP flags as letters, e.g. SA')
      .option('--ttl <ttl>', 'TTL / hop limit')
      .option('--dscp <dscp>', 'DiffServ code point 0..63')
      .option('--ecn <ecn>', 'ECN bits 0..3')
      .option('--df', "IPv4 don't fragment")
      .option('--length <bytes>', 'length of the whole Ethernet frame')
      .option('--arp-op <op>', 'request or reply')
      .option('--vsid <vsid>', 'with --nic: encapsulate as NVGRE in this VSID')
      .option('--flow-id <id>', 'with --vsid: the NVGRE FlowID')
      .option('--outer-src <pa>', "with --vsid: outer source PA (default: the source's record)")
      .option('--outer-dst <pa>', "with --vsid: outer destination PA (default: the NIC's PA)")
      .option('--hex', 'also print the output frame as hex'),
  ).action(
    action(async (opts: SimulateOptions, c: Command) => {
      const req = simulateRequestFrom(opts);
      await call(globals(c), 'AgentService', 'Simulate', req, (res) =>
        describeSimulation(res, opts.hex === true),
      );
    }),
  );
}

// ---- the program --------------------------------------------------------------------------------

function withGlobals(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('-o, --output <format>', 'table, json (proto3 JSON) or yaml').choices([
        'table',
        'json',
        'yaml',
      ]),
    )
    .option('--socket <path>', `tenetd's control socket`)
    .option('--timeout <ms>', 'deadline of each call in milliseconds');
}

export function buildProgram(): Command {
  const program = new Command('tenetctl')
    .description('Control tenetd, the tenet host agent, over its unix socket')
    .addOption(
      new Option('-o, --output <format>', 'table, json (proto3 JSON) or yaml')
        .choices(['table', 'json', 'yaml'])
        .default('table'),
    )
    .option(
      '--socket <path>',
      `tenetd's control socket`,
      process.env.TENET_SOCKET ?? DEFAULT_SOCKET,
    )
    .option('--timeout <ms>', 'deadline of each call in milliseconds', '30000')
    .showHelpAfterError()
    .exitOverride();

  for (const spec of OBJECTS) program.addCommand(objectCommand(spec).exitOverride());

  withGlobals(
    program
      .command('apply')
      .description('replace the whole desired policy with a document (YAML or JSON)')
      .option('-f, --file <file>', 'policy document (- for stdin)')
      .option('--dry-run', 'only show what would change')
      .option('--bulk', 'stream the lookup records (automatic for large documents)'),
  ).action(action(apply));

  simulateCommand(program);
  program.addCommand(aclCommand(HELPERS));
  program.addCommand(meterCommand(HELPERS));
  program.addCommand(
    steeringCommand({
      action,
      call,
      withGlobals,
      globals,
      table,
      usage: (m: string) => new UsageError(m),
    } satisfies CliKit<Globals>),
  );
  program.addCommand(qosCommand({ call, withGlobals, action, globals, table }).exitOverride());

  withGlobals(program.command('status').description('agent status')).action(
    action(async (_o: unknown, c: Command) => {
      await call(globals(c), 'AgentService', 'GetStatus', {}, (s) => {
        const objects = (s.objects ?? {}) as Plain;
        return [
          `host:            ${cell(s.hostName)}`,
          `ready:           ${s.ready === true}`,
          `policy:          version ${cell(s.policyVersion ?? 0)}${s.policyKnown === true ? '' : ' (UNKNOWN: waiting for a whole-document apply)'}`,
          `objects:         ${
            Object.entries(objects)
              .map(([k, v]) => `${k} ${cell(v)}`)
              .join(', ') || 'none'
          }`,
          `state file:      ${cell(s.stateFile)}`,
          `agent:           ${cell(s.agentVersion)} (ABI ${cell(s.abiVersion ?? 0)}, libbpf ${cell(s.libbpfVersion)})`,
          `last reconcile:  ${typeof s.lastReconcileSeconds === 'number' ? `${(s.lastReconcileSeconds * 1000).toFixed(1)} ms` : '-'}`,
          ...(s.lastError ? [`last error:      ${cell(s.lastError)}`] : []),
        ].join('\n');
      });
    }),
  );

  withGlobals(
    program.command('counters').description('datapath counters and map fill levels'),
  ).action(
    action(async (_o: unknown, c: Command) => {
      await call(globals(c), 'AgentService', 'GetCounters', {}, (res) =>
        [
          table((res.ports as Plain[] | undefined) ?? [], [
            ['PORT', (r) => r.port],
            ['INTERFACE', (r) => r.interface],
            ['RX-PACKETS', (r) => r.rxPackets ?? 0],
            ['RX-BYTES', (r) => r.rxBytes ?? 0],
            ['TX-PACKETS', (r) => r.txPackets ?? 0],
            ['TX-BYTES', (r) => r.txBytes ?? 0],
          ]),
          '',
          table((res.drops as Plain[] | undefined) ?? [], [
            ['DROP-REASON', (r) => r.reason],
            ['PACKETS', (r) => r.packets ?? 0],
            ['BYTES', (r) => r.bytes ?? 0],
          ]),
          '',
          table((res.vsids as Plain[] | undefined) ?? [], [
            ['VSID', (r) => r.vsid],
            ['VSUBNET', (r) => r.virtualSubnet],
            ['ENCAP-PACKETS', (r) => r.encapPackets ?? 0],
            ['ENCAP-BYTES', (r) => r.encapBytes ?? 0],
            ['DECAP-PACKETS', (r) => r.decapPackets ?? 0],
            ['DECAP-BYTES', (r) => r.decapBytes ?? 0],
          ]),
          '',
          table((res.maps as Plain[] | undefined) ?? [], [
            ['MAP', (r) => r.map],
            ['ENTRIES', (r) => r.entries ?? 0],
            ['CAPACITY', (r) => r.capacity ?? 0],
          ]),
        ].join('\n'),
      );
    }),
  );

  withGlobals(
    program
      .command('watch')
      .description('print policy changes (and datapath drops) as they happen (Ctrl-C to stop)')
      .option('--drops', 'also datapath events: sampled drops (needs datapath.dropEvents)')
      .option('--rate <n>', 'with --drops: at most this many events a second (default 100)'),
  ).action(
    action(async (o: { drops?: boolean; rate?: string }, c: Command) => {
      const g = globals(c);
      const req: Plain = { includeCurrent: true };
      if (o.drops === true) {
        req.datapathEvents = true;
        if (o.rate !== undefined) req.maxDatapathEventsPerSecond = parseInt32(o.rate, '--rate');
      }
      const client = clientFor(g);
      const stream = client.watch(req);
      await new Promise<void>((resolve, reject) => {
        stream.on('data', (ev: Plain) => {
          const json = toProtoJson('tenet.v1.WatchResponse', ev);
          if (g.output === 'table') {
            console.log(watchLine(ev));
          } else
            console.log(g.output === 'json' ? JSON.stringify(json) : `---\n${stringify(json)}`);
        });
        stream.on('error', reject);
        stream.on('end', resolve);
        process.once('SIGINT', () => {
          stream.cancel();
          resolve();
        });
      }).finally(() => client.close());
    }),
  );

  program
    .command('cleanup')
    .description('remove leftovers of crashed test and lab runs (tn-* namespaces, test pins)')
    .option('--dry-run', 'only list what would be removed')
    .option('--all', 'also labs whose owner process is alive')
    .action(
      action(async (opts: { dryRun?: boolean; all?: boolean }) => {
        const { cleanupLeftovers } = await import('../lab/index.js');
        const report = await cleanupLeftovers({
          dryRun: opts.dryRun === true,
          all: opts.all === true,
        });
        const verb = opts.dryRun ? 'would remove' : 'removed';
        for (const n of report.namespaces) console.log(`${verb} namespace ${n}`);
        for (const d of report.bpffsDirs) console.log(`${verb} ${d}`);
        for (const m of report.markers) console.log(`${verb} marker ${m}`);
        for (const s of report.skippedLive) console.log(`kept live lab ${s}`);
        for (const e of report.errors) console.error(`error: ${e}`);
        if (report.namespaces.length + report.bpffsDirs.length + report.markers.length === 0)
          console.log('nothing to clean up');
        if (report.errors.length > 0) exitCode = EXIT_FAILED;
      }),
    );
  inherit(program);
  return program;
}

/** tenetctl's machinery for the feature command modules (agent/cli/verbs.ts). */
const HELPERS: CliHelpers = {
  withGlobals,
  action,
  async call(cmd, service, method, req, human) {
    const res = await this.rpc(cmd, service, method, req);
    print(globals(cmd), service, method, res, human);
    return res;
  },
  async rpc(cmd, service, method, req) {
    const g = globals(cmd);
    const client = clientFor(g);
    try {
      return await client.call(service, method, req, { timeoutMs: Number(g.timeout) });
    } finally {
      client.close();
    }
  },
  print: (cmd, service, method, res, human) => print(globals(cmd), service, method, res, human),
  table,
  cell,
  readFile(file) {
    const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
    const doc = parseDocument(text);
    if (doc.errors.length > 0) throw new UsageError(`${file}: ${doc.errors[0]?.message}`);
    return doc.toJS() as unknown;
  },
  usage: (message) => new UsageError(message),
};

/** Settings commander copies only to subcommands made with .command(): give them to all. */
function inherit(cmd: Command): void {
  for (const sub of cmd.commands) {
    sub.exitOverride();
    sub.showHelpAfterError();
    inherit(sub);
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  exitCode = EXIT_OK;
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return EXIT_OK;
      return EXIT_USAGE;
    }
    reportError(e);
  }
  return exitCode;
}

/** True when this module is the program (also through an npm bin symlink), not an import. */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) process.exitCode = await main(process.argv);
