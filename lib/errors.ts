/** The public error codes (DESIGN.md §3). */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'DIMENSION_MISMATCH'
  | 'CONTENT_TOO_LARGE'
  | 'STORE_CLOSED'
  | 'STORE_LOCKED'
  | 'READ_ONLY'
  | 'CORRUPTION'
  | 'IO_ERROR';

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'INVALID_ARGUMENT',
  'DIMENSION_MISMATCH',
  'CONTENT_TOO_LARGE',
  'STORE_CLOSED',
  'STORE_LOCKED',
  'READ_ONLY',
  'CORRUPTION',
  'IO_ERROR',
]);

/**
 * Every error tierstore raises. `code` says what kind of failure it was; the
 * message says what was wrong (naming the argument or the file).
 */
export class TierStoreError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
Object.defineProperty(TierStoreError.prototype, 'name', {
  value: 'TierStoreError',
  writable: true,
  enumerable: false,
  configurable: true,
});

/** True when `code` is one of the public error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && CODES.has(code);
}

/** Throws a TierStoreError (used by validation). */
export function fail(code: ErrorCode, message: string): never {
  throw new TierStoreError(code, message);
}

/**
 * Normalises an error from the native layer: a TierStoreError passes as is;
 * an Error carrying a public `code` becomes a TierStoreError; anything else
 * (a bug) passes unchanged.
 */
export function toTierStoreError(error: unknown): unknown {
  if (error instanceof TierStoreError) return error;
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    if (isErrorCode(code)) return new TierStoreError(code, error.message, { cause: error });
  }
  return error;
}
