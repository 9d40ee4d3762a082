// Receive steering's metrics, read from the datapath's per-CPU maps at scrape time (through the
// host agent's steering controller): where each VM port's packets were processed, per CPU, and
// what dynamic mode did. Labels are port names and CPU numbers, never addresses.
//
//   tenet_port_cpu_packets_total{port,cpu,direction}   packets of a VM port by the CPU that
//       processed them (tx: delivered to the VM, i.e. where its receive pipeline ran; rx: from it)
//   tenet_steering_packets_total{port,cpu,stage}        steering's own counters: steered (handed
//       to another CPU by this receiving CPU), local, fallback (no queue on the chosen CPU),
//       pipeline (run by the cpumap program on this CPU)
//   tenet_steering_moves_total                          ports moved by dynamic mode
//   tenet_steering_port_cpu{port,cpu}                   1 for each CPU a steered port is on now
//   tenet_steering_cpu_load_packets_per_second{cpu}     dynamic mode's last load measurement

import { Counter, Gauge, type Registry } from 'prom-client';
import type { SteeringSource } from '../api/steering.js';

export function registerSteeringMetrics(
  registry: Registry,
  source: () => SteeringSource | undefined,
): void {
  const registers = [registry];
  new Counter({
    name: 'tenet_port_cpu_packets_total',
    help: 'Packets of a VM port by the CPU that processed them (tx: to the VM, rx: from the VM)',
    labelNames: ['port', 'cpu', 'direction'],
    registers,
    collect() {
      this.reset();
      for (const p of source()?.portCpuPackets() ?? []) {
        this.inc({ port: p.port, cpu: String(p.cpu), direction: p.direction }, Number(p.packets));
      }
    },
  });
  new Counter({
    name: 'tenet_steering_packets_total',
    help: 'Receive steering per port and CPU: steered, local, fallback (receiving CPU), pipeline (cpumap CPU)',
    labelNames: ['port', 'cpu', 'stage'],
    registers,
    collect() {
      this.reset();
      const src = source();
      if (src === undefined) return;
      for (const p of src.status().ports) {
        for (const c of src.counters(p.ifindex)) {
          for (const stage of ['steered', 'local', 'fallback', 'pipeline'] as const) {
            if (c[stage] > 0n)
              this.inc({ port: p.port, cpu: String(c.cpu), stage }, Number(c[stage]));
          }
        }
      }
    },
  });
  new Counter({
    name: 'tenet_steering_moves_total',
    help: 'VM ports moved between CPUs by dynamic steering (since tenetd started)',
    registers,
    collect() {
      this.reset();
      this.inc(source()?.moves ?? 0);
    },
  });
  new Gauge({
    name: 'tenet_steering_port_cpu',
    help: 'CPUs a steered VM port runs on now (1 per CPU in its datapath entry)',
    labelNames: ['port', 'cpu'],
    registers,
    collect() {
      this.reset();
      for (const p of source()?.status().ports ?? []) {
        for (const cpu of p.current) this.set({ port: p.port, cpu: String(cpu) }, 1);
      }
    },
  });
  new Gauge({
    name: 'tenet_steering_cpu_load_packets_per_second',
    help: "Receive pipeline load per CPU in dynamic steering's last interval",
    labelNames: ['cpu'],
    registers,
    collect() {
      this.reset();
      for (const c of source()?.status().cpuPps ?? []) this.set({ cpu: String(c.cpu) }, c.pps);
    },
  });
}
