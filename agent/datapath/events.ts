// The datapath's events as the agent receives them: records of the tenet_events ring buffer
// (bpf/abi/events.h, bpf/lib/events.h) read on the Node event loop through the binding's
// RingBuffer, decoded with the generated EventRecordCodec and handed to subscribers.
//
// Today the records are drop samples, produced only by programs loaded with
// tenet_cfg_drop_events = 1 (agent/datapath/objects.ts datapathKnobs; tenetd's
// `datapath.dropEvents`). Events are best effort end to end: the datapath loses a record when the
// ring is full, and the pump never lets the ring stall the daemon: it reads at most
// `maxPerSecond` records a second, then stops reading until the next second (what arrives
// meanwhile waits in the ring, or is lost when the ring fills; the drop counters count every
// drop regardless; the record being read when the reader stops is lost too: libbpf counts a
// record the callback refused as consumed). The ring is read only while someone subscribes; what it held before the first
// subscriber (possibly hours old) is discarded, not delivered.

import { join } from 'node:path';
import {
  DirectionByValue,
  DropReasonByValue,
  EVENT_RECORD_SIZE,
  EventKindByValue,
  EventRecordCodec,
  Maps,
} from '../abi/generated.js';
import { BpfMap, RingBuffer } from '../bpf/index.js';

/** One decoded record of the event ring. */
export interface DatapathEventRecord {
  /** 'drop' (enum tenet_event_kind). */
  readonly kind: string;
  /** The drop reason's catalogue name (bpf/abi/drop_reasons.h). */
  readonly reason: string;
  readonly ifindex: number;
  /** 'rx' or 'tx' (enum tenet_direction). */
  readonly direction: string;
  /** bpf_ktime_get_ns(): CLOCK_MONOTONIC. */
  readonly timestampNs: bigint;
  /** The same instant on the wall clock, nanoseconds since the Unix epoch. */
  readonly timeUnixNs: bigint;
  /** Length of the whole frame. */
  readonly packetLength: number;
  /** Its first bytes (at most TENET_EVENT_SAMPLE_LEN). */
  readonly sample: Buffer;
}

export type DatapathEventListener = (e: DatapathEventRecord) => void;

export interface EventPumpOptions {
  /** Records read per second at most (default 20,000). */
  readonly maxPerSecond?: number;
  /** Called when the ring cannot be opened or read. */
  readonly onError?: (e: unknown) => void;
}

/** CLOCK_MONOTONIC (process.hrtime, like bpf_ktime_get_ns) to Unix time, in nanoseconds. */
function monotonicToUnixNs(ns: bigint): bigint {
  const offset = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return ns + offset;
}

/** A raw ring record as a DatapathEventRecord; undefined for a record of the wrong size. */
export function decodeEventRecord(data: Uint8Array): DatapathEventRecord | undefined {
  if (data.length < EVENT_RECORD_SIZE) return undefined;
  const r = EventRecordCodec.decode(data);
  const n = Math.min(r.sample_len, r.sample.length);
  return {
    kind: EventKindByValue[r.kind] ?? `kind_${r.kind}`,
    reason: DropReasonByValue[r.reason] ?? `unknown_${r.reason}`,
    ifindex: r.ifindex,
    direction: DirectionByValue[r.direction] ?? `direction_${r.direction}`,
    timestampNs: r.timestamp_ns,
    timeUnixNs: monotonicToUnixNs(r.timestamp_ns),
    packetLength: r.pkt_len,
    sample: Buffer.from(r.sample.subarray(0, n)),
  };
}

/** Reads the tenet_events ring pinned under pinRoot while anyone subscribes. */
export class DatapathEventPump {
  private readonly listeners = new Set<DatapathEventListener>();
  private ring: RingBuffer | undefined;
  private map: BpfMap | undefined;
  private readonly maxPerSecond: number;
  private windowStart = 0;
  private inWindow = 0;
  private resume: NodeJS.Timeout | undefined;
  private closed = false;
  /** Records read and delivered, and read pauses taken to stay under maxPerSecond. */
  readonly stats = {
    records: 0,
    malformed: 0,
    pauses: 0,
    byKind: {} as Record<string, number>,
  };

  constructor(
    readonly pinRoot: string,
    private readonly opts: EventPumpOptions = {},
  ) {
    this.maxPerSecond = opts.maxPerSecond ?? 20_000;
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  /** Starts delivering records to `listener`; returns the unsubscribe function. */
  subscribe(listener: DatapathEventListener): () => void {
    if (this.closed) throw new Error('the event pump is closed');
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.start(true);
    return () => {
      if (!this.listeners.delete(listener)) return;
      if (this.listeners.size === 0) this.stop();
    };
  }

  private start(discardOld: boolean): void {
    if (this.ring !== undefined || this.closed) return;
    try {
      this.map ??= BpfMap.openPinned(join(this.pinRoot, Maps.tenet_events.name));
      if (discardOld) {
        // Whatever waits in the ring predates every subscriber: consume it unseen.
        const drain = new RingBuffer(this.map, () => {});
        try {
          drain.consume();
        } finally {
          drain.close();
        }
      }
      this.ring = new RingBuffer(this.map, (data) => this.onRecord(data));
      this.ring.unref();
    } catch (e) {
      this.opts.onError?.(e);
    }
  }

  private stop(): void {
    if (this.resume !== undefined) clearTimeout(this.resume);
    this.resume = undefined;
    this.ring?.close();
    this.ring = undefined;
  }

  private onRecord(data: Buffer): void {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    const ev = decodeEventRecord(data);
    if (ev === undefined) {
      this.stats.malformed++;
    } else {
      this.stats.records++;
      this.stats.byKind[ev.kind] = (this.stats.byKind[ev.kind] ?? 0) + 1;
      for (const l of [...this.listeners]) {
        try {
          l(ev);
        } catch (e) {
          this.opts.onError?.(e);
        }
      }
    }
    if (++this.inWindow >= this.maxPerSecond && this.ring !== undefined) {
      // Enough for this second: stop reading (the ring keeps what comes meanwhile).
      this.stats.pauses++;
      this.ring.close();
      this.ring = undefined;
      this.resume = setTimeout(
        () => {
          this.resume = undefined;
          if (this.listeners.size > 0) this.start(false);
        },
        Math.max(1, 1000 - (Date.now() - this.windowStart)),
      );
      this.resume.unref();
    }
  }

  /** Stops reading and releases the ring (idempotent). */
  close(): void {
    this.closed = true;
    this.listeners.clear();
    this.stop();
    this.map?.close();
    this.map = undefined;
  }
}
