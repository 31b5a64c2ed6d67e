/**
 * The one error class of baleia and its closed set of kinds.
 *
 * Code throws `BaleiaError` with a kind; the edges (API handlers, CLI main, background loops)
 * translate the kind into an HTTP status or an exit code. The kind → status table lives in `api/`.
 */

export const errorKinds = [
  'NotFound',
  'InvalidArgument',
  'Conflict',
  'NotModified',
  'Unauthorized',
  'Forbidden',
  'Unavailable',
  'NotImplemented',
  'Cancelled',
  'Internal',
] as const;

export type ErrorKind = (typeof errorKinds)[number];

export class BaleiaError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = 'BaleiaError';
  }
}

export const notFound = (message: string, options?: { cause?: unknown }) =>
  new BaleiaError('NotFound', message, options);
export const invalidArgument = (message: string, options?: { cause?: unknown }) =>
  new BaleiaError('InvalidArgument', message, options);
export const conflict = (message: string, options?: { cause?: unknown }) =>
  new BaleiaError('Conflict', message, options);
export const internal = (message: string, options?: { cause?: unknown }) =>
  new BaleiaError('Internal', message, options);
export const unavailable = (message: string, options?: { cause?: unknown }) =>
  new BaleiaError('Unavailable', message, options);
export const notImplemented = (message: string, options?: { cause?: unknown }) =>
  new BaleiaError('NotImplemented', message, options);

/** The kind of any thrown value: ours keep theirs, everything else is Internal. */
export function errorKind(err: unknown): ErrorKind {
  return err instanceof BaleiaError ? err.kind : 'Internal';
}

/** True when `err` is a BaleiaError of the given kind. */
export function isKind(err: unknown, kind: ErrorKind): boolean {
  return err instanceof BaleiaError && err.kind === kind;
}

/** A Node system error code (`ENOENT`, `EEXIST`, …) or undefined. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err
    ? String((err as { code: unknown }).code)
    : undefined;
}

/** The message of any thrown value, with the causes appended after `: `. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let text = err.message;
  let cause = err.cause;
  for (let depth = 0; cause !== undefined && depth < 5; depth++) {
    const next = cause instanceof Error ? cause.message : String(cause);
    if (next && !text.includes(next)) text += `: ${next}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return text;
}
