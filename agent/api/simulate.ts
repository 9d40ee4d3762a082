// AgentService.Simulate: what this host's datapath would do to one packet.
//
// The answer comes from the reference model (agent/model/simulate), the oracle the datapath tests
// hold the BPF programs to, run over the tables compiled from the daemon's current policy for
// this host (PolicyBackend.simulationInput: the compiler's output with the host's interface facts
// and the underlay next hops the datapath has resolved). Nothing is sent and no counter changes.
//
// The packet is given whole (`frame`) or described field by field (`description`); a description
// is built with agent/packet's builder, and what it leaves out comes from the policy: a VM port
// sends from its own MAC and first address of the family, to the destination's lookup-record MAC
// inside its virtual subnet and to the gateway MAC (the distributed router) outside it.
//
// Errors: INVALID_ARGUMENT names the request field (`description.dst_ip`), NOT_FOUND an unknown
// port or NIC, FAILED_PRECONDITION a daemon without a policy (or one this host cannot compile).

import type { UnderlayNh } from '../abi/generated.js';
import {
  compile,
  type CompiledTables,
  type HostFacts,
  type InterfaceFacts,
} from '../compiler/index.js';
import { TABLES, type TableName } from '../compiler/tables.js';
import { simulatedMeters } from './metering-simulate.js';
import { simulate, type DatapathTables, type Hook, type SimResult } from '../model/index.js';
import { aclSimContext } from '../model/acl.js';
import {
  describePacket,
  ipv6MulticastMac,
  packet,
  parsePacket,
  solicitedNodeMulticast,
  tcpFlags,
  type PacketBuilder,
} from '../packet/index.js';
import {
  formatMac,
  gatewayMac,
  parseIp,
  prefixContains,
  subnetsByVsid,
  type IpAddress,
  type Policy,
  type Port,
  type ProviderAddress,
} from '../policy/index.js';
import { classifyBackendError } from './backend.js';
import { ApiError, Code } from './errors.js';
import type { FieldViolation, Plain } from './proto.js';
import type { PolicyStore } from './store.js';

/** What the reference model needs to stand in for one host's datapath. */
export interface SimulationInput {
  /** The tables compiled from the policy for this host (the active generation's contents). */
  readonly compiled: CompiledTables;
  /** The host's interfaces the compile used: name -> ifindex, MAC, MTU. */
  readonly facts: HostFacts;
  /** tenet_underlay: remote PA (host-order number) -> next-hop MAC, as the datapath has it. */
  readonly underlay: ReadonlyMap<number, UnderlayNh>;
}

const compiledCache = new WeakMap<Policy, { key: string; compiled: CompiledTables }>();

/**
 * compile(policy, hostName, facts), remembered per policy document (documents are immutable; a
 * change makes a new one) while the facts stay the same: Simulate is asked again and again about
 * the same policy, and compiling a million lookup records takes a while.
 */
export function compileForSimulation(
  policy: Policy,
  hostName: string,
  facts: HostFacts,
): CompiledTables {
  const key = JSON.stringify([hostName, factEntries(facts).sort(([a], [b]) => (a < b ? -1 : 1))]);
  const hit = compiledCache.get(policy);
  if (hit !== undefined && hit.key === key) return hit.compiled;
  const compiled = compile(policy, hostName, facts);
  compiledCache.set(policy, { key, compiled });
  return compiled;
}

/** The largest frame Simulate takes (whole or described). */
export const MAX_SIMULATED_FRAME = 65_535;

const SIM_GENERATION = 0;
const DEFAULT_SRC_PORT = 49_152;
const DEFAULT_TTL = 64;
const FALLBACK_MAC = '02:00:00:00:00:01';
const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

/**
 * Compiled tables as the model reads them: every entry live in generation 0 only (the other slot
 * zero), which is what the maps hold for readers right after a reconcile flips to generation 0.
 */
export function modelTables(
  compiled: CompiledTables,
  underlay: ReadonlyMap<number, UnderlayNh>,
): DatapathTables {
  // The tables of a compile are made once (the model indexes their records once, too); only the
  // underlay, read from the datapath on every call, is fresh.
  const hit = modelCache.get(compiled);
  if (hit !== undefined) return { ...hit, underlay };
  const tables = buildModelTables(compiled, underlay);
  modelCache.set(compiled, tables);
  return tables;
}

const modelCache = new WeakMap<CompiledTables, DatapathTables>();

