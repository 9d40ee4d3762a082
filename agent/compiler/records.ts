// One lookup record's map entry (key and value of tenet_records): what compile() writes for every
// record of the policy, and what the API's incremental path (agent/api/records-fast.ts) writes
// for the records a change touches, so both produce the same bytes.

import { addr16, ipOf, ipv4ToNumber, macBytes, type LookupRecord } from '../policy/index.js';
import { Family, RecordFlags, type KeyOf, type ValueOf } from './tables.js';

export function recordKey(rec: { readonly vsid: number; readonly ca: string }): KeyOf<'records'> {
  const addr = ipOf(rec.ca);
  return {
    vsid: rec.vsid,
    family: addr.family === 4 ? Family.ipv4 : Family.ipv6,
    addr: addr16(addr),
  };
}

/** The record's value: LOCAL with the port's ifindex when the CA is a port of this host. */
export function recordValue(rec: LookupRecord, localIfindex?: number): ValueOf<'records'> {
  return {
    mac: macBytes(rec.mac),
    flags: localIfindex === undefined ? 0 : RecordFlags.local,
    pa: ipv4ToNumber(ipOf(rec.pa)),
    ifindex: localIfindex ?? 0,
  };
}
