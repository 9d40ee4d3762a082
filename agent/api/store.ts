// The desired policy and every change to it. One document, one version number, one change at a
// time:
//
//   build     the request's function makes the next document from the current one (or refuses:
//             NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION);
//   validate  parsePolicy on the whole next document: INVALID_ARGUMENT naming every field;
//   persist   write-ahead: the durable state is replaced atomically with the new desired policy
//             before the datapath gets it (UNAVAILABLE when that fails; nothing was applied);
//   apply     the backend makes the datapath hold it, or refuses and leaves it as it was; then the
//             state file is put back to the previous policy and the call fails;
//   publish   version + 1, watchers hear about it.
//
// A failure at any step leaves the document, the version, the datapath and the state file as
// they were: a rejected request changes nothing. Write-ahead means a crash between persist and
// apply leaves the state one step ahead of the datapath, never behind it: the restarted agent
// reconciles the datapath forward to what the caller asked for instead of back to an older
// policy (the caller, which got no answer, retries; the retry is a no-op).
//
// "Unknown" policy: after the state file was lost or quarantined while the datapath still holds
// entries, the agent does not know the desired document. It then refuses every partial change
// and every read with FAILED_PRECONDITION (a CreatePort on top of an assumed-empty document would
// flush everything else from the datapath) until an Apply sets a whole document.

import { performance } from 'node:perf_hooks';
import { parsePolicy, PolicyError, type Policy, type PolicyDocument } from '../policy/index.js';
import {
  classifyBackendError,
  type BackendApplyResult,
  type PolicyBackend,
  type TableChangeCount,
} from './backend.js';
import { diffPolicies, isEmptyDiff, summarizeDiff, type PolicyDiff } from './diff.js';
import { ApiError, Code, policyRejected, type PathRewrite } from './errors.js';
import {
  fastDocumentChange,
  fastRecordChange,
  RecordIndex,
  type RecordDelta,
} from './records-fast.js';
import type { RecordsHint } from './records-hint.js';

export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentStoreLogger: StoreLogger = { info() {}, warn() {}, error() {} };

export interface PolicyChange {
  readonly version: bigint;
  readonly method: string;
  readonly diff: PolicyDiff;
  readonly timeUnixMs: number;
}

export interface CommitResult {
  readonly policy: Policy;
  readonly version: bigint;
  readonly dryRun: boolean;
  readonly changed: boolean;
  readonly diff: PolicyDiff;
  readonly datapath: readonly TableChangeCount[];
  readonly warnings: readonly string[];
}

export interface CommitOptions {
  readonly dryRun?: boolean;
  /** Only if the current version is this one (ABORTED otherwise). */
  readonly expectedVersion?: bigint;
  /** Name the request's own fields in validation errors. */
  readonly rewrite?: PathRewrite;
  /** A whole-document change: allowed while the policy is unknown. */
  readonly whole?: boolean;
  /**
   * A record-level change: the records the build touched (read after build() ran). The store
   * may then take the incremental path (records-fast.ts).
   */
  readonly records?: RecordsHint;
}

/** The next document from the current one; throws ApiError to refuse. */
export type Build = (current: PolicyDocument) => unknown;

export interface StoreHooks {
  /** Durable state: must replace the stored policy atomically or throw. */
  persist?(policy: Policy, version: bigint): Promise<void>;
  /** Durable state: remove it (a refused first policy while the previous one was unknown). */
  forget?(): Promise<void>;
  /** Every backend apply (dry runs included), for metrics. */
  onReconcile?(seconds: number, ok: boolean, dryRun: boolean): void;
  /**
   * Durable state of a record-level change (a journal entry instead of the whole document);
   * absent: persist() the whole policy. Same contract as persist.
   */
  persistRecords?(policy: Policy, version: bigint, delta: RecordDelta): Promise<void>;
}

export interface StoreOptions {
  /** Take the incremental path for record-level changes (default true; false: always full). */
  readonly incrementalRecords?: boolean;
}

export interface StoreStatus {
  readonly ready: boolean;
  readonly known: boolean;
  readonly version: bigint;
  readonly lastApplyUnixMs: number;
  readonly lastReconcileSeconds: number;
  readonly lastError: string;
}

export class PolicyStore {
  private current: Policy | undefined;
  private versionNo = 0n;
  private readyFlag = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly watchers = new Set<(change: PolicyChange) => void>();
  private readyWaiters: (() => void)[] = [];
  private lastApplyUnixMs = 0;
  private lastReconcileSeconds = 0;
  private lastError = '';
  /** Indexes of the current document for record-level changes (built when first needed). */
  private recordIndex: RecordIndex | undefined;
  /** Record-level changes by the path they took, for tests and the log. */
  readonly paths = { incremental: 0, full: 0 };

  constructor(
    readonly backend: PolicyBackend,
    private readonly hooks: StoreHooks = {},
    private readonly log: StoreLogger = silentStoreLogger,
    private readonly options: StoreOptions = {},
  ) {}

