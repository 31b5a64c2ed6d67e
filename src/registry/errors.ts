/**
 * The registry's error codes: ONE table, from the OCI Distribution Spec v1.1 (plus the codes
 * docker/distribution answers that clients know: TAG_INVALID, RANGE_INVALID, UNKNOWN,
 * PAGINATION_NUMBER_INVALID). Each code has its HTTP status and the baleia error kind, so a code
 * thrown deep inside still reads as an ordinary `BaleiaError` to everything but the HTTP edge.
 *
 * Wire form (spec §"Error Codes"): `{"errors":[{"code":"BLOB_UNKNOWN","message":"…","detail":…}]}`.
 *
 * Why a side table instead of a subclass: the project has one error class. `registryError()` makes
 * a plain `BaleiaError` and remembers its code, status override and extra headers here; the edge
 * asks `registryErrorOf(err)` and falls back to the kind for foreign errors.
 */
import { BaleiaError, type ErrorKind } from '../lib/index.js';

export interface ErrorCodeSpec {
  status: number;
  kind: ErrorKind;
  message: string;
}

export const errorCodes = {
  BLOB_UNKNOWN: { status: 404, kind: 'NotFound', message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, kind: 'InvalidArgument', message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, kind: 'NotFound', message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, kind: 'InvalidArgument', message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, kind: 'InvalidArgument', message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, kind: 'InvalidArgument', message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, kind: 'NotFound', message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, kind: 'InvalidArgument', message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, kind: 'NotFound', message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, kind: 'InvalidArgument', message: 'provided length did not match content length' },
  TAG_INVALID: { status: 400, kind: 'InvalidArgument', message: 'manifest tag did not match URI' },
  RANGE_INVALID: { status: 416, kind: 'InvalidArgument', message: 'invalid content range' },
  PAGINATION_NUMBER_INVALID: { status: 400, kind: 'InvalidArgument', message: 'invalid number of results requested' },
  UNAUTHORIZED: { status: 401, kind: 'Unauthorized', message: 'authentication required' },
  DENIED: { status: 403, kind: 'Forbidden', message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, kind: 'NotImplemented', message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, kind: 'Unavailable', message: 'too many requests' },
  UNAVAILABLE: { status: 503, kind: 'Unavailable', message: 'service unavailable' },
  UNKNOWN: { status: 500, kind: 'Internal', message: 'unknown error' },
} as const satisfies Record<string, ErrorCodeSpec>;

export type ErrorCode = keyof typeof errorCodes;

export interface RegistryErrorInfo {
  code: ErrorCode;
  status: number;
  detail?: unknown;
  headers?: Record<string, string>;
}

const infos = new WeakMap<Error, RegistryErrorInfo>();

/**
 * A `BaleiaError` that answers the given code. `status` overrides the table's (a manifest too
 * large is MANIFEST_INVALID with 413); `headers` go on the response (WWW-Authenticate, Retry-After).
 */
export function registryError(
  code: ErrorCode,
  options: { message?: string; detail?: unknown; status?: number; headers?: Record<string, string>; cause?: unknown } = {},
): BaleiaError {
  const spec: ErrorCodeSpec = errorCodes[code];
  const err = new BaleiaError(spec.kind, options.message ?? spec.message, options.cause === undefined ? undefined : { cause: options.cause });
  infos.set(err, { code, status: options.status ?? spec.status, detail: options.detail, headers: options.headers });
  return err;
}

const kindCodes: Partial<Record<ErrorKind, ErrorCode>> = {
  Unauthorized: 'UNAUTHORIZED',
  Forbidden: 'DENIED',
  NotImplemented: 'UNSUPPORTED',
  Unavailable: 'UNAVAILABLE',
};

/** The code, status and detail to answer for any thrown value. */
export function registryErrorOf(err: unknown): RegistryErrorInfo {
  if (err instanceof Error) {
    const info = infos.get(err);
    if (info) return info;
  }
  const code = err instanceof BaleiaError ? (kindCodes[err.kind] ?? 'UNKNOWN') : 'UNKNOWN';
  return { code, status: errorCodes[code].status };
}

/** The spec's JSON body for one error. */
export function errorBody(err: unknown): { status: number; headers: Record<string, string>; body: string } {
  const info = registryErrorOf(err);
  const message = err instanceof BaleiaError && infos.has(err) ? err.message : errorCodes[info.code].message;
  const entry: Record<string, unknown> = { code: info.code, message };
  if (info.detail !== undefined) entry.detail = info.detail;
  return { status: info.status, headers: info.headers ?? {}, body: JSON.stringify({ errors: [entry] }) };
}

/** The code of a response body, for clients and tests; undefined when the body is not the spec's. */
export function parseErrorBody(text: string): Array<{ code: string; message?: string; detail?: unknown }> | undefined {
  try {
    const value = JSON.parse(text) as { errors?: unknown };
    return Array.isArray(value.errors) ? (value.errors as Array<{ code: string }>) : undefined;
  } catch {
    return undefined;
  }
}
