// The writers of `npm run bench` (markdown, SVG) and its --compare mode, as pure functions over
// bench documents built here by hand.

import { describe, expect, it } from 'vitest';
import { compareDocuments, renderComparison } from '../../scripts/bench/compare.js';
import { fmt, targets, type BenchDocument } from '../../scripts/bench/report.js';
import { renderMarkdown } from '../../scripts/bench/report-md.js';
import { ratioBars, renderSvg } from '../../scripts/bench/report-svg.js';
import { summarize } from '../../scripts/bench/stats.js';

function doc(
  over: { encapNs?: number; tcp?: number; ratio?: number; lost?: number } = {},
): BenchDocument {
  return {
    schema: 1,
    benchmark: 'tenet',
    date: '2026-11-21T07:00:00.000Z',
    commit: 'abc1234',
    mode: 'quick',
    machine: { cpu: 'Test CPU', cores: 2, kernel: '6.18' },
    sections: [
      {
        section: 'per_packet',
        title: 'Per-packet cost',
        seconds: 4,
        notes: ['interleaved | rounds'],
        figures: [
          {
            key: 'per_packet.encap.ns',
            label: 'NVGRE encap <tc>',
            unit: 'ns',
            value: summarize([
              over.encapNs ?? 300,
              (over.encapNs ?? 300) + 10,
              (over.encapNs ?? 300) - 10,
            ]),
          },
          {
            key: 'per_packet.encap.ratio_noop',
            label: 'encap / no-op',
            unit: 'ratio',
            value: summarize([over.ratio ?? 8, 9, 7]),
            target: '<= 10x no-op',
            met: (over.ratio ?? 8) <= 10,
          },
          {
            key: 'verifier.tenet_port.tenet_port_ingress.verified_insns',
            label: 'verifier',
            unit: 'insns',
            value: summarize([1000]),
          },
        ],
      },
      {
        section: 'end_to_end',
        title: 'End to end',
        seconds: 90,
        notes: [],
        figures: [
          {
            key: 'end_to_end.tcp_1.overlay.mbps',
            label: 'TCP overlay',
            unit: 'Mbit/s',
            value: summarize([over.tcp ?? 2000]),
          },
          {
            key: 'end_to_end.tcp_1.overlay_vs_vxlan',
            label: 'overlay / VXLAN',
            unit: 'ratio',
            value: summarize([0.8, 0.6, 1.1]),
            target: '>= 1.0',
            met: false,
          },
        ],
      },
      {
        section: 'restart',
        title: 'Restart',
        seconds: 20,
        notes: [],
        error: 'tenetd exited (1) before SERVING',
        figures:
          over.lost === undefined
            ? []
            : [
                {
                  key: 'restart.lost_packets',
                  label: 'lost',
                  unit: 'packets',
                  value: summarize([over.lost]),
                },
              ],
      },
    ],
  };
}

describe('fmt', () => {
  it('keeps three significant digits and separates thousands', () => {
    expect(fmt(1234567.8)).toBe('1,234,568');
    expect(fmt(123.4)).toBe('123');
    expect(fmt(12.345)).toBe('12.3');
    expect(fmt(1.2345)).toBe('1.23');
    expect(fmt(0.01234)).toBe('0.012');
    expect(fmt(0)).toBe('0');
  });
});

describe('targets', () => {
  it('lists the figures with a target, met or missed, in document order', () => {
    const t = targets(doc());
    expect(t.map((x) => [x.key, x.met])).toEqual([
      ['per_packet.encap.ratio_noop', true],
      ['end_to_end.tcp_1.overlay_vs_vxlan', false],
    ]);
    expect(t[0]!.median).toBe(8);
  });
});

describe('renderMarkdown', () => {
  const md = renderMarkdown(doc());
  it('names the machine, the commit and the mode', () => {
    expect(md).toContain('# tenet benchmark 2026-11-21 (quick)');
    expect(md).toContain('`abc1234`');
    expect(md).toContain('cpu Test CPU, cores 2, kernel 6.18');
  });
  it('summarises every target and marks misses', () => {
    expect(md).toContain('| <= 10x no-op | encap / no-op | 8.00 ratio | met |');
    expect(md).toContain('| >= 1.0 | overlay / VXLAN | 0.80 ratio | **missed** |');
  });
  it('writes min / median / max / n per figure and escapes table pipes', () => {
    expect(md).toContain('| NVGRE encap <tc> | 290 | 300 | 310 | ns | 3 |  |  |');
    expect(md).toContain('- interleaved | rounds'); // a list item, not a table cell
  });
  it('reports a failed section with its error', () => {
    expect(md).toContain('**Section failed:** tenetd exited (1) before SERVING');
  });
});

describe('renderSvg', () => {
  it('draws one bar per ratio figure, coloured by target', () => {
    expect(ratioBars(doc()).map((b) => [b.section, b.label, b.median, b.met, b.target])).toEqual([
      ['Per-packet cost', 'encap / no-op', 8, true, 10],
      ['End to end', 'overlay / VXLAN', 0.8, false, 1],
    ]);
    const svg = renderSvg(doc());
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<rect x="430"/g)).toHaveLength(2);
    expect(svg).toContain('fill="#2a9d4b"');
    expect(svg).toContain('fill="#d1362f"');
    // One panel per section, each with its own scale: the target tick of 10 (of a max of 10.8)
    // and of 1.0 (of a max of 1.62) land at the same relative place only if scaled per panel.
    expect(svg).toContain('>Per-packet cost</text>');
    expect(svg).toContain('>End to end</text>');
    const ticks = [...svg.matchAll(/<line x1="([\d.]+)"[^>]*stroke-dasharray/g)].map((m) =>
      Number(m[1]),
    );
    expect(ticks).toHaveLength(2);
    expect(ticks[0]).toBeCloseTo(430 + (10 / (10 * 1.08)) * 420, 0);
    expect(ticks[1]).toBeCloseTo(430 + (1 / (1.5 * 1.08)) * 420, 0);
  });
  it('escapes labels as XML', () => {
    const d = doc();
    const svg = renderSvg({
      ...d,
      sections: [
        {
          ...d.sections[0]!,
          figures: [{ ...d.sections[0]!.figures[1]!, label: 'a < b & "c"' }],
        },
      ],
    });
    expect(svg).toContain('a &lt; b &amp; &quot;c&quot;');
    expect(svg).not.toContain('a < b');
  });
});

