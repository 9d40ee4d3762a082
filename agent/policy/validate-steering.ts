// Rules that relate the fields of port steering entries to each other and to the rest of the
// document: the port exists, one entry per port, a CPU set is never empty and names no CPU twice,
// a fixed port names exactly one CPU, a set holds at most STEER_SET_MAX CPUs. Whether the CPUs
// exist is the compiler's check (agent/compiler/steering.ts): it depends on the host.

import type { PolicyIssue } from './errors.js';
import type { PolicyDocument } from './model.js';
import { STEER_SET_MAX } from './schema-steering.js';

export function validateSteering(doc: PolicyDocument): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const report = (path: string, message: string): void => {
    issues.push({ path, message });
  };
  const portNames = new Set(doc.ports.map((p) => p.name));
  const entryOfPort = new Map<string, number>();
  (doc.portSteering ?? []).forEach((s, i) => {
    const path = `portSteering[${i}]`;
    if (!portNames.has(s.port)) report(`${path}.port`, `port "${s.port}" is not defined`);
    const prev = entryOfPort.get(s.port);
    if (prev !== undefined) {
      report(`${path}.port`, `port "${s.port}" already has steering at portSteering[${prev}]`);
    } else {
      entryOfPort.set(s.port, i);
    }
    if (s.cpus === undefined) {
      if (s.mode !== 'auto') report(`${path}.cpus`, `is required for mode ${s.mode}`);
      return;
    }
    if (s.cpus.length === 0) {
      report(
        `${path}.cpus`,
        s.mode === 'auto'
          ? 'is an empty set; leave it out to let the agent use every online CPU'
          : 'is an empty set; name at least one CPU',
      );
      return;
    }
    if (s.mode === 'fixed' && s.cpus.length !== 1) {
      report(
        `${path}.cpus`,
        `mode fixed takes exactly one CPU, got ${s.cpus.length}; use mode spread for a set`,
      );
    }
    if (s.cpus.length > STEER_SET_MAX) {
      report(`${path}.cpus`, `holds ${s.cpus.length} CPUs; at most ${STEER_SET_MAX}`);
    }
    const seen = new Map<number, number>();
    s.cpus.forEach((c, j) => {
      const first = seen.get(c);
      if (first !== undefined) {
        report(`${path}.cpus[${j}]`, `CPU ${c} is already in the set at cpus[${first}]`);
      } else {
        seen.set(c, j);
      }
    });
  });
  return issues;
}
