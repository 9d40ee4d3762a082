// Builder output checked by independent implementations: tshark decodes a pcap of the whole corpus
// (fields, protocol stack, checksums verified good, no malformed packets or warnings), and scapy
// builds a subset byte for byte.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writePcap } from '../../agent/packet/pcap.js';
import { packet } from '../../agent/packet/builder.js';
import { corpus, type CorpusEntry } from '../helpers/packet-corpus.js';
import { expectPacket } from '../helpers/packet-diff.js';

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

/** Every string value of `key` anywhere in the tree, in document order. */
function collect(o: Json, key: string, out: string[] = []): string[] {
  if (Array.isArray(o)) {
    for (const x of o) collect(x, key, out);
  } else if (o !== null && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) {
      if (k === key) {
        if (typeof v === 'string') out.push(v);
        else if (Array.isArray(v)) for (const x of v) if (typeof x === 'string') out.push(x);
      }
      collect(v, key, out);
    }
  }
  return out;
}

/** Every key ending in `.checksum.status` with its values. */
function checksumStatuses(o: Json, out: Array<[string, string]> = []): Array<[string, string]> {
  if (Array.isArray(o)) {
    for (const x of o) checksumStatuses(x, out);
  } else if (o !== null && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) {
      if (k.endsWith('.checksum.status')) {
        for (const x of Array.isArray(v) ? v : [v]) if (typeof x === 'string') out.push([k, x]);
      }
      checksumStatuses(v, out);
    }
  }
  return out;
}

const SEVERITY_WARN = 0x600000;