describe('compareDocuments', () => {
  it('divides new by old medians of the keys both have, with a direction per unit', () => {
    const c = compareDocuments(
      doc({ encapNs: 300, tcp: 2000 }),
      doc({ encapNs: 450, tcp: 3000, lost: 0 }),
    );
    const row = (k: string) => c.rows.find((r) => r.key === k)!;
    expect(row('per_packet.encap.ns').ratio).toBeCloseTo(1.5);
    expect(row('per_packet.encap.ns').verdict).toBe('worse'); // more ns is a cost
    expect(row('end_to_end.tcp_1.overlay.mbps').ratio).toBeCloseTo(1.5);
    expect(row('end_to_end.tcp_1.overlay.mbps').verdict).toBe('better'); // more Mbit/s is a gain
    expect(row('end_to_end.tcp_1.overlay_vs_vxlan').verdict).toBe('same');
    expect(row('verifier.tenet_port.tenet_port_ingress.verified_insns').verdict).toBe('n/a');
    expect(c.onlyNew).toEqual(['restart.lost_packets']);
    expect(c.onlyOld).toEqual([]);
  });
  it('reads a ratio to a no-op as a cost and overlay_vs_* as a gain', () => {
    const c = compareDocuments(doc({ ratio: 8 }), doc({ ratio: 12 }));
    expect(c.rows.find((r) => r.key === 'per_packet.encap.ratio_noop')!.verdict).toBe('worse');
    const a = doc();
    const b = structuredClone(a) as unknown as {
      sections: { figures: { key: string; value: { median: number } }[] }[];
    };
    b.sections[1]!.figures[1]!.value.median = 1.2;
    const c2 = compareDocuments(a, b as unknown as BenchDocument);
    expect(c2.rows.find((r) => r.key === 'end_to_end.tcp_1.overlay_vs_vxlan')!.verdict).toBe(
      'better',
    );
  });
  it('treats a zero old figure without dividing by zero', () => {
    const c = compareDocuments(doc({ lost: 0 }), doc({ lost: 5 }));
    const r = c.rows.find((x) => x.key === 'restart.lost_packets')!;
    expect(Number.isNaN(r.ratio)).toBe(true);
    expect(r.verdict).toBe('n/a');
    const same = compareDocuments(doc({ lost: 0 }), doc({ lost: 0 }));
    expect(same.rows.find((x) => x.key === 'restart.lost_packets')!.verdict).toBe('same');
  });
  it('prints one line per figure and counts the regressions', () => {
    const text = renderComparison(
      compareDocuments(doc(), doc({ encapNs: 600 })),
      'old.json',
      'new.json',
    );
    expect(text).toMatch(/per_packet\.encap\.ns\s+300\s+600\s+2\.000\s+worse \(ns\)/);
    expect(text).toContain('1 worse by more than the tolerance');
  });
});

describe('profile parsers', () => {
  it('timedRegion counts only samples under bpf_test_run, by leaf symbol, program tags folded', async () => {
    const { timedRegion } = await import('../../scripts/bench/profile-per-packet.js');
    const script = [
      'node ',
      '\tffffffffc0001234 bpf_prog_b908becf8c5c1e89_tenet_xdp_rx',
      '\tffffffff81111111 bpf_test_run',
      '\tffffffff81222222 bpf_prog_test_run_xdp',
      '',
      'node ',
      '\tffffffff81333333 htab_map_hash',
      '\tffffffffc0001234 bpf_prog_b908becf8c5c1e89_tenet_xdp_rx',
      '\tffffffff81111111 bpf_test_run',
      '',
      'node ',
      '\t         1234567 Builtins_LoadIC',
      '',
      'node ',
      '\tffffffffc0005678 bpf_prog_0123456789abcdef_tenet_xdp_rx',
      '\tffffffff81111111 bpf_test_run',
    ].join('\n');
    const r = timedRegion(script);
    expect(r.total).toBe(4);
    expect(r.inside).toBe(3);
    expect([...r.bySym]).toEqual([
      ['bpf_prog_tenet_xdp_rx', 2],
      ['htab_map_hash', 1],
    ]);
  });
  it('trafficSamples keeps iperf3 and ksoftirqd samples only', async () => {
    const { trafficSamples } = await import('../../scripts/bench/profile-e2e.js');
    const script = [
      '  iperf3 ffffffff81000001 skb_release_data',
      '  iperf3 ffffffffc0000001 bpf_prog_f947412cb6b03853_tenet_port_ingress',
      '  ksoftirqd/1 ffffffff81000002 veth_xdp_rcv_skb',
      '  node 7f0000000001 Builtins_LoadIC',
      '  python3 ffffffff81000001 skb_release_data',
    ].join('\n');
    const r = trafficSamples(script);
    expect(r.total).toBe(5);
    expect(r.kept).toBe(3);
    expect(Object.fromEntries(r.bySym)).toEqual({
      skb_release_data: 1,
      bpf_prog_tenet_port_ingress: 1,
      veth_xdp_rcv_skb: 1,
    });
  });
});
