// Differential property test: random small policies (datapath tables with both generations and
// random live masks) and random frames (valid ones aimed at every branch, and mutated ones), run
// through the real programs with BPF_PROG_TEST_RUN and through the reference model
// (agent/model/simulate). Verdict, redirect target, output bytes, drop reason and counter deltas
// must be equal. On a failure fast-check shrinks the case and the error shows the frame decoded
// (describePacket), both results and the tables.
//
// TENET_DIFF_RUNS sets the runs per hook (default 2500, about 5 s each); TENET_DIFF_STATS=1 prints
// how often each verdict and drop reason came up, to check the generators still reach every branch.

import fc from 'fast-check';
import { afterAll, expect, it } from 'vitest';
import type {
  LocalPa,
  LookupRecord,
  Port,
  Route,
  RouteKey,
  Vsubnet,
} from '../../agent/abi/generated.js';
import {
  caKeyId,
  describeResult,
  simulate,
  type DatapathTables,
  type Hook,
  type SimResult,
} from '../../agent/model/index.js';
import { describePacket, ipToBytes, macToBytes, packet } from '../../agent/packet/index.js';
import { describePrivileged } from '../helpers/privilege.js';
import { normalizeCounters, useDatapath, type RunResult } from './harness.js';

const NUM_RUNS = Number(process.env.TENET_DIFF_RUNS ?? 2500);

// ---- pools: few values, so lookups hit ----------------------------------------------------------

const MACS = [1, 2, 3, 4, 5, 6].map((i) => `02:00:00:00:00:0${i}`);
const CA4 = [
  '198.18.10.1',
  '198.18.10.11',
  '198.18.10.12',
  '198.18.20.1',
  '198.18.20.13',
  '198.19.0.1',
];
const CA6 = ['fd00:10::1', 'fd00:10::11', 'fd00:10::12', 'fd00:20::1', 'fd00:20::13'];
const PAS = ['198.18.0.1', '198.18.0.2', '198.18.0.3', '198.18.0.4'];
const VSIDS = [5001, 5002, 6001];
const RDIDS = [1, 2];
const IFINDEXES = [1, 21, 22];

const mac = (m: string): Uint8Array => new Uint8Array(macToBytes(m));
const addr16 = (ip: string): Uint8Array => {
  const a = new Uint8Array(16);
  a.set(ipToBytes(ip));
  return a;
};
const paNum = (ip: string): number => ipToBytes(ip).readUInt32BE(0);

const aMac = fc.constantFrom(...MACS);
const aPa = fc.constantFrom(...PAS);

const aPort: fc.Arbitrary<Port> = fc.record({
  vsid: fc.constantFrom(...VSIDS),
  rdid: fc.constantFrom(...RDIDS),
  mac: aMac.map(mac),
  mtu: fc.constantFrom(0, 100, 1458),
  pa: aPa.map(paNum),
  flags: fc.constant(0),
});

const aVsubnet: fc.Arbitrary<Vsubnet> = fc.record({
  rdid: fc.constantFrom(...RDIDS),
  gw_mac: aMac.map(mac),
  flags: fc.constant(0),
  gw_ip4: fc.oneof(fc.constant(0), fc.constantFrom(...CA4).map(paNum)),
  gw_ip6: fc.oneof(fc.constant(new Uint8Array(16)), fc.constantFrom(...CA6).map(addr16)),
});

const aRecord: fc.Arbitrary<LookupRecord> = fc.record({
  mac: aMac.map(mac),
  flags: fc.constantFrom(0, 0, 0, 1, 1, 1, 2, 3),
  pa: fc.constantFrom('', ...PAS, '198.18.0.2').map((x) => (x === '' ? 0 : paNum(x))),
  ifindex: fc.constantFrom(1, 1, 1, ...IFINDEXES),
});

const aRecordKey = fc.oneof(
  fc.record({
    vsid: fc.constantFrom(...VSIDS),
    family: fc.constant(4),
    addr: fc.constantFrom(...CA4).map(addr16),
  }),
  fc.record({
    vsid: fc.constantFrom(...VSIDS),
    family: fc.constant(6),
    addr: fc.constantFrom(...CA6).map(addr16),
  }),
);

