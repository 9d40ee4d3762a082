// Receive steering for one host: the policy's portSteering entries of the ports this host carries,
// checked against the host's online CPUs (a CPU the host does not have is an error naming the
// field, and nothing is applied), turned into what the agent writes to the tenet_steer map.
// Auto (dynamic) ports get their candidate set here; which of those CPUs a port is on at a given
// moment is the steering controller's decision (agent/host/steering.ts), not the compiler's.

import type { Policy } from '../policy/index.js';
import type { PolicyIssue } from '../policy/errors.js';
import { CompileError, fnv1a32, type HostFacts, type InterfaceFacts } from './compile.js';

export interface CompiledSteering {
  /** The port's name and host interface. */
  readonly port: string;
  readonly interface: string;
  readonly ifindex: number;
  readonly mode: 'fixed' | 'spread' | 'auto';
  /** fixed: one CPU; spread: the hash set; auto: the candidates (sorted). */
  readonly cpus: readonly number[];
  /** Mixed into the flow hash of a spread port: FNV-1a of the port name, stable everywhere. */
  readonly seed: number;
}

function factsOf(facts: HostFacts, name: string): InterfaceFacts | undefined {
  if (facts instanceof Map) return facts.get(name);
  return (facts as Readonly<Record<string, InterfaceFacts>>)[name];
}

/**
 * The steering of this host's ports, by port name. onlineCpus: the host's online CPUs
 * (/sys/devices/system/cpu/online). Throws CompileError when an entry names a CPU the host does
 * not have, or a port whose interface is missing.
 */
export function compileSteering(
  policy: Policy,
  hostName: string,
  facts: HostFacts,
  onlineCpus: readonly number[],
): Map<string, CompiledSteering> {
  const online = new Set(onlineCpus);
  const onlineText = formatCpuList(onlineCpus);
  const issues: PolicyIssue[] = [];
  const out = new Map<string, CompiledSteering>();
  const ports = new Map(policy.ports.map((p) => [p.name, p]));
  (policy.portSteering ?? []).forEach((s, i) => {
    const path = `portSteering[${i}]`;
    const port = ports.get(s.port);
    if (port === undefined || port.host !== hostName) return;
    const f = factsOf(facts, port.interface);
    if (f === undefined) {
      issues.push({
        path: `${path}.port`,
        message: `port "${s.port}" has interface ${port.interface}, which host ${hostName} does not have`,
      });
      return;
    }
    let bad = false;
    (s.cpus ?? []).forEach((c, j) => {
      if (!online.has(c)) {
        bad = true;
        issues.push({
          path: `${path}.cpus[${j}]`,
          message: `CPU ${c} does not exist or is offline on host ${hostName} (online: ${onlineText})`,
        });
      }
    });
    if (bad) return;
    const cpus = s.cpus === undefined ? [...onlineCpus] : [...s.cpus];
    if (s.mode === 'auto') cpus.sort((a, b) => a - b);
    out.set(s.port, {
      port: s.port,
      interface: port.interface,
      ifindex: f.ifindex,
      mode: s.mode,
      cpus,
      seed: fnv1a32(s.port),
    });
  });
  if (issues.length > 0) throw new CompileError(hostName, issues);
  return out;
}

/** Parses a kernel CPU list ("0-3,6,8-9") into CPU numbers. */
export function parseCpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    if (part === '') continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`not a CPU list: ${JSON.stringify(text)}`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    for (let c = from; c <= to; c++) out.push(c);
  }
  return out;
}

/** CPU numbers as a kernel CPU list ("0-3,6"). */
export function formatCpuList(cpus: readonly number[]): string {
  const s = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < s.length; ) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === (s[j] as number) + 1) j++;
    parts.push(i === j ? `${s[i]}` : `${s[i]}-${s[j]}`);
    i = j + 1;
  }
  return parts.join(',') || 'none';
}
