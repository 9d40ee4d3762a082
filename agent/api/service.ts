// The handlers of tenet.v1.PolicyService and tenet.v1.AgentService over a PolicyStore.
//
// Every handler is wrapped the same way: a request that did not decode is INVALID_ARGUMENT, an
// ApiError is its status (with google.rpc.BadRequest details), anything else is logged and
// answered INTERNAL without internals; every call is counted and timed by method and code.

import {
  status,
  type sendUnaryData,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import type {
  CustomerRoute,
  LookupRecord,
  Policy,
  PolicyDocument,
  Port,
  ProviderAddress,
  RoutingDomain,
  VirtualSubnet,
} from '../policy/index.js';
import type { TableChangeCount } from './backend.js';
import { KINDS, type PolicyDiff } from './diff.js';
import { ApiError, Code } from './errors.js';
import {
  datapathEventMessage,
  requestedRate,
  SUPPRESSED_REPORT_MS,
  WatcherEvents,
} from './events.js';
import * as obj from './objects.js';
import { MalformedRequest, type Plain } from './proto.js';
import { simulateRequest } from './simulate.js';
import type { CommitResult, PolicyStore, StoreLogger } from './store.js';

export interface ApiMetrics {
  observeRequest(method: string, code: string, seconds: number): void;
}

export interface ApiContext {
  readonly store: PolicyStore;
  readonly hostName: string;
  readonly agentVersion: string;
  readonly startedUnixMs: number;
  /** What happened to the state file at start ("loaded", "absent", "quarantined: ..."). */
  stateFile(): string;
  readonly metrics?: ApiMetrics;
  readonly log: StoreLogger;
}

/** Most lookup records one BulkLoadLookupRecords stream may carry. */
export const MAX_BULK_RECORDS = 4_000_000;
/** Events a Watch stream may have queued before a too-slow watcher is cut off. */
export const MAX_WATCH_BACKLOG = 10_000;
const DEFAULT_PAGE = 1000;
const MAX_PAGE = 10_000;

const codeName = (code: number): string => status[code] ?? String(code);

function internal(ctx: ApiContext, method: string, e: unknown): ApiError {
  ctx.log.error(
    { method, err: e instanceof Error ? (e.stack ?? e.message) : String(e) },
    'internal error in a handler',
  );
  return new ApiError(Code.INTERNAL, 'internal error (see the agent log)');
}

function asApiError(ctx: ApiContext, method: string, e: unknown): ApiError {
  return e instanceof ApiError ? e : internal(ctx, method, e);
}

type UnaryFn = (req: Plain) => Promise<Plain> | Plain;

export function unary(ctx: ApiContext, method: string, fn: UnaryFn) {
  return (
    call: ServerUnaryCall<Plain | MalformedRequest, Plain>,
    callback: sendUnaryData<Plain>,
  ) => {
    const start = performance.now();
    const done = (code: number): void =>
      ctx.metrics?.observeRequest(method, codeName(code), (performance.now() - start) / 1000);
    const req = call.request;
    void (async () => {
      try {
        if (req instanceof MalformedRequest) throw new ApiError(Code.INVALID_ARGUMENT, req.message);
        const res = await fn(req);
        done(Code.OK);
        callback(null, res);
      } catch (e) {
        const err = asApiError(ctx, method, e);
        done(err.code);
        callback(err.toServiceError());
      }
    })();
  };
}

export function diffMessage(diff: PolicyDiff): Plain {
  return Object.fromEntries(KINDS.map((k) => [k, { ...diff[k] }]));
}

function datapathMessage(tables: readonly TableChangeCount[]): Plain[] {
  return tables.map((t) => ({ ...t }));
}

function commitMessage(r: CommitResult): Plain {
  return {
    version: String(r.version),
    dryRun: r.dryRun,
    changed: r.changed,
    diff: diffMessage(r.diff),
    datapath: datapathMessage(r.datapath),
    warnings: [...r.warnings],
  };
}

/** The stored object after a commit (found by the same key the request used). */
function stored<T>(list: readonly T[], i: number): T {
  const o = list[i];
  if (o === undefined) throw new Error('committed object not found');
  return o;
}

function scoped(doc: PolicyDocument, vsid: number): Plain {
  const at = obj.findVirtualSubnet(doc, vsid);
  if (at === undefined) throw new ApiError(Code.NOT_FOUND, `virtual subnet ${vsid} does not exist`);
  const d = doc.routingDomains[at.domain] as RoutingDomain;
  return { routingDomain: d.name, virtualSubnet: d.virtualSubnets[at.subnet] as VirtualSubnet };
}

const asList = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);

