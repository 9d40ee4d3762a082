// Port ACLs as policy objects (tenet.v1.AclService, agent/proto/tenet/v1/acl.proto): CRUD on the
// document's `portAcls`, one ACL per port keyed by the port's name, and the conversion between the
// proto form and the document form that Apply also uses for a structured Policy message.
//
// Proto -> document: port ranges arrive as {from, to} messages (an absent `from` is 0, proto3's
// default) and become the document's "from-to" text; everything else is the same shape. Document
// -> proto is the identity: a validated document holds protocols as numbers and ranges as
// {from, to} already. Every change is the whole next document through the store: validated as a
// whole (INVALID_ARGUMENT with the request's field paths), persisted, applied, or nothing.

import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { PolicyDocument, PortAcl } from '../policy/index.js';
import { ApiError, Code, alreadyExists, invalidArgument, notFound } from './errors.js';
import * as obj from './objects.js';
import type { Plain } from './proto.js';
import { commitChange, unary, type ApiContext } from './service.js';
import { portQosFromMessage, tenantQosFromMessage, uplinkFromMessage } from './qos.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function rangeFromProto(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  const r = v as { from?: unknown; to?: unknown };
  const from = r.from ?? 0;
  const to = r.to ?? 0;
  if (typeof from !== 'number' || typeof to !== 'number') return v;
  return `${from}-${to}`;
}

/** A PortAcl message (plain object) in the document's form. */
export function portAclFromProto(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  const acl = v as { port?: unknown; rules?: unknown };
  const rules = Array.isArray(acl.rules)
    ? acl.rules.map((r: unknown) => {
        if (r === null || typeof r !== 'object') return r;
        const rule: Record<string, unknown> = { ...(r as Record<string, unknown>) };
        for (const f of ['localPorts', 'remotePorts'])
          if (rule[f] !== undefined) rule[f] = rangeFromProto(rule[f]);
        return rule;
      })
    : acl.rules;
  return { ...acl, ...(rules === undefined ? {} : { rules }) };
}

/** A structured Policy message in the document's form (Apply). */
export function policyFromProto(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  const p = { ...(v as Record<string, unknown>) };
  // Kinds whose messages differ from the document's form (the rest map field for field).
  if (Array.isArray(p.portAcls)) p.portAcls = p.portAcls.map(portAclFromProto);
  if (Array.isArray(p.uplinks)) p.uplinks = (p.uplinks as Plain[]).map(uplinkFromMessage);
  if (Array.isArray(p.portQos)) p.portQos = (p.portQos as Plain[]).map(portQosFromMessage);
  if (Array.isArray(p.tenantQos)) p.tenantQos = (p.tenantQos as Plain[]).map(tenantQosFromMessage);
  return p;
}

export function findPortAcl(doc: PolicyDocument, port: string): number {
  return doc.portAcls.findIndex((a) => a.port === port);
}

function withAcls(doc: PolicyDocument, portAcls: PortAcl[]): PolicyDocument {
  return { ...(doc as Mutable<PolicyDocument>), portAcls };
}

export function createPortAcl(doc: PolicyDocument, acl: PortAcl): obj.Change {
  const port = obj.requireString(acl.port, 'port_acl.port');
  if (findPortAcl(doc, port) >= 0) throw alreadyExists(`port "${port}" already has an ACL`);
  const n = doc.portAcls.length;
  return {
    next: withAcls(doc, [...doc.portAcls, acl]),
    rewrite: { documentPath: `portAcls[${n}]`, requestField: 'port_acl' },
  };
}

export function updatePortAcl(doc: PolicyDocument, acl: PortAcl): obj.Change {
  const port = obj.requireString(acl.port, 'port_acl.port');
  const i = findPortAcl(doc, port);
  if (i < 0) throw notFound(`port "${port}" has no ACL`);
  const list = [...doc.portAcls];
  list[i] = acl;
  return {
    next: withAcls(doc, list),
    rewrite: { documentPath: `portAcls[${i}]`, requestField: 'port_acl' },
  };
}

export function deletePortAcl(doc: PolicyDocument, port: string): obj.Change {
  const i = findPortAcl(doc, port);
  if (i < 0) throw notFound(`port "${port}" has no ACL`);
  return {
    next: withAcls(
      doc,
      doc.portAcls.filter((_, k) => k !== i),
    ),
  };
}

function requestAcl(req: Plain): PortAcl {
  const acl = obj.requireObject<PortAcl>(req.portAcl, 'port_acl');
  if (acl.rules !== undefined && !Array.isArray(acl.rules))
    throw invalidArgument('port_acl.rules', 'expected a list');
  // proto3 leaves an empty repeated field out; the document wants the list.
  return portAclFromProto({ ...acl, rules: acl.rules ?? [] }) as PortAcl;
}

function stored(doc: PolicyDocument, port: string): PortAcl {
  const a = doc.portAcls[findPortAcl(doc, port)];
  if (a === undefined) throw new ApiError(Code.INTERNAL, 'committed ACL not found');
  return a;
}

export function aclServiceHandlers(ctx: ApiContext): UntypedServiceImplementation {
  const { store } = ctx;
  const u = (method: string, fn: (req: Plain) => Promise<Plain> | Plain) => unary(ctx, method, fn);
  return {
    CreatePortAcl: u('CreatePortAcl', async (req) => {
      const acl = requestAcl(req);
      const r = await commitChange(store, 'CreatePortAcl', (doc) => createPortAcl(doc, acl));
      return { portAcl: stored(r.policy, acl.port), version: String(r.version) };
    }),
    UpdatePortAcl: u('UpdatePortAcl', async (req) => {
      const acl = requestAcl(req);
      const r = await commitChange(store, 'UpdatePortAcl', (doc) => updatePortAcl(doc, acl));
      return { portAcl: stored(r.policy, acl.port), version: String(r.version) };
    }),
    DeletePortAcl: u('DeletePortAcl', async (req) => {
      const port = obj.requireString(req.port, 'port');
      const r = await commitChange(store, 'DeletePortAcl', (doc) => deletePortAcl(doc, port));
      return { version: String(r.version) };
    }),
    GetPortAcl: u('GetPortAcl', (req) => {
      const port = obj.requireString(req.port, 'port');
      const doc = store.read();
      const i = findPortAcl(doc, port);
      if (i < 0) throw notFound(`port "${port}" has no ACL`);
      return { portAcl: doc.portAcls[i] as PortAcl };
    }),
    ListPortAcls: u('ListPortAcls', (req) => {
      const doc = store.read();
      const host = typeof req.host === 'string' ? req.host : '';
      const hostOf = new Map(doc.ports.map((p) => [p.name, p.host]));
      return {
        portAcls: doc.portAcls.filter((a) => host === '' || hostOf.get(a.port) === host),
        version: String(store.version),
      };
    }),
  };
}
