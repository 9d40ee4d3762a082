// Validation problems of a policy document. The whole document is rejected with every problem
// found, each naming the field by its path in the document (`routingDomains[0].vsid`).

export interface PolicyIssue {
  /** Field path: `routingDomains[0].virtualSubnets[1].vsid`; empty for the document itself. */
  readonly path: string;
  readonly message: string;
}

/** Renders a path of keys and indices: ['ports', 0, 'mac'] -> `ports[0].mac`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

export function formatIssue(issue: PolicyIssue): string {
  return issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`;
}

export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  readonly issues: readonly PolicyIssue[];

  constructor(issues: readonly PolicyIssue[]) {
    const head = `policy rejected: ${issues.length} problem${issues.length === 1 ? '' : 's'}`;
    super([head, ...issues.map((i) => `  ${formatIssue(i)}`)].join('\n'));
    this.issues = issues;
  }
}