/** A page token: the key of the last record of the previous page. */
const pageToken = (r: LookupRecord): string =>
  Buffer.from(`${r.vsid}/${r.ca}`).toString('base64url');

function compareRecords(a: LookupRecord, b: LookupRecord): number {
  if (a.vsid !== b.vsid) return a.vsid - b.vsid;
  return a.ca < b.ca ? -1 : a.ca > b.ca ? 1 : 0;
}

export function policyServiceHandlers(ctx: ApiContext): UntypedServiceImplementation {
  const { store } = ctx;
  const u = (method: string, fn: UnaryFn) => unary(ctx, method, fn);
  const version = (): string => String(store.version);

  return {
    // ---- provider addresses
    CreateProviderAddress: u('CreateProviderAddress', async (req) => {
      const pa = obj.requireObject<ProviderAddress>(req.providerAddress, 'provider_address');
      const r = await commitChange(store, 'CreateProviderAddress', (doc) =>
        obj.createProviderAddress(doc, pa),
      );
      const i = r.policy.providerAddresses.length - 1;
      return { providerAddress: stored(r.policy.providerAddresses, i), version: String(r.version) };
    }),
    UpdateProviderAddress: u('UpdateProviderAddress', async (req) => {
      const pa = obj.requireObject<ProviderAddress>(req.providerAddress, 'provider_address');
      const key = obj.ipKey(pa.address, 'provider_address.address');
      const r = await commitChange(store, 'UpdateProviderAddress', (doc) =>
        obj.updateProviderAddress(doc, pa),
      );
      return {
        providerAddress: stored(r.policy.providerAddresses, obj.findProviderAddress(r.policy, key)),
        version: String(r.version),
      };
    }),
    DeleteProviderAddress: u('DeleteProviderAddress', async (req) => {
      const key = obj.ipKey(req.address, 'address');
      const r = await commitChange(store, 'DeleteProviderAddress', (doc) =>
        obj.deleteProviderAddress(doc, key),
      );
      return { version: String(r.version) };
    }),
    GetProviderAddress: u('GetProviderAddress', (req) => {
      const key = obj.ipKey(req.address, 'address');
      const doc = store.read();
      const i = obj.findProviderAddress(doc, key);
      if (i < 0) throw new ApiError(Code.NOT_FOUND, `provider address ${key} does not exist`);
      return { providerAddress: stored(doc.providerAddresses, i) };
    }),
    ListProviderAddresses: u('ListProviderAddresses', (req) => {
      const doc = store.read();
      const host = typeof req.host === 'string' ? req.host : '';
      return {
        providerAddresses: doc.providerAddresses.filter((p) => host === '' || p.host === host),
        version: version(),
      };
    }),

    // ---- routing domains
    CreateRoutingDomain: u('CreateRoutingDomain', async (req) => {
      const rd = obj.requireObject<RoutingDomain>(req.routingDomain, 'routing_domain');
      const r = await commitChange(store, 'CreateRoutingDomain', (doc) =>
        obj.createRoutingDomain(doc, rd),
      );
      return {
        routingDomain: stored(r.policy.routingDomains, r.policy.routingDomains.length - 1),
        version: String(r.version),
      };
    }),
    UpdateRoutingDomain: u('UpdateRoutingDomain', async (req) => {
      const rd = obj.requireObject<RoutingDomain>(req.routingDomain, 'routing_domain');
      const r = await commitChange(store, 'UpdateRoutingDomain', (doc) =>
        obj.updateRoutingDomain(doc, rd),
      );
      return {
        routingDomain: stored(r.policy.routingDomains, obj.findRoutingDomain(r.policy, rd.name)),
        version: String(r.version),
      };
    }),
    DeleteRoutingDomain: u('DeleteRoutingDomain', async (req) => {
      const name = obj.requireString(req.name, 'name');
      const r = await commitChange(store, 'DeleteRoutingDomain', (doc) =>
        obj.deleteRoutingDomain(doc, name),
      );
      return { version: String(r.version) };
    }),
    GetRoutingDomain: u('GetRoutingDomain', (req) => {
      const name = obj.requireString(req.name, 'name');
      const doc = store.read();
      const i = obj.findRoutingDomain(doc, name);
      if (i < 0) throw new ApiError(Code.NOT_FOUND, `routing domain "${name}" does not exist`);
      return { routingDomain: stored(doc.routingDomains, i) };
    }),
    ListRoutingDomains: u('ListRoutingDomains', () => {
      const doc = store.read();
      return { routingDomains: doc.routingDomains, version: version() };
    }),

    // ---- virtual subnets
    CreateVirtualSubnet: u('CreateVirtualSubnet', async (req) => {
      const domain = obj.requireString(req.routingDomain, 'routing_domain');
      const vs = obj.requireObject<VirtualSubnet>(req.virtualSubnet, 'virtual_subnet');
      const r = await commitChange(store, 'CreateVirtualSubnet', (doc) =>
        obj.createVirtualSubnet(doc, domain, vs),
      );
      return { virtualSubnet: scoped(r.policy, vs.vsid), version: String(r.version) };
    }),
    UpdateVirtualSubnet: u('UpdateVirtualSubnet', async (req) => {
      const vs = obj.requireObject<VirtualSubnet>(req.virtualSubnet, 'virtual_subnet');
      const r = await commitChange(store, 'UpdateVirtualSubnet', (doc) =>
        obj.updateVirtualSubnet(doc, vs),
      );
      return { virtualSubnet: scoped(r.policy, vs.vsid), version: String(r.version) };
    }),
    DeleteVirtualSubnet: u('DeleteVirtualSubnet', async (req) => {
      const vsid = obj.requireVsid(req.vsid, 'vsid');
      const r = await commitChange(store, 'DeleteVirtualSubnet', (doc) =>
        obj.deleteVirtualSubnet(doc, vsid),
      );
      return { version: String(r.version) };
    }),
    GetVirtualSubnet: u('GetVirtualSubnet', (req) => {
      const vsid = obj.requireVsid(req.vsid, 'vsid');
      return { virtualSubnet: scoped(store.read(), vsid) };
    }),
    ListVirtualSubnets: u('ListVirtualSubnets', (req) => {
      const doc = store.read();
      const only = typeof req.routingDomain === 'string' ? req.routingDomain : '';
      const out: Plain[] = [];
      for (const d of doc.routingDomains) {
        if (only !== '' && d.name !== only) continue;
        for (const s of d.virtualSubnets) out.push({ routingDomain: d.name, virtualSubnet: s });
      }
      return { virtualSubnets: out, version: version() };
    }),

    // ---- ports
    CreatePort: u('CreatePort', async (req) => {
      const port = obj.requireObject<Port>(req.port, 'port');
      const r = await commitChange(store, 'CreatePort', (doc) => obj.createPort(doc, port));
      return {
        port: stored(r.policy.ports, r.policy.ports.length - 1),
        version: String(r.version),
      };
    }),
    UpdatePort: u('UpdatePort', async (req) => {
      const port = obj.requireObject<Port>(req.port, 'port');
      const r = await commitChange(store, 'UpdatePort', (doc) => obj.updatePort(doc, port));
      return {
        port: stored(r.policy.ports, obj.findPort(r.policy, port.name)),
        version: String(r.version),
      };
    }),
    DeletePort: u('DeletePort', async (req) => {
      const name = obj.requireString(req.name, 'name');
      const r = await commitChange(store, 'DeletePort', (doc) => obj.deletePort(doc, name));
      return { version: String(r.version) };
    }),
    GetPort: u('GetPort', (req) => {
      const name = obj.requireString(req.name, 'name');
      const doc = store.read();
      const i = obj.findPort(doc, name);
      if (i < 0) throw new ApiError(Code.NOT_FOUND, `port "${name}" does not exist`);
      return { port: stored(doc.ports, i) };
    }),
    ListPorts: u('ListPorts', (req) => {
      const doc = store.read();
      const host = typeof req.host === 'string' ? req.host : '';
      const vsid = typeof req.vsid === 'number' ? req.vsid : 0;
      return {
        ports: doc.ports.filter(
          (p) => (host === '' || p.host === host) && (vsid === 0 || p.vsid === vsid),
        ),
        version: version(),
      };
    }),

    // ---- lookup records
    CreateLookupRecord: u('CreateLookupRecord', async (req) => {
      const rec = obj.requireObject<LookupRecord>(req.lookupRecord, 'lookup_record');
      const r = await commitChange(store, 'CreateLookupRecord', (doc) =>
        obj.createLookupRecord(doc, rec),
      );
      return {
        lookupRecord: stored(r.policy.lookupRecords, r.policy.lookupRecords.length - 1),
        version: String(r.version),
      };
    }),
    UpdateLookupRecord: u('UpdateLookupRecord', async (req) => {
      const rec = obj.requireObject<LookupRecord>(req.lookupRecord, 'lookup_record');
      const ca = obj.ipKey(rec.ca, 'lookup_record.ca');
      const r = await commitChange(store, 'UpdateLookupRecord', (doc) =>
        obj.updateLookupRecord(doc, rec),
      );
      return {
        lookupRecord: stored(r.policy.lookupRecords, obj.findLookupRecord(r.policy, rec.vsid, ca)),
        version: String(r.version),
      };
    }),
    DeleteLookupRecord: u('DeleteLookupRecord', async (req) => {
      const vsid = obj.requireVsid(req.vsid, 'vsid');
      const ca = obj.ipKey(req.ca, 'ca');
      const r = await commitChange(store, 'DeleteLookupRecord', (doc) =>
        obj.deleteLookupRecord(doc, vsid, ca),
      );
      return { version: String(r.version) };
    }),
    GetLookupRecord: u('GetLookupRecord', (req) => {
      const vsid = obj.requireVsid(req.vsid, 'vsid');
      const ca = obj.ipKey(req.ca, 'ca');
      const doc = store.read();
      const i = obj.findLookupRecord(doc, vsid, ca);
      if (i < 0) throw new ApiError(Code.NOT_FOUND, `no lookup record for ${ca} in VSID ${vsid}`);
      return { lookupRecord: stored(doc.lookupRecords, i) };
    }),
    ListLookupRecords: u('ListLookupRecords', (req) => {
      const doc = store.read();
      const vsid = typeof req.vsid === 'number' ? req.vsid : 0;
      const pa = typeof req.pa === 'string' ? req.pa : '';
      const size =
        typeof req.pageSize === 'number' && req.pageSize > 0 ? req.pageSize : DEFAULT_PAGE;
      if (size > MAX_PAGE) {
        throw new ApiError(Code.INVALID_ARGUMENT, `page_size: at most ${MAX_PAGE}`, [
          { field: 'page_size', description: `at most ${MAX_PAGE}` },
        ]);
      }
      const all = doc.lookupRecords
        .filter((r) => (vsid === 0 || r.vsid === vsid) && (pa === '' || r.pa === pa))
        .sort(compareRecords);
      let from = 0;
      if (typeof req.pageToken === 'string' && req.pageToken !== '') {
        const m = /^(\d+)\/(.+)$/.exec(Buffer.from(req.pageToken, 'base64url').toString());
        if (m === null) {
          throw new ApiError(Code.INVALID_ARGUMENT, 'page_token: not a token this server gave', [
            { field: 'page_token', description: 'not a token this server gave' },
          ]);
        }
        const last = { vsid: Number(m[1]), ca: m[2] as string } as LookupRecord;
        from = all.findIndex((r) => compareRecords(r, last) > 0);
        if (from < 0) from = all.length;
      }
      const page = all.slice(from, from + size);
      const more = from + size < all.length;
      return {
        lookupRecords: page,
        nextPageToken: more ? pageToken(page[page.length - 1] as LookupRecord) : '',
        totalSize: all.length,
        version: version(),
      };
    }),

    // ---- customer routes
    CreateCustomerRoute: u('CreateCustomerRoute', async (req) => {
      const route = obj.requireObject<CustomerRoute>(req.customerRoute, 'customer_route');
      const r = await commitChange(store, 'CreateCustomerRoute', (doc) =>
        obj.createCustomerRoute(doc, route),
      );
      return {
        customerRoute: stored(r.policy.customerRoutes, r.policy.customerRoutes.length - 1),
        version: String(r.version),
      };
    }),
    UpdateCustomerRoute: u('UpdateCustomerRoute', async (req) => {
      const route = obj.requireObject<CustomerRoute>(req.customerRoute, 'customer_route');
      const prefix = obj.prefixKey(route.prefix, 'customer_route.prefix');
      const r = await commitChange(store, 'UpdateCustomerRoute', (doc) =>
        obj.updateCustomerRoute(doc, route),
      );
      return {
        customerRoute: stored(
          r.policy.customerRoutes,
          obj.findCustomerRoute(r.policy, route.routingDomain, prefix),
        ),
        version: String(r.version),
      };
    }),
    DeleteCustomerRoute: u('DeleteCustomerRoute', async (req) => {
      const domain = obj.requireString(req.routingDomain, 'routing_domain');
      const prefix = obj.prefixKey(req.prefix, 'prefix');
      const r = await commitChange(store, 'DeleteCustomerRoute', (doc) =>
        obj.deleteCustomerRoute(doc, domain, prefix),
      );
      return { version: String(r.version) };
    }),
    GetCustomerRoute: u('GetCustomerRoute', (req) => {
      const domain = obj.requireString(req.routingDomain, 'routing_domain');
      const prefix = obj.prefixKey(req.prefix, 'prefix');
      const doc = store.read();
      const i = obj.findCustomerRoute(doc, domain, prefix);
      if (i < 0)
        throw new ApiError(Code.NOT_FOUND, `no route for ${prefix} in routing domain "${domain}"`);
      return { customerRoute: stored(doc.customerRoutes, i) };
    }),
    ListCustomerRoutes: u('ListCustomerRoutes', (req) => {
      const doc = store.read();
      const only = typeof req.routingDomain === 'string' ? req.routingDomain : '';
      return {
        customerRoutes: doc.customerRoutes.filter((r) => only === '' || r.routingDomain === only),
        version: version(),
      };
    }),

    // ---- apply, bulk load, watch
    Apply: u('Apply', async (req) => {
      let document: unknown;
      if (typeof req.text === 'string') document = req.text;
      else if (req.policy !== undefined && req.policy !== null) document = req.policy;
      else
        throw new ApiError(Code.INVALID_ARGUMENT, 'document: give text or policy', [
          { field: 'document', description: 'give text or policy' },
        ]);
      const expected =
        typeof req.expectedVersion === 'string' ? BigInt(req.expectedVersion) : undefined;
      const r = await store.commit('Apply', () => document, {
        dryRun: req.dryRun === true,
        whole: true,
        ...(expected === undefined ? {} : { expectedVersion: expected }),
      });
      return commitMessage(r);
    }),
    BulkLoadLookupRecords: bulkLoad(ctx),
    Watch: watch(ctx),
  };
}