function masked(addr: Uint8Array, bits: number): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const b = Math.max(0, Math.min(8, bits - i * 8));
    out[i] = (addr[i] as number) & ((0xff << (8 - b)) & 0xff);
  }
  return out;
}

const aRouteKey: fc.Arbitrary<RouteKey> = fc.oneof(
  fc
    .record({
      rdid: fc.constantFrom(...RDIDS),
      ip: fc.constantFrom(...CA4),
      plen: fc.constantFrom(0, 16, 24, 32),
    })
    .map(({ rdid, ip, plen }) => ({
      prefixlen: 64 + plen,
      rdid,
      family: 4,
      addr: masked(addr16(ip), plen),
    })),
  fc
    .record({
      rdid: fc.constantFrom(...RDIDS),
      ip: fc.constantFrom(...CA6),
      plen: fc.constantFrom(0, 32, 64, 128),
    })
    .map(({ rdid, ip, plen }) => ({
      prefixlen: 64 + plen,
      rdid,
      family: 6,
      addr: masked(addr16(ip), plen),
    })),
);

const aRoute = (family: number): fc.Arbitrary<Route> =>
  fc.record({
    vsid: fc.constantFrom(...VSIDS, 7777),
    flags: fc.constantFrom(1, 1, 2),
    nexthop: fc.constantFrom(...(family === 4 ? CA4 : CA6)).map(addr16),
  });

const aLocalPa: fc.Arbitrary<LocalPa> = fc.record({
  ifindex: fc.constantFrom(10, 11),
  mac: aMac.map(mac),
  mtu: fc.constant(1500),
});

/**
 * Random tables around a coherent world, so most frames get deep into the datapath: the port under
 * test (ifindex 1) usually exists and owns a few CAs in its virtual subnet, every VSID usually has
 * a subnet (5001 and 5002 in routing domain 1, 6001 in 2), records are random but numerous, routes
 * cover the subnets, PA 198.18.0.1 is usually local and other PAs have neighbours. Every entry gets
 * a random live mask (mostly both generations) and sometimes different values in the two.
 */
const liveMostly = fc.constantFrom(0, 1, 2, ...Array<number>(12).fill(3));
/** For the entries every frame needs (the port, its subnet, the local PA). */
const liveHigh = fc.constantFrom(0, 1, 2, ...Array<number>(40).fill(3));
const twoGen = <V>(base: fc.Arbitrary<V>, liveArb = liveMostly) =>
  fc
    .tuple(base, base, liveArb, fc.constantFrom(true, true, true, false))
    .map(([a, b, l, same]) => ({ live: l, v: same ? [a, a] : [a, b] }));

const RDID_OF: Record<number, number> = { 5001: 1, 5002: 1, 6001: 2 };
const PA_A = '198.18.0.1';

const aPortHere: fc.Arbitrary<Port> = aPort.map((p) => ({
  ...p,
  pa: paNum(PA_A),
  rdid: RDID_OF[p.vsid] ?? 1,
}));

/** Records of CAs that the port under test owns (mostly consistent with it). */
const ownRecords = (port: Port) =>
  fc
    .uniqueArray(
      fc.record({
        ca: fc.constantFrom(...CA4.slice(1, 3), ...CA6.slice(1, 3)),
        value: fc.oneof(
          {
            weight: 5,
            arbitrary: fc.constant<LookupRecord>({
              mac: port.mac,
              flags: 1,
              pa: paNum(PA_A),
              ifindex: 1,
            }),
          },
          { weight: 1, arbitrary: aRecord },
        ),
      }),
      { selector: (x) => x.ca, minLength: 1, maxLength: 4 },
    )
    .chain((xs) =>
      fc.tuple(
        ...xs.map((x) =>
          twoGen(fc.constant(x.value)).map((entry) => ({
            key: { vsid: port.vsid, family: x.ca.includes(':') ? 6 : 4, addr: addr16(x.ca) },
            entry,
          })),
        ),
      ),
    );

