// tenetctl qos: the QoS objects of the policy (per-port caps and minimums, uplinks) and the QoS
// state of the datapath (QosService, agent/proto/tenet/v1/qos.proto).
//
//   tenetctl qos set q1 --max-out 100 --max-in 50 --burst-in 4096 --weight 2 \
//                       --class internet=0.0.0.0/0,::/0:10
//   tenetctl qos delete q1
//   tenetctl qos list
//   tenetctl qos uplink set hv1 eth0 --capacity 10000 --default-weight 1
//   tenetctl qos uplink delete hv1 eth0
//   tenetctl qos uplink list
//   tenetctl qos status                  # enforcement per direction, HTB classes, counters
//
// main.ts hands in its shared helpers (output, error handling, global options), so every verb
// behaves like the rest of tenetctl (-o table|json|yaml, exit codes).

import { Command } from 'commander';
import type { Plain } from '../api/proto.js';
import type { ServiceName } from '../api/proto.js';

type Column = [header: string, get: (row: Plain) => unknown];

export interface CliHelpers {
  call(
    g: never,
    service: ServiceName,
    method: string,
    req: Plain,
    human: (res: Plain) => string,
  ): Promise<void>;
  withGlobals(cmd: Command): Command;
  action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void>;
  globals(cmd: Command): unknown;
  table(rows: readonly Plain[], columns: readonly Column[]): string;
}

export class QosUsageError extends Error {}

function positive(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0)
    throw new QosUsageError(`${what}: ${text} is not a rate above 0`);
  return n;
}

function integer(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0)
    throw new QosUsageError(`${what}: ${text} is not a positive integer`);
  return n;
}

