// tenet.v1.MeteringService (agent/proto/tenet/v1/metering.proto) over the metering ledger
// (agent/metering/ledger.ts): Measure, ResetMeters, ExportMeters, ImportMeters.
//
// Status codes: INVALID_ARGUMENT (with field paths) for a request that is malformed (no target,
// a record whose fields do not hold together); NOT_FOUND for an unknown port or routing domain,
// or a port with nothing to export; FAILED_PRECONDITION for a port on another host, a port still
// here (nothing left it yet), an unknown policy, or a record exported by this host;
// ALREADY_EXISTS for a record imported before; UNIMPLEMENTED when the agent runs without a ledger.
// A refused call changes nothing.

import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import {
  MeterError,
  countKey,
  splitKey,
  type ClassCounts,
  type MeterExport,
  type MeterLedger,
  type PortMeters,
} from '../metering/ledger.js';
import { METER_DIRECTIONS, type MeterDirection } from '../policy/index.js';
import { ApiError, Code, invalidArgument } from './errors.js';
import type { Plain } from './proto.js';
import { unary, type ApiContext } from './service.js';

function apiError(e: unknown): unknown {
  if (!(e instanceof MeterError)) return e;
  const code = {
    not_found: Code.NOT_FOUND,
    failed_precondition: Code.FAILED_PRECONDITION,
    already_exists: Code.ALREADY_EXISTS,
    invalid_argument: Code.INVALID_ARGUMENT,
  }[e.kind];
  return new ApiError(
    code,
    e.message,
    e.field === undefined ? [] : [{ field: e.field, description: e.message }],
  );
}

function target(req: Plain): { port?: string; routingDomain?: string } {
  const port = typeof req.port === 'string' && req.port !== '' ? req.port : undefined;
  const rd =
    typeof req.routingDomain === 'string' && req.routingDomain !== ''
      ? req.routingDomain
      : undefined;
  if (port === undefined && rd === undefined)
    throw invalidArgument('target', 'give port or routing_domain');
  return port !== undefined ? { port } : { routingDomain: rd as string };
}

const totalMessage = (t: PortMeters['classes'][number]): Plain => ({
  meterClass: t.className,
  direction: t.direction,
  packets: String(t.packets),
  bytes: String(t.bytes),
  packetsSinceReset: String(t.packetsSinceReset),
  bytesSinceReset: String(t.bytesSinceReset),
});

export function portMetersMessage(p: PortMeters): Plain {
  return {
    port: p.port,
    interface: p.interface,
    ifindex: p.ifindex,
    resetUnixMs: String(p.resetUnixMs),
    totals: p.classes.map(totalMessage),
  };
}

function sumMessage(ports: PortMeters[]): Plain[] {
  const sum = new Map<string, PortMeters['classes'][number]>();
  for (const p of ports)
    for (const t of p.classes) {
      const k = countKey(t.className, t.direction);
      const o = sum.get(k);
      sum.set(
        k,
        o === undefined
          ? t
          : {
              ...o,
              packets: o.packets + t.packets,
              bytes: o.bytes + t.bytes,
              packetsSinceReset: o.packetsSinceReset + t.packetsSinceReset,
              bytesSinceReset: o.bytesSinceReset + t.bytesSinceReset,
            },
      );
    }
  return [...sum.values()].map(totalMessage);
}

const countsMessage = (m: ClassCounts): Plain[] =>
  [...m].map(([k, c]) => {
    const [cls, d] = splitKey(k);
    return { meterClass: cls, direction: d, packets: String(c.packets), bytes: String(c.bytes) };
  });

export function exportMessage(r: MeterExport): Plain {
  return {
    id: r.id,
    sequence: String(r.sequence),
    port: r.port,
    sourceHost: r.sourceHost,
    departedUnixMs: String(r.departedUnixMs),
    totals: countsMessage(r.totals),
    baseline: countsMessage(r.baseline),
    resetUnixMs: String(r.resetUnixMs),
  };
}

const UINT = /^\d{1,20}$/;