const aWorld = aPortHere.chain((port) =>
  fc.record({
    port: fc.option(twoGen(fc.constant(port), liveHigh), { freq: 20, nil: undefined }),
    own: ownRecords(port),
    otherPorts: fc.uniqueArray(fc.tuple(fc.constantFrom(21, 22), twoGen(aPort)), {
      selector: (x) => x[0],
      maxLength: 2,
    }),
    vsubnets: fc.tuple(
      ...VSIDS.map((vsid) =>
        fc.option(
          twoGen(
            aVsubnet.map((v) => ({ ...v, rdid: RDID_OF[vsid] ?? 1 })),
            liveHigh,
          ),
          {
            freq: 20,
            nil: undefined,
          },
        ),
      ),
    ),
    records: fc.uniqueArray(fc.record({ key: aRecordKey, entry: twoGen(aRecord) }), {
      selector: (r) => caKeyId(r.key),
      minLength: 4,
      maxLength: 16,
    }),
    routes: fc
      .uniqueArray(aRouteKey, {
        selector: (k) =>
          `${k.prefixlen}/${k.rdid}/${k.family}/${Buffer.from(k.addr).toString('hex')}`,
        maxLength: 6,
      })
      .chain((keys) =>
        fc.tuple(...keys.map((key) => twoGen(aRoute(key.family)).map((e) => ({ key, entry: e })))),
      ),
    localPaA: fc.option(twoGen(aLocalPa, liveHigh), { freq: 20, nil: undefined }),
    otherLocalPas: fc.uniqueArray(
      fc.tuple(fc.constantFrom(...PAS.slice(1)).map(paNum), twoGen(aLocalPa)),
      {
        selector: (x) => x[0],
        maxLength: 1,
      },
    ),
    underlay: fc.uniqueArray(
      fc.tuple(
        aPa.map(paNum),
        aMac.map((m) => ({ mac: mac(m) })),
      ),
      {
        selector: (x) => x[0],
        minLength: 1,
        maxLength: 4,
      },
    ),
  }),
);

const aTables: fc.Arbitrary<DatapathTables> = aWorld.map((w) => {
  const ports = new Map<number, { live: number; v: Port[] }>(w.otherPorts);
  if (w.port) ports.set(1, w.port);
  const vsubnets = new Map<number, { live: number; v: Vsubnet[] }>();
  w.vsubnets.forEach((e, i) => {
    if (e) vsubnets.set(VSIDS[i] as number, e);
  });
  const localPas = new Map(w.otherLocalPas);
  if (w.localPaA) localPas.set(paNum(PA_A), w.localPaA);
  const own = new Set(w.own.map((r) => caKeyId(r.key)));
  return {
    ports,
    vsubnets,
    records: [...w.own, ...w.records.filter((r) => !own.has(caKeyId(r.key)))],
    routes: [...w.routes],
    localPas,
    underlay: new Map(w.underlay),
  };
});

// ---- frames -------------------------------------------------------------------------------------

/** Values the tables use in the generation under test, to aim frames at them. */
interface Hints {
  portMacs: string[];
  gwMacs: string[];
  src4: string[];
  src6: string[];
  /** Destinations: a CA and the MAC its record gives. */
  dst4: Array<{ ca: string; mac: string }>;
  dst6: Array<{ ca: string; mac: string }>;
  /** NVGRE senders: VSID, CA, family, the PA their record names, and local CAs of the VSID. */
  senders: Array<{ vsid: number; ca: string; family: number; pa: string; dsts: string[] }>;
}

const macStr = (m: Uint8Array) => [...m].map((b) => b.toString(16).padStart(2, '0')).join(':');
const ipStr = (a: Uint8Array, fam: number) =>
  fam === 4
    ? [...a.subarray(0, 4)].join('.')
    : (Buffer.from(a).toString('hex').match(/.{4}/g) ?? []).join(':');
const paStr = (x: number) => [x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255].join('.');

