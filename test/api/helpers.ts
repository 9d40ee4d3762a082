// An in-process tenetd API for tests: the real server on a real unix socket in a temp dir, the
// real store, and a real backend (the compiler and reconciler over MemoryPolicyTables: the real
// reconciler logic, in memory instead of BPF maps). Clients are real gRPC clients.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceError } from '@grpc/grpc-js';
import type { UnderlayNh } from '../../agent/abi/generated.js';
import { ReconcilerBackend, type CounterSource } from '../../agent/api/backend.js';
import { TenetClient } from '../../agent/api/client.js';
import { ApiServer, type PeerCredentials } from '../../agent/api/server.js';
import { PolicyStore, type StoreHooks } from '../../agent/api/store.js';
import type { ApiMetrics } from '../../agent/api/service.js';
import type { InterfaceFacts } from '../../agent/compiler/index.js';
import { MemoryPolicyTables, type MemoryOptions } from '../../agent/reconciler/index.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const DEMO_POLICY_PATH = join(ROOT, 'scripts/lab/demo-policy.yaml');
export const demoPolicyText = (): string => readFileSync(DEMO_POLICY_PATH, 'utf8');

/** hv1 of the demo policy: its NIC and its two VM ports. */
export const HV1_FACTS: Record<string, InterfaceFacts> = {
  eth0: { ifindex: 2, mac: '02:00:00:00:0e:01', mtu: 1500 },
  'vm-blue1': { ifindex: 10, mac: 'fe:00:00:00:00:0a', mtu: 1500 },
  'vm-red1': { ifindex: 11, mac: 'fe:00:00:00:00:0b', mtu: 1500 },
};

export interface TestApi {
  readonly dir: string;
  readonly socketPath: string;
  readonly tables: MemoryPolicyTables;
  readonly store: PolicyStore;
  readonly server: ApiServer;
  readonly client: TenetClient;
  readonly logs: { level: string; obj: object; msg?: string }[];
  close(): Promise<void>;
}

export interface TestApiOptions {
  readonly memory?: MemoryOptions;
  /** hv1's interfaces (default HV1_FACTS); a function is read at every compile. */
  readonly facts?: Record<string, InterfaceFacts> | (() => Record<string, InterfaceFacts>);
  /** Underlay next hops the backend reports for Simulate. */
  readonly underlay?: () => ReadonlyMap<number, UnderlayNh>;
  readonly counters?: CounterSource;
  readonly hooks?: StoreHooks;
  readonly allowedUids?: number[];
  readonly allowedGids?: number[];
  readonly peerCredentials?: (fd: number) => PeerCredentials;
  /** Skip initialize(): the store stays not ready. */
  readonly deferInit?: boolean;
  readonly onRefused?: () => void;
  /** Default: run/tenetd.sock in a new temp dir. */
  readonly socketPath?: string;
  /** Group of the runtime directory and the socket. */
  readonly socketGid?: number;
  /** Messages a Watch stream may queue (ApiContext.watchBacklog). */
  readonly watchBacklog?: number;
  /** Request and event metrics of the API (ApiContext.metrics). */
  readonly metrics?: ApiMetrics;
}

export async function startTestApi(opts: TestApiOptions = {}): Promise<TestApi> {
  const dir = mkdtempSync(join(tmpdir(), 'tenet-api-'));
  const socketPath = opts.socketPath ?? join(dir, 'run', 'tenetd.sock');
  const tables = new MemoryPolicyTables(opts.memory);
  const logs: TestApi['logs'] = [];
  const log = {
    info: (obj: object, msg?: string) => logs.push({ level: 'info', obj, msg }),
    warn: (obj: object, msg?: string) => logs.push({ level: 'warn', obj, msg }),
    error: (obj: object, msg?: string) => logs.push({ level: 'error', obj, msg }),
  };
  const backend = new ReconcilerBackend({
    hostName: 'hv1',
    tables,
    facts: () => (typeof opts.facts === 'function' ? opts.facts() : (opts.facts ?? HV1_FACTS)),
    ...(opts.underlay ? { underlay: opts.underlay } : {}),
    ...(opts.counters ? { counters: opts.counters } : {}),
    ...(opts.memory?.capacity ? { capacity: opts.memory.capacity } : {}),
  });
  const store = new PolicyStore(backend, opts.hooks ?? {}, log);
  const server = new ApiServer({
    socketPath,
    allowedUids: opts.allowedUids ?? [process.getuid?.() ?? 0],
    allowedGids: opts.allowedGids ?? [],
    log,
    context: {
      store,
      hostName: 'hv1',
      agentVersion: 'test',
      startedUnixMs: Date.now(),
      stateFile: () => 'disabled',
      log,
      ...(opts.watchBacklog === undefined ? {} : { watchBacklog: opts.watchBacklog }),
      ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
    },
    ...(opts.peerCredentials ? { peerCredentials: opts.peerCredentials } : {}),
    ...(opts.onRefused ? { onRefused: opts.onRefused } : {}),
    ...(opts.socketGid !== undefined ? { socketGid: opts.socketGid } : {}),
  });
  await server.listen();
  if (!opts.deferInit) {
    await store.initialize();
    server.setServing(true);
  }
  const client = new TenetClient(socketPath);
  return {
    dir,
    socketPath,
    tables,
    store,
    server,
    client,
    logs,
    async close() {
      client.close();
      await server.close(100);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The rejection of a call that must fail. */
export async function rejection(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  throw new Error('the call succeeded but was expected to fail');
}

/** Everything the API shows of the policy: to compare before and after a rejected request. */
export async function snapshot(client: TenetClient): Promise<unknown> {
  const [pas, rds, vss, ports, recs, routes, status] = await Promise.all([
    client.policy('ListProviderAddresses'),
    client.policy('ListRoutingDomains'),
    client.policy('ListVirtualSubnets'),
    client.policy('ListPorts'),
    client.policy('ListLookupRecords', { pageSize: 10000 }),
    client.policy('ListCustomerRoutes'),
    client.agent('GetStatus'),
  ]);
  return { pas, rds, vss, ports, recs, routes, version: status.policyVersion };
}

/** The memory tables' contents: to prove a rejected request did not touch the datapath. */
export function tablesSnapshot(tables: MemoryPolicyTables): unknown {
  const out: Record<string, string[]> = {};
  const hex = (_k: string, v: unknown): unknown =>
    v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v;
  for (const t of ['ports', 'vsubnets', 'records', 'routes', 'localPas'] as const) {
    out[t] = [...tables.rows(t).entries()]
      .map(([id, row]) => `${id}=${JSON.stringify(row, hex)}`)
      .sort();
  }
  return { out, generation: tables.activeGeneration };
}