/** `name=prefix,prefix:mbps` */
function classCap(text: string): Plain {
  // Prefixes may be IPv6 (colons): the rate is what follows the last colon.
  const eq = text.indexOf('=');
  const last = text.lastIndexOf(':');
  if (eq < 1 || last < eq) {
    throw new QosUsageError(`--class ${text}: expected name=prefix[,prefix...]:mbps`);
  }
  return {
    name: text.slice(0, eq),
    remotePrefixes: text.slice(eq + 1, last).split(','),
    mbps: positive(text.slice(last + 1), `--class ${text}`),
  };
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

export function qosCommand(h: CliHelpers): Command {
  const g = (c: Command): never => h.globals(c) as never;
  const cmd = new Command('qos').description('bandwidth caps, minimums and uplinks');

  h.withGlobals(
    cmd
      .command('set <port>')
      .description('create or replace the QoS of a port')
      .option('--max-out <mbps>', 'outbound cap (Mbit/s of IP packets)')
      .option('--burst-out <kib>', 'outbound burst (KiB, >= 64)')
      .option('--max-in <mbps>', 'inbound cap (Mbit/s of IP packets)')
      .option('--burst-in <kib>', 'inbound burst (KiB, >= 64)')
      .option('--weight <n>', 'minimum bandwidth weight (1..100)')
      .option('--min <mbps>', 'absolute minimum bandwidth (Mbit/s)')
      .option(
        '--class <name=prefixes:mbps>',
        'cap to a destination class (repeatable)',
        collect,
        [],
      )
      .option('--dry-run', 'validate only'),
  ).action(
    h.action(
      async (
        port: string,
        o: {
          maxOut?: string;
          burstOut?: string;
          maxIn?: string;
          burstIn?: string;
          weight?: string;
          min?: string;
          class: string[];
          dryRun?: boolean;
        },
        c: Command,
      ) => {
        const cap = (mbps?: string, burst?: string, what = ''): Plain | undefined =>
          mbps === undefined
            ? undefined
            : {
                mbps: positive(mbps, `--max-${what}`),
                burstKib: burst === undefined ? 0 : integer(burst, `--burst-${what}`),
              };
        const req: Plain = {
          portQos: {
            port,
            maximumOutbound: cap(o.maxOut, o.burstOut, 'out'),
            maximumInbound: cap(o.maxIn, o.burstIn, 'in'),
            minimum:
              o.weight !== undefined
                ? { weight: integer(o.weight, '--weight') }
                : o.min !== undefined
                  ? { mbps: positive(o.min, '--min') }
                  : undefined,
            classCaps: o.class.map(classCap),
          },
          dryRun: o.dryRun === true,
        };
        await h.call(g(c), 'QosService', 'SetPortQos', req, (r) =>
          o.dryRun === true ? 'valid (dry run)' : `policy version ${String(r.policyVersion)}`,
        );
      },
    ),
  );

  h.withGlobals(cmd.command('delete <port>').description('remove the QoS of a port')).action(
    h.action(async (port: string, _o: unknown, c: Command) => {
      await h.call(
        g(c),
        'QosService',
        'DeletePortQos',
        { port },
        (r) => `policy version ${String(r.policyVersion)}`,
      );
    }),
  );

  h.withGlobals(cmd.command('list').description('ports with QoS')).action(
    h.action(async (_o: unknown, c: Command) => {
      await h.call(g(c), 'QosService', 'ListPortQos', {}, (r) =>
        h.table((r.portQos as Plain[] | undefined) ?? [], [
          ['PORT', (x) => x.port],
          ['MAX-OUT', (x) => (x.maximumOutbound as Plain | undefined)?.mbps],
          ['MAX-IN', (x) => (x.maximumInbound as Plain | undefined)?.mbps],
          ['WEIGHT', (x) => (x.minimum as Plain | undefined)?.weight],
          ['MIN', (x) => (x.minimum as Plain | undefined)?.mbps],
          [
            'CLASSES',
            (x) =>
              ((x.classCaps as Plain[] | undefined) ?? []).map(
                (k) => `${String(k.name)}:${String(k.mbps)}`,
              ),
          ],
        ]),
      );
    }),
  );

  const uplink = cmd.command('uplink').description('uplinks: NIC capacity and default bucket');
  h.withGlobals(
    uplink
      .command('set <host> <interface>')
      .description('create or replace an uplink')
      .requiredOption('--capacity <mbps>', 'the NIC capacity (Mbit/s)')
      .option('--default-weight <n>', "the default flow bucket's weight")
      .option('--default-min <mbps>', "the default flow bucket's absolute share")
      .option('--dry-run', 'validate only'),
  ).action(
    h.action(
      async (
        host: string,
        iface: string,
        o: { capacity: string; defaultWeight?: string; defaultMin?: string; dryRun?: boolean },
        c: Command,
      ) => {
        const req: Plain = {
          uplink: {
            host,
            interface: iface,
            capacityMbps: positive(o.capacity, '--capacity'),
            defaultBucket:
              o.defaultWeight !== undefined
                ? { weight: integer(o.defaultWeight, '--default-weight') }
                : o.defaultMin !== undefined
                  ? { mbps: positive(o.defaultMin, '--default-min') }
                  : undefined,
          },
          dryRun: o.dryRun === true,
        };
        await h.call(g(c), 'QosService', 'SetUplink', req, (r) =>
          o.dryRun === true ? 'valid (dry run)' : `policy version ${String(r.policyVersion)}`,
        );
      },
    ),
  );
  h.withGlobals(uplink.command('delete <host> <interface>').description('remove an uplink')).action(
    h.action(async (host: string, iface: string, _o: unknown, c: Command) => {
      await h.call(
        g(c),
        'QosService',
        'DeleteUplink',
        { host, interface: iface },
        (r) => `policy version ${String(r.policyVersion)}`,
      );
    }),
  );
  h.withGlobals(uplink.command('list').description('uplinks')).action(
    h.action(async (_o: unknown, c: Command) => {
      await h.call(g(c), 'QosService', 'ListUplinks', {}, (r) =>
        h.table((r.uplinks as Plain[] | undefined) ?? [], [
          ['HOST', (x) => x.host],
          ['INTERFACE', (x) => x.interface],
          ['CAPACITY-MBPS', (x) => x.capacityMbps],
          ['DEFAULT-WEIGHT', (x) => (x.defaultBucket as Plain | undefined)?.weight],
          ['DEFAULT-MBPS', (x) => (x.defaultBucket as Plain | undefined)?.mbps],
        ]),
      );
    }),
  );

  h.withGlobals(
    cmd.command('status').description('how QoS is enforced here, HTB classes, QoS counters'),
  ).action(
    h.action(async (_o: unknown, c: Command) => {
      await h.call(g(c), 'QosService', 'GetQosStatus', {}, (r) =>
        [
          `outbound: ${String(r.outboundMethod)} (BPF classifies, HTB on the uplink shapes; leaf ${String(r.leafQdisc)})`,
          `inbound:  ${String(r.inboundMethod)} (BPF token bucket; XDP/tc redirects bypass qdiscs)`,
          `kernel:   htb ${r.htb === true ? 'yes' : 'no'}, fq ${r.fq === true ? 'yes' : 'no'}, fq_codel ${r.fqCodel === true ? 'yes' : 'no'}`,
          '',
          h.table(
            ((r.uplinks as Plain[] | undefined) ?? []).flatMap((u) =>
              ((u.classes as Plain[] | undefined) ?? []).map((k) => ({
                ...k,
                uplink: u.interface,
              })),
            ),
            [
              ['UPLINK', (x) => x.uplink],
              ['CLASS', (x) => x.classid],
              ['WHAT', (x) => x.label],
              ['RATE', (x) => x.rateBps],
              ['CEIL', (x) => x.ceilBps],
              ['SENT-BYTES', (x) => x.sentBytes ?? 0],
              ['DELAYED', (x) => x.overlimits ?? 0],
              ['DROPPED', (x) => x.droppedPackets ?? 0],
              ['BACKLOG', (x) => x.backlogBytes ?? 0],
            ],
          ),
          '',
          h.table((r.ports as Plain[] | undefined) ?? [], [
            ['PORT', (x) => x.port],
            ['DIRECTION', (x) => x.direction],
            ['PASSED-PACKETS', (x) => x.passedPackets ?? 0],
            ['PASSED-BYTES', (x) => x.passedBytes ?? 0],
            ['DROPPED-PACKETS', (x) => x.droppedPackets ?? 0],
            ['DROPPED-BYTES', (x) => x.droppedBytes ?? 0],
          ]),
        ].join('\n'),
      );
    }),
  );
  return cmd;
}