function buildModelTables(
  compiled: CompiledTables,
  underlay: ReadonlyMap<number, UnderlayNh>,
): DatapathTables {
  const entry = <T extends TableName>(t: T, value: unknown) => ({
    live: 1 << SIM_GENERATION,
    v: [value, TABLES[t].zero()] as never[],
  });
  const byNumber = <T extends 'ports' | 'vsubnets' | 'localPas'>(t: T) =>
    new Map([...compiled[t].values()].map((r) => [r.key as number, entry(t, r.value)]));
  return {
    ports: byNumber('ports'),
    vsubnets: byNumber('vsubnets'),
    localPas: byNumber('localPas'),
    records: [...compiled.records.values()].map((r) => ({
      key: r.key,
      entry: entry('records', r.value),
    })),
    routes: [...compiled.routes.values()].map((r) => ({
      key: r.key,
      entry: entry('routes', r.value),
    })),
    underlay,
    meterClasses: [...compiled.meterClasses.values()].map((r) => ({
      key: r.key,
      entry: entry('meterClasses', r.value),
    })),
  };
}

// ---- request fields --------------------------------------------------------------------------

class Violations {
  readonly list: FieldViolation[] = [];
  add(field: string, description: string): void {
    this.list.push({ field, description });
  }
  throwIfAny(): void {
    if (this.list.length === 0) return;
    const lines = this.list.map((v) => `${v.field}: ${v.description}`);
    throw new ApiError(
      Code.INVALID_ARGUMENT,
      lines.length === 1
        ? (lines[0] as string)
        : `${lines.length} problems:\n  ${lines.join('\n  ')}`,
      this.list,
    );
  }
}

const invalid = (field: string, description: string): ApiError =>
  new ApiError(Code.INVALID_ARGUMENT, `${field}: ${description}`, [{ field, description }]);

const MAC_RE =
  /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;

