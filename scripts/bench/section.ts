// The contract between `npm run bench` (scripts/bench/suite.ts) and the benchmark sections each
// feature contributes (per-packet cost, end-to-end, control plane, ACL, QoS, steering ...). A
// section measures, returns figures as min/median/max of interleaved repetitions, and states
// the target it answers to and whether this run met it, so the suite can write one JSON document
// with stable keys, a markdown table and a chart, and compare two runs (`--compare OLD.json`).

import type { Summary } from './stats.js';

export interface BenchFigure {
  /**
   * Stable key, dotted, lower-case: `per_packet.decap_deliver.ns`, `acl.rules_10000.ratio_noop`.
   * Keys never change meaning between commits; a changed measurement gets a new key.
   */
  readonly key: string;
  /** Human label for the table. */
  readonly label: string;
  /** Unit of min/median/max: `ns`, `ratio`, `Mbit/s`, `pps`, `ms`, `MiB`, `records/s`, `packets`. */
  readonly unit: string;
  readonly value: Summary;
  /** The target this figure answers to, in words (`<= 10x noop`), if any. */
  readonly target?: string;
  /** Whether the median met the target in this run (absent when there is no target). */
  readonly met?: boolean;
  /** Anything the reader needs to trust the figure: what limits it, what was seen. */
  readonly note?: string;
}

export interface SectionResult {
  /** Stable section key: `per_packet`, `end_to_end`, `control_plane`, `restart`, `acl`, `qos`. */
  readonly section: string;
  readonly title: string;
  readonly figures: readonly BenchFigure[];
  /** Free-form notes for the markdown report (how it was measured, what limits it). */
  readonly notes: readonly string[];
}

export interface SectionOptions {
  /** Quick mode (the default of `npm run bench`): fewer repetitions, shorter traffic. */
  readonly quick: boolean;
  /** Progress lines for the operator (stderr). */
  readonly log: (line: string) => void;
}

export type Section = (opts: SectionOptions) => Promise<SectionResult>;
