// tenetctl steering: a VM port's receive steering (SteeringService).
//
//   tenetctl steering list [--port NAME]            per port: mode, CPUs, where it runs now, moves,
//                                                   load; per CPU: delivered/steered/... counters
//   tenetctl steering set NAME --mode fixed --cpus 1
//   tenetctl steering set NAME --mode spread --cpus 0-3
//   tenetctl steering set NAME --mode auto [--cpus 0,1]
//   tenetctl steering clear NAME
//
// Built by main.ts, which hands over its calling and printing helpers (one registration line).

import { Command, Option } from 'commander';
import type { Plain, ServiceName } from '../api/proto.js';
import { parseCpuList } from '../compiler/steering.js';

type Column = [header: string, get: (row: Plain) => unknown];

/** What main.ts lends this command. */
export interface CliKit<G> {
  action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void>;
  call(
    g: G,
    service: ServiceName,
    method: string,
    req: Plain,
    human: (res: Plain) => string,
  ): Promise<void>;
  withGlobals(cmd: Command): Command;
  globals(cmd: Command): G;
  table(rows: readonly Plain[], columns: readonly Column[]): string;
  /** An error that makes tenetctl exit 2 (bad usage). */
  usage(message: string): Error;
}

function cpusOption<G>(kit: CliKit<G>, text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  try {
    return parseCpuList(text);
  } catch {
    throw kit.usage(`--cpus: ${JSON.stringify(text)} is not a CPU list like 1, 0,1 or 0-3`);
  }
}

export function steeringCommand<G>(kit: CliKit<G>): Command {
  const cmd = new Command('steering').description(
    'receive steering of VM ports (VMQ: fixed, vRSS: spread, dynamic VMQ: auto)',
  );

  kit
    .withGlobals(
      cmd
        .command('list')
        .description('where each steered port runs now, with per-CPU counters')
        .option('--port <name>', 'only this port'),
    )
    .action(
      kit.action(async (o: { port?: string }, c: Command) => {
        await kit.call(
          kit.globals(c),
          'SteeringService',
          'GetSteering',
          o.port === undefined ? {} : { port: o.port },
          (res) => {
            const ports = (res.ports as Plain[] | undefined) ?? [];
            const perCpu = ports.flatMap((p) =>
              ((p.perCpu as Plain[] | undefined) ?? []).map((x) => ({ port: p.port, ...x })),
            );
            const load = (res.cpuLoad as Plain[] | undefined) ?? [];
            return [
              kit.table(ports, [
                ['PORT', (r) => r.port],
                ['INTERFACE', (r) => r.interface],
                ['MODE', (r) => r.mode],
                ['CPUS', (r) => r.cpus],
                ['NOW-ON', (r) => r.currentCpus],
                ['MOVES', (r) => r.moves ?? 0],
                ['PPS', (r) => Math.round((r.packetsPerSecond as number | undefined) ?? 0)],
              ]),
              '',
              kit.table(perCpu, [
                ['PORT', (r) => r.port],
                ['CPU', (r) => r.cpu ?? 0],
                ['DELIVERED', (r) => r.delivered ?? 0],
                ['STEERED-AWAY', (r) => r.steered ?? 0],
                ['LOCAL', (r) => r.local ?? 0],
                ['FALLBACK', (r) => r.fallback ?? 0],
                ['PIPELINE', (r) => r.pipeline ?? 0],
              ]),
              '',
              `moves: ${String(res.moves ?? 0)}; load (pps): ${
                load
                  .map(
                    (l) =>
                      `cpu${String(l.cpu ?? 0)}=${Math.round((l.packetsPerSecond as number) ?? 0)}`,
                  )
                  .join(' ') || '-'
              }`,
            ].join('\n');
          },
        );
      }),
    );

  kit
    .withGlobals(
      cmd
        .command('set <port>')
        .description("set a port's steering (a policy change: validated, then applied)")
        .addOption(
          new Option('--mode <mode>', 'fixed, spread or auto')
            .choices(['fixed', 'spread', 'auto'])
            .makeOptionMandatory(),
        )
        .option('--cpus <list>', 'CPUs: 1, 0,1 or 0-3 (auto: candidates, default all)'),
    )
    .action(
      kit.action(async (port: string, o: { mode: string; cpus?: string }, c: Command) => {
        const cpus = cpusOption(kit, o.cpus);
        await kit.call(
          kit.globals(c),
          'SteeringService',
          'SetPortSteering',
          { steering: { port, mode: o.mode, ...(cpus === undefined ? {} : { cpus }) } },
          (res) => {
            const s = (res.steering ?? {}) as Plain;
            return `${String(s.port)}: ${String(s.mode)} ${
              Array.isArray(s.cpus) ? (s.cpus as number[]).join(',') : '(all online CPUs)'
            } (policy version ${String(res.version ?? 0)})`;
          },
        );
      }),
    );

  kit
    .withGlobals(
      cmd.command('clear <port>').description("remove a port's steering (run where received)"),
    )
    .action(
      kit.action(async (port: string, _o: unknown, c: Command) => {
        await kit.call(
          kit.globals(c),
          'SteeringService',
          'ClearPortSteering',
          { port },
          (res) => `${port}: not steered (policy version ${String(res.version ?? 0)})`,
        );
      }),
    );
  return cmd;
}
