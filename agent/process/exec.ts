// Bounded process execution, shared by the host agent (iproute2, ping) and the labs: every
// command has a hard time limit and is killed (with its whole process group) when it runs over.
// Nothing here goes through a shell.

import { spawn, spawnSync } from 'node:child_process';

export interface ExecOptions {
  /** Hard limit; the process group is SIGKILLed when it is reached. Default 30 s. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. stdin is /dev/null when absent. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ExecResult {
  argv: string[];
  /** Exit code; null when the process was killed by a signal (see `signal`, `timedOut`). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

export class ExecError extends Error {
  readonly result: ExecResult;
  constructor(result: ExecResult, context?: string) {
    const how = result.timedOut
      ? `timed out after ${result.durationMs} ms`
      : result.signal
        ? `killed by ${result.signal}`
        : `exited with code ${result.code}`;
    const err = result.stderr.trim() || result.stdout.trim();
    super(
      `${context ? `${context}: ` : ''}${shellQuote(result.argv)} ${how}${err ? `: ${err}` : ''}`,
    );
    this.name = 'ExecError';
    this.result = result;
  }
}

export const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_CAPTURE = 16 * 1024 * 1024;

export function shellQuote(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/** A process running in the background with a hard time limit. */
export interface BgProcess {
  readonly argv: string[];
  readonly pid: number;
  /** Output captured so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExecResult>;
  readonly running: boolean;
  /** Signal the whole process group (default SIGTERM, escalates to SIGKILL after graceMs). */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<ExecResult>;
}

/** Signals a process group (falling back to the process itself); a gone process is not an error. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** Start a process in its own process group, capture its output, enforce a hard time limit. */
export function spawnBg(argv: readonly string[], opts: ExecOptions = {}): BgProcess {
  if (argv.length === 0) throw new TypeError('spawnBg: empty argv');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();
  const child = spawn(argv[0] as string, argv.slice(1), {
    detached: true,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  let out = '';
  let err = '';
  let timedOut = false;
  let running = true;
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    if (out.length < MAX_CAPTURE) out += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (err.length < MAX_CAPTURE) err += d;
  });
  if (opts.input !== undefined && child.stdin) {
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input);
  }
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
  }, timeoutMs);
  timer.unref?.();
  const exited = new Promise<ExecResult>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnErr?: Error): void => {
      clearTimeout(timer);
      running = false;
      resolve({
        argv: [...argv],
        code,
        signal,
        stdout: out,
        stderr: spawnErr ? `${err}${spawnErr.message}` : err,
        timedOut,
        durationMs: Date.now() - started,
      });
    };
    child.on('error', (e) => finish(127, null, e));
    child.on('close', (code, signal) => finish(code, signal));
  });
  const pid = child.pid ?? -1;
  return {
    argv: [...argv],
    pid,
    stdout: () => out,
    stderr: () => err,
    exited,
    get running() {
      return running;
    },
    async kill(signal: NodeJS.Signals = 'SIGTERM', graceMs = 2000) {
      if (running && pid > 0) {
        killGroup(pid, signal);
        const t = setTimeout(() => {
          if (running) killGroup(pid, 'SIGKILL');
        }, graceMs);
        t.unref?.();
        const r = await exited;
        clearTimeout(t);
        return r;
      }
      return exited;
    },
  };
}

/** Run a command to completion with a hard time limit. Never rejects on failure: check `code`. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return spawnBg(argv, opts).exited;
}

/** Run a command; throw ExecError (carrying stderr) unless it exits 0. */
export async function runOk(
  argv: readonly string[],
  opts: ExecOptions = {},
  context?: string,
): Promise<ExecResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new ExecError(r, context);
  return r;
}

/** Synchronous variant for exit handlers only (process 'exit' cannot await). */
export function runSync(argv: readonly string[], timeoutMs = 10_000): ExecResult {
  const started = Date.now();
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return {
    argv: [...argv],
    code: r.status,
    signal: r.signal,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? (r.error ? r.error.message : ''),
    timedOut: r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT',
    durationMs: Date.now() - started,
  };
}
