// The document's shape (zod): types, required fields, unknown fields, and each field's own format
// (addresses, prefixes, MACs, VSID range, interface names), canonicalised on the way through.
// Rules that relate fields to each other live in validate.ts and run on a well-shaped document.

import { z } from 'zod';
import { parseIp, parseMac, parsePrefix, type Parsed } from './addr.js';
import { portSteering } from './schema-steering.js';
import { IFNAME_MAX, VSID_MAX, VSID_MIN, type PolicyDocument } from './model.js';
import { portQosSchema, tenantQosSchema, uplinkSchema } from './schema-qos.js';

/** A string field checked and canonicalised by one of the address parsers. */
function formatted(parse: (text: string) => Parsed<{ text: string }>) {
  return z.string().transform((text, ctx) => {
    const parsed = parse(text);
    if (parsed.ok) return parsed.value.text;
    ctx.addIssue(parsed.message);
    return z.NEVER;
  });
}

const ipv4 = formatted((t) => parseIp(t, 4));
const ipv6 = formatted((t) => parseIp(t, 6));
const ipAny = formatted((t) => parseIp(t));
const prefix = formatted(parsePrefix);
const mac = formatted(parseMac);

function intIn(min: number, max: number, what?: string) {
  return z
    .number()
    .int()
    .superRefine((n, ctx) => {
      if (n < min || n > max)
        ctx.addIssue(`${n} is outside ${min}..${max}${what ? ` (${what})` : ''}`);
    });
}

const vsid = intIn(VSID_MIN, VSID_MAX);

/** Names of hosts, routing domains, subnets and ports: they appear in logs, CLI output, metrics. */
const name = z.string().superRefine((s, ctx) => {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(s)) {
    ctx.addIssue(
      `${JSON.stringify(s)} is not a valid name (1..63 letters, digits, '_', '.', '-', starting with a letter or digit)`,
    );
  }
});

/** A Linux interface name, as dev_valid_name() accepts it. */
const ifname = z.string().superRefine((s, ctx) => {
  if (s.length === 0) ctx.addIssue('an interface name cannot be empty');
  else if (s.length > IFNAME_MAX) {
    ctx.addIssue(
      `${JSON.stringify(s)} is ${s.length} characters; Linux interface names have at most ${IFNAME_MAX}`,
    );
  } else if (s === '.' || s === '..' || /[/:\s]/.test(s)) {
    ctx.addIssue(`${JSON.stringify(s)} is not a valid Linux interface name`);
  }
});

const providerAddress = z.strictObject({
  host: name,
  address: ipv4,
  interface: ifname,
  prefixLength: intIn(1, 32).optional(),
  underlayNextHop: ipv4.optional(),
});

const virtualSubnet = z.strictObject({
  name,
  vsid,
  prefixes: z.array(prefix).min(1),
  gateway: z.strictObject({ ipv4: ipv4.optional(), ipv6: ipv6.optional() }).default({}),
});

const routingDomain = z.strictObject({
  name,
  virtualSubnets: z.array(virtualSubnet).min(1),
});

const port = z.strictObject({
  name,
  host: name,
  interface: ifname,
  mac,
  vsid,
  addresses: z.array(ipAny).min(1),
  mtu: intIn(576, 65535).optional(),
});

const lookupRecord = z.strictObject({
  vsid,
  ca: ipAny,
  mac,
  pa: ipv4,
});

/** One lookup record's shape (the API's incremental path checks changed records with it). */
export const lookupRecordSchema = lookupRecord;

const customerRoute = z.strictObject({
  routingDomain: name,
  prefix,
  virtualSubnet: vsid.optional(),
  nextHop: ipAny.optional(),
});

/** IP protocol names an ACL rule may use instead of the number. */
const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = {
  icmp: 1,
  tcp: 6,
  udp: 17,
  gre: 47,
  icmpv6: 58,
};

const protocol = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'string') {
    const n = PROTOCOL_NUMBERS[value.toLowerCase()];
    if (n !== undefined) return n;
    ctx.addIssue(
      `${JSON.stringify(value)} is not a protocol name (${Object.keys(PROTOCOL_NUMBERS).join(', ')}) or number`,
    );
    return z.NEVER;
  }
  if (!Number.isInteger(value) || value < 0 || value > 255) {
    ctx.addIssue(`${value} is not an IP protocol number (0..255)`);
    return z.NEVER;
  }
  return value;
});

/** The parsed form of a port range, accepted too so that a validated document validates again. */
const rangeObject = z.strictObject({ from: z.number(), to: z.number() });

/** `80`, `"80"` or `"1024-65535"` -> { from, to }, both within 0..65535 and from <= to. */
const portRange = z.union([z.number(), z.string(), rangeObject]).transform((value, ctx) => {
  const text = typeof value === 'object' ? `${value.from}-${value.to}` : String(value).trim();
  const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(text);
  if (!m) {
    ctx.addIssue(`${JSON.stringify(value)} is not a port or a port range like "1024-65535"`);
    return z.NEVER;
  }
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from > 65535 || to > 65535) {
    ctx.addIssue(`${text} is outside 0..65535`);
    return z.NEVER;
  }
  if (from > to) {
    ctx.addIssue(`${text} is an empty range: ${from} is above ${to}`);
    return z.NEVER;
  }
  return { from, to };
});

const aclRule = z.strictObject({
  name,
  direction: z.enum(['inbound', 'outbound', 'both']),
  action: z.enum(['allow', 'deny', 'meter']),
  weight: intIn(0, 65535).optional(),
  protocol: protocol.optional(),
  localPrefix: prefix.optional(),
  remotePrefix: prefix.optional(),
  remoteMac: mac.optional(),
  localPorts: portRange.optional(),
  remotePorts: portRange.optional(),
  stateful: z.boolean().optional(),
  idleTimeoutSeconds: intIn(1, 86400, 'seconds').optional(),
  isolationVsid: vsid.optional(),
  meteringClass: name.optional(),
});

const portAcl = z.strictObject({
  port: name,
  rules: z.array(aclRule),
});

export const policySchema = z.strictObject({
  providerAddresses: z.array(providerAddress).default([]),
  routingDomains: z.array(routingDomain).default([]),
  ports: z.array(port).default([]),
  lookupRecords: z.array(lookupRecord).default([]),
  customerRoutes: z.array(customerRoute).default([]),
  portAcls: z.array(portAcl).default([]),
  portSteering: z.array(portSteering).default([]),
  uplinks: z.array(uplinkSchema).default([]),
  portQos: z.array(portQosSchema).default([]),
  tenantQos: z.array(tenantQosSchema).default([]),
});

// The schema's output is the model's document type (checked here, at compile time).
type SchemaOutput = z.output<typeof policySchema>;
const _shapeMatches: (d: SchemaOutput) => PolicyDocument = (d) => d;

function describeValue(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a mapping';
  if (typeof input === 'string') return `the string ${JSON.stringify(input)}`;
  return `${typeof input} ${String(input)}`;
}

/** Operator-facing wording for zod's built-in issues (custom ones carry their own message). */
export const policyErrorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      if (issue.expected === 'int') return `${String(issue.input)} is not an integer`;
      return `expected ${issue.expected === 'object' ? 'a mapping' : issue.expected === 'array' ? 'a list' : `a ${issue.expected}`}, got ${describeValue(issue.input)}`;
    case 'too_small':
      if (issue.origin === 'array')
        return `needs at least ${String(issue.minimum)} entr${issue.minimum === 1 ? 'y' : 'ies'}`;
      return undefined;
    default:
      return undefined;
  }
};
