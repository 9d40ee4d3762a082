// What feature command modules (agent/cli/acl.ts, agent/cli/meter.ts, ...) get from tenetctl's
// main module, so they share its option handling, output formats, error reporting and exit codes
// without main.ts exporting its internals one by one.

import type { Command } from 'commander';
import type { Plain, ServiceName } from '../api/proto.js';

export type Column = [header: string, get: (row: Plain) => unknown];

export interface CliHelpers {
  /** Adds -o/--socket/--timeout to a (sub)command. */
  withGlobals(cmd: Command): Command;
  /** Runs an action, reporting errors and setting the exit code like every other verb. */
  action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void>;
  /** One RPC with the command's globals; prints the response (-o json|yaml, or human). */
  call(
    cmd: Command,
    service: ServiceName,
    method: string,
    req: Plain,
    human: (res: Plain) => string,
  ): Promise<Plain>;
  /** An RPC whose response the verb prints itself (or not at all). */
  rpc(cmd: Command, service: ServiceName, method: string, req: Plain): Promise<Plain>;
  /** Prints res as -o asks (human for table). */
  print(
    cmd: Command,
    service: ServiceName,
    method: string,
    res: Plain,
    human: (res: Plain) => string,
  ): void;
  table(rows: readonly Plain[], columns: readonly Column[]): string;
  cell(v: unknown): string;
  /** A YAML or JSON file (- for stdin) as one value. */
  readFile(file: string): unknown;
  /** An error in how tenetctl was called (exit 2). */
  usage(message: string): Error;
}
