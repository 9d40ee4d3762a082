// The shape of the QoS parts of the policy document (uplinks, portQos): types, ranges and unknown
// fields. Rates must be positive (zero and negative rates are refused here with the field's
// path); rules relating fields to each other and to the rest of the document are in
// validate-qos.ts. The name and interface-name checks mirror schema.ts's.

import { z } from 'zod';
import { parsePrefix } from './addr.js';
import { IFNAME_MAX } from './model.js';

/** Highest rate tenet accepts, in Mbit/s (1 Tbit/s): keeps the datapath's arithmetic exact. */
export const QOS_MBPS_MAX = 1_000_000;
/** Smallest burst: a 64 KiB GSO packet must fit in a full bucket, or it could never pass. */
export const QOS_BURST_KIB_MIN = 64;
export const QOS_BURST_KIB_MAX = 1_048_576;
export const QOS_WEIGHT_MAX = 100;
/** Destination classes per port (each is an HTB leaf class; see compiler/qos.ts). */
export const QOS_CLASS_CAPS_MAX = 12;

const name = z.string().superRefine((s, ctx) => {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(s)) {
    ctx.addIssue(
      `${JSON.stringify(s)} is not a valid name (1..63 letters, digits, '_', '.', '-', starting with a letter or digit)`,
    );
  }
});

const ifname = z.string().superRefine((s, ctx) => {
  if (s.length === 0) ctx.addIssue('an interface name cannot be empty');
  else if (s.length > IFNAME_MAX) {
    ctx.addIssue(`${JSON.stringify(s)} is ${s.length} characters; at most ${IFNAME_MAX}`);
  } else if (s === '.' || s === '..' || /[/:\s]/.test(s)) {
    ctx.addIssue(`${JSON.stringify(s)} is not a valid Linux interface name`);
  }
});

const prefix = z.string().transform((text, ctx) => {
  const parsed = parsePrefix(text);
  if (parsed.ok) return parsed.value.text;
  ctx.addIssue(parsed.message);
  return z.NEVER;
});

/** A rate in Mbit/s: a number > 0 (fractions allowed), at most QOS_MBPS_MAX. */
const mbps = z.number().superRefine((n, ctx) => {
  if (!Number.isFinite(n)) ctx.addIssue(`${n} is not a rate`);
  else if (n <= 0) ctx.addIssue(`${n} is not a rate: Mbit/s must be above 0`);
  else if (n > QOS_MBPS_MAX) ctx.addIssue(`${n} is above ${QOS_MBPS_MAX} Mbit/s`);
  else if (n * 1e6 < 8) ctx.addIssue(`${n} Mbit/s is below one byte per second`);
});

function intIn(min: number, max: number, what: string) {
  return z
    .number()
    .int()
    .superRefine((n, ctx) => {
      if (n < min || n > max) ctx.addIssue(`${n} is outside ${min}..${max} (${what})`);
    });
}

const rateCap = z.strictObject({
  mbps,
  burstKiB: intIn(QOS_BURST_KIB_MIN, QOS_BURST_KIB_MAX, 'KiB').optional(),
});

const minimum = z.strictObject({
  weight: intIn(1, QOS_WEIGHT_MAX, 'weight').optional(),
  mbps: mbps.optional(),
});

const classCap = z.strictObject({
  name,
  remotePrefixes: z.array(prefix).min(1),
  mbps,
});

export const portQosSchema = z.strictObject({
  port: name,
  maximum: z.strictObject({ outbound: rateCap.optional(), inbound: rateCap.optional() }).optional(),
  minimum: minimum.optional(),
  classCaps: z.array(classCap).max(QOS_CLASS_CAPS_MAX).optional(),
});

export const uplinkSchema = z.strictObject({
  host: name,
  interface: ifname,
  capacityMbps: mbps,
  defaultBucket: minimum.optional(),
});

export const tenantQosSchema = z.strictObject({
  routingDomain: name,
  classCaps: z
    .array(
      z.strictObject({
        name,
        remotePrefixes: z.array(prefix).min(1),
        mbps,
        burstKiB: intIn(QOS_BURST_KIB_MIN, QOS_BURST_KIB_MAX, 'KiB').optional(),
      }),
    )
    .min(1),
});
