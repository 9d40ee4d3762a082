// API failures as gRPC statuses. Handlers and the policy store throw ApiError with the status
// code the caller should get; everything else that escapes a handler is an internal error
// (logged, answered INTERNAL without the details).
//
// INVALID_ARGUMENT carries the field violations twice: readable in the status message, one per
// line (`port.mac: "zz" is not a MAC address`), and structured in grpc-status-details-bin as a
// google.rpc.BadRequest for clients that decode it.

import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { formatIssue, PolicyError, type PolicyIssue } from '../policy/index.js';
import { encodeStatusDetails, type FieldViolation } from './proto.js';

export { status as Code };

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: status,
    message: string,
    readonly violations: readonly FieldViolation[] = [],
  ) {
    super(message);
  }

  toServiceError(): Partial<ServiceError> {
    const metadata = new Metadata();
    metadata.set(
      'grpc-status-details-bin',
      encodeStatusDetails(this.code, this.message, this.violations),
    );
    return { code: this.code, details: this.message, metadata };
  }
}

export const invalidArgument = (field: string, description: string): ApiError =>
  new ApiError(status.INVALID_ARGUMENT, `${field}: ${description}`, [{ field, description }]);

export const notFound = (message: string): ApiError => new ApiError(status.NOT_FOUND, message);

export const alreadyExists = (message: string): ApiError =>
  new ApiError(status.ALREADY_EXISTS, message);

export const failedPrecondition = (message: string): ApiError =>
  new ApiError(status.FAILED_PRECONDITION, message);

/**
 * Field paths of a rejected document, rewritten for the request that produced it: the issues
 * of the object the request carries (document path `ports[4]`) are named by the request's field
 * (`port`), with the rest of the path in proto field names (`port.addresses[0]`).
 */
export interface PathRewrite {
  /** Document path of the request's object, e.g. `ports[4]`. */
  readonly documentPath: string;
  /** The request field that carries it, e.g. `port`. */
  readonly requestField: string;
}

function snakeCase(path: string): string {
  return path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function rewritePath(path: string, rewrite?: PathRewrite): string {
  if (rewrite === undefined) return path;
  const { documentPath, requestField } = rewrite;
  if (path === documentPath) return requestField;
  if (path.startsWith(`${documentPath}.`) || path.startsWith(`${documentPath}[`)) {
    return requestField + snakeCase(path.slice(documentPath.length));
  }
  return path;
}

/**
 * Problems reported per rejection. A document with a million bad entries has a million problems;
 * the status travels in HTTP/2 trailers, which must stay small, so the first ones are listed and
 * the rest counted.
 */
export const MAX_REPORTED_ISSUES = 20;

/** A PolicyError as INVALID_ARGUMENT naming the fields at fault. */
export function policyRejected(
  err: PolicyError | { issues: readonly PolicyIssue[] },
  rewrite?: PathRewrite,
  code: status = status.INVALID_ARGUMENT,
  head = 'policy rejected',
): ApiError {
  const all = err.issues;
  const issues = all
    .slice(0, MAX_REPORTED_ISSUES)
    .map((i) => ({ ...i, path: rewritePath(i.path, rewrite) }));
  const lines = issues.map((i) => formatIssue(i));
  if (all.length > issues.length) lines.push(`... and ${all.length - issues.length} more`);
  const message =
    all.length === 1
      ? `${head}: ${lines[0]}`
      : [`${head}: ${all.length} problems`, ...lines.map((l) => `  ${l}`)].join('\n');
  return new ApiError(
    code,
    message,
    issues.map((i) => ({ field: i.path, description: i.message })),
  );
}

export function isPolicyError(e: unknown): e is PolicyError {
  return e instanceof PolicyError;
}
