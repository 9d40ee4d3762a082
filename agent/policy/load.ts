// Entry points: a policy from YAML or JSON text (JSON is YAML 1.2), or from an already-parsed
// object, checked in two passes: shape and field formats first (all problems of the pass are
// collected), then the cross-field rules on a well-shaped document. Either the whole document is
// accepted or a PolicyError lists everything wrong with it.

import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { formatPath, PolicyError, type PolicyIssue } from './errors.js';
import type { Policy, PolicyDocument } from './model.js';
import { policyErrorMap, policySchema } from './schema.js';
import { validatePolicy } from './validate.js';

function fromText(text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new PolicyError(doc.errors.map((e) => ({ path: '', message: `YAML: ${e.message}` })));
  }
  return doc.toJS({ maxAliasCount: 100 });
}

/** zod's issues as policy issues, their paths under `prefix` (a part of the document). */
export function shapeIssues(
  zodIssues: readonly { code: string; path: PropertyKey[]; message: string; keys?: string[] }[],
  prefix: readonly PropertyKey[] = [],
): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  for (const issue of zodIssues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys ?? [])
        issues.push({
          path: formatPath([...prefix, ...issue.path, key]),
          message: 'unknown field',
        });
    } else {
      issues.push({ path: formatPath([...prefix, ...issue.path]), message: issue.message });
    }
  }
  return issues;
}

/** Validates a policy document (YAML/JSON text or a parsed object); throws PolicyError. */
export function parsePolicy(input: string | unknown): Policy {
  const raw = typeof input === 'string' ? fromText(input) : input;
  if (raw === null || raw === undefined) {
    throw new PolicyError([{ path: '', message: 'the policy document is empty' }]);
  }
  const shaped = policySchema.safeParse(raw, { error: policyErrorMap });
  if (!shaped.success) throw new PolicyError(shapeIssues(shaped.error.issues));
  const issues = validatePolicy(shaped.data);
  if (issues.length > 0) throw new PolicyError(issues);
  return shaped.data as PolicyDocument as Policy;
}

/** Reads and validates a policy file (.yaml, .yml or .json). */
export async function loadPolicyFile(path: string): Promise<Policy> {
  return parsePolicy(await readFile(path, 'utf8'));
}
