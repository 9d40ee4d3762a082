// Port ACL metrics (docs/acl.md), read from the pinned maps at scrape time through the live
// AclTables of this process (agent/reconciler/acl.ts): per-rule hit counters labelled by port
// name, rule name and direction (never addresses), the connection tracking fill level and
// capacity, inserts and the evictions derived from them, and the ACL stage's event counters.
//
// Evictions: the datapath counts every insert into the conntrack LRU (a key that was not in the
// map); entries leave the map only when the LRU evicts them (idle entries are not deleted, they
// read as absent), so evictions = inserts - entries. A reply whose flow was evicted is classified
// as new traffic and counted in tenet_acl_events_total{event="ct_miss"}.

import { Counter, Gauge, type Registry } from 'prom-client';
import { liveAclTables, type AclSnapshot } from '../reconciler/acl.js';

/** Snapshots of every live AclTables (tenetd has at most one). */
export function aclSnapshots(): AclSnapshot[] {
  return [...liveAclTables].map((t) => t.snapshot());
}

/** Registers the ACL metrics on registry; source is read once per scrape. */
export function registerAclMetrics(
  registry: Registry,
  source: () => AclSnapshot[] = aclSnapshots,
): void {
  const registers = [registry];
  let snap: AclSnapshot[] = [];
  new Counter({
    name: 'tenet_acl_rule_packets_total',
    help: 'Packets an ACL rule decided (allow or deny), by port, rule and direction',
    labelNames: ['port', 'rule', 'direction'],
    registers,
    collect() {
      snap = source(); // the first collector of a scrape reads the maps
      this.reset();
      for (const s of snap)
        for (const r of s.rules)
          this.inc({ port: r.port, rule: r.rule, direction: r.direction }, Number(r.packets));
    },
  });
  new Counter({
    name: 'tenet_acl_rule_bytes_total',
    help: 'Bytes of the packets an ACL rule decided, by port, rule and direction',
    labelNames: ['port', 'rule', 'direction'],
    registers,
    collect() {
      this.reset();
      for (const s of snap)
        for (const r of s.rules)
          this.inc({ port: r.port, rule: r.rule, direction: r.direction }, Number(r.bytes));
    },
  });
  new Gauge({
    name: 'tenet_acl_conntrack_entries',
    help: 'Flows in the ACL connection tracking table (idle ones included until evicted)',
    registers,
    collect() {
      this.set(snap.reduce((n, s) => n + s.conntrack.entries, 0));
    },
  });
  new Gauge({
    name: 'tenet_acl_conntrack_capacity',
    help: 'Size of the ACL connection tracking table (LRU; the least recently used flow goes)',
    registers,
    collect() {
      this.set(snap.reduce((n, s) => n + s.conntrack.capacity, 0));
    },
  });
  new Counter({
    name: 'tenet_acl_conntrack_evictions_total',
    help: 'Tracked flows the full table evicted (inserts minus entries)',
    registers,
    collect() {
      this.reset();
      let n = 0;
      for (const s of snap) n += Math.max(0, Number(s.stats.ct_insert) - s.conntrack.entries);
      this.inc(n);
    },
  });
  new Counter({
    name: 'tenet_acl_events_total',
    help: 'ACL stage events: no_match, ct_insert, ct_reply, ct_related, ct_expired, ct_miss, frag_stored, frag_hit, frag_miss',
    labelNames: ['event'],
    registers,
    collect() {
      this.reset();
      for (const s of snap)
        for (const [event, v] of Object.entries(s.stats)) this.inc({ event }, Number(v));
    },
  });
}
