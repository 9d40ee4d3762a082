// Rules that relate the fields of port ACLs to each other and to the rest of the document: the
// port exists, one ACL per port, rule names unique within it, and each rule's fields make sense
// together for its action (meter rules count by remote prefix only; ports need TCP or UDP;
// statefulness and idle timeouts belong to allow rules). Capacity limits (rules per port, rules
// per host) are the compiler's: they depend on the host the ACL lands on.

import { prefixOf } from './addr.js';
import type { PolicyIssue } from './errors.js';
import type { AclRule, PolicyDocument } from './model.js';

const PORTED_PROTOCOLS = new Set([6, 17]);

function ruleIssues(rule: AclRule, path: string, report: (p: string, m: string) => void): void {
  if (rule.action === 'meter') {
    if (rule.meteringClass === undefined) {
      report(`${path}.meteringClass`, 'is required for a meter rule');
    }
    if (rule.remotePrefix === undefined) {
      report(
        `${path}.remotePrefix`,
        'is required for a meter rule (metering classes are remote prefixes)',
      );
    }
    for (const field of [
      'weight',
      'protocol',
      'localPrefix',
      'remoteMac',
      'localPorts',
      'remotePorts',
      'stateful',
      'idleTimeoutSeconds',
      'isolationVsid',
    ] as const) {
      if (rule[field] !== undefined) report(`${path}.${field}`, 'is not allowed on a meter rule');
    }
    return;
  }
  if (rule.meteringClass !== undefined) {
    report(`${path}.meteringClass`, `is only allowed on a meter rule, not on ${rule.action}`);
  }
  if (rule.localPorts !== undefined || rule.remotePorts !== undefined) {
    if (rule.protocol === undefined || !PORTED_PROTOCOLS.has(rule.protocol)) {
      const field = rule.localPorts !== undefined ? 'localPorts' : 'remotePorts';
      report(
        `${path}.${field}`,
        `port ranges need protocol tcp (6) or udp (17), got ${rule.protocol === undefined ? 'no protocol' : `protocol ${rule.protocol}`}`,
      );
    }
  }
  if (rule.stateful === true && rule.action !== 'allow') {
    report(`${path}.stateful`, 'only allow rules can be stateful');
  }
  if (rule.idleTimeoutSeconds !== undefined && rule.stateful !== true) {
    report(`${path}.idleTimeoutSeconds`, 'is only allowed on a stateful rule');
  }
  if (rule.localPrefix !== undefined && rule.remotePrefix !== undefined) {
    const local = prefixOf(rule.localPrefix);
    const remote = prefixOf(rule.remotePrefix);
    if (local.family !== remote.family) {
      report(
        `${path}.remotePrefix`,
        `${rule.remotePrefix} and localPrefix ${rule.localPrefix} are of different address families, so the rule can never match`,
      );
    }
  }
  if (rule.protocol === 1 || rule.protocol === 58) {
    const family = rule.protocol === 1 ? 4 : 6;
    for (const field of ['localPrefix', 'remotePrefix'] as const) {
      const text = rule[field];
      if (text !== undefined && prefixOf(text).family !== family) {
        report(
          `${path}.${field}`,
          `${text} is not IPv${family}, but protocol ${rule.protocol === 1 ? 'icmp' : 'icmpv6'} is`,
        );
      }
    }
  }
}

export function validateAcls(doc: PolicyDocument): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const report = (path: string, message: string): void => {
    issues.push({ path, message });
  };
  const portNames = new Set(doc.ports.map((p) => p.name));
  const aclOfPort = new Map<string, number>();
  doc.portAcls.forEach((acl, i) => {
    const path = `portAcls[${i}]`;
    if (!portNames.has(acl.port)) report(`${path}.port`, `port "${acl.port}" is not defined`);
    const prev = aclOfPort.get(acl.port);
    if (prev !== undefined) {
      report(`${path}.port`, `port "${acl.port}" already has an ACL at portAcls[${prev}]`);
    } else {
      aclOfPort.set(acl.port, i);
    }
    const ruleNames = new Map<string, number>();
    acl.rules.forEach((rule, r) => {
      const rpath = `${path}.rules[${r}]`;
      const prevRule = ruleNames.get(rule.name);
      if (prevRule !== undefined) {
        report(
          `${rpath}.name`,
          `rule "${rule.name}" is already defined at ${path}.rules[${prevRule}]`,
        );
      } else {
        ruleNames.set(rule.name, r);
      }
      ruleIssues(rule, rpath, report);
    });
  });
  return issues;
}