function hintsOf(t: DatapathTables, gen: number): Hints {
  const g = gen & 1;
  const port = t.ports.get(1)?.v[g];
  const vsub = port ? t.vsubnets.get(port.vsid)?.v[g] : undefined;
  const recs = t.records.map((r) => ({
    key: r.key,
    v: r.entry.v[g] as LookupRecord,
    ca: ipStr(r.key.addr, r.key.family),
  }));
  const mine = recs.filter(
    (r) => port && r.key.vsid === port.vsid && r.v.ifindex === 1 && r.v.flags & 1,
  );
  const dst = (fam: number) =>
    recs.filter((r) => r.key.family === fam).map((r) => ({ ca: r.ca, mac: macStr(r.v.mac) }));
  const senders = recs
    .filter((r) => r.v.pa !== 0)
    .map((r) => ({
      vsid: r.key.vsid,
      ca: r.ca,
      family: r.key.family,
      pa: paStr(r.v.pa),
      dsts: recs
        .filter((d) => d.key.vsid === r.key.vsid && d.key.family === r.key.family && d.v.flags & 1)
        .map((d) => d.ca),
    }));
  return {
    portMacs: port ? [macStr(port.mac)] : [],
    gwMacs: vsub ? [macStr(vsub.gw_mac)] : [],
    src4: mine.filter((r) => r.key.family === 4).map((r) => r.ca),
    src6: mine.filter((r) => r.key.family === 6).map((r) => r.ca),
    dst4: dst(4),
    dst6: dst(6),
    senders,
  };
}

const pickOr = <T>(hinted: T[], pool: readonly T[], weight = 4): fc.Arbitrary<T> =>
  hinted.length > 0
    ? fc.oneof(
        { weight, arbitrary: fc.constantFrom(...hinted) },
        { weight: 1, arbitrary: fc.constantFrom(...pool) },
      )
    : fc.constantFrom(...pool);

const aTos = fc.constantFrom(0, 1, 2, 3, 0xb8, 0xbb);
const aPayload = fc.constantFrom(0, 6, 6, 6, 200);

