// The reference model of the QoS stage (bpf/lib/qos.h): which HTB class a VM's packet is given
// (skb->priority) and what the GCRA policer admits. Pure functions over the QoS map contents;
// the datapath tests compare the programs with them.

export interface QosModelPort {
  readonly classid: number;
  readonly flags: number;
}

export interface QosModelClass {
  /** Remote prefix: family, network bytes (4 or 16), length. */
  readonly family: 4 | 6;
  readonly addr: Uint8Array;
  readonly length: number;
  readonly classid: number;
}

export interface QosModelTables {
  /** tenet_qos_ports: ifindex -> classid and flags. */
  readonly ports: ReadonlyMap<number, QosModelPort>;
  /** tenet_qos_cls: per port ifindex, its destination classes. */
  readonly classes: ReadonlyMap<number, readonly QosModelClass[]>;
}

const QOS_PORT_CLASSES = 1;

function matches(c: QosModelClass, family: 4 | 6, addr: Uint8Array): boolean {
  if (c.family !== family) return false;
  for (let bit = 0; bit < c.length; bit++) {
    const mask = 0x80 >> bit % 8;
    if (((c.addr[bit >> 3] ?? 0) & mask) !== ((addr[bit >> 3] ?? 0) & mask)) return false;
  }
  return true;
}

/**
 * skb->priority after the QoS stage for a packet from port `ifindex` to `daddr`: the longest
 * matching destination class's leaf if the port has classes, else the port's leaf; `priority`
 * (unchanged) for a port without QoS or with classid 0.
 */
export function qosPriority(
  t: QosModelTables,
  ifindex: number,
  family: 4 | 6,
  daddr: Uint8Array,
  priority: number,
): number {
  const p = t.ports.get(ifindex);
  if (p === undefined || p.classid === 0) return priority;
  if ((p.flags & QOS_PORT_CLASSES) === 0) return p.classid;
  let best: QosModelClass | undefined;
  for (const c of t.classes.get(ifindex) ?? []) {
    if (matches(c, family, daddr) && (best === undefined || c.length > best.length)) best = c;
  }
  return best !== undefined && best.classid !== 0 ? best.classid : p.classid;
}

const NS = 1_000_000_000n;

/**
 * GCRA (the policer's arithmetic, exactly): state is the theoretical arrival time. Returns the
 * new state and whether a packet of `len` IP bytes at `nowNs` conforms to `bytesPerSec` with
 * `burstBytes`.
 */
export function gcra(
  tatNs: bigint,
  nowNs: bigint,
  len: number,
  bytesPerSec: bigint,
  burstBytes: bigint,
): { admit: boolean; tatNs: bigint } {
  const tau = (burstBytes * NS) / bytesPerSec;
  const inc = (BigInt(len) * NS + bytesPerSec - 1n) / bytesPerSec;
  const next = (tatNs > nowNs ? tatNs : nowNs) + inc;
  if (next > nowNs + tau) return { admit: false, tatNs };
  return { admit: true, tatNs: next };
}
