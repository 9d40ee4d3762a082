// The ACL metrics (agent/metrics/acl.ts) from a snapshot: per-rule counters labelled by port,
// rule and direction (no addresses), conntrack fill level, capacity and evictions (inserts minus
// entries), and the ACL events.

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerAclMetrics } from '../../agent/metrics/acl.js';
import type { AclSnapshot } from '../../agent/reconciler/acl.js';

const snap = (entries: number, inserts: bigint): AclSnapshot => ({
  rules: [
    { port: 'blue-web', direction: 'inbound', rule: 'web-in', packets: 7n, bytes: 700n },
    { port: 'blue-web', direction: 'outbound', rule: 'out-any', packets: 3n, bytes: 180n },
  ],
  conntrack: { entries, capacity: 1024 },
  stats: {
    no_match: 1n,
    ct_insert: inserts,
    ct_reply: 4n,
    ct_related: 0n,
    ct_expired: 2n,
    ct_miss: 9n,
    frag_stored: 0n,
    frag_hit: 0n,
    frag_miss: 5n,
  },
});

describe('ACL metrics', () => {
  it('exports rule counters, conntrack fill and evictions, and events from the snapshot', async () => {
    const registry = new Registry();
    let current = snap(1000, 1500n);
    registerAclMetrics(registry, () => [current]);
    const text = await registry.metrics();
    expect(text).toContain(
      'tenet_acl_rule_packets_total{port="blue-web",rule="web-in",direction="inbound"} 7',
    );
    expect(text).toContain(
      'tenet_acl_rule_bytes_total{port="blue-web",rule="out-any",direction="outbound"} 180',
    );
    expect(text).toContain('tenet_acl_conntrack_entries 1000');
    expect(text).toContain('tenet_acl_conntrack_capacity 1024');
    expect(text).toContain('tenet_acl_conntrack_evictions_total 500');
    expect(text).toContain('tenet_acl_events_total{event="frag_miss"} 5');
    expect(text).not.toMatch(/\d+\.\d+\.\d+\.\d+/); // no addresses anywhere
    // Read anew at every scrape.
    current = snap(10, 12n);
    const again = await registry.metrics();
    expect(again).toContain('tenet_acl_conntrack_entries 10');
    expect(again).toContain('tenet_acl_conntrack_evictions_total 2');
  });
});
