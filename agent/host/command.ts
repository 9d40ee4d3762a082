// Running the host's networking tools (iproute2, ping) for the agent, in the network namespace
// the agent manages: its own (production: `ip ...`), or another one given by path (labs and tests:
// `nsenter --net=/run/netns/NAME -- ip ...`, which enters the network namespace only and so keeps
// the caller's mount namespace and bpffs; `ip netns exec` would not).
//
// Every command has a hard time limit and is killed with its process group when it runs over;
// nothing goes through a shell. Long-running commands (`ip monitor`) are started with watch() and
// stopped by the caller.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { killGroup, run } from '../process/exec.js';

export interface CommandResult {
  readonly argv: readonly string[];
  /** Exit code; null when killed by a signal. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export interface RunOptions {
  /** Hard limit (default 10 s). */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. */
  input?: string;
}

export interface Watcher {
  /** Stops the command (SIGTERM, then SIGKILL) and resolves once it has exited. */
  stop(): Promise<void>;
  readonly running: boolean;
}

/** How the agent runs commands; tests and tenetd may provide their own. */
export interface CommandRunner {
  run(argv: readonly string[], opts?: RunOptions): Promise<CommandResult>;
  /** Starts a long-running command and calls onLine for every line of its stdout. */
  watch(
    argv: readonly string[],
    onLine: (line: string) => void,
    onExit?: (result: CommandResult) => void,
  ): Watcher;
}

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(readonly result: CommandResult) {
    const how = result.timedOut
      ? 'timed out'
      : result.code === null
        ? 'was killed'
        : `exited with code ${result.code}`;
    const detail = (result.stderr || result.stdout).trim();
    super(`\`${result.argv.join(' ')}\` ${how}${detail ? `: ${detail}` : ''}`);
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
function runArgv(argv: readonly string[], opts: RunOptions): Promise<CommandResult> {
  return run(argv, {
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
}

function watchArgv(
  argv: readonly string[],
  onLine: (line: string) => void,
  onExit?: (result: CommandResult) => void,
): Watcher {
  const child = spawn(argv[0] as string, argv.slice(1), {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let running = true;
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });
  if (child.stdout) createInterface({ input: child.stdout }).on('line', onLine);
  const exited = new Promise<void>((resolve) => {
    const finish = (code: number | null, extra = ''): void => {
      if (!running) return;
      running = false;
      onExit?.({ argv, code, stdout: '', stderr: stderr + extra, timedOut: false });
      resolve();
    };
    child.on('error', (e) => finish(127, e.message));
    child.on('close', (code) => finish(code));
  });
  return {
    get running() {
      return running;
    },
    async stop() {
      if (!running) return;
      const pid = child.pid;
      if (pid === undefined) return;
      killGroup(pid, 'SIGTERM');
      const t = setTimeout(() => killGroup(pid, 'SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    },
  };
}

export interface CommandRunnerOptions {
  /**
   * The network namespace to run in, as a path (/run/netns/NAME, /proc/PID/ns/net). Absent: the
   * agent's own namespace.
   */
  netns?: string;
}

/** Runs commands directly, or inside `netns` through nsenter (network namespace only). */
export function commandRunner(opts: CommandRunnerOptions = {}): CommandRunner {
  const wrap = (argv: readonly string[]): readonly string[] => {
    if (argv.length === 0) throw new TypeError('empty argv');
    return opts.netns === undefined ? argv : ['nsenter', `--net=${opts.netns}`, '--', ...argv];
  };
  return {
    run: (argv, runOpts = {}) => runArgv(wrap(argv), runOpts),
    watch: (argv, onLine, onExit) => watchArgv(wrap(argv), onLine, onExit),
  };
}

/** Runs a command that prints JSON (`ip -j ...`) and parses it; throws CommandError on failure. */
export async function runJson<T>(
  runner: CommandRunner,
  argv: readonly string[],
  opts?: RunOptions,
): Promise<T> {
  const r = await runner.run(argv, opts);
  if (r.code !== 0) throw new CommandError(r);
  const text = r.stdout.trim();
  try {
    return JSON.parse(text === '' ? '[]' : text) as T;
  } catch (e) {
    throw new Error(`\`${argv.join(' ')}\` printed invalid JSON: ${(e as Error).message}`);
  }
}
