// Bounded traffic generators for labs: ping and iperf3. Every run has a packet count and/or a
// duration and a hard wall-clock limit after which the process group is killed (GUIDE §2).

import { LabError, assertLabAddress, type Netns } from './lab.js';
import { ExecError, type BgProcess, type ExecResult } from '../process/exec.js';

export interface PingOptions {
  /** Echo requests to send (default 3, max 10000). */
  count?: number;
  /** Interval between requests (default 200 ms, min 10 ms). */
  intervalMs?: number;
  /** Overall deadline in seconds (ping -w); default count*interval + 2 s. */
  timeoutS?: number;
  /** ICMP payload size in bytes (ping -s). */
  size?: number;
  /** Set the DF bit / prohibit fragmentation (ping -M do). */
  dontFragment?: boolean;
  /** Source interface or address (ping -I). */
  iface?: string;
}

export interface PingResult {
  transmitted: number;
  received: number;
  /** 0..100 */
  lossPct: number;
  rtt?: { min: number; avg: number; max: number; mdev: number };
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when ping printed no summary (usage error, network unreachable, killed). */
  error?: string;
}

/** Parse iputils ping summary output. Missing fields come back as 0 / undefined. */
export function parsePingOutput(
  out: string,
): Omit<PingResult, 'code' | 'stdout' | 'stderr' | 'error'> {
  const s = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const transmitted = s ? Number(s[1]) : 0;
  const received = s ? Number(s[2]) : 0;
  const loss = /([\d.]+)% packet loss/.exec(out);
  const r: Omit<PingResult, 'code' | 'stdout' | 'stderr' | 'error'> = {
    transmitted,
    received,
    lossPct: loss
      ? Number(loss[1])
      : transmitted
        ? (100 * (transmitted - received)) / transmitted
        : 100,
  };
  const rtt =
    /(?:rtt|round-trip) min\/avg\/max\/(?:mdev|stddev) = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(
      out,
    );
  if (rtt)
    r.rtt = { min: Number(rtt[1]), avg: Number(rtt[2]), max: Number(rtt[3]), mdev: Number(rtt[4]) };
  return r;
}

/** Ping `addr` from inside `ns`. Never throws on loss: check `received`. */
export async function ping(ns: Netns, addr: string, opts: PingOptions = {}): Promise<PingResult> {
  assertLabAddress(addr, 'ping target');
  const count = opts.count ?? 3;
  const intervalMs = opts.intervalMs ?? 200;
  if (!Number.isInteger(count) || count < 1 || count > 10_000)
    throw new LabError(`ping count ${count} out of 1..10000`);
  if (intervalMs < 10) throw new LabError(`ping interval ${intervalMs} ms below 10 ms`);
  const timeoutS = opts.timeoutS ?? Math.ceil((count * intervalMs) / 1000) + 2;
  const argv = ['ping', addr.includes(':') ? '-6' : '-4', '-n', '-q'];
  argv.push('-c', String(count), '-i', (intervalMs / 1000).toFixed(3), '-w', String(timeoutS));
  if (opts.size !== undefined) argv.push('-s', String(opts.size));
  if (opts.dontFragment) argv.push('-M', 'do');
  if (opts.iface) argv.push('-I', opts.iface);
  argv.push(addr);
  const r = await ns.exec(argv, { timeoutMs: timeoutS * 1000 + 3000 });
  const res: PingResult = {
    ...parsePingOutput(r.stdout),
    code: r.code,
    stdout: r.stdout,
    stderr: r.stderr,
  };
  if (!/packets transmitted/.test(r.stdout))
    res.error = (r.stderr || r.stdout).trim() || `ping exited ${r.code}`;
  return res;
}

export interface Iperf3ServerOptions {
  /** Default 5201. */
  port?: number;
  /** Bind address (-B). */
  bind?: string;
  /** Serve one client then exit (-1); default true. */
  oneOff?: boolean;
  /** Hard limit on the server's lifetime; default 60 s. */
  timeoutMs?: number;
}

export interface Iperf3Server {
  proc: BgProcess;
  port: number;
  /** Stop the server (no-op when it already exited). */
  stop(): Promise<ExecResult>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Start an iperf3 server in `ns` and wait (≤ 5 s) until it listens. */
export async function iperf3Server(
  ns: Netns,
  opts: Iperf3ServerOptions = {},
): Promise<Iperf3Server> {
  const port = opts.port ?? 5201;
  const argv = ['iperf3', '-s', '-p', String(port)];
  if (opts.oneOff !== false) argv.push('-1');
  if (opts.bind) {
    assertLabAddress(opts.bind, 'iperf3 bind address');
    argv.push('-B', opts.bind);
  }
  const proc = ns.spawn(argv, { timeoutMs: opts.timeoutMs ?? 60_000 });
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await ns.exec(['ss', '-Hltn', `sport = :${port}`], { timeoutMs: 5000 });
    if (r.code === 0 && r.stdout.trim() !== '') break;
    if (!proc.running) {
      const res = await proc.exited;
      throw new ExecError(res, `iperf3 server in ${ns.name} exited before listening`);
    }
    if (Date.now() > deadline) {
      await proc.kill('SIGKILL');
      throw new LabError(`iperf3 server in ${ns.name} did not listen on ${port} within 5 s`);
    }
    await sleep(50);
  }
  return { proc, port, stop: () => proc.kill('SIGTERM', 1000) };
}

