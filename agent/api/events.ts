// Datapath events on a Watch stream: one token bucket per watcher, so a flood of drops reaches each
// watcher at the rate it asked for and never more; what exceeds it is counted, not queued, and
// reported in an EventsSuppressed message at most once a second. A watcher that does not read
// fast enough (its stream holds too many messages) has events suppressed too, instead of the
// daemon buffering for it.

import { describePacket } from '../packet/index.js';
import type { DatapathEventSample } from './backend.js';
import type { Plain } from './proto.js';

export const DEFAULT_EVENTS_PER_SECOND = 100;
export const MAX_EVENTS_PER_SECOND = 10_000;
/** Messages a watcher's stream may hold before its datapath events are suppressed. */
export const DATAPATH_BACKLOG = 1000;
/** How often suppressed events are reported (while there are any). */
export const SUPPRESSED_REPORT_MS = 1000;

/** A token bucket: `rate` tokens a second, at most `rate` banked (a one-second burst). */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = rate;
    this.last = now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.rate, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** A DatapathEvent message of a WatchResponse (plain object). */
export function datapathEventMessage(e: DatapathEventSample): Plain {
  return {
    kind: e.kind,
    reason: e.reason,
    port: e.port,
    interface: e.interface,
    ifindex: e.ifindex,
    direction: e.direction,
    timeUnixNs: String(e.timeUnixNs),
    packetLength: e.packetLength,
    sample: e.sample,
    sampleDecode: describePacket(e.sample),
  };
}

export interface SuppressedCounts {
  rateLimited: number;
  backpressure: number;
  total: number;
}

/**
 * One watcher's share of the datapath events: decides per event whether it is sent, and keeps
 * the counts of what was not.
 */
export class WatcherEvents {
  private readonly bucket: TokenBucket;
  private pending = { rateLimited: 0, backpressure: 0 };
  private total = 0;

  constructor(rate: number, now?: () => number) {
    this.bucket = new TokenBucket(rate, now);
  }

  /** 'send' the event, or why not (and it is counted). */
  admit(backlog: number): 'send' | 'rate_limited' | 'backpressure' {
    if (backlog > DATAPATH_BACKLOG) {
      this.pending.backpressure++;
      this.total++;
      return 'backpressure';
    }
    if (!this.bucket.take()) {
      this.pending.rateLimited++;
      this.total++;
      return 'rate_limited';
    }
    return 'send';
  }

  /** The counts since the last report, and resets them; undefined when there are none. */
  report(): SuppressedCounts | undefined {
    const { rateLimited, backpressure } = this.pending;
    if (rateLimited + backpressure === 0) return undefined;
    this.pending = { rateLimited: 0, backpressure: 0 };
    return { rateLimited, backpressure, total: this.total };
  }
}

/** The rate a WatchRequest asks for (0 or absent: the default), or an error text. */
export function requestedRate(v: unknown): number | string {
  if (v === undefined || v === null || v === 0) return DEFAULT_EVENTS_PER_SECOND;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_EVENTS_PER_SECOND)
    return `at most ${MAX_EVENTS_PER_SECOND}`;
  return v;
}
