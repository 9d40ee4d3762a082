// tenetd: the datapath backend, the durable desired policy, the control socket and the metrics
// endpoint, started in that order and stopped in the reverse one.
//
// Start: the control socket listens at once (health NOT_SERVING, calls UNAVAILABLE) so clients
// can watch the agent come up; the backend adopts the datapath; the persisted policy (if the
// state file is sound) is reconciled; then health turns SERVING and systemd hears READY=1.
// Stop (SIGTERM): the socket goes first (no new work), in-flight calls get a short grace, the
// backend releases its handles; the datapath is left running as it is.

import { registerQosMetrics } from '../metrics/qos.js';
import type { Logger } from 'pino';
import { ApiServer } from '../api/server.js';
import { PolicyStore } from '../api/store.js';
import type { PolicyBackend } from '../api/backend.js';
import { MeterLedger } from '../metering/ledger.js';
import { meterSourceFor } from '../metering/source.js';
import { registerMeterMetrics } from '../metrics/meter.js';
import { TenetMetrics } from '../metrics/metrics.js';
import { registerAclMetrics } from '../metrics/acl.js';
import { registerSteeringMetrics } from '../metrics/steering.js';
import { serveMetrics, type MetricsServer } from '../metrics/server.js';
import { createBackend } from './backend.js';
import type { Config } from './config.js';
import type { Notifier } from './notify.js';
import { StateFile, type StateLoad } from './state.js';
import { agentVersion } from './version.js';

export interface DaemonOptions {
  readonly log: Logger;
  /** Default: from the config (createBackend). */
  readonly backend?: PolicyBackend;
  readonly notify?: Notifier;
}

function describeState(load: StateLoad): string {
  switch (load.kind) {
    case 'loaded':
      return load.journal === undefined
        ? 'loaded'
        : `loaded, ${load.journal.applied} journal entries replayed` +
            (load.journal.stopped === undefined ? '' : ` (stopped: ${load.journal.stopped})`);
    case 'absent':
      return 'absent';
    case 'quarantined':
      return `quarantined: ${load.reason} (moved to ${load.movedTo})`;
  }
}

export class Daemon {
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly config: Config,
    readonly store: PolicyStore,
    readonly api: ApiServer,
    readonly metrics: TenetMetrics,
    private readonly metricsServer: MetricsServer | undefined,
    private readonly log: Logger,
    private readonly notify: Notifier | undefined,
  ) {}

  get metricsAddress(): { host: string; port: number } | undefined {
    return this.metricsServer === undefined
      ? undefined
      : { host: this.metricsServer.host, port: this.metricsServer.port };
  }

  static async start(config: Config, opts: DaemonOptions): Promise<Daemon> {
    const { log } = opts;
    const version = agentVersion();
    const startedUnixMs = Date.now();
    log.info(
      { version, host: config.hostName, backend: config.datapath.backend },
      'tenetd starting',
    );

    const backend = opts.backend ?? createBackend(config, log);
    const stateFile = new StateFile(config.stateDir);
    const loaded = await stateFile.load();
    const stateText = describeState(loaded);
    if (loaded.kind === 'quarantined') {
      log.error(
        { event: 'state_quarantined', reason: loaded.reason, movedTo: loaded.movedTo },
        'the state file cannot be trusted: quarantined; keeping the datapath as it is until the next Apply',
      );
    } else {
      log.info({ state: stateText, path: stateFile.path }, 'state file');
    }

    // The store reports reconciles to the metrics, and the metrics read the store's state.
    const ref: { metrics?: TenetMetrics } = {};
    const store = new PolicyStore(
      backend,
      {
        persist: (policy, v) => stateFile.save(policy, v),
        persistRecords: (policy, v, delta) => stateFile.appendRecords(policy, v, delta),
        forget: () => stateFile.forget(),
        onReconcile: (seconds, ok, dryRun) => ref.metrics?.observeReconcile(seconds, ok, dryRun),
      },
      log,
    );
    const metrics = new TenetMetrics(
      {
        counters: () => backend.counters(),
        datapathEvents: () => backend.datapathEventStats?.(),
        state: () => ({
          ready: store.ready,
          policyVersion: store.version,
          policyKnown: store.known,
        }),
      },
      () => ({
        version,
        abiVersion: backend.info().abiVersion,
        libbpf: backend.info().libbpfVersion,
      }),
    );
    ref.metrics = metrics;
    registerAclMetrics(metrics.registry);
    registerSteeringMetrics(metrics.registry, () => backend.steering?.());
    registerQosMetrics(metrics.registry, async () => backend.qosStatus?.());
    const m = metrics;
    const metering = await MeterLedger.open({
      hostName: config.hostName,
      source: meterSourceFor(config),
      stateDir: config.stateDir,
      // Only once the first reconcile is done: a persisted policy may be ahead of the datapath.
      policy: () => (store.ready ? store.policy : undefined),
      log,
    });
    registerMeterMetrics(metrics.registry, metering);
    const api = new ApiServer({
      socketPath: config.socket.path,
      allowedUids: config.socket.allowedUids,
      allowedGids: config.socket.allowedGids,
      ...(config.socket.group === undefined ? {} : { socketGid: config.socket.group }),
      log,
      onRefused: () => m.connectionRefused(),
      context: {
        store,
        hostName: config.hostName,
        agentVersion: version,
        startedUnixMs,
        stateFile: () => stateText,
        metrics: m,
        log,
        metering,
      },
    });
    await api.listen();
    let metricsServer: MetricsServer | undefined;
    try {
      if (config.metrics.listen !== null) {
        metricsServer = await serveMetrics(
          m,
          config.metrics.listen.host,
          config.metrics.listen.port,
        );
        log.info({ host: metricsServer.host, port: metricsServer.port }, 'metrics listening');
      }
      await store.initialize(
        loaded.kind === 'loaded' ? { policy: loaded.policy, version: loaded.version } : undefined,
      );
    } catch (e) {
      await api.close(0);
      await metricsServer?.close();
      throw e;
    }
    api.setServing(true);
    const daemon = new Daemon(config, store, api, m, metricsServer, log, opts.notify);
    log.info(
      { event: 'ready', policyVersion: String(store.version), policyKnown: store.known },
      'tenetd ready: first reconcile finished',
    );
    try {
      opts.notify?.(`READY=1\nSTATUS=serving, policy version ${store.version}`);
    } catch (e) {
      log.warn({ err: String(e) }, 'sd_notify failed');
    }
    return daemon;
  }

  /** Stops serving and releases the datapath handles; the datapath keeps running. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info({ event: 'stopping' }, 'tenetd stopping; the datapath is left running');
      try {
        this.notify?.('STOPPING=1');
      } catch {
        /* systemd gone */
      }
      this.api.setServing(false);
      await this.api.close(2000);
      await this.metricsServer?.close();
      await this.store.backend.stop();
      this.log.info({ event: 'stopped' }, 'tenetd stopped');
    })();
    return this.stopping;
  }
}
