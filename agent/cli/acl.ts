// tenetctl acl get|list|apply|delete: port ACLs as policy objects (tenet.v1.AclService).
//
//   tenetctl acl list [--host hv1]
//   tenetctl acl get blue-vm1
//   tenetctl acl apply -f acl.yaml       create, or replace the port's whole ACL
//   tenetctl acl delete blue-vm1
//
// The file holds one port ACL in the policy document's form ({port, rules: [...]}; protocols by
// name or number, port ranges as 443 or "1024-65535").

import { Command } from 'commander';
import { Code } from '../api/errors.js';
import type { Plain } from '../api/proto.js';
import type { CliHelpers, Column } from './verbs.js';

const PROTOCOL_NUMBERS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, gre: 47, icmpv6: 58 };

function range(v: unknown): unknown {
  if (typeof v === 'number') return { from: v, to: v };
  if (typeof v === 'string') {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(v);
    if (m) return { from: Number(m[1]), to: Number(m[2] ?? m[1]) };
  }
  return v; // the agent names what is wrong with it
}

/** A port ACL in the document's form as an AclService message. */
export function aclMessage(doc: unknown): Plain {
  const acl = { ...(doc as Plain) };
  if (Array.isArray(acl.rules))
    acl.rules = acl.rules.map((r: Plain) => {
      const rule = { ...r };
      if (typeof rule.protocol === 'string') {
        const n = PROTOCOL_NUMBERS[rule.protocol.toLowerCase()] ?? Number(rule.protocol);
        rule.protocol = Number.isInteger(n) ? n : rule.protocol;
      }
      for (const f of ['localPorts', 'remotePorts'])
        if (rule[f] !== undefined) rule[f] = range(rule[f]);
      return rule;
    });
  return acl;
}

const rangeText = (r: unknown): string => {
  if (r === undefined || r === null) return '';
  const { from = 0, to = 0 } = r as { from?: number; to?: number };
  return from === to ? String(from) : `${from}-${to}`;
};

const RULE_COLUMNS: Column[] = [
  ['PORT', (r) => r.port],
  ['RULE', (r) => r.name],
  ['DIRECTION', (r) => r.direction],
  ['ACTION', (r) => r.action],
  ['WEIGHT', (r) => r.weight],
  ['PROTO', (r) => r.protocol],
  ['REMOTE', (r) => r.remotePrefix ?? r.remoteMac],
  ['LOCAL', (r) => r.localPrefix],
  [
    'PORTS',
    (r) =>
      [rangeText(r.localPorts), rangeText(r.remotePorts)].filter(Boolean).join(' <- ') || undefined,
  ],
  ['CLASS', (r) => r.meteringClass],
];

const ruleRows = (acls: Plain[]): Plain[] =>
  acls.flatMap((a) =>
    ((a.rules as Plain[] | undefined) ?? []).map((r) => ({ port: a.port, ...r })),
  );

export function aclCommand(h: CliHelpers): Command {
  const cmd = new Command('acl').description('port ACLs (allow, deny and meter rules)');
  h.withGlobals(
    cmd
      .command('list')
      .description('list port ACLs')
      .option('--host <host>', "only this host's ports"),
  ).action(
    h.action(async (o: { host?: string }, c: Command) => {
      await h.call(c, 'AclService', 'ListPortAcls', o.host ? { host: o.host } : {}, (res) =>
        h.table(ruleRows((res.portAcls as Plain[] | undefined) ?? []), RULE_COLUMNS),
      );
    }),
  );
  h.withGlobals(cmd.command('get <port>').description("show a port's ACL")).action(
    h.action(async (port: string, _o: unknown, c: Command) => {
      await h.call(c, 'AclService', 'GetPortAcl', { port }, (res) =>
        h.table(ruleRows([res.portAcl as Plain]), RULE_COLUMNS),
      );
    }),
  );
  h.withGlobals(
    cmd
      .command('apply')
      .description("create a port's ACL or replace it whole, from a YAML/JSON file")
      .requiredOption('-f, --file <file>', 'one port ACL: {port, rules} (- for stdin)'),
  ).action(
    h.action(async (o: { file: string }, c: Command) => {
      const doc = h.readFile(o.file);
      if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
        throw h.usage(`${o.file}: expected one port ACL ({port, rules})`);
      const portAcl = aclMessage(doc);
      let method = 'UpdatePortAcl';
      try {
        await h.rpc(c, 'AclService', 'GetPortAcl', { port: portAcl.port });
      } catch (e) {
        if ((e as { code?: number }).code !== Code.NOT_FOUND) throw e;
        method = 'CreatePortAcl';
      }
      await h.call(c, 'AclService', method, { portAcl }, (res) =>
        [
          h.table(ruleRows([res.portAcl as Plain]), RULE_COLUMNS),
          `(${method === 'CreatePortAcl' ? 'created' : 'replaced'}; policy version ${h.cell(res.version ?? 0)})`,
        ].join('\n'),
      );
    }),
  );
  h.withGlobals(cmd.command('delete <port>').description("delete a port's ACL")).action(
    h.action(async (port: string, _o: unknown, c: Command) => {
      await h.call(
        c,
        'AclService',
        'DeletePortAcl',
        { port },
        (res) => `deleted (policy version ${h.cell(res.version ?? 0)})`,
      );
    }),
  );
  return cmd;
}
