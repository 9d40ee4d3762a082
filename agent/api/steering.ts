// SteeringService (agent/proto/tenet/v1/steering.proto): sets and clears a port's receive
// steering through the same validated commit as every other policy change (so a bad CPU set is
// INVALID_ARGUMENT naming `steering.cpus[j]`, and a CPU the host lacks is FAILED_PRECONDITION
// naming `portSteering[i].cpus[j]`), and reports what the datapath does now from the backend's
// steering controller: per port the CPUs it runs on and its per-CPU counters, dynamic mode's
// moves and per-CPU load.

import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { PolicyDocument } from '../policy/index.js';
import type { PortSteering } from '../policy/schema-steering.js';
import type {
  PortSteeringStatus,
  SteeringCpuCounters,
  SteeringStatus,
} from '../steering/controller.js';
import { ApiError, Code, notFound } from './errors.js';
import * as obj from './objects.js';
import type { Plain } from './proto.js';
import { commitChange, unary, type ApiContext } from './service.js';

/** What the API reads of a backend's steering (the host agent's SteeringController). */
export interface SteeringSource {
  status(): SteeringStatus;
  counters(ifindex: number): SteeringCpuCounters[];
  portCpuPackets(): Array<{ port: string; direction: 'rx' | 'tx'; cpu: number; packets: bigint }>;
  readonly moves: number;
}

function findSteering(doc: PolicyDocument, port: string): number {
  return (doc.portSteering ?? []).findIndex((s) => s.port === port);
}

/** The document with port's steering set to s (created or replaced). */
export function setPortSteering(doc: PolicyDocument, s: PortSteering): obj.Change {
  const port = obj.requireString(s.port, 'steering.port');
  if (!doc.ports.some((p) => p.name === port)) throw notFound(`port "${port}" does not exist`);
  const list = [...(doc.portSteering ?? [])];
  let i = findSteering(doc, port);
  const entry: PortSteering = {
    port,
    mode: s.mode,
    ...(s.cpus === undefined ? {} : { cpus: [...s.cpus] }),
  };
  if (i < 0) {
    i = list.length;
    list.push(entry);
  } else list[i] = entry;
  return {
    next: { ...doc, portSteering: list },
    rewrite: { documentPath: `portSteering[${i}]`, requestField: 'steering' },
  };
}

export function clearPortSteering(doc: PolicyDocument, port: string): obj.Change {
  const i = findSteering(doc, port);
  if (i < 0) throw notFound(`port "${port}" has no steering`);
  return { next: { ...doc, portSteering: (doc.portSteering ?? []).filter((_, j) => j !== i) } };
}

function portMessage(p: PortSteeringStatus, counters: SteeringCpuCounters[]): Plain {
  return {
    port: p.port,
    interface: p.interface,
    mode: p.mode,
    cpus: [...p.cpus],
    currentCpus: [...p.current],
    moves: String(p.moves),
    packetsPerSecond: p.pps,
    perCpu: counters
      .filter((c) => c.delivered + c.steered + c.local + c.fallback + c.pipeline > 0n)
      .map((c) => ({
        cpu: c.cpu,
        delivered: String(c.delivered),
        steered: String(c.steered),
        local: String(c.local),
        fallback: String(c.fallback),
        pipeline: String(c.pipeline),
      })),
  };
}

export function steeringServiceHandlers(
  ctx: ApiContext,
  source: () => SteeringSource | undefined,
): UntypedServiceImplementation {
  const { store } = ctx;
  return {
    SetPortSteering: unary(ctx, 'SetPortSteering', async (req) => {
      const s = obj.requireObject<Plain>(req.steering, 'steering');
      const mode = obj.requireString(s.mode, 'steering.mode');
      const cpus = Array.isArray(s.cpus) ? (s.cpus as number[]) : undefined;
      const want: PortSteering = {
        port: obj.requireString(s.port, 'steering.port'),
        mode: mode as PortSteering['mode'],
        // proto3 cannot tell an empty list from none: for fixed and spread that is "none given",
        // which validation reports as required.
        ...(cpus === undefined || cpus.length === 0 ? {} : { cpus }),
      };
      const r = await commitChange(store, 'SetPortSteering', (doc) => setPortSteering(doc, want));
      const i = findSteering(r.policy, want.port);
      return { steering: r.policy.portSteering[i], version: String(r.version) };
    }),
    ClearPortSteering: unary(ctx, 'ClearPortSteering', async (req) => {
      const port = obj.requireString(req.port, 'port');
      const r = await commitChange(store, 'ClearPortSteering', (doc) =>
        clearPortSteering(doc, port),
      );
      return { version: String(r.version) };
    }),
    GetSteering: unary(ctx, 'GetSteering', (req) => {
      const src = source();
      if (src === undefined) {
        throw new ApiError(Code.UNAVAILABLE, 'this datapath has no receive steering');
      }
      const st = src.status();
      const port = typeof req.port === 'string' && req.port !== '' ? req.port : undefined;
      const ports = st.ports.filter((p) => port === undefined || p.port === port);
      if (port !== undefined && ports.length === 0) {
        throw notFound(`port "${port}" is not steered on this host`);
      }
      return {
        ports: ports.map((p) => portMessage(p, src.counters(p.ifindex))),
        moves: String(st.moves),
        cpuLoad: st.cpuPps.map((c) => ({ cpu: c.cpu, packetsPerSecond: c.pps })),
      };
    }),
  };
}