async function commitChange(
  store: PolicyStore,
  method: string,
  change: (doc: PolicyDocument) => obj.Change,
): Promise<CommitResult> {
  // The rewrite is known only once the change is built against the document the store holds
  // when the commit runs; carry it out of the build through this holder.
  let rewrite: obj.Change['rewrite'];
  const build = (doc: PolicyDocument): PolicyDocument => {
    const c = change(doc);
    rewrite = c.rewrite;
    return c.next;
  };
  return store.commit(method, build, {
    get rewrite() {
      return rewrite;
    },
  });
}

function bulkLoad(ctx: ApiContext) {
  const method = 'BulkLoadLookupRecords';
  return (
    call: ServerReadableStream<Plain | MalformedRequest, Plain>,
    callback: sendUnaryData<Plain>,
  ) => {
    const start = performance.now();
    const records: LookupRecord[] = [];
    let mode: string | undefined;
    let dryRun = false;
    let document: Plain | undefined;
    let failed: ApiError | undefined;
    const finish = (err: ApiError | null, res?: Plain): void => {
      ctx.metrics?.observeRequest(
        method,
        codeName(err?.code ?? Code.OK),
        (performance.now() - start) / 1000,
      );
      if (err !== null) callback(err.toServiceError());
      else callback(null, res);
    };
    call.on('data', (msg: Plain | MalformedRequest) => {
      if (failed !== undefined) return;
      if (msg instanceof MalformedRequest) {
        failed = new ApiError(Code.INVALID_ARGUMENT, msg.message);
        return;
      }
      if (mode === undefined) {
        mode = typeof msg.mode === 'string' ? msg.mode : 'BULK_LOAD_MODE_UNSPECIFIED';
        dryRun = msg.dryRun === true;
        if (msg.document !== undefined && msg.document !== null) document = msg.document as Plain;
      }
      const chunk = asList<LookupRecord>(msg.lookupRecords);
      if (records.length + chunk.length > MAX_BULK_RECORDS) {
        failed = new ApiError(
          Code.RESOURCE_EXHAUSTED,
          `a bulk load carries at most ${MAX_BULK_RECORDS} lookup records`,
        );
        records.length = 0;
        return;
      }
      for (const r of chunk) records.push(r);
    });
    call.on('error', () => {
      /* the client went away: nothing was applied */
    });
    call.on('end', () => {
      void (async () => {
        if (failed !== undefined) return finish(failed);
        const replace = mode === 'BULK_LOAD_MODE_REPLACE';
        if (mode !== undefined && !replace && mode !== 'BULK_LOAD_MODE_MERGE') {
          return finish(
            new ApiError(
              Code.INVALID_ARGUMENT,
              'mode: give BULK_LOAD_MODE_MERGE or BULK_LOAD_MODE_REPLACE',
              [
                {
                  field: 'mode',
                  description: 'give BULK_LOAD_MODE_MERGE or BULK_LOAD_MODE_REPLACE',
                },
              ],
            ),
          );
        }
        if (document !== undefined && !replace) {
          return finish(
            new ApiError(Code.INVALID_ARGUMENT, 'document: only with BULK_LOAD_MODE_REPLACE', [
              { field: 'document', description: 'only with BULK_LOAD_MODE_REPLACE' },
            ]),
          );
        }
        try {
          const whole = document;
          const r = await ctx.store.commit(
            whole === undefined ? method : 'Apply',
            whole === undefined
              ? (doc) => obj.mergeLookupRecords(doc, records, replace)
              : () => ({
                  ...whole,
                  lookupRecords: [...asList<LookupRecord>(whole.lookupRecords), ...records],
                }),
            whole === undefined
              ? {
                  dryRun,
                  ...(replace
                    ? { rewrite: { documentPath: 'lookupRecords', requestField: 'lookup_records' } }
                    : {}),
                }
              : { dryRun, whole: true },
          );
          const res = commitMessage(r);
          finish(null, {
            version: res.version,
            received: records.length,
            changed: res.changed,
            diff: res.diff,
            datapath: res.datapath,
            warnings: res.warnings,
          });
        } catch (e) {
          finish(asApiError(ctx, method, e));
        }
      })();
    });
  };
}