  /** The record index of the current document, (re)built if it describes another one. */
  private indexOf(policy: Policy): RecordIndex {
    if (this.recordIndex?.policy !== policy) this.recordIndex = RecordIndex.build(policy);
    return this.recordIndex;
  }

  /** The desired policy, or undefined while it is unknown. */
  get policy(): Policy | undefined {
    return this.current;
  }

  get version(): bigint {
    return this.versionNo;
  }

  get known(): boolean {
    return this.current !== undefined;
  }

  get ready(): boolean {
    return this.readyFlag;
  }

  status(): StoreStatus {
    return {
      ready: this.readyFlag,
      known: this.known,
      version: this.versionNo,
      lastApplyUnixMs: this.lastApplyUnixMs,
      lastReconcileSeconds: this.lastReconcileSeconds,
      lastError: this.lastError,
    };
  }

  /** Resolves once the first reconcile has finished. */
  whenReady(): Promise<void> {
    if (this.readyFlag) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /**
   * Startup: adopt the datapath, then reconcile the persisted policy if there is one. Without
   * one the policy is empty when the datapath holds nothing (a first start) and unknown when it
   * holds entries (the state was lost): the datapath is then left exactly as found.
   */
  async initialize(persisted?: { policy: Policy; version: bigint }): Promise<void> {
    const { installed } = await this.backend.start();
    if (persisted !== undefined) {
      // The persisted document is the desired one even if this host cannot apply it right now
      // (an interface is missing): it stays known, the failure is reported in the status, and
      // the next Apply or change retries.
      this.current = persisted.policy;
      this.versionNo = persisted.version;
      try {
        await this.reconcileWith(persisted.policy, false);
        this.lastApplyUnixMs = Date.now();
      } catch (e) {
        this.log.error(
          { version: String(persisted.version), err: e instanceof Error ? e.message : String(e) },
          'the persisted policy could not be applied; keeping it as the desired policy',
        );
      }
    } else if (!installed) {
      this.current = parsePolicy({});
    } else {
      this.log.warn(
        {},
        'no desired policy but the datapath holds entries: keeping them, waiting for a whole-document Apply',
      );
    }
    this.readyFlag = true;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  watch(listener: (change: PolicyChange) => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  /** Reads the current document; FAILED_PRECONDITION while it is unknown. */
  read(): Policy {
    this.requireReady();
    if (this.current === undefined) throw unknownPolicy();
    return this.current;
  }

  private requireReady(): void {
    if (!this.readyFlag) {
      throw new ApiError(Code.UNAVAILABLE, 'the agent has not finished its first reconcile yet');
    }
  }

  /** One change, serialised with every other. */
  commit(method: string, build: Build, opts: CommitOptions = {}): Promise<CommitResult> {
    const run = this.queue.then(() => this.commitNow(method, build, opts));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async reconcileWith(policy: Policy, dryRun: boolean): Promise<BackendApplyResult> {
    const start = performance.now();
    try {
      const result = await this.backend.apply(policy, { dryRun });
      this.noteReconcile(start, true, dryRun);
      return result;
    } catch (e) {
      this.noteReconcile(start, false, dryRun);
      if (!dryRun) this.lastError = e instanceof Error ? e.message : String(e);
      throw e;
    }
  }

  private noteReconcile(start: number, ok: boolean, dryRun: boolean): void {
    const seconds = (performance.now() - start) / 1000;
    if (!dryRun) this.lastReconcileSeconds = seconds;
    this.hooks.onReconcile?.(seconds, ok, dryRun);
  }

  private async commitNow(
    method: string,
    build: Build,
    opts: CommitOptions,
  ): Promise<CommitResult> {
    this.requireReady();
    const dryRun = opts.dryRun === true;
    if (this.current === undefined && !opts.whole) throw unknownPolicy();
    if (opts.expectedVersion !== undefined && opts.expectedVersion !== this.versionNo) {
      throw new ApiError(
        Code.ABORTED,
        `expected_version ${opts.expectedVersion} is not the current version ${this.versionNo}`,
      );
    }
    const before = this.current;
    // Where a change's time goes (for the "policy changed" log line only).
    const t0 = performance.now();
    const next = build(before ?? parsePolicy({}));
    const t1 = performance.now();
    let policy: Policy;
    let diff: PolicyDiff;
    let delta: RecordDelta | undefined;
    let commitIndex: (() => void) | undefined;
    let path: 'incremental' | 'full' = 'full';
    let fallbackReason: string | undefined;
    try {
      const hint = opts.records;
      const incremental =
        before !== undefined && !dryRun && this.options.incrementalRecords !== false;
      const fast = !incremental
        ? undefined
        : hint !== undefined
          ? fastRecordChange(this.indexOf(before), next, hint)
          : recordsOnly(before, next)
            ? fastDocumentChange(this.indexOf(before), next)
            : undefined;
      if (fast?.kind === 'ok') {
        ({ policy, diff, delta, commitIndex } = fast);
        path = 'incremental';
      } else {
        fallbackReason = fast?.reason;
        policy = parsePolicy(next);
      }
    } catch (e) {
      if (e instanceof PolicyError) throw policyRejected(e, opts.rewrite);
      throw e;
    }
    const t2 = performance.now();
    if (path === 'full') diff = diffPolicies(before, policy);
    const changed = before === undefined || !isEmptyDiff(diff!);
    if (path === 'incremental' && !changed && opts.records !== undefined) {
      // Same content: keep the very document the backend holds (applyRecords checks its base).
      policy = before as Policy;
      commitIndex = undefined;
    }
    const t3 = performance.now();

    if (dryRun) {
      let result: BackendApplyResult;
      try {
        result = await this.reconcileWith(policy, true);
      } catch (e) {
        throw this.refused(method, e);
      }
      return {
        policy,
        version: this.versionNo,
        dryRun,
        changed,
        diff: diff!,
        datapath: result.tables,
        warnings: [],
      };
    }
    const version = changed ? this.versionNo + 1n : this.versionNo;
    const persisting = changed && this.hooks.persist !== undefined;
    if (persisting) {
      try {
        if (delta !== undefined && this.hooks.persistRecords !== undefined)
          await this.hooks.persistRecords(policy, version, delta);
        else await this.hooks.persist?.(policy, version);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        this.log.error({ method, err: message }, 'persisting the policy failed; nothing applied');
        throw new ApiError(Code.UNAVAILABLE, `cannot persist the policy: ${message}`);
      }
    }
    const t4 = performance.now();
    let result: BackendApplyResult;
    try {
      // Also an empty delta: the backend then takes `policy` as its base for the next change
      // (a reordered document is a new document with the same tables).
      result =
        delta !== undefined && this.backend.applyRecords !== undefined
          ? await this.applyRecordsWith(policy, delta, before as Policy)
          : await this.reconcileWith(policy, false);
    } catch (e) {
      const err = this.refused(method, e);
      if (persisting) await this.restoreState(before);
      throw err;
    }
    const t5 = performance.now();
    this.current = policy;
    this.versionNo = version;
    commitIndex?.();
    if (opts.records !== undefined || path === 'incremental') this.paths[path]++;
    this.lastApplyUnixMs = Date.now();
    this.lastError = '';
    for (const w of result.warnings) this.log.warn({ method }, w);
    if (changed) {
      this.log.info(
        {
          method,
          version: String(version),
          diff: summarizeDiff(diff!),
          path,
          ...(fallbackReason === undefined ? {} : { fullBecause: fallbackReason }),
          timingMs: {
            build: round(t1 - t0),
            validate: round(t2 - t1),
            diff: round(t3 - t2),
            persist: round(t4 - t3),
            reconcile: round(t5 - t4),
          },
        },
        'policy changed',
      );
      const change: PolicyChange = {
        version,
        method,
        diff: diff!,
        timeUnixMs: this.lastApplyUnixMs,
      };
      for (const w of [...this.watchers]) {
        try {
          w(change);
        } catch (e) {
          this.log.warn({ err: String(e) }, 'a watcher failed');
        }
      }
    }
    return {
      policy,
      version,
      dryRun,
      changed,
      diff: diff!,
      datapath: result.tables,
      warnings: result.warnings,
    };
  }

  private async applyRecordsWith(
    policy: Policy,
    delta: RecordDelta,
    base: Policy,
  ): Promise<BackendApplyResult> {
    const start = performance.now();
    try {
      const result = await (
        this.backend.applyRecords as NonNullable<PolicyBackend['applyRecords']>
      ).call(this.backend, policy, delta, base);
      this.noteReconcile(start, true, false);
      return result;
    } catch (e) {
      this.noteReconcile(start, false, false);
      this.lastError = e instanceof Error ? e.message : String(e);
      throw e;
    }
  }

  private refused(method: string, e: unknown): ApiError {
    const err = classifyBackendError(e);
    this.log.warn(
      { method, code: Code[err.code], err: err.message },
      'datapath refused the policy',
    );
    return err;
  }

  /** Puts the durable state back as it was before a change the datapath refused. */
  private async restoreState(before: Policy | undefined): Promise<void> {
    try {
      if (before !== undefined) await this.hooks.persist?.(before, this.versionNo);
      else await this.hooks.forget?.();
    } catch (e) {
      this.log.error(
        { err: e instanceof Error ? e.message : String(e) },
        'restoring the state file after a refused change failed; it holds the refused policy',
      );
    }
  }
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

/** A whole-document change whose lookup records are a new list (worth trying the fast path). */
function recordsOnly(before: Policy, next: unknown): boolean {
  if (next === null || typeof next !== 'object') return false;
  const list = (next as { lookupRecords?: unknown }).lookupRecords;
  return Array.isArray(list) && list !== before.lookupRecords && before.lookupRecords.length > 0;
}

function unknownPolicy(): ApiError {
  return new ApiError(
    Code.FAILED_PRECONDITION,
    'the desired policy is unknown (the state file was lost or quarantined); the datapath keeps what it has until a whole-document Apply',
  );
}
