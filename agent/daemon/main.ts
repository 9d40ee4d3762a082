#!/usr/bin/env node
// tenetd — the tenet host agent.
//
//   tenetd --config /etc/tenet/tenetd.yaml
//   tenetd --config FILE --check-config [--policy policy.yaml]
//
// Logs are JSON lines on stdout (pino); systemd's journal keeps them. SIGTERM and SIGINT stop the
// daemon and leave the datapath running (exit 0). Exit codes: 0 stopped cleanly or config OK,
// 1 the config (or policy) is invalid or the daemon could not start.

import { Command } from 'commander';
import { pino } from 'pino';
import { loadPolicyFile, PolicyError } from '../policy/index.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { Daemon } from './daemon.js';
import { systemdNotifier } from './notify.js';
import { agentVersion } from './version.js';

interface Options {
  config: string;
  checkConfig?: boolean;
  policy?: string;
}

function summary(c: Config): string {
  const metrics =
    c.metrics.listen === null ? 'off' : `${c.metrics.listen.host}:${c.metrics.listen.port}`;
  return [
    `host ${c.hostName}`,
    `socket ${c.socket.path} (uids ${c.socket.allowedUids.join(',') || '-'}, gids ${c.socket.allowedGids.join(',') || '-'})`,
    `metrics ${metrics}`,
    `state ${c.stateDir}`,
    `pins ${c.pinRoot}`,
    `backend ${c.datapath.backend}`,
  ].join('; ');
}

async function checkConfig(opts: Options): Promise<number> {
  try {
    const config = await loadConfig(opts.config);
    console.log(`config OK: ${opts.config}: ${summary(config)}`);
  } catch (e) {
    console.error(
      e instanceof ConfigError ? e.message : `cannot read ${opts.config}: ${String(e)}`,
    );
    return 1;
  }
  if (opts.policy !== undefined) {
    try {
      const p = await loadPolicyFile(opts.policy);
      console.log(
        `policy OK: ${opts.policy}: ${p.providerAddresses.length} provider addresses, ${p.routingDomains.length} routing domains, ${p.ports.length} ports, ${p.lookupRecords.length} lookup records, ${p.customerRoutes.length} customer routes`,
      );
    } catch (e) {
      console.error(
        e instanceof PolicyError
          ? `${opts.policy}: ${e.message}`
          : `cannot read ${opts.policy}: ${String(e)}`,
      );
      return 1;
    }
  }
  return 0;
}

async function run(opts: Options): Promise<number> {
  let config: Config;
  try {
    config = await loadConfig(opts.config);
  } catch (e) {
    console.error(e instanceof ConfigError ? e.message : String(e));
    return 1;
  }
  const log = pino({ level: config.log.level, base: { pid: process.pid, host: config.hostName } });
  let daemon: Daemon | undefined;
  let stopRequested = false;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'signal received');
      stopRequested = true;
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  try {
    daemon = await Daemon.start(config, { log, notify: await systemdNotifier() });
  } catch (e) {
    log.fatal(
      { err: e instanceof Error ? (e.stack ?? e.message) : String(e) },
      'tenetd could not start',
    );
    return 1;
  }
  if (!stopRequested) await stopped;
  await daemon.stop();
  return 0;
}

const program = new Command()
  .name('tenetd')
  .description('tenet host agent: NVGRE network virtualization in BPF, driven over a gRPC socket')
  .version(agentVersion())
  .requiredOption('-c, --config <file>', 'configuration file (YAML)')
  .option('--check-config', 'validate the configuration (and --policy) and exit')
  .option('--policy <file>', 'with --check-config: also validate this policy document')
  .exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 1);
  });

program.parse(process.argv);
const opts = program.opts<Options>();
const code = await (opts.checkConfig ? checkConfig(opts) : run(opts));
process.exit(code);
