/** The public error codes. */
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

/** What a TierStoreError carries besides its code and message. */
export interface TierStoreErrorOptions {
  cause?: unknown;
  /** The path of the bad value, as `TierStoreError.field`. */
  field?: string | undefined;
  /** The bad record's position in a batch, as `TierStoreError.index`. */
  index?: number | undefined;
}

/**
 * Every error tierstore raises. `code` says what kind of failure it was; the
 * message says what was wrong (naming the argument or the file) and what is
 * allowed.
 */
export class TierStoreError extends Error {
  /** What kind of failure this is. */
  readonly code: ErrorCode;
  /**
   * The path of the bad value within the call's arguments, for errors about
   * one value: `memories[3].embedding`, `memory.metadata.tags[2]`, `query`,
   * `k`, `filter.metadata.tags[2]` (an option is named without `options.`).
   * Undefined for errors that are not about one argument.
   */
  readonly field?: string;
  /** The position in the batch of the record that was refused (putMany). */
  readonly index?: number;

  constructor(code: ErrorCode, message: string, options?: TierStoreErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options?.field !== undefined) this.field = options.field;
    if (options?.index !== undefined) this.index = options.index;
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

/**
 * The `field` path of a value named `name` in a message: the method prefix
 * (`recall(): `) and an options object's `options.` are dropped, so
 * `recall(): options.filter.metadata.tags[2]` is `filter.metadata.tags[2]`.
 * The one owner of how a message's name becomes a field.
 */
export function fieldPath(name: string): string {
  return name.replace(/^[A-Za-z]+\(\): /, '').replace(/^options\./, '');
}

/**
 * Throws a TierStoreError (used by validation). `name`, when the error is
 * about one value, is how the message names it (the message starts with it);
 * the error's `field` is derived from it.
 */
export function fail(code: ErrorCode, message: string, name?: string): never {
  throw new TierStoreError(code, message, name === undefined ? undefined : { field: fieldPath(name) });
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
