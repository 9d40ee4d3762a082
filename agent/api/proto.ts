// The tenet.v1 protos at run time, through protobufjs: the .proto files under agent/proto are
// loaded once (no generated code to keep in sync), and everything gRPC needs is derived from
// them: grpc-js service definitions whose (de)serialisers are protobufjs codecs, the file
// descriptors the reflection service hands to generic clients, and proto3 JSON for tenetctl.
//
// Messages cross into the TS world as plain objects with camelCase fields (protobufjs
// toObject): 64-bit integers as strings, enums by name, absent fields absent. Requests are
// decoded without defaults, so a field the caller left out is missing in the object and the
// policy validation says "is required" about it rather than complaining about an empty string.
//
// Decoding never throws into grpc-js (which would answer INTERNAL): a malformed request decodes
// to a MalformedRequest marker that the handler wrapper (service.ts) turns into INVALID_ARGUMENT.

import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceDefinition, MethodDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor.js';
import protojson from 'protobufjs/ext/protojson.js';

export const PACKAGE = 'tenet.v1';
export const PROTO_FILES = [
  'tenet/v1/policy.proto',
  'tenet/v1/api.proto',
  'tenet/v1/acl.proto',
  'tenet/v1/metering.proto',
  'tenet/v1/steering.proto',
  'tenet/v1/qos.proto',
] as const;
export const SERVICE_NAMES = [
  'PolicyService',
  'AgentService',
  'AclService',
  'MeteringService',
  'SteeringService',
  'QosService',
] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** agent/proto of this checkout, found from this file in agent/ (tsx, vitest) or dist/agent/. */
export function protoDir(): string {
  const override = process.env.TENET_PROTO_DIR;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'agent', 'proto');
    if (existsSync(join(candidate, PROTO_FILES[0]))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('tenet protos not found (agent/proto/tenet/v1/*.proto)');
}

function loadRoot(): protobuf.Root {
  const base = protoDir();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(base, target));
  root.loadSync([...PROTO_FILES], { keepCase: false });
  root.resolveAll();
  return root;
}

export const root = loadRoot();

export function messageType(name: string): protobuf.Type {
  return root.lookupType(name.includes('.') ? name : `${PACKAGE}.${name}`);
}

/** A plain-object view of a message: camelCase fields, 64-bit integers as decimal strings. */
export type Plain = Record<string, unknown>;

const TO_OBJECT: protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  bytes: String,
  defaults: false,
  arrays: false,
  oneofs: false,
};

/** A request the server could not decode. */
export class MalformedRequest {
  constructor(readonly message: string) {}
}

export function decode(type: protobuf.Type, buf: Buffer): Plain {
  return type.toObject(type.decode(buf), TO_OBJECT) as Plain;
}

export function encode(type: protobuf.Type, value: Plain): Buffer {
  // fromObject converts (numbers for 64-bit strings, enum names) and drops unknown fields.
  return Buffer.from(type.encode(type.fromObject(value)).finish());
}

/** proto3 JSON of a plain-object message (what `tenetctl -o json` prints). */
export function toProtoJson(typeName: string, value: Plain): unknown {
  const type = messageType(typeName);
  return protojson.toJson(type, type.fromObject(value));
}

/** A proto3 JSON value as a plain-object message. */
export function fromProtoJson(typeName: string, json: unknown): Plain {
  const type = messageType(typeName);
  return type.toObject(protojson.fromJson(type, json), TO_OBJECT) as Plain;
}

