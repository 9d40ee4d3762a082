// tenetctl meter show|reset|export|import: port metering (tenet.v1.MeteringService).
//
//   tenetctl meter show --port blue-vm1         per class and direction; or --tenant blue
//   tenetctl meter reset --port blue-vm1        since-reset totals start again (or --tenant)
//   tenetctl meter export blue-vm1 -o json > m.json      on the host the port left
//   tenetctl meter import -f m.json                      on the port's new host
//   tenetctl meter export blue-vm1 --release <id>        forget what the new host imported
//
// `meter import` reads the proto3 JSON (or YAML) that `meter export -o json|yaml` printed: an
// ExportMetersResponse ({records: [...]}) or one record; each record is imported once.

import { Command } from 'commander';
import { fromProtoJson, type Plain } from '../api/proto.js';
import type { CliHelpers, Column } from './verbs.js';

const TOTAL_COLUMNS: Column[] = [
  ['PORT', (r) => r.port],
  ['CLASS', (r) => r.meterClass],
  ['DIRECTION', (r) => r.direction],
  ['PACKETS', (r) => r.packets ?? 0],
  ['BYTES', (r) => r.bytes ?? 0],
  ['PACKETS-SINCE-RESET', (r) => r.packetsSinceReset ?? 0],
  ['BYTES-SINCE-RESET', (r) => r.bytesSinceReset ?? 0],
];

const portRows = (ports: Plain[]): Plain[] =>
  ports.flatMap((p) =>
    ((p.totals as Plain[] | undefined) ?? []).map((t) => ({ port: p.port, ...t })),
  );

function targetOf(h: CliHelpers, o: { port?: string; tenant?: string }): Plain {
  if ((o.port === undefined) === (o.tenant === undefined))
    throw h.usage('give exactly one of --port and --tenant');
  return o.port !== undefined ? { port: o.port } : { routingDomain: o.tenant };
}

export function meterCommand(h: CliHelpers): Command {
  const cmd = new Command('meter').description('port metering: totals per class and direction');
  const targeted = (c: Command): Command =>
    h.withGlobals(
      c
        .option('--port <port>', 'one VM port')
        .option('--tenant <routing-domain>', 'every port of a routing domain on this host'),
    );
  targeted(cmd.command('show').description('meter totals of a port or a tenant')).action(
    h.action(async (o: { port?: string; tenant?: string }, c: Command) => {
      await h.call(c, 'MeteringService', 'Measure', targetOf(h, o), (res) => {
        const rows = portRows((res.ports as Plain[] | undefined) ?? []);
        if (o.tenant !== undefined)
          for (const t of (res.sum as Plain[] | undefined) ?? [])
            rows.push({ port: `(${o.tenant})`, ...t });
        return h.table(rows, TOTAL_COLUMNS);
      });
    }),
  );
  targeted(cmd.command('reset').description('start the since-reset totals again')).action(
    h.action(async (o: { port?: string; tenant?: string }, c: Command) => {
      await h.call(
        c,
        'MeteringService',
        'ResetMeters',
        targetOf(h, o),
        (res) =>
          `reset ${((res.ports as Plain[] | undefined) ?? []).map((p) => p.port).join(', ') || 'no ports'}`,
      );
    }),
  );
  h.withGlobals(
    cmd
      .command('export <port>')
      .description('final totals of a port that left this host (idempotent)')
      .option('--release <ids...>', 'record ids the new host has imported: forget them here'),
  ).action(
    h.action(async (port: string, o: { release?: string[] }, c: Command) => {
      await h.call(
        c,
        'MeteringService',
        'ExportMeters',
        { port, releaseIds: o.release ?? [] },
        (res) => {
          const recs = (res.records as Plain[] | undefined) ?? [];
          if (recs.length === 0) return 'no records left (released)';
          return recs
            .map((r) =>
              [
                `record ${h.cell(r.id)} (port ${h.cell(r.port)} left ${h.cell(r.sourceHost)})`,
                h.table((r.totals as Plain[] | undefined) ?? [], TOTAL_COLUMNS.slice(1, 5)),
              ].join('\n'),
            )
            .join('\n\n');
        },
      );
    }),
  );
  h.withGlobals(
    cmd
      .command('import')
      .description('add exported records to the port on this host (each at most once)')
      .requiredOption(
        '-f, --file <file>',
        'what `meter export -o json|yaml` printed (- for stdin)',
      ),
  ).action(
    h.action(async (o: { file: string }, c: Command) => {
      const doc = h.readFile(o.file) as Plain | null;
      if (doc === null || typeof doc !== 'object')
        throw h.usage(`${o.file}: expected an export (records) or one record`);
      const records = Array.isArray(doc.records) ? (doc.records as unknown[]) : [doc];
      if (records.length === 0) throw h.usage(`${o.file}: no records`);
      for (const r of records) {
        let record: Plain;
        try {
          record = fromProtoJson('tenet.v1.MeterExport', r);
        } catch (e) {
          throw h.usage(`${o.file}: not a meter export record: ${(e as Error).message}`);
        }
        await h.call(c, 'MeteringService', 'ImportMeters', { record }, (res) =>
          [
            `imported ${h.cell(record.id)}`,
            h.table(portRows([res.port as Plain]), TOTAL_COLUMNS),
          ].join('\n'),
        );
      }
    }),
  );
  return cmd;
}
