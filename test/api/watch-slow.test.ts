// A Watch consumer that does not read: once its stream holds more than the backlog limit (20 here,
// after the HTTP/2 window is full), the server stops queueing for it and ends the stream with
// RESOURCE_EXHAUSTED naming the backlog, after the messages already queued (a status in the
// trailers, not a reset of the HTTP/2 stream). 30 bulk merges of 1000 records each make 30
// policy-change messages of ~22 KB.

import http2 from 'node:http2';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoPolicyText, startTestApi, type TestApi } from './helpers.js';

const LIMIT = 20;

describe('slow Watch consumer', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ watchBacklog: LIMIT });
    await api.client.policy('Apply', { text: demoPolicyText() });
  });
  afterAll(async () => api.close());

  it('gets the queued messages, then RESOURCE_EXHAUSTED naming the backlog', async () => {
    // A raw HTTP/2 client that stops reading (a grpc-js client keeps draining its connection
    // into memory even when paused, so it can never be slow): the server's stream fills up.
    const session = http2.connect('http://localhost', {
      createConnection: () => connect(api.socketPath),
    });
    const req = session.request({
      ':method': 'POST',
      ':path': '/tenet.v1.PolicyService/Watch',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    req.end(Buffer.alloc(5)); // one empty WatchRequest message
    req.pause();
    await new Promise((r) => setTimeout(r, 100)); // the server has the call
    const hex2 = (n: number): string => (n & 255).toString(16).padStart(2, '0');
    for (let round = 0; round < 30; round++) {
      await api.client.bulkLoad(
        (function* () {
          yield {
            mode: 'BULK_LOAD_MODE_MERGE',
            lookupRecords: Array.from({ length: 1000 }, (_, k) => ({
              vsid: 5001,
              ca: `fd00:1:1::1:${(k + 1).toString(16)}`,
              mac: `02:00:dd:${hex2(round)}:${hex2(k >> 8)}:${hex2(k)}`,
              pa: '198.18.0.2',
            })),
          };
        })(),
      );
    }
    // Now read everything: the queued messages, then the status in the trailers.
    let bytes = 0;
    req.on('data', (d: Buffer) => (bytes += d.length));
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      req.once('trailers', resolve);
      req.once('error', reject);
      req.resume();
    });
    session.close();
    expect(bytes).toBeGreaterThan(LIMIT * 1000);
    expect(trailers['grpc-status']).toBe('8'); // RESOURCE_EXHAUSTED, not a reset
    expect(decodeURIComponent(String(trailers['grpc-message']))).toMatch(
      new RegExp(
        `^watcher too slow: \\d+ messages were waiting to be sent \\(at most ${LIMIT} may wait\\)`,
      ),
    );
  }, 60_000);
});