function frames(h: Hints) {
  const aSmac = pickOr(h.portMacs, MACS, 12);
  const POOL4 = [...CA4, '198.18.30.7', '224.0.0.5', '0.0.0.0'];
  const POOL6 = [...CA6, 'fe80::11', '::', 'ff02::1', 'fd00:30::5'];
  const aSrc4 = pickOr(h.src4, POOL4, 10);
  const aSrc6 = pickOr(h.src6, POOL6, 10);
  const aV4 = pickOr(
    h.dst4.map((d) => d.ca),
    POOL4,
  );
  const aV6 = pickOr(
    h.dst6.map((d) => d.ca),
    POOL6,
  );
  /** A destination CA and a destination MAC: its record's, the gateway's, or any. */
  const aDst = (dsts: Array<{ ca: string; mac: string }>, pool: string[]) =>
    fc
      .tuple(
        pickOr(
          dsts,
          pool.map((ca) => ({ ca, mac: MACS[0] as string })),
        ),
        fc.constantFrom('record', 'record', 'gateway', 'gateway', 'any'),
        fc.constantFrom(...MACS),
      )
      .map(([d, how, any]) => ({
        ca: d.ca,
        mac: how === 'record' ? d.mac : how === 'gateway' && h.gwMacs[0] ? h.gwMacs[0] : any,
      }));

  const aL4v4 = fc.oneof(
    fc.record({
      kind: fc.constant('udp' as const),
      sport: fc.integer({ min: 1, max: 65535 }),
      dport: fc.constantFrom(53, 5000),
    }),
    fc.record({
      kind: fc.constant('tcp' as const),
      sport: fc.integer({ min: 1, max: 65535 }),
      dport: fc.constantFrom(80, 443),
    }),
    fc.record({ kind: fc.constant('icmp' as const), type: fc.constantFrom(0, 3, 8, 11) }),
  );

  const aIpv4 = fc
    .record({
      smac: aSmac,
      dst: aDst(h.dst4, POOL4),
      src: aSrc4,
      ttl: fc.constantFrom(0, 1, 2, 64, 64, 64),
      df: fc.boolean(),
      mf: fc.constantFrom(false, false, false, false, true),
      off: fc.constantFrom(0, 0, 0, 0, 0, 10),
      tos: aTos,
      l4: aL4v4,
      payload: aPayload,
    })
    .map((o) => {
      const b = packet().eth({ src: o.smac, dst: o.dst.mac }).ipv4({
        src: o.src,
        dst: o.dst.ca,
        ttl: o.ttl,
        df: o.df,
        mf: o.mf,
        fragOffset: o.off,
        tos: o.tos,
        id: 9,
      });
      if (o.l4.kind === 'udp') b.udp({ sport: o.l4.sport, dport: o.l4.dport });
      else if (o.l4.kind === 'tcp')
        b.tcp({ sport: o.l4.sport, dport: o.l4.dport, flags: 'A', ack: 1 });
      else b.icmp({ type: o.l4.type, rest: 0 });
      return b.payload(o.payload).build();
    });

  const aIpv6 = fc
    .record({
      smac: aSmac,
      dst: aDst(h.dst6, POOL6),
      src: aSrc6,
      hop: fc.constantFrom(0, 1, 2, 64, 64, 64, 255),
      tc: aTos,
      l4: fc.oneof(
        fc.record({ kind: fc.constant('udp' as const), sport: fc.integer({ min: 1, max: 65535 }) }),
        fc.record({ kind: fc.constant('tcp' as const), sport: fc.integer({ min: 1, max: 65535 }) }),
        fc.record({ kind: fc.constant('icmpv6' as const), type: fc.constantFrom(1, 128) }),
      ),
      payload: aPayload,
    })
    .map((o) => {
      const b = packet()
        .eth({ src: o.smac, dst: o.dst.mac })
        .ipv6({ src: o.src, dst: o.dst.ca, hopLimit: o.hop, tc: o.tc });
      if (o.l4.kind === 'udp') b.udp({ sport: o.l4.sport, dport: 5000 });
      else if (o.l4.kind === 'tcp') b.tcp({ sport: o.l4.sport, dport: 443, flags: 'A', ack: 1 });
      else b.icmpv6({ type: o.l4.type, rest: 0 });
      return b.payload(o.payload).build();
    });

  const aNd = fc
    .record({
      smac: aSmac,
      src: fc.oneof(
        { weight: 3, arbitrary: aSrc6 },
        { weight: 1, arbitrary: fc.constantFrom('fe80::11', '::') },
      ),
      target: aV6,
      type: fc.constantFrom(133, 134, 135, 135, 135, 135, 136, 136),
      hop: fc.constantFrom(255, 255, 255, 255, 64),
      opt: fc.option(aSmac, { nil: undefined }),
      extraOpt: fc.boolean(),
    })
    .map((o) => {
      const b = packet()
        .eth({ src: o.smac, dst: '33:33:00:00:00:01' })
        .ipv6({ src: o.src, dst: 'ff02::1', hopLimit: o.hop });
      if (o.type === 133 || o.type === 134) return b.icmpv6({ type: o.type, rest: 0 }).build();
      const options = [
        ...(o.extraOpt ? [{ type: 14, data: Buffer.alloc(6, 7) }] : []),
        ...(o.opt ? [{ type: o.type === 135 ? 1 : 2, mac: o.opt }] : []),
      ];
      return b
        .icmpv6({ type: o.type, target: o.target, options, solicited: o.type === 136 })
        .build();
    });

  const aArp = fc
    .record({
      smac: aSmac,
      op: fc.constantFrom(1, 1, 1, 1, 2, 3),
      sha: aSmac,
      spa: fc.oneof(
        { weight: 6, arbitrary: aSrc4 },
        { weight: 1, arbitrary: fc.constant('0.0.0.0') },
      ),
      tpa: aV4,
      pad: fc.boolean(),
    })
    .map((o) => {
      const b = packet()
        .eth({ src: o.smac, dst: 'ff:ff:ff:ff:ff:ff' })
        .arp({ op: o.op, sha: o.sha, spa: o.spa, tpa: o.tpa });
      return (o.pad ? b.pad(60) : b).build();
    });

  const aOther = fc.oneof(
    aSmac.map((m) =>
      packet()
        .eth({ src: m, dst: MACS[1] as string })
        .vlan({ vid: 3 })
        .ipv4({ src: CA4[1] as string, dst: CA4[2] as string })
        .udp({ sport: 1, dport: 2 })
        .build(),
    ),
    aSmac.map((m) =>
      packet().eth({ src: m, dst: '01:80:c2:00:00:0e', type: 0x88cc }).payload(40).build(),
    ),
  );

  const aInner = fc.oneof(
    { weight: 5, arbitrary: aIpv4 },
    { weight: 4, arbitrary: aIpv6 },
    { weight: 1, arbitrary: aArp },
    { weight: 1, arbitrary: aOther },
  );

  /** An inner frame from a sender the tables know, mostly to a local CA of its VSID. */
  const aAimedInner =
    h.senders.length === 0
      ? null
      : fc
          .record({
            s: fc.constantFrom(...h.senders),
            pick: fc.nat(),
            any4: aV4,
            any6: aV6,
            dmac: fc.constantFrom(...MACS),
            tos: fc.constantFrom(0, 1, 2, 3, 0xb8),
            payload: aPayload,
          })
          .map((o) => {
            const dst =
              o.s.dsts.length > 0 && o.pick % 5 !== 0
                ? (o.s.dsts[o.pick % o.s.dsts.length] as string)
                : o.s.family === 4
                  ? o.any4
                  : o.any6;
            const b = packet().eth({ src: MACS[5] as string, dst: o.dmac });
            if (o.s.family === 4)
              b.ipv4({ src: o.s.ca, dst, tos: o.tos, id: 4 }).udp({ sport: 7, dport: 9 });
            else
              b.ipv6({ src: o.s.ca, dst, tc: o.tos }).tcp({
                sport: 7,
                dport: 9,
                flags: 'A',
                ack: 1,
              });
            return { vsid: o.s.vsid, pa: o.s.pa, frame: b.payload(o.payload).build() };
          });

  const aAnyInner = fc.record({
    vsid: fc.constantFrom(...VSIDS, 7777),
    pa: fc.constantFrom(...PAS),
    frame: aInner,
  });

  const aNvgre = fc
    .record({
      inner: aAimedInner
        ? fc.oneof({ weight: 4, arbitrary: aAimedInner }, { weight: 1, arbitrary: aAnyInner })
        : aAnyInner,
      src: fc.constantFrom(...PAS),
      aimedSrc: fc.constantFrom(true, true, true, true, false),
      dst: fc.constantFrom(...Array<string>(12).fill(PA_A), ...PAS),
      tos: fc.constantFrom(0, 1, 2, 3),
      mf: fc.constantFrom(false, false, false, false, false, false, false, true),
      flags: fc.constantFrom(...Array<number>(8).fill(0x2000), 0xa000, 0x0000, 0x2001),
      proto: fc.constantFrom(...Array<number>(8).fill(0x6558), 0x0800),
      fid: fc.integer({ min: 0, max: 255 }),
      trailer: fc.constantFrom(0, 0, 0, 6),
    })
    .map((o) => {
      const f = packet()
        .eth({ src: MACS[3] as string, dst: MACS[4] as string })
        .ipv4({
          src: o.aimedSrc ? o.inner.pa : o.src,
          dst: o.dst,
          tos: o.tos,
          mf: o.mf,
          df: !o.mf,
          ttl: 60,
        })
        .gre({ flagsWord: o.flags, protocol: o.proto, key: ((o.inner.vsid << 8) | o.fid) >>> 0 })
        .payload(o.inner.frame)
        .build();
      return Buffer.concat([f, Buffer.alloc(o.trailer)]);
    });

  return {
    port: mutate(
      fc.oneof(
        { weight: 6, arbitrary: aIpv4 },
        { weight: 5, arbitrary: aIpv6 },
        { weight: 2, arbitrary: aNd },
        { weight: 2, arbitrary: aArp },
        { weight: 1, arbitrary: aOther },
      ),
    ),
    xdp: mutate(fc.oneof({ weight: 10, arbitrary: aNvgre }, { weight: 1, arbitrary: aIpv4 })),
  };
}

