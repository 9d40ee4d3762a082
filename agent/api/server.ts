// tenetd's control socket: gRPC over a unix socket that only allowed users may use.
//
// Connections are accepted by our own net.Server, not by grpc-js: each one's peer credentials
// (SO_PEERCRED, recorded by the kernel at connect()) are checked first, and only then is the
// socket handed to grpc-js with createConnectionInjector(). A caller that is not allowed is not
// just disconnected, which a client would report as UNAVAILABLE and retry: its connection goes to
// a second grpc-js server that has the same services (so it speaks HTTP/2 and gRPC properly) and
// one interceptor that answers every call PERMISSION_DENIED before any handler runs. Each refusal
// is logged with the caller's pid, uid and gid.
//
// Socket and directory modes. The socket must never exist with a mode more open than 0660, in a
// runtime directory that is 0750. bind() creates the socket file with 0777 & ~umask, so there
// are two ways to get there: set the umask around bind(), or bind somewhere nobody else can reach
// and move the finished socket into place. We do the second: bind in a fresh 0700 directory
// (mkdtemp) inside the runtime directory, chmod the socket to 0660 (and chown it to the socket
// group) there, then rename() it to its final name. umask is per process, so changing it would
// also apply to any file another part of the agent (or libuv's thread pool) creates meanwhile; a
// rename is atomic, needs no global state, and also replaces a stale socket left by a crashed
// daemon in one step, so clients never see a missing or half-set-up socket. A connected unix
// socket is bound to the inode, so the rename does not disturb it.

import { qosServiceHandlers } from './qos.js';
import {
  Metadata,
  Server,
  ServerCredentials,
  ServerInterceptingCall,
  status,
  type ConnectionInjector,
  type ServerInterceptor,
} from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, type ServingStatusMap } from 'grpc-health-check';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  unlinkSync,
  readFileSync,
} from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import type { PackageDefinition } from '@grpc/proto-loader';
import { aclServiceHandlers } from './acl.js';
import { meteringServiceHandlers } from './metering.js';
import { agentServiceHandlers, policyServiceHandlers, type ApiContext } from './service.js';
import { steeringServiceHandlers } from './steering.js';
import { PACKAGE, reflectionPackageDefinition, serviceDefinition, SERVICE_NAMES } from './proto.js';

export const SOCKET_MODE = 0o660;
export const RUNTIME_DIR_MODE = 0o750;

export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups of the peer (SO_PEERGROUPS, else /proc/<pid>/status Groups:). */
  readonly groups?: readonly number[];
}

export interface AccessPolicy {
  /** Users allowed to call (uid 0 is not implied: list it). */
  readonly allowedUids: readonly number[];
  /**
   * Users whose primary group (the gid SO_PEERCRED reports) or one of whose supplementary groups
   * (SO_PEERGROUPS) is one of these are allowed too.
   */
  readonly allowedGids: readonly number[];
}

export interface ServerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ApiServerOptions extends AccessPolicy {
  readonly socketPath: string;
  /** Group of the runtime directory and the socket (so its members can connect); default ours. */
  readonly socketGid?: number;
  readonly context: ApiContext;
  readonly log: ServerLogger;
  /** Reads a connected socket's peer credentials (default: the native SO_PEERCRED). */
  readonly peerCredentials?: (fd: number) => PeerCredentials;
  /** Called for each refused connection (metrics). */
  readonly onRefused?: (peer: PeerCredentials | undefined) => void;
  /** Largest request accepted (bytes); default 64 MiB. */
  readonly maxReceiveMessageLength?: number;
}

export function isAllowed(peer: PeerCredentials, access: AccessPolicy): boolean {
  return (
    access.allowedUids.includes(peer.uid) ||
    access.allowedGids.includes(peer.gid) ||
    (peer.groups ?? []).some((g) => access.allowedGids.includes(g))
  );
}

