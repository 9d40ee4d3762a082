// tenetd as a child process for tests: started with tsx from the sources, its JSON log lines
// collected, with a config whose memory backend knows hv1's interfaces.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { HV1_FACTS, ROOT } from './helpers.js';

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

export function startDaemon(configPath: string, env: NodeJS.ProcessEnv = {}): DaemonProc {
  const child = spawn(process.execPath, [...NODE_ARGS, TENETD, '--config', configPath], {
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

/** A tenetd config in dir; by default the memory backend with hv1's interfaces. */
export function writeConfig(
  dir: string,
  opts: { pinRoot?: string; datapath?: string } = {},
): string {
  const path = join(dir, 'tenetd.yaml');
  const interfaces = Object.entries(HV1_FACTS)
    .map(([name, f]) => `    ${name}: { ifindex: ${f.ifindex}, mac: '${f.mac}', mtu: ${f.mtu} }`)
    .join('\n');
  const datapath = opts.datapath ?? `datapath:\n  backend: memory\n  interfaces:\n${interfaces}\n`;
  writeFileSync(
    path,
    `hostName: hv1
socket:
  path: ${join(dir, 'run', 'tenetd.sock')}
  allowedUids: [${process.getuid?.() ?? 0}]
metrics:
  listen: 127.0.0.1:0
stateDir: ${join(dir, 'state')}
pinRoot: ${opts.pinRoot ?? join(dir, 'pins')}
log:
  level: debug
${datapath}`,
  );
  return path;
}
