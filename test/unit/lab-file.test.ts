// The declarative lab files: validation that names the wrong field, and the demo lab agreeing
// with the demo policy (every port of the policy is a VM port of the lab with the same interface,
// MAC and addresses), so the demo cannot drift into a lab its policy does not describe.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LabFileError, loadLabFile, parseLabFile } from '../../agent/lab/index.js';
import { loadPolicyFile } from '../../agent/policy/index.js';

const LAB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'lab');

describe('lab files', () => {
  it('rejects unknown fields and bad values naming the path', () => {
    expect(() =>
      parseLabFile('hosts: [{ name: a, vms: [{ name: v, port: p, colour: red }] }]'),
    ).toThrow(/hosts\.0\.vms\.0: .*colour/);
    expect(() =>
      parseLabFile('hosts: [{ name: a, phys: { name: a-name-longer-than-15 } }]'),
    ).toThrow(/hosts\.0\.phys\.name/);
    expect(() => parseLabFile('hosts: []')).toThrow(LabFileError);
    expect(() => parseLabFile('hosts: [ {')).toThrow(/not valid YAML/);
  });

  it('the demo lab has the machines the demo policy describes', async () => {
    const lab = loadLabFile(resolve(LAB_DIR, 'demo-lab.yaml'));
    const policy = await loadPolicyFile(resolve(LAB_DIR, 'demo-policy.yaml'));
    const labPorts = new Map(
      lab.hosts.flatMap((h) => (h.vms ?? []).map((vm) => [vm.port, { host: h.name, vm }] as const)),
    );
    expect(policy.ports.length).toBe(5);
    for (const port of policy.ports) {
      const found = labPorts.get(port.interface);
      expect(found, `lab has no VM port ${port.interface}`).toBeDefined();
      expect(found!.host).toBe(port.host);
      expect(found!.vm.mac).toBe(port.mac);
      expect((found!.vm.addrs ?? []).map((a) => a.split('/')[0])).toEqual(port.addresses);
    }
    expect(labPorts.size).toBe(policy.ports.length);
    for (const pa of policy.providerAddresses) {
      const host = lab.hosts.find((h) => h.name === pa.host);
      expect(host?.phys?.name).toBe(pa.interface);
      expect(host?.phys?.addrs?.[0]).toBe(`${pa.address}/${pa.prefixLength}`);
    }
  });
});
