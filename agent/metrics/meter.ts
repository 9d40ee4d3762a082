// Port metering as Prometheus counters: tenet_port_meter_packets_total and
// tenet_port_meter_bytes_total {port, class, direction}, read from the metering ledger at scrape
// time. Values are lifetime totals: the datapath's never-reset counters plus the port's base
// (earlier interfaces on this host, totals imported from the port's earlier hosts), so a series
// continues across agent restarts and live migrations. ResetMeters does not touch them (a reset
// only moves the since-reset baseline of the API). Labels are names, never addresses.

import { Counter, type Registry } from 'prom-client';
import type { MeterLedger, PortMeters } from '../metering/ledger.js';

export function registerMeterMetrics(registry: Registry, ledger: MeterLedger | undefined): void {
  if (ledger === undefined) return;
  // One ledger read per scrape, shared by both counters (collect() runs for each metric).
  let pending: Promise<PortMeters[]> | undefined;
  const read = (): Promise<PortMeters[]> => {
    pending ??= ledger.all().finally(() => {
      setImmediate(() => (pending = undefined));
    });
    return pending;
  };
  const labelNames = ['port', 'class', 'direction'] as const;
  for (const [name, help, field] of [
    [
      'tenet_port_meter_packets_total',
      'Packets of a VM port by metering class and direction (inbound: to the VM, outbound: from it), including totals from its earlier hosts',
      'packets',
    ],
    [
      'tenet_port_meter_bytes_total',
      'Bytes of a VM port by metering class and direction (inbound: to the VM, outbound: from it), including totals from its earlier hosts',
      'bytes',
    ],
  ] as const) {
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const ports = await read();
        this.reset();
        for (const p of ports)
          for (const t of p.classes)
            this.inc(
              { port: p.port, class: t.className, direction: t.direction },
              Number(t[field]),
            );
      },
    });
  }
}