function countsFromMessage(list: unknown, field: string): ClassCounts {
  const out: ClassCounts = new Map();
  if (list === undefined) return out;
  if (!Array.isArray(list)) throw invalidArgument(field, 'expected a list');
  list.forEach((c: Plain, i) => {
    const f = `${field}[${i}]`;
    if (typeof c.meterClass !== 'string' || c.meterClass === '')
      throw invalidArgument(`${f}.meter_class`, 'is required');
    if (!METER_DIRECTIONS.includes(c.direction as MeterDirection))
      throw invalidArgument(`${f}.direction`, 'must be "inbound" or "outbound"');
    const k = countKey(c.meterClass, c.direction as MeterDirection);
    if (out.has(k))
      throw invalidArgument(f, `${c.meterClass}/${String(c.direction)} is listed twice`);
    const num = (v: unknown): bigint => (typeof v === 'string' && UINT.test(v) ? BigInt(v) : 0n);
    out.set(k, { packets: num(c.packets), bytes: num(c.bytes) });
  });
  return out;
}

/** A MeterExport message, checked field by field. */
export function exportFromMessage(m: unknown): MeterExport {
  if (m === undefined || m === null || typeof m !== 'object')
    throw invalidArgument('record', 'is required');
  const r = m as Plain;
  const str = (v: unknown, f: string): string => {
    if (typeof v !== 'string' || v === '') throw invalidArgument(`record.${f}`, 'is required');
    return v;
  };
  const id = str(r.id, 'id');
  const port = str(r.port, 'port');
  const sourceHost = str(r.sourceHost, 'source_host');
  const sequence = Number(r.sequence ?? 0);
  if (!Number.isSafeInteger(sequence) || sequence < 1)
    throw invalidArgument('record.sequence', 'must be 1 or more');
  if (id !== `${sourceHost}:${port}:${sequence}`)
    throw invalidArgument(
      'record.id',
      `"${id}" does not match source_host:port:sequence (${sourceHost}:${port}:${sequence}): the record was altered`,
    );
  const totals = countsFromMessage(r.totals, 'record.totals');
  const baseline = countsFromMessage(r.baseline, 'record.baseline');
  for (const [k, b] of baseline) {
    const t = totals.get(k) ?? { packets: 0n, bytes: 0n };
    if (b.packets > t.packets || b.bytes > t.bytes)
      throw invalidArgument('record.baseline', `${k}: the baseline is above the total`);
  }
  return {
    id,
    sequence,
    port,
    sourceHost,
    departedUnixMs: Number(r.departedUnixMs ?? 0),
    resetUnixMs: Number(r.resetUnixMs ?? 0),
    totals,
    baseline,
  };
}

export function meteringServiceHandlers(ctx: ApiContext): UntypedServiceImplementation {
  const ledger = (): MeterLedger => {
    if (ctx.metering === undefined)
      throw new ApiError(Code.UNIMPLEMENTED, 'metering is not available in this agent');
    return ctx.metering;
  };
  const u = (method: string, fn: (req: Plain) => Promise<Plain>) =>
    unary(ctx, method, async (req) => {
      try {
        return await fn(req);
      } catch (e) {
        throw apiError(e);
      }
    });
  return {
    Measure: u('Measure', async (req) => {
      const ports = await ledger().measure(target(req));
      return { ports: ports.map(portMetersMessage), sum: sumMessage(ports) };
    }),
    ResetMeters: u('ResetMeters', async (req) => {
      const ports = await ledger().reset(target(req));
      return { ports: ports.map(portMetersMessage) };
    }),
    ExportMeters: u('ExportMeters', async (req) => {
      if (typeof req.port !== 'string' || req.port === '')
        throw invalidArgument('port', 'is required');
      const release = Array.isArray(req.releaseIds) ? (req.releaseIds as string[]) : [];
      const records = await ledger().export(req.port, release);
      return { records: records.map(exportMessage) };
    }),
    ImportMeters: u('ImportMeters', async (req) => {
      const rec = exportFromMessage(req.record);
      const port = await ledger().import(rec);
      return { port: portMetersMessage(port) };
    }),
  };
}
