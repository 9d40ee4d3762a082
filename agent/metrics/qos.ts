// QoS metrics, read at scrape time from the backend's QoS state (agent/host/qos.ts): the QoS
// stage's per-port counters from the datapath (passed and dropped, per direction, summed over
// CPUs) and the HTB classes' statistics on the uplinks (sent, dropped, delayed = overlimits,
// backlog). Labels are port, direction, uplink interface and class; never addresses.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { QosStatus } from '../host/qos.js';

export function registerQosMetrics(
  registry: Registry,
  source: () => Promise<QosStatus | undefined>,
): void {
  const registers = [registry];
  let snap: QosStatus | undefined;
  // One read per scrape: the first collector refreshes, the others reuse it.
  let pending: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    pending ??= source()
      .then((s) => {
        snap = s;
      })
      .catch(() => {
        snap = undefined;
      })
      .finally(() => {
        setImmediate(() => (pending = undefined));
      });
    return pending;
  };

  const portCounter = (
    name: string,
    help: string,
    field: 'Packets' | 'Bytes',
    what: 'passed' | 'dropped',
  ) =>
    new Counter({
      name,
      help,
      labelNames: ['port', 'direction'],
      registers,
      async collect() {
        await refresh();
        this.reset();
        for (const p of snap?.ports ?? []) {
          const v = p[`${what}${field}`];
          this.inc({ port: p.port, direction: p.direction }, Number(v));
        }
      },
    });
  portCounter(
    'tenet_qos_passed_packets_total',
    'Packets the QoS stage passed, per port and direction',
    'Packets',
    'passed',
  );
  portCounter(
    'tenet_qos_passed_bytes_total',
    'Bytes the QoS stage passed, per port and direction',
    'Bytes',
    'passed',
  );
  portCounter(
    'tenet_qos_dropped_packets_total',
    'Packets the QoS policer dropped, per port and direction',
    'Packets',
    'dropped',
  );
  portCounter(
    'tenet_qos_dropped_bytes_total',
    'Bytes the QoS policer dropped, per port and direction',
    'Bytes',
    'dropped',
  );

  const classCounter = (
    name: string,
    help: string,
    get: (c: QosStatus['uplinks'][number]['classes'][number]) => number,
  ) =>
    new Counter({
      name,
      help,
      labelNames: ['uplink', 'class', 'port'],
      registers,
      async collect() {
        await refresh();
        this.reset();
        for (const u of snap?.uplinks ?? [])
          for (const c of u.classes)
            this.inc({ uplink: u.interface, class: c.label, port: c.port ?? '' }, get(c));
      },
    });
  classCounter(
    'tenet_qos_shaped_bytes_total',
    'Bytes an uplink HTB class sent',
    (c) => c.sentBytes,
  );
  classCounter(
    'tenet_qos_shaped_packets_total',
    'Packets an uplink HTB class sent',
    (c) => c.sentPackets,
  );
  classCounter(
    'tenet_qos_shaper_dropped_packets_total',
    'Packets an uplink HTB class (its leaf queue) dropped',
    (c) => c.droppedPackets,
  );
  classCounter(
    'tenet_qos_delayed_total',
    'Times an uplink HTB class was over its rate or ceiling and held packets back (overlimits)',
    (c) => c.overlimits,
  );
  new Gauge({
    name: 'tenet_qos_backlog_bytes',
    help: 'Bytes queued in an uplink HTB class now',
    labelNames: ['uplink', 'class', 'port'],
    registers,
    async collect() {
      await refresh();
      this.reset();
      for (const u of snap?.uplinks ?? [])
        for (const c of u.classes)
          this.set({ uplink: u.interface, class: c.label, port: c.port ?? '' }, c.backlogBytes);
    },
  });
}
