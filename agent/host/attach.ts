// Where tenet's programs run, and keeping them attached across agent restarts.
//
// A small table (ATTACHMENTS) says which program of which object goes on which hook of which kind
// of interface: the phys-NIC XDP program on every NIC that owns a local provider address, the
// VM-port tc programs on every local VM port. New datapath programs are one row more.
//
// Every attachment is a BPF link pinned under <pinRoot>/links/<ifname>:<program>, so it survives
// the agent; a restarted agent finds it there and adopts it (same link id) instead of attaching
// again. tc uses tcx links; on kernels without tcx (< 6.6) it falls back to a netlink cls_bpf
// filter at a fixed handle and priority, and pins the program at the same path as the marker that
// the attachment is ours (a program pin, not a link pin, tells the two apart).
//
// An adopted attachment whose program differs from the one just loaded (a new object file: its tag
// differs; or the same file loaded with other load-time knobs, e.g. drop events turned on: the tag
// is the same but the '.rodata' differs, see agent/bpf/knobs.ts programIdentity; or a program
// bound to another instance of a pinned map, e.g. a lookup-records map resized by
// agent/host/capacity.ts) is upgraded in place with an atomic link update, so the datapath never
// has a gap. One
// whose interface has gone (the link is defunct) or was replaced by a new interface of the same
// name is dropped and made again.

import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Maps, Objects } from '../abi/generated.js';
import type { ObjectName } from '../datapath/objects.js';
import {
  AttachType,
  BpfLink,
  BpfProgram,
  LinkType,
  isBpfError,
  isTcxUnsupported,
  programIdentity,
  programIdentityById,
  tcAttach,
  tcDetach,
  tcQuery,
  tcxLinkAttach,
  BpfMap,
  xdpLinkAttach,
  xdpQuery,
  type TcDirection,
  type XdpMode,
} from '../bpf/index.js';
import { errFields, silentLogger, type Logger } from './log.js';

export type Hook = 'xdp' | 'tc-ingress' | 'tc-egress';

/** Which interfaces of the host a program goes on. */
export type AttachRole =
  /** Physical NICs (or VFs) that own a local provider address. */
  | 'pa-nic'
  /** Host-side VM ports of this host. */
  | 'vm-port';

export interface AttachSpec {
  readonly object: ObjectName;
  /** Program name in the object (agent/abi/generated.ts Objects[object].programs). */
  readonly program: string;
  readonly hook: Hook;
  readonly role: AttachRole;
}

/**
 * Candidates per (role, hook), most preferred first: the first whose object and program exist in
 * the generated Objects is used. This lets the table follow the datapath as programs land (the
 * VM-port ingress moves from tenet_tc's tenet_tc_rx to tenet_port's tenet_port_ingress).
 */
export const ATTACHMENT_CANDIDATES: ReadonlyArray<{
  readonly role: AttachRole;
  readonly hook: Hook;
  readonly choices: ReadonlyArray<readonly [object: string, program: string]>;
}> = [
  { role: 'pa-nic', hook: 'xdp', choices: [['tenet_xdp', 'tenet_xdp_rx']] },
  {
    role: 'vm-port',
    hook: 'tc-ingress',
    choices: [
      ['tenet_port', 'tenet_port_ingress'],
      ['tenet_tc', 'tenet_tc_rx'],
    ],
  },
  { role: 'vm-port', hook: 'tc-egress', choices: [['tenet_tc', 'tenet_tc_tx']] },
];

function hasProgram(object: string, program: string): object is ObjectName {
  if (!Object.hasOwn(Objects, object)) return false;
  return Object.hasOwn(Objects[object as ObjectName].programs, program);
}

/** Resolves ATTACHMENT_CANDIDATES against the objects this build has. */
export function defaultAttachments(): AttachSpec[] {
  const out: AttachSpec[] = [];
  for (const c of ATTACHMENT_CANDIDATES) {
    const found = c.choices.find(([o, p]) => hasProgram(o, p));
    if (found === undefined) continue;
    out.push({ object: found[0] as ObjectName, program: found[1], hook: c.hook, role: c.role });
  }
  return out;
}

/** The product's attachments (see ATTACHMENT_CANDIDATES). */
export const ATTACHMENTS: readonly AttachSpec[] = defaultAttachments();

