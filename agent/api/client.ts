// A client of tenetd's control socket (tenetctl and the tests use it): the same protobufjs-derived
// service definitions as the server, calls by method name, plain-object messages.

import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  type Client,
  type ClientReadableStream,
  type ClientWritableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  decodeStatusDetails,
  type FieldViolation,
  type Plain,
  type ServiceName,
  serviceDefinition,
} from './proto.js';

export const DEFAULT_SOCKET = '/run/tenet/tenetd.sock';

export interface CallOptions {
  /** Milliseconds; default 30 s. */
  readonly timeoutMs?: number;
}

type UnaryMethod = (
  req: Plain,
  metadata: Metadata,
  options: { deadline: Date },
  cb: (err: ServiceError | null, res?: Plain) => void,
) => void;

/** The field violations a failed call carried in grpc-status-details-bin. */
export function fieldViolations(err: ServiceError): FieldViolation[] {
  const raw = err.metadata?.get('grpc-status-details-bin')[0];
  if (raw === undefined || typeof raw === 'string') return [];
  try {
    return decodeStatusDetails(raw);
  } catch {
    return [];
  }
}

export class TenetClient {
  private readonly clients = new Map<ServiceName, Client>();

  constructor(readonly socketPath: string = DEFAULT_SOCKET) {}

  private client(service: ServiceName): Client {
    let c = this.clients.get(service);
    if (c === undefined) {
      const Ctor = makeGenericClientConstructor(serviceDefinition(service), service);
      c = new Ctor(`unix:${this.socketPath}`, credentials.createInsecure(), {
        'grpc.max_receive_message_length': 256 * 1024 * 1024,
        'grpc.max_send_message_length': 256 * 1024 * 1024,
        // Our own connection, not one shared through grpc-js's global pool: a client made after
        // the daemon restarted must not reuse a connection to the old one.
        'grpc.use_local_subchannel_pool': 1,
      });
      this.clients.set(service, c);
    }
    return c;
  }

  private deadline(opts?: CallOptions): Date {
    return new Date(Date.now() + (opts?.timeoutMs ?? 30_000));
  }

  /** A unary call: resolves with the response, rejects with the ServiceError. */
  call(service: ServiceName, method: string, req: Plain = {}, opts?: CallOptions): Promise<Plain> {
    const c = this.client(service) as unknown as Record<string, UnaryMethod>;
    const fn = c[method];
    if (typeof fn !== 'function')
      return Promise.reject(new Error(`no method ${service}.${method}`));
    return new Promise((resolve, reject) => {
      fn.call(c, req, new Metadata(), { deadline: this.deadline(opts) }, (err, res) => {
        if (err !== null) reject(err);
        else resolve(res ?? {});
      });
    });
  }

  policy(method: string, req: Plain = {}, opts?: CallOptions): Promise<Plain> {
    return this.call('PolicyService', method, req, opts);
  }

  agent(method: string, req: Plain = {}, opts?: CallOptions): Promise<Plain> {
    return this.call('AgentService', method, req, opts);
  }

  /**
   * BulkLoadLookupRecords: sends the chunks (first one with mode and dry_run), resolves with the
   * response. onSent is called after each chunk has been handed to the transport.
   */
  bulkLoad(
    chunks: Iterable<Plain>,
    onSent?: (index: number) => void,
    opts?: CallOptions,
  ): Promise<Plain> {
    const c = this.client('PolicyService') as unknown as {
      BulkLoadLookupRecords(
        metadata: Metadata,
        options: { deadline: Date },
        cb: (err: ServiceError | null, res?: Plain) => void,
      ): ClientWritableStream<Plain>;
    };
    return new Promise((resolve, reject) => {
      const stream = c.BulkLoadLookupRecords(
        new Metadata(),
        { deadline: this.deadline({ timeoutMs: opts?.timeoutMs ?? 600_000 }) },
        (err, res) => (err !== null ? reject(err) : resolve(res ?? {})),
      );
      const it = chunks[Symbol.iterator]();
      let i = 0;
      const pump = (): void => {
        for (;;) {
          const next = it.next();
          if (next.done) {
            stream.end();
            return;
          }
          const ok = stream.write(next.value);
          onSent?.(i++);
          if (!ok) {
            stream.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
  }

  /** Watch: a readable stream of WatchResponse objects. */
  watch(req: Plain = {}): ClientReadableStream<Plain> {
    const c = this.client('PolicyService') as unknown as {
      Watch(req: Plain, metadata?: Metadata): ClientReadableStream<Plain>;
    };
    return c.Watch(req, new Metadata());
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