export interface MethodInfo {
  readonly service: ServiceName;
  readonly name: string;
  /** `/tenet.v1.PolicyService/CreatePort` */
  readonly path: string;
  readonly requestType: protobuf.Type;
  readonly responseType: protobuf.Type;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

export function serviceMethods(service: ServiceName): MethodInfo[] {
  const svc = root.lookupService(`${PACKAGE}.${service}`);
  return svc.methodsArray.map((m) => {
    m.resolve();
    return {
      service,
      name: m.name,
      path: `/${PACKAGE}.${service}/${m.name}`,
      requestType: m.resolvedRequestType as protobuf.Type,
      responseType: m.resolvedResponseType as protobuf.Type,
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
    };
  });
}

/** Every method of every service by its path. */
export const METHODS: ReadonlyMap<string, MethodInfo> = new Map(
  SERVICE_NAMES.flatMap((s) => serviceMethods(s)).map((m) => [m.path, m]),
);

export function methodInfo(service: ServiceName, name: string): MethodInfo {
  const m = METHODS.get(`/${PACKAGE}.${service}/${name}`);
  if (m === undefined) throw new Error(`no method ${service}.${name}`);
  return m;
}

/** A grpc-js service definition (server and client side) with protobufjs codecs. */
export function serviceDefinition(service: ServiceName): ServiceDefinition {
  const def: Record<string, MethodDefinition<Plain | MalformedRequest, Plain>> = {};
  for (const m of serviceMethods(service)) {
    def[m.name] = {
      path: m.path,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      requestSerialize: (value) => encode(m.requestType, value as Plain),
      requestDeserialize: (buf) => {
        try {
          return decode(m.requestType, buf);
        } catch (e) {
          return new MalformedRequest(`cannot decode ${m.requestType.name}: ${String(e)}`);
        }
      },
      responseSerialize: (value) => encode(m.responseType, value),
      responseDeserialize: (buf) => decode(m.responseType, buf),
      originalName: m.name,
    };
  }
  return def as ServiceDefinition;
}

/**
 * What @grpc/reflection reads from a package definition: for each symbol, the encoded
 * FileDescriptorProtos that define it. protobufjs builds them from the loaded root (one file
 * per package, tenet_v1.proto, with no dependencies), so reflection always describes exactly
 * the messages this server encodes.
 */
export function reflectionPackageDefinition(): Record<string, { fileDescriptorProtos: Buffer[] }> {
  const set = root.toDescriptor('proto3');
  const files = set.file.map((f) => Buffer.from(descriptor.FileDescriptorProto.encode(f).finish()));
  const out: Record<string, { fileDescriptorProtos: Buffer[] }> = {};
  for (const name of SERVICE_NAMES) out[`${PACKAGE}.${name}`] = { fileDescriptorProtos: files };
  return out;
}

// google.rpc.Status and google.rpc.BadRequest, for grpc-status-details-bin (the rich error
// model: generic clients decode the field violations of INVALID_ARGUMENT from it).
const rpcRoot = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: {
              fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } },
            },
          },
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
              },
            },
            BadRequest: {
              fields: {
                field_violations: { rule: 'repeated', type: 'FieldViolation', id: 1 },
              },
              nested: {
                FieldViolation: {
                  fields: {
                    field: { type: 'string', id: 1 },
                    description: { type: 'string', id: 2 },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
});
const RpcStatus = rpcRoot.lookupType('google.rpc.Status');
const BadRequest = rpcRoot.lookupType('google.rpc.BadRequest');

export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/** google.rpc.Status with a BadRequest detail, encoded for grpc-status-details-bin. */
export function encodeStatusDetails(
  code: number,
  message: string,
  violations: readonly FieldViolation[],
): Buffer {
  const details =
    violations.length === 0
      ? []
      : [
          {
            type_url: 'type.googleapis.com/google.rpc.BadRequest',
            value: BadRequest.encode(
              BadRequest.fromObject({ field_violations: violations.map((v) => ({ ...v })) }),
            ).finish(),
          },
        ];
  return Buffer.from(RpcStatus.encode(RpcStatus.fromObject({ code, message, details })).finish());
}

/** The field violations of a grpc-status-details-bin value (empty when there are none). */
export function decodeStatusDetails(buf: Buffer): FieldViolation[] {
  const status = RpcStatus.toObject(RpcStatus.decode(buf), { defaults: true }) as {
    details: { type_url: string; value: Uint8Array }[];
  };
  const out: FieldViolation[] = [];
  for (const d of status.details) {
    if (!d.type_url.endsWith('/google.rpc.BadRequest')) continue;
    const br = BadRequest.toObject(BadRequest.decode(d.value), { defaults: true }) as {
      field_violations: FieldViolation[];
    };
    out.push(...br.field_violations);
  }
  return out;
}