/** netlink tc fallback: our filters' handle and the priority base (+ index in the table). */
export const TC_FALLBACK_HANDLE = 0x7e7e;
export const TC_FALLBACK_PRIORITY_BASE = 0x7e00;

/** One program on one interface, as wanted by the policy. */
export interface DesiredAttachment {
  readonly spec: AttachSpec;
  readonly ifname: string;
  readonly ifindex: number;
  readonly prog: BpfProgram;
}

/** One attachment as found in the kernel. */
export interface AttachmentInfo {
  /** Pin file name (pinName): `<ifname>:<program>`. */
  readonly name: string;
  readonly ifname: string;
  readonly program: string;
  readonly kind: 'link' | 'netlink';
  /** Link id (kind 'link'). */
  readonly linkId?: number;
  readonly progId: number;
  /** 0 when the interface is gone (a defunct link), and for netlink filters (not tracked). */
  readonly ifindex: number;
  /** BPF_LINK_TYPE_* (kind 'link'). */
  readonly linkType?: number;
}

export interface EnsureResult {
  /** Attached now (pin names). */
  readonly created: string[];
  /** Adopted and upgraded to the loaded program (atomic link update). */
  readonly updated: string[];
  /** Adopted as they were. */
  readonly kept: string[];
}

export interface AttachmentsOptions {
  pinRoot: string;
  /** Network namespace path of the interfaces (absent: the agent's own). */
  netns?: string;
  logger?: Logger;
  /** XDP mode; 'auto' (default) lets the kernel use the driver's XDP where it has one. */
  xdpMode?: XdpMode;
  /** Use tcx links for tc (default true); false forces the netlink fallback. */
  preferTcx?: boolean;
  /** The table (default ATTACHMENTS), used to find a fallback filter's direction and priority. */
  specs?: readonly AttachSpec[];
}

/**
 * Pin file name of one attachment: `<ifname>:<program>`. bpffs refuses dots in names (they are
 * reserved for the kernel), and interface names may have them (`eth0.100`), so `%` and `.` of the
 * interface name are percent-encoded; interface names cannot contain `:`, program names are C
 * identifiers.
 */
export function pinName(ifname: string, program: string): string {
  return `${ifname.replace(/%/g, '%25').replace(/\./g, '%2e')}:${program}`;
}

/** The inverse of pinName; undefined for a name that is not one. */
export function parsePinName(name: string): { ifname: string; program: string } | undefined {
  const colon = name.indexOf(':');
  if (colon <= 0 || colon === name.length - 1) return undefined;
  const ifname = name.slice(0, colon).replace(/%2e/gi, '.').replace(/%25/g, '%');
  return { ifname, program: name.slice(colon + 1) };
}

const direction = (hook: Hook): TcDirection => (hook === 'tc-egress' ? 'egress' : 'ingress');

/**
 * True when the attached program (by id) is the loaded one or behaves exactly like it: same tag
 * AND same '.rodata' (load-time knobs). Comparing tags alone would keep a program loaded with
 * other knobs: the kernel's tag does not cover .rodata (agent/bpf/knobs.ts).
 */
function sameProgram(attachedId: number, loaded: BpfProgram): boolean {
  if (attachedId === loaded.info().id) return true;
  const attached = programIdentityById(attachedId);
  if (attached === undefined) return false;
  let mine = loadedIdentity.get(loaded);
  if (mine === undefined) {
    mine = `${programIdentity(loaded)}/${pinnedMapIds(loaded.info().mapIds)}`;
    loadedIdentity.set(loaded, mine);
  }
  const theirs = withProgram(attachedId, (p) => pinnedMapIds(p.info().mapIds));
  return `${attached}/${theirs}` === mine;
}

/** Kernel object names of the maps pinned by name (the shared ones, not .rodata and friends). */
const PINNED_MAP_NAMES = new Set(
  Object.values(Maps)
    .filter((d) => d.pinning === 'by_name')
    .map((d) => d.name.slice(0, 15)),
);

/**
 * "name=id" of the pinned maps a program uses: two programs with the same tag and knobs but bound
 * to different instances of a pinned map (the old and the resized records map) differ here.
 */