/**
 * Supplementary groups from /proc/<pid>/status ("Groups:"), for kernels without SO_PEERGROUPS.
 * Weaker than the socket option (the pid could have exited and been reused), so only a fallback.
 */
export function procGroups(pid: number): number[] | undefined {
  try {
    const m = /^Groups:\s*([\d ]*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (m === null) return undefined;
    return (m[1] as string).trim() === '' ? [] : (m[1] as string).trim().split(/\s+/).map(Number);
  } catch {
    return undefined;
  }
}

/** Every gRPC service name the server exposes (health keys, reflection list). */
export const SERVICE_FULL_NAMES = SERVICE_NAMES.map((s) => `${PACKAGE}.${s}`);

const HEALTH_SERVICES = ['', ...SERVICE_FULL_NAMES];

function fdOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

async function nativePeerCredentials(): Promise<(fd: number) => PeerCredentials> {
  const { native } = await import('../bpf/native.js');
  return (fd) => {
    const c = native.peerCredentials(fd);
    if (c.groups !== undefined) return c;
    const groups = procGroups(c.pid);
    return groups === undefined ? c : { ...c, groups };
  };
}

/** Every call on the refused-callers' server ends here, before any handler. */
const denyAll: ServerInterceptor = (_method, call) =>
  new ServerInterceptingCall(call, {
    start: () => {
      call.sendStatus({
        code: status.PERMISSION_DENIED,
        details: 'permission denied: this uid/gid may not use the tenet control socket',
        metadata: new Metadata(),
      });
    },
  });

function addServices(server: Server, ctx: ApiContext, health: HealthImplementation): void {
  server.addService(serviceDefinition('PolicyService'), policyServiceHandlers(ctx));
  server.addService(serviceDefinition('AgentService'), agentServiceHandlers(ctx));
  server.addService(serviceDefinition('AclService'), aclServiceHandlers(ctx));
  server.addService(serviceDefinition('MeteringService'), meteringServiceHandlers(ctx));
  server.addService(
    serviceDefinition('SteeringService'),
    steeringServiceHandlers(ctx, () => ctx.store.backend.steering?.()),
  );
  server.addService(serviceDefinition('QosService'), qosServiceHandlers(ctx));
  health.addToServer(server);
  new ReflectionService(reflectionPackageDefinition() as unknown as PackageDefinition).addToServer(
    server,
  );
}

export class ApiServer {
  readonly health: HealthImplementation;
  private readonly grpc: Server;
  private readonly denied: Server;
  private net: NetServer | undefined;
  private injector: ConnectionInjector | undefined;
  private deniedInjector: ConnectionInjector | undefined;
  private readonly sockets = new Set<Socket>();
  private closed = false;
  /** Inode of our socket file, so close() removes ours and never a successor's. */
  private socketIno: number | undefined;

  constructor(private readonly opts: ApiServerOptions) {
    const notServing: ServingStatusMap = Object.fromEntries(
      HEALTH_SERVICES.map((s) => [s, 'NOT_SERVING' as const]),
    );
    this.health = new HealthImplementation(notServing);
    const grpcOptions = {
      'grpc.max_receive_message_length': opts.maxReceiveMessageLength ?? 64 * 1024 * 1024,
    };
    this.grpc = new Server(grpcOptions);
    this.denied = new Server({ ...grpcOptions, interceptors: [denyAll] });
    addServices(this.grpc, opts.context, this.health);
    addServices(this.denied, opts.context, new HealthImplementation(notServing));
  }

  /** Health of every service: SERVING once the agent is ready. */
  setServing(serving: boolean): void {
    for (const s of HEALTH_SERVICES) this.health.setStatus(s, serving ? 'SERVING' : 'NOT_SERVING');
  }

  /** Creates the runtime directory and the socket (see the top of this file) and accepts. */
  async listen(): Promise<void> {
    const { socketPath, log } = this.opts;
    const readCreds = this.opts.peerCredentials ?? (await nativePeerCredentials());
    const dir = dirname(socketPath);
    prepareRuntimeDir(dir, this.opts.socketGid);

    this.injector = this.grpc.createConnectionInjector(ServerCredentials.createInsecure());
    this.deniedInjector = this.denied.createConnectionInjector(ServerCredentials.createInsecure());

    const server = createServer({ pauseOnConnect: true, allowHalfOpen: false }, (socket) =>
      this.accept(socket, readCreds),
    );
    server.on('error', (e) => log.error({ err: e.message }, 'control socket error'));
    const bindDir = mkdtempSync(join(dir, `.${basename(socketPath)}.bind-`));
    try {
      chmodSync(bindDir, 0o700);
      const tmp = join(bindDir, 'sock');
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(tmp, () => {
          server.off('error', reject);
          resolve();
        });
      });
      chmodSync(tmp, SOCKET_MODE);
      chownTo(tmp, this.opts.socketGid);
      renameSync(tmp, socketPath);
      this.socketIno = lstatSync(socketPath).ino;
    } catch (e) {
      server.close();
      throw e;
    } finally {
      rmSync(bindDir, { recursive: true, force: true });
    }
    this.net = server;
    log.info({ socket: socketPath }, 'control socket listening');
  }

  private accept(socket: Socket, readCreds: (fd: number) => PeerCredentials): void {
    const { log } = this.opts;
    socket.on('error', () => {
      /* a peer that resets or sends garbage: grpc-js closes the session; nothing to do */
    });
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    let peer: PeerCredentials | undefined;
    try {
      const fd = fdOf(socket);
      if (fd === undefined) throw new Error('the connection has no file descriptor');
      peer = readCreds(fd);
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'cannot read peer credentials; refusing');
    }
    if (peer !== undefined && isAllowed(peer, this.opts)) {
      this.injector?.injectConnection(socket);
    } else {
      log.warn(
        {
          event: 'permission_denied',
          pid: peer?.pid,
          uid: peer?.uid,
          gid: peer?.gid,
          groups: peer?.groups,
          allowedUids: this.opts.allowedUids,
          allowedGids: this.opts.allowedGids,
        },
        'refused a control socket connection',
      );
      this.opts.onRefused?.(peer);
      this.deniedInjector?.injectConnection(socket);
    }
    socket.resume();
  }

  /** Stops accepting, removes the socket file, and closes every connection. */
  async close(graceMs = 1000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const net = this.net;
    this.net = undefined;
    // net.Server.close() calls back only once every connection has ended: stop accepting now,
    // wait for that after the gRPC servers have drained and the leftovers are destroyed.
    const netClosed =
      net === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => net.close(() => resolve()));
    if (net !== undefined) {
      try {
        // Only our socket: a newer daemon may have renamed its own over the path meanwhile.
        if (lstatSync(this.opts.socketPath).ino === this.socketIno)
          unlinkSync(this.opts.socketPath);
      } catch {
        /* already gone */
      }
    }
    this.injector?.drain(graceMs);
    this.deniedInjector?.drain(0);
    await Promise.all([shutdown(this.grpc, graceMs), shutdown(this.denied, 0)]);
    for (const s of this.sockets) s.destroy();
    await netClosed;
  }
}

function shutdown(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The runtime directory: created if missing, always 0750 (and the socket group's). */
export function prepareRuntimeDir(dir: string, gid?: number): void {
  mkdirSync(dir, { recursive: true, mode: RUNTIME_DIR_MODE });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  chmodSync(dir, RUNTIME_DIR_MODE);
  chownTo(dir, gid);
}

/** Gives a path our uid and `gid`; skipped when it has that group already (no CAP_CHOWN needed). */
function chownTo(path: string, gid: number | undefined): void {
  if (gid === undefined || lstatSync(path).gid === gid) return;
  chownSync(path, process.getuid?.() ?? 0, gid);
}
