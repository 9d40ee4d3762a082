// Metrics of datapath events (the tenet_events ring buffer, agent/datapath/events.ts) and of
// their delivery to Watch streams (agent/api/events.ts):
//
//   tenet_datapath_events_total{type}            records read from the ring, by event kind
//                                                ('drop'; 'malformed' for records that did not
//                                                decode); the ring is read only while a Watch
//                                                asks for datapath events
//   tenet_datapath_event_reader_pauses_total     pauses of the ring reader at its rate limit
//                                                (what comes meanwhile waits in the ring or is
//                                                lost when it fills; tenet_drops_total still
//                                                counts every drop)
//   tenet_watch_events_suppressed_total{reason}  events not sent to a watcher: rate_limited (its
//                                                token bucket) or backpressure (its stream is full)

import { Counter, type Registry } from 'prom-client';

/** What the event reader counted so far (monotonic). */
export interface DatapathEventStats {
  readonly byKind: Readonly<Record<string, number>>;
  readonly malformed: number;
  readonly pauses: number;
}

export type SuppressReason = 'rate_limited' | 'backpressure';

export class DatapathEventMetrics {
  private readonly suppressedCounter: Counter<'reason'>;

  constructor(registry: Registry, source: () => DatapathEventStats | undefined) {
    const registers = [registry];
    new Counter({
      name: 'tenet_datapath_events_total',
      help: 'Datapath event records read from the ring buffer, by type (malformed: did not decode)',
      labelNames: ['type'],
      registers,
      collect() {
        const s = source();
        this.reset();
        this.inc({ type: 'drop' }, 0);
        if (s === undefined) return;
        for (const [type, n] of Object.entries(s.byKind)) this.inc({ type }, n);
        this.inc({ type: 'malformed' }, s.malformed);
      },
    });
    new Counter({
      name: 'tenet_datapath_event_reader_pauses_total',
      help: 'Pauses of the datapath event reader at its rate limit',
      registers,
      collect() {
        this.reset();
        this.inc(source()?.pauses ?? 0);
      },
    });
    this.suppressedCounter = new Counter({
      name: 'tenet_watch_events_suppressed_total',
      help: 'Datapath events not sent to a Watch stream, by reason (rate_limited, backpressure)',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['rate_limited', 'backpressure'])
      this.suppressedCounter.inc({ reason }, 0);
  }

  suppressed(reason: SuppressReason): void {
    this.suppressedCounter.inc({ reason });
  }
}