function pinnedMapIds(ids: readonly number[]): string {
  const out: string[] = [];
  for (const id of ids) {
    let map: BpfMap;
    try {
      map = BpfMap.fromId(id);
    } catch {
      continue;
    }
    try {
      const name = map.info().name;
      if (PINNED_MAP_NAMES.has(name)) out.push(`${name}=${id}`);
    } finally {
      map.close();
    }
  }
  return out.sort().join(',');
}

function withProgram<T>(id: number, f: (p: BpfProgram) => T): T | undefined {
  let prog: BpfProgram;
  try {
    prog = BpfProgram.fromId(id);
  } catch {
    return undefined;
  }
  try {
    return f(prog);
  } finally {
    prog.close();
  }
}

/** The identity of each program this agent loaded (one per program, many attachments each). */
const loadedIdentity = new WeakMap<BpfProgram, string>();

function withLink<T>(path: string, f: (link: BpfLink) => T): T {
  const link = BpfLink.openPinned(path);
  try {
    return f(link);
  } finally {
    link.close();
  }
}

function unpinQuietly(path: string): void {
  try {
    BpfLink.unpin(path);
  } catch (e) {
    if (!isBpfError(e, 'ENOENT')) throw e;
  }
}

/** The attachments pinned under <pinRoot>/links/. */
export class Attachments {
  readonly dir: string;
  readonly ops = { created: 0, updated: 0, removed: 0 };
  private readonly netns: string | undefined;
  private readonly log: Logger;
  private readonly xdpMode: XdpMode;
  private readonly preferTcx: boolean;
  private readonly specs: readonly AttachSpec[];

  constructor(opts: AttachmentsOptions) {
    this.dir = join(opts.pinRoot, 'links');
    this.netns = opts.netns;
    this.log = opts.logger ?? silentLogger;
    this.xdpMode = opts.xdpMode ?? 'auto';
    this.preferTcx = opts.preferTcx ?? true;
    this.specs = opts.specs ?? ATTACHMENTS;
  }

  private target(ifindex: number): { ifindex: number; netns?: string } {
    return this.netns === undefined ? { ifindex } : { ifindex, netns: this.netns };
  }

  /** Where the netlink fallback puts a spec's filter (fixed, so a restart finds it). */
  private tcFilter(spec: AttachSpec): { direction: TcDirection; handle: number; priority: number } {
    const index = Math.max(0, this.specs.indexOf(spec));
    return {
      direction: direction(spec.hook),
      handle: TC_FALLBACK_HANDLE,
      priority: TC_FALLBACK_PRIORITY_BASE + index,
    };
  }

  private specOf(program: string): AttachSpec | undefined {
    return this.specs.find((s) => s.program === program);
  }

