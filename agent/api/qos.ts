// The handlers of tenet.v1.QosService (agent/proto/tenet/v1/qos.proto): set, delete and list the
// QoS objects of the policy document (portQos, uplinks) through the policy store, so every change
// is validated as a whole document and a refused one changes nothing, and GetQosStatus from the
// backend's QoS state.

import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type {
  ClassCap,
  MinimumBandwidth,
  PolicyDocument,
  PortQos,
  RateCap,
  TenantClassCap,
  TenantQos,
  Uplink,
} from '../policy/index.js';
import { ApiError, Code } from './errors.js';
import type { Plain } from './proto.js';
import { unary, type ApiContext } from './service.js';

function rateCap(p: unknown): RateCap | undefined {
  if (p === undefined || p === null) return undefined;
  const m = p as Plain;
  const burst = Number(m.burstKib ?? 0);
  return { mbps: Number(m.mbps ?? 0), ...(burst > 0 ? { burstKiB: burst } : {}) };
}

function minimum(p: unknown): MinimumBandwidth | undefined {
  if (p === undefined || p === null) return undefined;
  const m = p as Plain;
  if (m.weight !== undefined && m.weight !== null) return { weight: Number(m.weight) };
  if (m.mbps !== undefined && m.mbps !== null) return { mbps: Number(m.mbps) };
  return {};
}

/** PortQos message -> document object (validation happens on the whole document). */
export function portQosFromMessage(p: Plain): PortQos {
  const out = rateCap(p.maximumOutbound);
  const inb = rateCap(p.maximumInbound);
  const min = minimum(p.minimum);
  const caps = ((p.classCaps as Plain[] | undefined) ?? []).map(
    (c): ClassCap => ({
      name: String(c.name ?? ''),
      remotePrefixes: ((c.remotePrefixes as string[] | undefined) ?? []).map(String),
      mbps: Number(c.mbps ?? 0),
    }),
  );
  return {
    port: String(p.port ?? ''),
    ...(out === undefined && inb === undefined
      ? {}
      : {
          maximum: {
            ...(out === undefined ? {} : { outbound: out }),
            ...(inb === undefined ? {} : { inbound: inb }),
          },
        }),
    ...(min === undefined ? {} : { minimum: min }),
    ...(caps.length === 0 ? {} : { classCaps: caps }),
  };
}

const capMessage = (c: RateCap | undefined): Plain | undefined =>
  c === undefined ? undefined : { mbps: c.mbps, burstKib: c.burstKiB ?? 0 };

export function portQosMessage(q: PortQos): Plain {
  return {
    port: q.port,
    maximumOutbound: capMessage(q.maximum?.outbound),
    maximumInbound: capMessage(q.maximum?.inbound),
    minimum: q.minimum === undefined ? undefined : { ...q.minimum },
    classCaps: (q.classCaps ?? []).map((c) => ({ ...c, remotePrefixes: [...c.remotePrefixes] })),
  };
}

export function uplinkFromMessage(u: Plain): Uplink {
  const def = minimum(u.defaultBucket);
  return {
    host: String(u.host ?? ''),
    interface: String(u.interface ?? ''),
    capacityMbps: Number(u.capacityMbps ?? 0),
    ...(def === undefined ? {} : { defaultBucket: def }),
  };
}

export function uplinkMessage(u: Uplink): Plain {
  return {
    host: u.host,
    interface: u.interface,
    capacityMbps: u.capacityMbps,
    defaultBucket: u.defaultBucket === undefined ? undefined : { ...u.defaultBucket },
  };
}