function watch(ctx: ApiContext) {
  return (call: ServerWritableStream<Plain | MalformedRequest, Plain>) => {
    const req = call.request;
    // emit('error') is how grpc-js ends a server stream with a status (destroy() would reset the
    // HTTP/2 stream before the status is sent).
    const refuse = (err: ApiError): void => {
      ctx.metrics?.observeRequest('Watch', codeName(err.code), 0);
      call.emit('error', err.toServiceError());
    };
    if (req instanceof MalformedRequest) {
      refuse(new ApiError(Code.INVALID_ARGUMENT, req.message));
      return;
    }
    let events: WatcherEvents | undefined;
    if (req.datapathEvents === true) {
      const rate = requestedRate(req.maxDatapathEventsPerSecond);
      if (typeof rate === 'string') {
        refuse(
          new ApiError(Code.INVALID_ARGUMENT, `max_datapath_events_per_second: ${rate}`, [
            { field: 'max_datapath_events_per_second', description: rate },
          ]),
        );
        return;
      }
      if (ctx.store.backend.watchDatapath === undefined) {
        refuse(
          new ApiError(
            Code.FAILED_PRECONDITION,
            'this datapath backend produces no datapath events (memory backend)',
          ),
        );
        return;
      }
      events = new WatcherEvents(rate);
    }
    let closed = false;
    const cleanups: (() => void)[] = [];
    const stop = (): void => {
      if (closed) return;
      closed = true;
      for (const c of cleanups.splice(0)) c();
    };
    const send = (msg: Plain): void => {
      if (closed) return;
      if (call.writableLength > MAX_WATCH_BACKLOG) {
        stop();
        call.destroy(
          new ApiError(
            Code.RESOURCE_EXHAUSTED,
            'watcher too slow: events were dropped; watch again',
          ).toServiceError() as Error,
        );
        return;
      }
      call.write(msg);
    };
    // Datapath events first: the backend may refuse them, and then nothing has been sent.
    if (events !== undefined) {
      const share = events;
      const watchDatapath = ctx.store.backend.watchDatapath?.bind(ctx.store.backend);
      try {
        const unsubscribe = (watchDatapath as NonNullable<typeof watchDatapath>)((e) => {
          if (closed || share.admit(call.writableLength) !== 'send') return;
          send({
            version: String(ctx.store.version),
            timeUnixMs: String(e.timeUnixNs / 1_000_000n),
            datapathEvent: datapathEventMessage(e),
          });
        });
        cleanups.push(unsubscribe);
      } catch (e) {
        stop();
        refuse(asApiError(ctx, 'Watch', e));
        return;
      }
      const timer = setInterval(() => {
        const r = share.report();
        if (r === undefined) return;
        send({
          version: String(ctx.store.version),
          timeUnixMs: String(Date.now()),
          eventsSuppressed: {
            rateLimited: String(r.rateLimited),
            backpressure: String(r.backpressure),
            total: String(r.total),
          },
        });
      }, SUPPRESSED_REPORT_MS);
      timer.unref();
      cleanups.push(() => clearInterval(timer));
    }
    ctx.metrics?.observeRequest('Watch', 'OK', 0);
    cleanups.push(
      ctx.store.watch((change) =>
        send({
          version: String(change.version),
          timeUnixMs: String(change.timeUnixMs),
          policyChanged: { method: change.method, diff: diffMessage(change.diff) },
        }),
      ),
    );
    call.on('cancelled', stop);
    call.on('close', stop);
    call.on('error', stop);
    if (req.includeCurrent === true) {
      send({
        version: String(ctx.store.version),
        timeUnixMs: String(Date.now()),
        policyChanged: { method: 'Snapshot' },
      });
    }
  };
}