/** Mutations of a valid frame: a byte overwritten, or the frame cut (never under 14 bytes). */
const mutate = (frame: fc.Arbitrary<Buffer>) =>
  fc
    .tuple(
      frame,
      fc.oneof(
        { weight: 12, arbitrary: fc.constant(null) },
        {
          weight: 2,
          arbitrary: fc.record({
            kind: fc.constant('byte' as const),
            at: fc.nat(),
            value: fc.nat(255),
          }),
        },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }) },
      ),
    )
    .map(([f, m]) => {
      if (!m) return f;
      const out = Buffer.from(f);
      if (m.kind === 'byte') {
        out[m.at % out.length] = m.value;
        return out;
      }
      return out.subarray(0, 14 + (m.at % (out.length - 13)));
    });

/** Tables, generation and a frame aimed at them. */
const aCase = (which: 'port' | 'xdp') =>
  fc
    .tuple(aTables, fc.constantFrom(0, 1))
    .chain(([t, g]) => fc.tuple(fc.constant(t), fc.constant(g), frames(hintsOf(t, g))[which]));

// ---- the property -------------------------------------------------------------------------------

function kernelResult(r: RunResult) {
  return {
    verdict: r.verdict,
    retval: r.retval,
    redirectIfindex: r.redirectIfindex,
    dropReason: r.counters.drops[0]?.reason,
    output: r.verdict === 'drop' ? undefined : r.data.toString('hex'),
    counters: r.counters,
  };
}