function optString(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function optNumber(v: unknown): number | undefined {
  return typeof v === 'number' ? v : undefined;
}

function macField(v: unknown, field: string, bad: Violations): string | undefined {
  const s = optString(v);
  if (s === undefined) return undefined;
  const m = MAC_RE.exec(s);
  if (m === null) {
    bad.add(
      field,
      `${JSON.stringify(s)} is not a MAC address (six hex octets like 02:00:5e:10:00:01)`,
    );
    return undefined;
  }
  return [m[1], m[3], m[4], m[5], m[6], m[7]].join(':').toLowerCase();
}

function ipField(
  v: unknown,
  field: string,
  bad: Violations,
  family?: 4 | 6,
): IpAddress | undefined {
  const s = optString(v);
  if (s === undefined) return undefined;
  const p = parseIp(s, family);
  if (!p.ok) {
    bad.add(field, p.message);
    return undefined;
  }
  return p.value;
}

function rangeField(
  v: unknown,
  field: string,
  min: number,
  max: number,
  bad: Violations,
): number | undefined {
  const n = optNumber(v);
  if (n === undefined) return undefined;
  if (!Number.isInteger(n) || n < min || n > max) {
    bad.add(field, `${n} is out of range ${min}..${max}`);
    return undefined;
  }
  return n;
}

// ---- where the packet enters -------------------------------------------------------------------

type Ingress =
  | { kind: 'port'; port: Port; ifname: string }
  | { kind: 'nic'; ifname: string; pa: ProviderAddress };

function findIngress(req: Plain, policy: Policy, hostName: string): Ingress {
  const portName = optString(req.port);
  const nic = optString(req.nic);
  if (portName === undefined && nic === undefined) {
    throw invalid('ingress', 'give port (a VM port name) or nic (a physical interface name)');
  }
  if (portName !== undefined) {
    const port = policy.ports.find((p) => p.name === portName);
    if (port === undefined) throw new ApiError(Code.NOT_FOUND, `port "${portName}" does not exist`);
    if (port.host !== hostName) {
      throw new ApiError(
        Code.FAILED_PRECONDITION,
        `port "${portName}" is on host ${port.host}; this agent simulates host ${hostName}`,
      );
    }
    return { kind: 'port', port, ifname: port.interface };
  }
  const pa = policy.providerAddresses.find((p) => p.host === hostName && p.interface === nic);
  if (pa === undefined) {
    throw new ApiError(
      Code.NOT_FOUND,
      `no provider address of host ${hostName} is on interface "${nic}"`,
    );
  }
  return { kind: 'nic', ifname: nic as string, pa };
}

function factsOf(facts: HostFacts, name: string): InterfaceFacts | undefined {
  if (facts instanceof Map) return facts.get(name);
  const rec = facts as Readonly<Record<string, InterfaceFacts>>;
  return Object.hasOwn(rec, name) ? rec[name] : undefined;
}

function factEntries(facts: HostFacts): [string, InterfaceFacts][] {
  return facts instanceof Map
    ? [...(facts as ReadonlyMap<string, InterfaceFacts>)]
    : Object.entries(facts as Readonly<Record<string, InterfaceFacts>>);
}

// ---- building a described packet ---------------------------------------------------------------

const PROTOCOLS = {
  PACKET_PROTOCOL_UNSPECIFIED: 'default',
  PACKET_PROTOCOL_ICMP: 'icmp',
  PACKET_PROTOCOL_ICMPV6: 'icmpv6',
  PACKET_PROTOCOL_TCP: 'tcp',
  PACKET_PROTOCOL_UDP: 'udp',
  PACKET_PROTOCOL_ARP: 'arp',
} as const;
type Protocol = (typeof PROTOCOLS)[keyof typeof PROTOCOLS];

/** The lookup record of (vsid, ca), by canonical text. */
function recordOf(policy: Policy, vsid: number, ca: IpAddress) {
  return policy.lookupRecords.find((r) => r.vsid === vsid && r.ca === ca.text);
}

interface Described {
  srcMac: string;
  dstMac: string;
  src: IpAddress;
  dst: IpAddress;
}

/** The frame a description stands for (inner frame for NVGRE), in the builder's terms. */
function buildDescribed(
  d: Plain,
  ingress: Ingress,
  policy: Policy,
  facts: HostFacts,
  bad: Violations,
): Buffer {
  const P = 'description';
  const nv = (d.nvgre ?? undefined) as Plain | undefined;
  const protoName = typeof d.protocol === 'string' ? d.protocol : 'PACKET_PROTOCOL_UNSPECIFIED';
  let protocol: Protocol | undefined = PROTOCOLS[protoName as keyof typeof PROTOCOLS];
  if (protocol === undefined) {
    bad.add(`${P}.protocol`, `unknown protocol ${JSON.stringify(d.protocol)}`);
    protocol = 'default';
  }
  const dst = ipField(d.dstIp, `${P}.dst_ip`, bad);
  if (optString(d.dstIp) === undefined) bad.add(`${P}.dst_ip`, 'is required');
  let src = ipField(d.srcIp, `${P}.src_ip`, bad);
  const srcMacGiven = macField(d.srcMac, `${P}.src_mac`, bad);
  const dstMacGiven = macField(d.dstMac, `${P}.dst_mac`, bad);
  const ttl = rangeField(d.ttl, `${P}.ttl`, 0, 255, bad);
  const dscp = rangeField(d.dscp, `${P}.dscp`, 0, 63, bad) ?? 0;
  const ecn = rangeField(d.ecn, `${P}.ecn`, 0, 3, bad) ?? 0;
  const length = rangeField(d.length, `${P}.length`, 14, MAX_SIMULATED_FRAME, bad);
  const sport = rangeField(d.srcPort, `${P}.src_port`, 1, 65535, bad) ?? DEFAULT_SRC_PORT;
  const dport = rangeField(d.dstPort, `${P}.dst_port`, 1, 65535, bad);
  const icmpType = rangeField(d.icmpType, `${P}.icmp_type`, 0, 255, bad);
  const icmpCode = rangeField(d.icmpCode, `${P}.icmp_code`, 0, 255, bad) ?? 0;
  const arpOp = rangeField(d.arpOp, `${P}.arp_op`, 0, 2, bad);
  let flags = 'S';
  if (optString(d.tcpFlags) !== undefined) {
    try {
      tcpFlags(d.tcpFlags as string);
      flags = d.tcpFlags as string;
    } catch {
      bad.add(`${P}.tcp_flags`, `${JSON.stringify(d.tcpFlags)}: use the letters FSRPAUEC`);
    }
  }
  if (nv !== undefined && ingress.kind !== 'nic') bad.add(`${P}.nvgre`, 'only with nic');
  bad.throwIfAny();
  const dstIp = dst as IpAddress;
  const family = dstIp.family;

  if (protocol === 'default') protocol = family === 4 ? 'icmp' : 'icmpv6';
  if ((protocol === 'icmp' || protocol === 'arp') && family !== 4)
    bad.add(`${P}.protocol`, `${protocol.toUpperCase()} needs an IPv4 dst_ip`);
  if (protocol === 'icmpv6' && family !== 6)
    bad.add(`${P}.protocol`, 'ICMPv6 needs an IPv6 dst_ip');
  if ((protocol === 'tcp' || protocol === 'udp') && dport === undefined)
    bad.add(`${P}.dst_port`, `is required for ${protocol.toUpperCase()}`);
  if (src !== undefined && src.family !== family)
    bad.add(`${P}.src_ip`, `${src.text} is not of dst_ip's family`);

  // The source and destination as the sender would fill them in.
  const vsid = ingress.kind === 'port' ? ingress.port.vsid : optNumber(nv?.vsid);
  if (src === undefined) {
    if (ingress.kind === 'port') {
      const own = ingress.port.addresses
        .map((a) => parseIp(a))
        .find((p) => p.ok && p.value.family === family);
      if (own?.ok) src = own.value;
      else
        bad.add(
          `${P}.src_ip`,
          `port "${ingress.port.name}" has no IPv${family} address: give src_ip`,
        );
    } else {
      bad.add(`${P}.src_ip`, 'is required on a NIC');
    }
  }
  bad.throwIfAny();
  const srcIp = src as IpAddress;
  const subnet = vsid === undefined ? undefined : subnetsByVsid(policy).get(vsid);
  const inSubnet =
    subnet?.prefixes.some((p) => p.family === family && prefixContains(p, dstIp)) ?? false;
  const dstRecord = vsid === undefined ? undefined : recordOf(policy, vsid, dstIp);
  const srcRecord = vsid === undefined ? undefined : recordOf(policy, vsid, srcIp);

  let srcMac = srcMacGiven;
  if (srcMac === undefined) {
    srcMac =
      ingress.kind === 'port'
        ? ingress.port.mac
        : nv !== undefined
          ? (srcRecord?.mac ?? FALLBACK_MAC)
          : FALLBACK_MAC;
  }
  const nd = protocol === 'icmpv6' && icmpType === 135;
  let dstMac = dstMacGiven;
  if (dstMac === undefined) {
    if (protocol === 'arp') dstMac = BROADCAST_MAC;
    else if (nd) dstMac = ipv6MulticastMac(solicitedNodeMulticast(dstIp.text));
    else if (ingress.kind === 'nic' && nv === undefined)
      dstMac = factsOf(facts, ingress.ifname)?.mac ?? FALLBACK_MAC;
    else if (dstRecord !== undefined && (inSubnet || ingress.kind === 'nic'))
      dstMac = dstRecord.mac;
    else if (vsid !== undefined) dstMac = formatMac(gatewayMac(vsid));
    else dstMac = BROADCAST_MAC;
  }
  bad.throwIfAny();
  const a: Described = { srcMac, dstMac, src: srcIp, dst: dstIp };
  const tos = ((dscp << 2) | ecn) & 0xff;

  const build = (extra: number): Buffer => {
    const b = packet().eth({ src: a.srcMac, dst: a.dstMac });
    if (protocol === 'arp') {
      const op = arpOp === 2 ? 'reply' : 'request';
      b.arp({ op, sha: a.srcMac, spa: a.src.text, tpa: a.dst.text });
      if (extra > 0) b.pad(14 + 28 + extra);
      return b.build();
    }
    if (family === 4) {
      b.ipv4({
        src: a.src.text,
        dst: a.dst.text,
        ttl: ttl ?? DEFAULT_TTL,
        tos,
        df: d.df === true,
        id: 0,
      });
    } else {
      b.ipv6({
        src: a.src.text,
        dst: nd && dstMacGiven === undefined ? solicitedNodeMulticast(a.dst.text) : a.dst.text,
        hopLimit: ttl ?? (nd ? 255 : DEFAULT_TTL),
        tc: tos,
      });
    }
    l4(b, {
      protocol: protocol as Protocol,
      nd,
      a,
      sport,
      dport: dport ?? 0,
      icmpType,
      icmpCode,
      flags,
    });
    if (extra > 0) b.payload(Buffer.alloc(extra));
    return b.build();
  };
  const bare = build(0);
  let frame = bare;
  if (length !== undefined) {
    if (length < bare.length) {
      bad.add(`${P}.length`, `${length} is shorter than the headers (${bare.length} bytes)`);
      bad.throwIfAny();
    }
    frame = length > bare.length ? build(length - bare.length) : bare;
  }
  if (nv === undefined) return frame;
  return encapsulate(frame, nv, ingress, facts, srcRecord?.pa, bad);
}

function l4(
  b: PacketBuilder,
  o: {
    protocol: Protocol;
    nd: boolean;
    a: Described;
    sport: number;
    dport: number;
    icmpType: number | undefined;
    icmpCode: number;
    flags: string;
  },
): void {
  switch (o.protocol) {
    case 'tcp':
      b.tcp({ sport: o.sport, dport: o.dport, flags: o.flags, seq: 1, window: 65535 });
      return;
    case 'udp':
      b.udp({ sport: o.sport, dport: o.dport });
      return;
    case 'icmp':
      b.icmp({ type: o.icmpType ?? 8, code: o.icmpCode, id: 1, seq: 1 });
      return;
    case 'icmpv6':
      if (o.nd) {
        b.ndSolicit({ target: o.a.dst.text, sll: o.a.srcMac });
        return;
      }
      b.icmpv6({ type: o.icmpType ?? 128, code: o.icmpCode, id: 1, seq: 1 });
      return;
    default:
      return;
  }
}

function encapsulate(
  inner: Buffer,
  nv: Plain,
  ingress: Ingress,
  facts: HostFacts,
  recordPa: string | undefined,
  bad: Violations,
): Buffer {
  const P = 'description.nvgre';
  const vsid = rangeField(nv.vsid, `${P}.vsid`, 1, 0xffffff, bad);
  if (optNumber(nv.vsid) === undefined) bad.add(`${P}.vsid`, 'is required');
  const flowId = rangeField(nv.flowId, `${P}.flow_id`, 0, 255, bad) ?? 0;
  const srcPa = ipField(nv.srcPa, `${P}.src_pa`, bad, 4)?.text ?? recordPa;
  const dstPa =
    ipField(nv.dstPa, `${P}.dst_pa`, bad, 4)?.text ??
    (ingress.kind === 'nic' ? ingress.pa.address : undefined);
  const srcMac = macField(nv.srcMac, `${P}.src_mac`, bad) ?? FALLBACK_MAC;
  const dstMac =
    macField(nv.dstMac, `${P}.dst_mac`, bad) ?? factsOf(facts, ingress.ifname)?.mac ?? FALLBACK_MAC;
  if (srcPa === undefined && optString(nv.srcPa) === undefined)
    bad.add(`${P}.src_pa`, 'the inner source has no lookup record in this VSID: give src_pa');
  bad.throwIfAny();
  return packet()
    .eth({ src: srcMac, dst: dstMac })
    .ipv4({ src: srcPa as string, dst: dstPa as string, ttl: 64, df: true, id: 0 })
    .nvgre({ vsid: vsid as number, flowId })
    .payload(inner)
    .build();
}

// ---- the handler --------------------------------------------------------------------------------

const VERDICT = {
  pass: 'DATAPATH_VERDICT_PASS',
  drop: 'DATAPATH_VERDICT_DROP',
  redirect: 'DATAPATH_VERDICT_REDIRECT',
  tx: 'DATAPATH_VERDICT_TX',
} as const;

function frameOf(req: Plain): Buffer | undefined {
  if (req.frame === undefined || req.frame === null) return undefined;
  const f =
    typeof req.frame === 'string'
      ? Buffer.from(req.frame, 'base64')
      : Buffer.from(req.frame as Uint8Array);
  if (f.length === 0) throw invalid('frame', 'is empty');
  if (f.length > MAX_SIMULATED_FRAME)
    throw invalid('frame', `${f.length} bytes: at most ${MAX_SIMULATED_FRAME}`);
  return f;
}

/** Simulate's answer for a decoded request (a plain-object SimulateRequest). */
export async function simulateRequest(
  store: PolicyStore,
  hostName: string,
  req: Plain,
): Promise<Plain> {
  const hasFrame = req.frame !== undefined && req.frame !== null;
  const desc = req.description as Plain | undefined | null;
  if (!hasFrame && (desc === undefined || desc === null))
    throw invalid('packet', 'give frame (bytes) or description');
  const policy = store.read();
  if (store.version === 0n) {
    throw new ApiError(
      Code.FAILED_PRECONDITION,
      'no policy has been applied yet: there is no datapath to simulate',
    );
  }
  const ingress = findIngress(req, policy, hostName);
  const backend = store.backend;
  if (backend.simulationInput === undefined)
    throw new ApiError(Code.UNIMPLEMENTED, 'this datapath backend cannot simulate');
  let input: SimulationInput;
  try {
    input = await backend.simulationInput(policy);
  } catch (e) {
    throw classifyBackendError(e);
  }
  const ingressFacts = factsOf(input.facts, ingress.ifname);
  if (ingressFacts === undefined) {
    throw new ApiError(
      Code.FAILED_PRECONDITION,
      `interface "${ingress.ifname}" does not exist on host ${hostName}`,
    );
  }
  const frame =
    frameOf(req) ?? buildDescribed(desc as Plain, ingress, policy, input.facts, new Violations());

  const tables = modelTables(input.compiled, input.underlay);
  const hook: Hook =
    ingress.kind === 'port'
      ? { kind: 'port-ingress', ifindex: ingressFacts.ifindex }
      : { kind: 'phys-xdp', ifindex: ingressFacts.ifindex };
  // Port ACLs as for a packet of a new flow (agent/model/acl.ts).
  const acl = aclSimContext(policy, hostName, (n) => factsOf(input.facts, n)?.ifindex);
  const r = simulate(tables, SIM_GENERATION, frame, hook, acl);
  return response(r, { store, hostName, policy, input, ingress, hook, frame });
}

function response(
  r: SimResult,
  c: {
    store: PolicyStore;
    hostName: string;
    policy: Policy;
    input: SimulationInput;
    ingress: Ingress;
    hook: Hook;
    frame: Buffer;
  },
): Plain {
  const names = new Map<number, string>();
  for (const [name, f] of factEntries(c.input.facts)) names.set(f.ifindex, name);
  const ports = new Map<string, string>();
  for (const p of c.policy.ports) if (p.host === c.hostName) ports.set(p.interface, p.name);
  const ifname = (ifindex: number): string => names.get(ifindex) ?? `ifindex ${ifindex}`;
  const vsubnets = new Map<number, string>();
  for (const d of c.policy.routingDomains)
    for (const s of d.virtualSubnets) vsubnets.set(s.vsid, s.name);

  const tx = r.verdict === 'redirect' && r.redirectIfindex === c.hook.ifindex;
  const out: Plain = {
    policyVersion: String(c.store.version),
    hook: c.hook.kind === 'port-ingress' ? 'tc-ingress' : 'xdp',
    ingressInterface: c.ingress.ifname,
    ...(c.ingress.kind === 'port' ? { ingressPort: c.ingress.port.name } : {}),
    inputFrame: c.frame,
    inputDecode: describePacket(c.frame),
    verdict: VERDICT[tx ? 'tx' : r.verdict],
    returnCode: r.retval,
  };
  if (r.dropReason !== undefined) out.dropReason = r.dropReason;
  if (r.verdict === 'redirect' && r.redirectIfindex !== undefined) {
    const name = ifname(r.redirectIfindex);
    out.outputInterface = name;
    out.outputIfindex = r.redirectIfindex;
    const port = ports.get(name);
    if (port !== undefined) out.outputPort = port;
  }
  if (r.output !== undefined) {
    out.outputFrame = r.output;
    out.outputDecode = describePacket(r.output);
    const p = parsePacket(r.output);
    if (p.gre?.vsid !== undefined && p.ipv4 !== undefined && p.eth !== undefined) {
      out.encapsulation = {
        srcPa: p.ipv4.src,
        dstPa: p.ipv4.dst,
        vsid: p.gre.vsid,
        flowId: p.gre.flowId ?? 0,
        srcMac: p.eth.src,
        dstMac: p.eth.dst,
      };
    }
  }
  out.counters = {
    ports: r.counters.ports.map((x) => {
      const name = ifname(x.ifindex);
      const port = ports.get(name);
      return {
        ...(port === undefined ? {} : { port }),
        interface: name,
        direction: x.direction,
        packets: String(x.packets),
        bytes: String(x.bytes),
      };
    }),
    vsids: r.counters.vsids.map((x) => ({
      vsid: x.vsid,
      virtualSubnet: vsubnets.get(x.vsid) ?? '',
      direction: x.kind,
      packets: String(x.packets),
      bytes: String(x.bytes),
    })),
    drops: r.counters.drops.map((x) => ({
      reason: x.reason,
      packets: String(x.packets),
      bytes: String(x.bytes),
    })),
  };
  out.meters = simulatedMeters(r, c.policy, (ifindex) => ports.get(ifname(ifindex)) ?? '');
  return out;
}