export interface Iperf3ClientOptions {
  port?: number;
  /** Test duration (-t), default 2 s, max 60 s. */
  seconds?: number;
  udp?: boolean;
  /** Target bitrate (-b), e.g. '100M'; for UDP the default of iperf3 is 1 Mbit/s. */
  bitrate?: string;
  /** Server sends (-R). */
  reverse?: boolean;
  /** Parallel streams (-P). */
  parallel?: number;
  /** UDP datagram / TCP write length (-l). */
  length?: number;
  /** Hard limit; default seconds*1000 + 10 s. */
  timeoutMs?: number;
}

export interface Iperf3Result {
  /** Throughput seen by the sender / receiver, bits per second. */
  sentBps: number;
  receivedBps: number;
  /** TCP retransmits (sender side), when reported. */
  retransmits?: number;
  /** UDP only. */
  lostPercent?: number;
  jitterMs?: number;
  /** The full -J output. */
  json: Record<string, unknown>;
}

interface Iperf3Json {
  error?: string;
  end?: {
    sum_sent?: { bits_per_second?: number; retransmits?: number };
    sum_received?: { bits_per_second?: number };
    sum?: { bits_per_second?: number; lost_percent?: number; jitter_ms?: number };
  };
}

/** Parse iperf3 -J output; throws with iperf3's own error message if it reports one. */
export function parseIperf3Json(stdout: string): Iperf3Result {
  let j: Iperf3Json & Record<string, unknown>;
  try {
    j = JSON.parse(stdout) as Iperf3Json & Record<string, unknown>;
  } catch {
    throw new LabError(`iperf3 output is not JSON: ${stdout.slice(0, 200)}`);
  }
  if (j.error) throw new LabError(`iperf3: ${j.error}`);
  const end = j.end ?? {};
  const r: Iperf3Result = {
    sentBps: end.sum_sent?.bits_per_second ?? end.sum?.bits_per_second ?? 0,
    receivedBps: end.sum_received?.bits_per_second ?? end.sum?.bits_per_second ?? 0,
    json: j,
  };
  if (end.sum_sent?.retransmits !== undefined) r.retransmits = end.sum_sent.retransmits;
  if (end.sum?.lost_percent !== undefined) r.lostPercent = end.sum.lost_percent;
  if (end.sum?.jitter_ms !== undefined) r.jitterMs = end.sum.jitter_ms;
  return r;
}

/** Run an iperf3 client in `ns` against `server` (-J), bounded in duration and wall-clock time. */
export async function iperf3Client(
  ns: Netns,
  server: string,
  opts: Iperf3ClientOptions = {},
): Promise<Iperf3Result> {
  assertLabAddress(server, 'iperf3 server');
  const seconds = opts.seconds ?? 2;
  if (!(seconds > 0 && seconds <= 60))
    throw new LabError(`iperf3 duration ${seconds} s out of (0, 60]`);
  const argv = [
    'iperf3',
    '-c',
    server,
    '-p',
    String(opts.port ?? 5201),
    '-t',
    String(seconds),
    '-J',
  ];
  argv.push('--connect-timeout', '3000');
  if (opts.udp) argv.push('-u');
  if (opts.bitrate) argv.push('-b', opts.bitrate);
  if (opts.reverse) argv.push('-R');
  if (opts.parallel) argv.push('-P', String(opts.parallel));
  if (opts.length) argv.push('-l', String(opts.length));
  const r = await ns.exec(argv, { timeoutMs: opts.timeoutMs ?? seconds * 1000 + 10_000 });
  if (r.timedOut) throw new ExecError(r, `iperf3 client in ${ns.name}`);
  try {
    return parseIperf3Json(r.stdout);
  } catch (e) {
    if (r.code !== 0 && !r.stdout.trim()) throw new ExecError(r, `iperf3 client in ${ns.name}`);
    throw e;
  }
}

/** Server in `serverNs` (one-off), client in `clientNs`, result from the client; always stops the server. */
export async function iperf3(
  serverNs: Netns,
  clientNs: Netns,
  serverAddr: string,
  opts: Iperf3ClientOptions = {},
): Promise<Iperf3Result> {
  const srvOpts: Iperf3ServerOptions = { timeoutMs: (opts.seconds ?? 2) * 1000 + 20_000 };
  if (opts.port) srvOpts.port = opts.port;
  const srv = await iperf3Server(serverNs, srvOpts);
  try {
    return await iperf3Client(clientNs, serverAddr, opts);
  } finally {
    await srv.stop();
  }
}