function modelResult(m: SimResult) {
  return {
    verdict: m.verdict,
    retval: m.retval,
    redirectIfindex: m.redirectIfindex,
    dropReason: m.dropReason,
    output: m.verdict === 'drop' ? undefined : m.output?.toString('hex'),
    counters: normalizeCounters(m.counters),
  };
}

function showTables(t: DatapathTables): string {
  const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');
  return JSON.stringify(
    {
      ports: [...t.ports],
      vsubnets: [...t.vsubnets],
      records: t.records.map((r) => [caKeyId(r.key), r.entry]),
      routes: t.routes,
      localPas: [...t.localPas],
      underlay: [...t.underlay],
    },
    (_k, v: unknown) => (v instanceof Uint8Array ? hex(v) : v),
  );
}

describePrivileged('differential: datapath programs vs. the reference model', () => {
  const dp = useDatapath();
  let refused = 0;
  const seen = new Map<string, number>();
  afterAll(() => {
    if (process.env.TENET_DIFF_STATS)
      console.log(
        [...seen]
          .sort()
          .map(([k, n]) => `${n}\t${k}`)
          .join('\n'),
      );
  });

  const property = (hook: Hook) => (tables: DatapathTables, gen: number, frame: Buffer) => {
    dp.install(tables, gen);
    let r: RunResult;
    try {
      r = hook.kind === 'port-ingress' ? dp.runPort(frame) : dp.runXdp(frame);
    } catch (e) {
      // The kernel refused the frame before running the program (test-run's own limits).
      refused++;
      void e;
      return;
    }
    const k = kernelResult(r);
    const key = `${hook.kind} ${k.verdict} ${k.dropReason ?? k.redirectIfindex ?? ''}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
    const m = modelResult(simulate(tables, gen, frame, hook));
    expect(
      m,
      [
        `frame:  ${describePacket(frame)}`,
        `        ${frame.toString('hex')}`,
        `kernel: ${k.verdict}${k.redirectIfindex !== undefined ? ` -> ${k.redirectIfindex}` : ''} ${k.dropReason ?? ''} ${k.output ? describePacket(Buffer.from(k.output, 'hex')) : ''}`,
        `model:  ${describeResult(simulate(tables, gen, frame, hook))} ${m.output ? describePacket(Buffer.from(m.output, 'hex')) : ''}`,
        `generation ${gen}, tables: ${showTables(tables)}`,
      ].join('\n'),
    ).toEqual(k);
  };

  it('tc on a VM port: the model and the program agree', () => {
    fc.assert(
      fc.property(aCase('port'), ([t, g, f]) =>
        property({ kind: 'port-ingress', ifindex: 1 })(t, g, f),
      ),
      { numRuns: NUM_RUNS },
    );
    expect(refused).toBeLessThan(NUM_RUNS / 10);
  });

  it('XDP on the physical NIC: the model and the program agree', () => {
    fc.assert(
      fc.property(aCase('xdp'), ([t, g, f]) => property({ kind: 'phys-xdp', ifindex: 1 })(t, g, f)),
      { numRuns: NUM_RUNS },
    );
  });
});
