// Declarative lab files: a YAML document with the shape of TopologySpec (topology.ts), so a lab
// is described once (scripts/lab/*.yaml) and built the same way by the demo, the tests and the
// benchmarks. Validation names the field that is wrong; the schema is checked against
// TopologySpec at compile time so the two cannot drift apart.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { TopologySpec } from './topology.js';

const ifname = z.string().min(1).max(15);
const route = z.strictObject({
  dst: z.string(),
  via: z.string().optional(),
  dev: z.string().optional(),
  extra: z.array(z.string()).optional(),
});
const neighbor = z.strictObject({ dev: ifname, ip: z.string(), mac: z.string() });

const vm = z.strictObject({
  name: z.string().min(1),
  port: ifname,
  ifname: ifname.optional(),
  mac: z.string().optional(),
  addrs: z.array(z.string()).optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
  portMtu: z.number().int().min(68).max(65535).optional(),
  portMac: z.string().optional(),
  portAddrs: z.array(z.string()).optional(),
  routes: z.array(route).optional(),
  neighbors: z.array(neighbor).optional(),
  gro: z.boolean().optional(),
});

const host = z.strictObject({
  name: z.string().min(1),
  phys: z
    .strictObject({
      name: ifname.optional(),
      mac: z.string().optional(),
      addrs: z.array(z.string()).optional(),
      mtu: z.number().int().min(68).max(65535).optional(),
      switchPort: ifname.optional(),
    })
    .optional(),
  forwarding: z.boolean().optional(),
  routes: z.array(route).optional(),
  neighbors: z.array(neighbor).optional(),
  vms: z.array(vm).optional(),
});

const labFile = z.strictObject({
  switch: z
    .strictObject({
      name: z.string().optional(),
      bridge: ifname.optional(),
      mtu: z.number().int().optional(),
      vlanFiltering: z.boolean().optional(),
      offloads: z.boolean().optional(),
    })
    .optional(),
  hosts: z.array(host).min(1),
}) satisfies z.ZodType<TopologySpec>;

export class LabFileError extends Error {
  override name = 'LabFileError';
}

/** Parses and validates a lab document (YAML or JSON text). */
export function parseLabFile(text: string, source = 'lab file'): TopologySpec {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new LabFileError(`${source}: not valid YAML: ${(e as Error).message}`);
  }
  const r = labFile.safeParse(doc);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new LabFileError(`${source}: ${issues.join('; ')}`);
  }
  return r.data;
}

export function loadLabFile(path: string): TopologySpec {
  return parseLabFile(readFileSync(path, 'utf8'), path);
}