function tshark(args: string[]): string {
  const r = spawnSync('tshark', args, {
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error)
    throw new Error(`tshark could not run (install the tshark package): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`tshark exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

describe('builder output decoded by tshark', () => {
  const entries: CorpusEntry[] = corpus();
  let dir = '';
  let frames: Array<{ _source: { layers: Json } }> = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tenet-tshark-'));
    const file = join(dir, 'corpus.pcap');
    writePcap(
      file,
      entries.map((e) => e.builder.build()),
    );
    const out = tshark([
      '-r',
      file,
      '-n',
      '--no-duplicate-keys',
      '-T',
      'json',
      '-o',
      'ip.check_checksum:TRUE',
      '-o',
      'udp.check_checksum:TRUE',
      '-o',
      'tcp.check_checksum:TRUE',
    ]);
    frames = JSON.parse(out) as typeof frames;
  }, 60_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('decodes one frame per corpus packet', () => {
    expect(frames.length).toBe(entries.length);
  });

  it.each(corpus().map((e, i) => [e.name, i] as const))('%s', (_name, i) => {
    const e = entries[i] as CorpusEntry;
    const layers = (frames[i] as { _source: { layers: Json } })._source.layers;
    expect(collect(layers, 'frame.protocols')).toEqual([e.protocols]);
    for (const [field, want] of Object.entries(e.fields)) {
      expect({ field, values: collect(layers, field) }).toEqual({ field, values: want });
    }
    // Every checksum tshark could verify is good (1 = good, 2 = unverified, 3 = not present).
    const statuses = checksumStatuses(layers);
    for (const [k, v] of statuses) expect({ k, v }).not.toEqual({ k, v: '0' });
    const verified = statuses.filter(([, v]) => v === '1').map(([k]) => k.split('.')[0]);
    const proto = e.protocols.split(':');
    // Fragments are not L4-verified; otherwise each checksummed protocol on the stack is verified.
    for (const p of ['ip', 'udp', 'tcp', 'icmp', 'icmpv6']) {
      const want = proto.filter((x) => x === p).length;
      expect({ p, verified: verified.filter((x) => x === p).length }).toEqual({
        p,
        verified: want,
      });
    }
    expect(collect(layers, '_ws.malformed')).toEqual([]);
    const severities = collect(layers, '_ws.expert.severity').map(Number);
    const messages = collect(layers, '_ws.expert.message');
    const bad = severities
      .map((s, j) => ({ s, m: messages[j] ?? '' }))
      .filter(({ s, m }) => s >= SEVERITY_WARN && !(e.allowExpert ?? []).includes(m));
    expect(bad).toEqual([]);
  });

  it('reports deliberately wrong checksums as bad', () => {
    const file = join(dir, 'bad.pcap');
    const eth = { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' };
    const v4 = { src: '198.18.0.1', dst: '198.18.0.2' };
    writePcap(file, [
      packet()
        .eth(eth)
        .ipv4({ ...v4, checksum: 0x1234 })
        .udp({ sport: 1, dport: 2 })
        .build(),
      packet().eth(eth).ipv4(v4).udp({ sport: 1, dport: 2, checksum: 0x1234 }).build(),
      packet().eth(eth).ipv4(v4).tcp({ sport: 1, dport: 2, checksum: 0x1234 }).build(),
    ]);
    const out = JSON.parse(
      tshark([
        '-r',
        file,
        '-n',
        '--no-duplicate-keys',
        '-T',
        'json',
        '-o',
        'ip.check_checksum:TRUE',
        '-o',
        'udp.check_checksum:TRUE',
        '-o',
        'tcp.check_checksum:TRUE',
      ]),
    ) as typeof frames;
    expect(collect(out[0]!._source.layers, 'ip.checksum.status')).toEqual(['0']);
    expect(collect(out[1]!._source.layers, 'udp.checksum.status')).toEqual(['0']);
    expect(collect(out[2]!._source.layers, 'tcp.checksum.status')).toEqual(['0']);
  });
});

// Scapy builds the same packets independently; bytes must match exactly.
const SCAPY = String.raw`
import json, sys
from scapy.all import Ether, Dot1Q, IP, IPv6, UDP, TCP, ICMP, ARP, GRE, Raw
from scapy.layers.inet6 import (IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
    ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr, RouterAlert)
A, B, C, D = '02:00:00:00:00:0a', '02:00:00:00:00:0b', '02:00:00:00:0c:01', '02:00:00:00:0d:01'
pat = lambda n: bytes(i & 0xff for i in range(n))
pk = {
  'ipv4-udp': Ether(src=A, dst=B)/IP(src='198.18.0.1', dst='198.18.0.2', id=0)/UDP(sport=1234, dport=80)/Raw(b'hello world!'),
  'ipv4-tcp-syn-mss': Ether(src=A, dst=B)/IP(src='198.18.0.1', dst='198.18.0.2', id=0)/TCP(sport=40000, dport=443, seq=1000, flags='S', window=64240, options=[('MSS', 1460)]),
  'ipv4-icmp-echo-request': Ether(src=A, dst=B)/IP(src='198.18.0.1', dst='198.18.0.2', id=0)/ICMP(type=8, id=0x1234, seq=1)/Raw(pat(56)),
  'vlan-ipv4-udp': Ether(src=A, dst=B)/Dot1Q(vlan=100, prio=5)/IP(src='198.18.0.1', dst='198.18.0.2', id=0)/UDP(sport=5000, dport=5001)/Raw(pat(20)),
  'arp-request': Ether(src=A, dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc=A, psrc='198.18.0.1', hwdst='00:00:00:00:00:00', pdst='198.18.0.2'),
  'ipv6-hbh-ra-dstopts-icmpv6': Ether(src=A, dst=B)/IPv6(src='fd00::1', dst='fd00::2')/IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])/IPv6ExtHdrDestOpt()/ICMPv6EchoRequest(id=1, seq=2, data=pat(16)),
  'ipv6-atomic-fragment-udp': Ether(src=A, dst=B)/IPv6(src='fd00::1', dst='fd00::2')/IPv6ExtHdrFragment(id=0x01020304)/UDP(sport=3, dport=4)/Raw(pat(10)),
  'nd-neighbor-solicitation': Ether(src=A, dst='33:33:ff:00:00:02')/IPv6(src='fd00::1', dst='ff02::1:ff00:2', hlim=255)/ICMPv6ND_NS(tgt='fd00::2')/ICMPv6NDOptSrcLLAddr(lladdr=A),
  'nd-neighbor-advertisement': Ether(src=B, dst=A)/IPv6(src='fd00::2', dst='fd00::1', hlim=255)/ICMPv6ND_NA(tgt='fd00::2', R=1, S=1, O=1)/ICMPv6NDOptDstLLAddr(lladdr=B),
  'nvgre-ipv4-tcp': Ether(src=A, dst=B)/IP(src='198.18.0.1', dst='198.18.0.2', id=0)/GRE(key_present=1, key=0x12345678, proto=0x6558)/Ether(src=C, dst=D)/IP(src='198.19.1.1', dst='198.19.1.2', id=0)/TCP(sport=1000, dport=2000, seq=5, ack=6, flags='PA', window=65535)/Raw(b'inner data'),
  'gre-csum-key-seq-ipv4-udp': Ether(src=A, dst=B)/IP(src='198.18.0.1', dst='198.18.0.2', id=0)/GRE(chksum_present=1, key_present=1, seqnum_present=1, key=0xdeadbeef, seqence_number=42, proto=0x0800)/IP(src='198.19.1.1', dst='198.19.1.2', id=0)/UDP(sport=7000, dport=7001)/Raw(pat(5)),
}
print(json.dumps({k: bytes(v).hex() for k, v in pk.items()}))
`;

describe('builder output matches scapy byte for byte', () => {
  let ref: Record<string, string> = {};
  beforeAll(() => {
    // Debian's python3 (python3-scapy); a pyenv shim earlier on PATH would not see it.
    const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
    const r = spawnSync(python, ['-c', SCAPY], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0)
      throw new Error(
        `python3/scapy failed (install python3-scapy): ${r.stderr || r.error?.message}`,
      );
    ref = JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, string>;
  }, 60_000);

  const byName = new Map(corpus().map((e) => [e.name, e]));
  it.each([
    'ipv4-udp',
    'ipv4-tcp-syn-mss',
    'ipv4-icmp-echo-request',
    'vlan-ipv4-udp',
    'arp-request',
    'ipv6-hbh-ra-dstopts-icmpv6',
    'ipv6-atomic-fragment-udp',
    'nd-neighbor-solicitation',
    'nd-neighbor-advertisement',
    'nvgre-ipv4-tcp',
    'gre-csum-key-seq-ipv4-udp',
  ])('%s', (name) => {
    const hex = ref[name];
    expect(hex, `scapy produced ${name}`).toBeDefined();
    const e = byName.get(name) as CorpusEntry;
    expectPacket(e.builder.build(), Buffer.from(hex as string, 'hex'), { name: `scapy-${name}` });
  });
});