export function qosServiceHandlers(ctx: ApiContext): UntypedServiceImplementation {
  const { store } = ctx;
  const rewrite = (documentPath: string, requestField: string) => ({
    rewrite: { documentPath, requestField },
  });
  return {
    SetPortQos: unary(ctx, 'SetPortQos', async (req) => {
      if (req.portQos === undefined || req.portQos === null) {
        throw new ApiError(Code.INVALID_ARGUMENT, 'port_qos: is required');
      }
      const q = portQosFromMessage(req.portQos as Plain);
      let at = 0;
      const r = await store.commit(
        'SetPortQos',
        (doc: PolicyDocument) => {
          const rest = doc.portQos.filter((x) => x.port !== q.port);
          at = rest.length;
          return { ...doc, portQos: [...rest, q] };
        },
        {
          dryRun: req.dryRun === true,
          get rewrite() {
            return { documentPath: `portQos[${at}]`, requestField: 'port_qos' };
          },
        },
      );
      return { policyVersion: String(r.version) };
    }),
    DeletePortQos: unary(ctx, 'DeletePortQos', async (req) => {
      const port = String(req.port ?? '');
      const r = await store.commit('DeletePortQos', (doc: PolicyDocument) => {
        if (!doc.portQos.some((x) => x.port === port)) {
          throw new ApiError(Code.NOT_FOUND, `port "${port}" has no QoS`);
        }
        return { ...doc, portQos: doc.portQos.filter((x) => x.port !== port) };
      });
      return { policyVersion: String(r.version) };
    }),
    ListPortQos: unary(ctx, 'ListPortQos', () => ({
      portQos: (store.policy?.portQos ?? []).map(portQosMessage),
    })),
    SetUplink: unary(ctx, 'SetUplink', async (req) => {
      if (req.uplink === undefined || req.uplink === null) {
        throw new ApiError(Code.INVALID_ARGUMENT, 'uplink: is required');
      }
      const u = uplinkFromMessage(req.uplink as Plain);
      let at = 0;
      const r = await store.commit(
        'SetUplink',
        (doc: PolicyDocument) => {
          const rest = doc.uplinks.filter(
            (x) => !(x.host === u.host && x.interface === u.interface),
          );
          at = rest.length;
          return { ...doc, uplinks: [...rest, u] };
        },
        {
          dryRun: req.dryRun === true,
          get rewrite() {
            return rewrite(`uplinks[${at}]`, 'uplink').rewrite;
          },
        },
      );
      return { policyVersion: String(r.version) };
    }),
    DeleteUplink: unary(ctx, 'DeleteUplink', async (req) => {
      const host = String(req.host ?? '');
      const iface = String(req.interface ?? '');
      const r = await store.commit('DeleteUplink', (doc: PolicyDocument) => {
        if (!doc.uplinks.some((x) => x.host === host && x.interface === iface)) {
          throw new ApiError(Code.NOT_FOUND, `uplink ${iface} on ${host} does not exist`);
        }
        return {
          ...doc,
          uplinks: doc.uplinks.filter((x) => !(x.host === host && x.interface === iface)),
        };
      });
      return { policyVersion: String(r.version) };
    }),
    ListUplinks: unary(ctx, 'ListUplinks', () => ({
      uplinks: (store.policy?.uplinks ?? []).map(uplinkMessage),
    })),
    GetQosStatus: unary(ctx, 'GetQosStatus', async () => {
      const backend = store.backend;
      if (backend.qosStatus === undefined) {
        throw new ApiError(Code.FAILED_PRECONDITION, 'this datapath backend has no QoS');
      }
      const s = await backend.qosStatus();
      return {
        htb: s.capabilities.htb,
        fq: s.capabilities.fq,
        fqCodel: s.capabilities.fqCodel,
        outboundMethod: s.outboundMethod,
        inboundMethod: s.inboundMethod,
        leafQdisc: s.leafQdisc,
        uplinks: s.uplinks.map((u) => ({
          interface: u.interface,
          capacityBps: String(u.capacityBps),
          mode: u.mode,
          classes: u.classes.map((c) => ({
            classid: c.classid,
            label: c.label,
            port: c.port ?? '',
            rateBps: String(c.rateBps),
            ceilBps: String(c.ceilBps),
            sentBytes: String(c.sentBytes),
            sentPackets: String(c.sentPackets),
            droppedPackets: String(c.droppedPackets),
            overlimits: String(c.overlimits),
            backlogBytes: String(c.backlogBytes),
            backlogPackets: String(c.backlogPackets),
          })),
        })),
        ports: s.ports.map((p) => ({
          port: p.port,
          direction: p.direction,
          passedPackets: String(p.passedPackets),
          passedBytes: String(p.passedBytes),
          droppedPackets: String(p.droppedPackets),
          droppedBytes: String(p.droppedBytes),
        })),
      };
    }),
  };
}

/** TenantQos message -> document object. */
export function tenantQosFromMessage(t: Plain): TenantQos {
  return {
    routingDomain: String(t.routingDomain ?? ''),
    classCaps: ((t.classCaps as Plain[] | undefined) ?? []).map((c): TenantClassCap => {
      const burst = Number(c.burstKib ?? 0);
      return {
        name: String(c.name ?? ''),
        remotePrefixes: ((c.remotePrefixes as string[] | undefined) ?? []).map(String),
        mbps: Number(c.mbps ?? 0),
        ...(burst > 0 ? { burstKiB: burst } : {}),
      };
    }),
  };
}