  /** Pin names under links/. */
  names(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir).sort();
  }

  /** What every pin under links/ is attached to now. */
  list(): AttachmentInfo[] {
    const out: AttachmentInfo[] = [];
    for (const name of this.names()) {
      const parsed = parsePinName(name);
      if (parsed === undefined) continue;
      const info = this.inspect(name, parsed.ifname, parsed.program);
      if (info !== undefined) out.push(info);
    }
    return out;
  }

  private inspect(name: string, ifname: string, program: string): AttachmentInfo | undefined {
    const path = join(this.dir, name);
    try {
      return withLink(path, (link) => {
        const i = link.info();
        return {
          name,
          ifname,
          program,
          kind: 'link' as const,
          linkId: i.id,
          progId: i.progId,
          ifindex: i.ifindex ?? 0,
          linkType: i.type,
        };
      });
    } catch (e) {
      if (!isBpfError(e, 'EINVAL')) throw e;
    }
    // A program pin: the marker of a netlink tc filter.
    let prog: BpfProgram;
    try {
      prog = BpfProgram.openPinned(path);
    } catch (e) {
      if (!isBpfError(e, 'EINVAL')) throw e;
      this.log.warn(
        { attachment: name },
        'links/ holds a pin that is neither a link nor a program',
      );
      return undefined;
    }
    try {
      return { name, ifname, program, kind: 'netlink', progId: prog.info().id, ifindex: 0 };
    } finally {
      prog.close();
    }
  }

  /**
   * Makes every desired attachment exist, adopting what is pinned. On failure, what this call
   * attached is detached again before the error is thrown (adopted attachments are left alone).
   */
  ensure(desired: readonly DesiredAttachment[]): EnsureResult {
    mkdirSync(this.dir, { recursive: true });
    const result: EnsureResult = { created: [], updated: [], kept: [] };
    try {
      for (const d of desired) {
        const name = pinName(d.ifname, d.spec.program);
        const outcome = this.ensureOne(d, name);
        result[outcome].push(name);
      }
    } catch (e) {
      this.remove(result.created);
      throw e;
    }
    return result;
  }

  private ensureOne(d: DesiredAttachment, name: string): keyof EnsureResult {
    const path = join(this.dir, name);
    if (existsSync(path)) {
      const adopted = this.adopt(d, name, path);
      if (adopted !== undefined) return adopted;
    }
    this.create(d, name, path);
    return 'created';
  }

  /** An existing pin: keep it, upgrade it, or drop it (undefined: attach anew). */
  private adopt(d: DesiredAttachment, name: string, path: string): 'kept' | 'updated' | undefined {
    let link: BpfLink | undefined;
    try {
      link = BpfLink.openPinned(path);
    } catch (e) {
      if (!isBpfError(e, 'EINVAL')) throw e;
      return this.adoptNetlink(d, name, path);
    }
    try {
      const info = link.info();
      const hookOk =
        d.spec.hook === 'xdp'
          ? info.type === LinkType.XDP
          : info.type === LinkType.TCX &&
            info.attachType ===
              (d.spec.hook === 'tc-ingress' ? AttachType.TCX_INGRESS : AttachType.TCX_EGRESS);
      if (info.ifindex !== d.ifindex || !hookOk) {
        // Defunct (its interface is gone) or on another interface now named differently.
        if (info.ifindex) link.detach();
        unpinQuietly(path);
        this.ops.removed++;
        this.log.info(
          { attachment: name, linkId: info.id, ifindex: info.ifindex ?? 0, wanted: d.ifindex },
          'dropped a stale attachment',
        );
        return undefined;
      }
      const want = d.prog.info();
      if (sameProgram(info.progId, d.prog)) return 'kept';
      const old = BpfProgram.fromId(info.progId);
      try {
        link.update(d.prog, { oldProg: old });
      } finally {
        old.close();
      }
      this.ops.updated++;
      this.log.info(
        { attachment: name, linkId: info.id, fromProg: info.progId, toProg: want.id },
        'upgraded an attachment to the loaded program',
      );
      return 'updated';
    } finally {
      link.close();
    }
  }

  private adoptNetlink(
    d: DesiredAttachment,
    name: string,
    path: string,
  ): 'kept' | 'updated' | undefined {
    const id = { ...this.target(d.ifindex), ...this.tcFilter(d.spec) };
    const found = d.spec.hook === 'xdp' ? null : tcQuery(id);
    if (found === null) {
      unpinQuietly(path);
      return undefined;
    }
    const want = d.prog.info();
    if (sameProgram(found.progId, d.prog)) return 'kept';
    tcAttach({ ...id, prog: d.prog, replace: true });
    unpinQuietly(path);
    d.prog.pin(path);
    this.ops.updated++;
    this.log.info({ attachment: name, toProg: want.id }, 'upgraded a netlink tc filter');
    return 'updated';
  }

  private attachXdp(d: DesiredAttachment, name: string): BpfLink {
    const target = this.target(d.ifindex);
    try {
      return this.warnIfGeneric(d, xdpLinkAttach(d.prog, { ...target, mode: this.xdpMode }));
    } catch (e) {
      if (!isBpfError(e, 'EBUSY') && !isBpfError(e, 'EEXIST')) throw e;
      // Ours under another name (the program was renamed)? Take it over atomically.
      const mine = this.list().find(
        (a) => a.kind === 'link' && a.linkType === LinkType.XDP && a.ifindex === d.ifindex,
      );
      if (mine === undefined) {
        throw new Error(
          `cannot attach ${d.spec.program} to ${d.ifname}: another XDP program is attached ` +
            `(prog id ${xdpQuery(target).progId}) and it is not tenet's; detach it first`,
          { cause: e },
        );
      }
      const link = BpfLink.openPinned(join(this.dir, mine.name));
      try {
        link.update(d.prog);
        unpinQuietly(join(this.dir, mine.name));
        this.log.info({ attachment: name, from: mine.name }, 'took over our XDP link');
        return link;
      } catch (e2) {
        link.close();
        throw e2;
      }
    }
  }

  /**
   * 'auto' takes the driver's XDP where the driver has it and falls back to generic (skb) mode
   * otherwise: everything still works (steering's cpumap hand-off included), but every frame pays
   * for an skb first, so say so.
   */
  private warnIfGeneric(d: DesiredAttachment, link: BpfLink): BpfLink {
    if (this.xdpMode !== 'auto') return link;
    try {
      const mode = xdpQuery(this.target(d.ifindex)).mode;
      if (mode === 'generic') {
        this.log.warn(
          { interface: d.ifname, program: d.spec.program },
          'the driver has no native XDP: attached in generic (skb) mode, which is slower',
        );
      }
    } catch (e) {
      this.log.debug({ interface: d.ifname, ...errFields(e) }, 'could not query the XDP mode');
    }
    return link;
  }

  private create(d: DesiredAttachment, name: string, path: string): void {
    const target = this.target(d.ifindex);
    let link: BpfLink;
    if (d.spec.hook === 'xdp') {
      link = this.attachXdp(d, name);
    } else {
      const dir = direction(d.spec.hook);
      let tcx: BpfLink | undefined;
      if (this.preferTcx) {
        try {
          tcx = tcxLinkAttach(d.prog, { ...target, direction: dir });
        } catch (e) {
          if (!isTcxUnsupported(e)) throw e;
          this.log.warn({ attachment: name }, 'the kernel has no tcx: using a netlink tc filter');
        }
      }
      if (tcx === undefined) {
        const id = { ...target, ...this.tcFilter(d.spec) };
        tcAttach({ ...id, prog: d.prog, replace: tcQuery(id) !== null });
        d.prog.pin(path);
        this.ops.created++;
        this.log.info(
          { attachment: name, ifindex: d.ifindex, kind: 'netlink', priority: id.priority },
          'attached',
        );
        return;
      }
      link = tcx;
    }
    try {
      link.pin(path);
      const info = link.info();
      this.ops.created++;
      this.log.info(
        { attachment: name, ifindex: d.ifindex, linkId: info.id, progId: info.progId },
        'attached',
      );
    } catch (e) {
      link.detach();
      throw e;
    } finally {
      link.close();
    }
  }

  /** Detaches and unpins every attachment whose name is not in `keep`. Returns the names. */
  removeExcept(keep: ReadonlySet<string>): string[] {
    return this.remove(this.names().filter((n) => !keep.has(n)));
  }

  /** Detaches and unpins the named attachments (missing ones are skipped). */
  remove(names: readonly string[]): string[] {
    const removed: string[] = [];
    for (const name of names) {
      const path = join(this.dir, name);
      if (!existsSync(path)) continue;
      try {
        this.removeOne(name, path);
        removed.push(name);
        this.ops.removed++;
      } catch (e) {
        this.log.error({ attachment: name, ...errFields(e) }, 'detaching failed');
        throw e;
      }
    }
    return removed;
  }

  private removeOne(name: string, path: string): void {
    let link: BpfLink | undefined;
    try {
      link = BpfLink.openPinned(path);
    } catch (e) {
      if (!isBpfError(e, 'EINVAL')) throw e;
    }
    if (link !== undefined) {
      try {
        const info = link.info();
        if (info.ifindex) link.detach();
        this.log.info({ attachment: name, linkId: info.id }, 'detached');
      } finally {
        link.close();
      }
      unpinQuietly(path);
      return;
    }
    // A netlink filter: remove it if its interface still exists, then the marker.
    const parsed = parsePinName(name);
    const spec = parsed === undefined ? undefined : this.specOf(parsed.program);
    if (parsed !== undefined && spec !== undefined && spec.hook !== 'xdp') {
      const where = this.netns === undefined ? {} : { netns: this.netns };
      const target = { ...where, ifname: parsed.ifname, ...this.tcFilter(spec) };
      try {
        tcDetach(target);
      } catch (e) {
        if (!isBpfError(e, 'ENOENT') && !isBpfError(e, 'ENODEV') && !isBpfError(e, 'EINVAL')) {
          throw e;
        }
      }
      this.log.info({ attachment: name, kind: 'netlink' }, 'detached');
    } else {
      this.log.warn({ attachment: name }, 'unknown netlink attachment marker removed');
    }
    unpinQuietly(path);
  }
}
