// tenetd as a child process for tests: started with tsx from the sources (optionally wrapped, e.g.
// in `nsenter --net=PATH` to run it inside a lab host's network namespace), its JSON log lines
// collected; a config writer; the standard gRPC health check over its socket.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const TENETD = join(ROOT, 'agent/daemon/main.ts');
export const NODE_ARGS = ['--import', 'tsx'];

export interface DaemonProc {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
  /** Resolves with the first log line matching. */
  waitLog(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
}

export interface StartDaemonOptions {
  /**
   * argv put in front of `node ... tenetd`, e.g. ['nsenter', '--net=/run/netns/X', '--']. It must
   * exec (not fork) so that the child's pid is tenetd's own and a signal reaches tenetd.
   */
  readonly wrap?: readonly string[];
}

export function startDaemon(
  configPath: string,
  env: NodeJS.ProcessEnv = {},
  opts: StartDaemonOptions = {},
): DaemonProc {
  const argv = [
    ...(opts.wrap ?? []),
    process.execPath,
    ...NODE_ARGS,
    TENETD,
    '--config',
    configPath,
  ];
  const child = spawn(argv[0] as string, argv.slice(1), {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters: {
    pred: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      rec = { raw: line };
    }
    logs.push(rec);
    for (const w of [...waiters]) {
      if (w.pred(rec)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(rec);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    logs,
    exited,
    waitLog(pred, timeoutMs = 30_000) {
      const found = logs.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no such log line in ${timeoutMs} ms; logs: ${JSON.stringify(logs).slice(-3000)} stderr: ${stderr}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void exited.then((code) =>
          reject(
            new Error(
              `tenetd exited (${code}) before the log line; stderr: ${stderr}; logs: ${JSON.stringify(logs).slice(-3000)}`,
            ),
          ),
        );
      });
    },
  };
}

/** SIGKILLs the daemon if it still runs and waits for it to be gone. */
export async function killDaemon(d: DaemonProc | undefined): Promise<void> {
  if (d === undefined) return;
  if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
  await d.exited;
}

export interface TenetdConfigOptions {
  /** Default hv1. */
  readonly hostName?: string;
  readonly pinRoot: string;
  /** The `datapath:` section, as YAML text. */
  readonly datapath: string;
  /** Metrics listen address; null: no metrics endpoint. Default 127.0.0.1:0. */
  readonly metricsListen?: string | null;
  /** Default debug. */
  readonly logLevel?: string;
}

/**
 * A tenetd config at <dir>/tenetd.yaml: socket at <dir>/run/tenetd.sock (our uid allowed), state
 * in <dir>/state. Returns the config's path.
 */
export function tenetdConfig(dir: string, opts: TenetdConfigOptions): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'tenetd.yaml');
  const listen = opts.metricsListen === undefined ? '127.0.0.1:0' : opts.metricsListen;
  writeFileSync(
    path,
    `hostName: ${opts.hostName ?? 'hv1'}
socket:
  path: ${join(dir, 'run', 'tenetd.sock')}
  allowedUids: [${process.getuid?.() ?? 0}]
${listen === null ? '' : `metrics:\n  listen: ${listen}\n`}stateDir: ${join(dir, 'state')}
pinRoot: ${opts.pinRoot}
log:
  level: ${opts.logLevel ?? 'debug'}
${opts.datapath}`,
  );
  return path;
}

type HealthCb = (err: ServiceError | null, res?: { status: string }) => void;
type HealthClient = Client & { Check(req: { service: string }, cb: HealthCb): void };
let healthCtor: (new (addr: string, creds: unknown, opts?: object) => HealthClient) | undefined;

function healthClient(socketPath: string): HealthClient {
  if (healthCtor === undefined) {
    const require = createRequire(import.meta.url);
    const { protoPath } = require('grpc-health-check') as { protoPath: string };
    const pkg = loadPackageDefinition(loadSync(protoPath, { enums: String })) as unknown as {
      grpc: { health: { v1: { Health: NonNullable<typeof healthCtor> } } };
    };
    healthCtor = pkg.grpc.health.v1.Health;
  }
  // A connection of its own: a check made after a restart must reach the new daemon.
  return new healthCtor(`unix:${socketPath}`, credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
}

/** grpc.health.v1 Check over the socket: 'SERVING', 'NOT_SERVING', ...; rejects on errors. */
export function healthStatus(socketPath: string, service = '', timeoutMs = 1000): Promise<string> {
  const c = healthClient(socketPath);
  return new Promise<string>((resolve, reject) => {
    c.waitForReady(Date.now() + timeoutMs, (err) => {
      if (err) {
        c.close();
        reject(err);
        return;
      }
      c.Check({ service }, (e, res) => {
        c.close();
        if (e) reject(e);
        else resolve(res?.status ?? '');
      });
    });
  });
}

/**
 * Polls the health service until it says SERVING; resolves with the milliseconds from `since`
 * (a performance.now() value). Rejects after timeoutMs.
 */
export async function waitServing(
  socketPath: string,
  since: number,
  timeoutMs = 30_000,
  pollMs = 25,
): Promise<number> {
  const deadline = since + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const s = await healthStatus(socketPath, '', 500);
      if (s === 'SERVING') return performance.now() - since;
      last = s;
    } catch (e) {
      last = (e as Error).message;
    }
    if (performance.now() > deadline) {
      throw new Error(`${socketPath}: not SERVING within ${timeoutMs} ms (last: ${last})`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