function objectCounts(p: Policy | undefined): Plain {
  if (p === undefined) return {};
  return {
    providerAddresses: p.providerAddresses.length,
    routingDomains: p.routingDomains.length,
    virtualSubnets: p.routingDomains.reduce((n, d) => n + d.virtualSubnets.length, 0),
    ports: p.ports.length,
    lookupRecords: p.lookupRecords.length,
    customerRoutes: p.customerRoutes.length,
  };
}

export function agentServiceHandlers(ctx: ApiContext): UntypedServiceImplementation {
  const { store } = ctx;
  return {
    GetStatus: unary(ctx, 'GetStatus', () => {
      const s = store.status();
      const info = store.backend.info();
      return {
        hostName: ctx.hostName,
        ready: s.ready,
        policyKnown: s.known,
        policyVersion: String(s.version),
        objects: objectCounts(store.policy),
        agentVersion: ctx.agentVersion,
        abiVersion: info.abiVersion,
        libbpfVersion: info.libbpfVersion,
        stateFile: ctx.stateFile(),
        startedUnixMs: String(ctx.startedUnixMs),
        lastApplyUnixMs: String(s.lastApplyUnixMs),
        lastReconcileSeconds: s.lastReconcileSeconds,
        lastError: s.lastError,
      };
    }),
    GetCounters: unary(ctx, 'GetCounters', async () => {
      const snap = await store.backend.counters();
      const ports = new Map<string, Plain>();
      for (const p of snap.ports) {
        const key = `${p.port}\0${p.interface}`;
        const row = ports.get(key) ?? {
          port: p.port,
          interface: p.interface,
          rxPackets: '0',
          rxBytes: '0',
          txPackets: '0',
          txBytes: '0',
        };
        row[`${p.direction}Packets`] = String(
          BigInt(row[`${p.direction}Packets`] as string) + p.packets,
        );
        row[`${p.direction}Bytes`] = String(BigInt(row[`${p.direction}Bytes`] as string) + p.bytes);
        ports.set(key, row);
      }
      return {
        ports: [...ports.values()],
        drops: snap.drops.map((d) => ({
          reason: d.reason,
          packets: String(d.packets),
          bytes: String(d.bytes),
        })),
        maps: snap.maps.map((m) => ({ map: m.map, entries: m.entries, capacity: m.capacity })),
        vsids: snap.vsids.map((v) => ({
          vsid: v.vsid,
          virtualSubnet: v.virtualSubnet,
          encapPackets: String(v.encapPackets),
          encapBytes: String(v.encapBytes),
          decapPackets: String(v.decapPackets),
          decapBytes: String(v.decapBytes),
        })),
      };
    }),
    Simulate: unary(ctx, 'Simulate', (req) => simulateRequest(store, ctx.hostName, req)),
  };
}
