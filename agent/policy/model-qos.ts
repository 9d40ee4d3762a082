// QoS in the policy document: uplinks (a physical NIC's capacity and the default flow bucket's
// share) and per-port caps and minimums. The model follows Hyper-V's: MaximumBandwidth per port
// (here per direction, with a burst), MinimumBandwidthWeight or MinimumBandwidthAbsolute per port
// against the uplink's capacity (one mode per uplink), and a default flow bucket shared by the
// ports that have no reservation. Destination classes (`classCaps`) cap a port's traffic to a set
// of remote prefixes, such as the internet. See docs/qos.md.

/** A rate cap: megabits per second (> 0, fractions allowed) and an optional burst. */
export interface RateCap {
  readonly mbps: number;
  /** Bytes the cap lets through at line rate after an idle time, in KiB (>= 64). */
  readonly burstKiB?: number;
}

/** A reservation on the uplink: a weight (1..100) or an absolute rate, never both. */
export interface MinimumBandwidth {
  readonly weight?: number;
  readonly mbps?: number;
}

/** A cap on a port's outbound traffic to a destination class (remote prefixes). */
export interface ClassCap {
  readonly name: string;
  readonly remotePrefixes: readonly string[];
  readonly mbps: number;
}

export interface PortQos {
  /** A port's name (ports[].name). */
  readonly port: string;
  readonly maximum?: { readonly outbound?: RateCap; readonly inbound?: RateCap };
  readonly minimum?: MinimumBandwidth;
  readonly classCaps?: readonly ClassCap[];
}

/** A physical NIC that carries VM traffic, with its capacity for sharing. */
export interface Uplink {
  readonly host: string;
  /** The NIC (a provider address's interface on that host). */
  readonly interface: string;
  readonly capacityMbps: number;
  /**
   * The share of the ports without a reservation: a weight in weight mode, an absolute rate in
   * absolute mode. Default: weight 1, or in absolute mode what the reservations leave (at least
   * 1% of capacity).
   */
  readonly defaultBucket?: MinimumBandwidth;
}

/** A cap on a destination class shared by all ports of a tenant (policed). */
export interface TenantClassCap {
  readonly name: string;
  readonly remotePrefixes: readonly string[];
  readonly mbps: number;
  readonly burstKiB?: number;
}

/** Caps of one tenant (routing domain) on destination classes, over all its ports of a host. */
export interface TenantQos {
  readonly routingDomain: string;
  readonly classCaps: readonly TenantClassCap[];
}
