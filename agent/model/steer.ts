// Receive steering in the reference model: which CPU runs the receive pipeline of a frame for a
// steered VM port, as bpf/lib/steer.h picks it (see the definition there). A fixed (VMQ) port
// always gets cpus[0]; a spread (vRSS) port gets cpus[hash % n] with the hash over the port's seed
// and the inner 5-tuple, so every frame of a flow lands on one CPU.

import type { SteerModeName } from '../abi/generated.js';
import { FNV_BASIS, FNV_PRIME, fmix32 } from './flow-hash.js';

export interface SteerFlow {
  /** 4 (IPv4) or 16 (IPv6) bytes. */
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  /** 0 unless TCP/UDP and not an IPv4 fragment. */
  readonly sport: number;
  readonly dport: number;
  readonly proto: number;
}

export interface SteerChoice {
  readonly mode: SteerModeName;
  readonly cpus: readonly number[];
  readonly seed: number;
}

function words(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i + 4 <= b.length; i += 4)
    out.push(
      (((b[i] as number) << 24) |
        ((b[i + 1] as number) << 16) |
        ((b[i + 2] as number) << 8) |
        (b[i + 3] as number)) >>>
        0,
    );
  return out;
}

/** The 32-bit steering hash of a flow under a port's seed. */
export function steerHash(flow: SteerFlow, seed: number): number {
  const ws = [
    seed >>> 0,
    ...words(flow.src),
    ...words(flow.dst),
    (((flow.sport & 0xffff) << 16) | (flow.dport & 0xffff)) >>> 0,
    flow.proto & 0xff,
  ];
  let h = FNV_BASIS;
  for (const w of ws) h = Math.imul((h ^ w) >>> 0, FNV_PRIME) >>> 0;
  return fmix32(h);
}

/** The CPU the datapath picks for flow on a port steered by choice; undefined: not steered. */
export function steerCpu(choice: SteerChoice, flow: SteerFlow): number | undefined {
  if (choice.mode === 'none' || choice.cpus.length === 0) return undefined;
  if (choice.mode === 'fixed' || choice.cpus.length === 1) return choice.cpus[0];
  return choice.cpus[steerHash(flow, choice.seed) % choice.cpus.length];
}
