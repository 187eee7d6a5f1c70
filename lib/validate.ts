// Argument validation and normalisation. Everything here runs before any
// native call; each failure is a TierStoreError whose message names the
// field, says what was wrong and what is allowed.
import { types as utilTypes } from 'node:util';

import { fail } from './errors.js';
import { loadAddon } from './native.js';
import type { Tier, TierSelector } from './types.js';

/** The limits the on-disk formats set, as the addon reports them (one owner: the core). */
const formatLimits = loadAddon().limits;
export const MAX_ID_BYTES = formatLimits.maxIdBytes;
export const MAX_DIMENSIONS = formatLimits.maxDimensions;
export const MAX_CONTENT_BYTES_LIMIT = formatLimits.maxContentBytes;
export const DEFAULT_MAX_CONTENT_BYTES = 64 * 1024 * 1024;
export const MAX_DATE_MS = 8.64e15;
export const MAX_BATCH_SIZE = 65536;
/** recall's k: any count a uint32 holds (the hits are bounded by the records anyway). */
export const MAX_RECALL_K = 2 ** 32 - 1;
export const DEFAULT_RECALL_K = 10;
export const MAX_LIST_LIMIT = 1000;

export const TIERS: readonly Tier[] = ['hot', 'warm', 'cold'];

/** A short description of a value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  switch (typeof value) {
    case 'string':
      return value.length > 40 ? `a string of ${value.length} characters` : `the string ${JSON.stringify(value)}`;
    case 'number':
      return `the number ${Object.is(value, -0) ? '-0' : String(value)}`;
    case 'bigint':
      return `the bigint ${value}n`;
    case 'boolean':
      return `${value}`;
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    default: {
      if (Array.isArray(value)) return `an array of length ${value.length}`;
      if (ArrayBuffer.isView(value)) {
        const tag = (value as unknown as { [Symbol.toStringTag]?: string })[Symbol.toStringTag];
        return tag === undefined ? 'a DataView' : `a ${tag}`;
      }
      const proto = Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null;
      const name = proto?.constructor?.name;
      return typeof name === 'string' && name !== 'Object' ? `a ${name}` : 'an object';
    }
  }
}

/** An options argument: undefined or an object. */
export function checkOptions(options: unknown, where: string): Record<string, unknown> | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    fail('INVALID_ARGUMENT', `${where}: options must be an object or undefined, got ${describe(options)}`, `${where}: options`);
  }
  return options as Record<string, unknown>;
}

export function checkBoolean(value: unknown, field: string, dflt: boolean): boolean {
  if (value === undefined) return dflt;
  if (typeof value !== 'boolean') fail('INVALID_ARGUMENT', `${field} must be a boolean, got ${describe(value)}`, field);
  return value;
}

/** An integer in [min, max] (safe integers only). */
export function checkInteger(value: unknown, field: string, min: number, max: number, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    fail('INVALID_ARGUMENT', `${field} must be an integer in [${min}, ${max === Number.MAX_SAFE_INTEGER ? 'Number.MAX_SAFE_INTEGER' : max}], got ${describe(value)}`, field);
  }
  return value;
}

/** An integer (of any size: Number.isInteger) >= min, or dflt when undefined. */
export function checkWholeNumber(value: unknown, field: string, min: number, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    fail('INVALID_ARGUMENT', `${field} must be an integer >= ${min}, got ${describe(value)}`, field);
  }
  return value;
}

/** A tier name: 0 hot, 1 warm, 2 cold, 3 all (when allowed). */
export function tierIndex(value: unknown, field: string, allowAll: boolean): number {
  switch (value) {
    case 'hot':
      return 0;
    case 'warm':
      return 1;
    case 'cold':
      return 2;
    case 'all':
      if (allowAll) return 3;
      break;
  }
  fail('INVALID_ARGUMENT', `${field} must be ${allowAll ? "'hot', 'warm', 'cold' or 'all'" : "'hot', 'warm' or 'cold'"}, got ${describe(value)}`, field);
}

export function tierSelectorIndex(value: TierSelector | undefined, field: string, dflt: number): number {
  return value === undefined ? dflt : tierIndex(value, field, true);
}

/** A record id: a well-formed string of 1..1024 UTF-8 bytes. */
export function checkId(id: unknown, field: string): asserts id is string {
  if (typeof id !== 'string') {
    fail('INVALID_ARGUMENT', `${field} must be a string of 1..${MAX_ID_BYTES} UTF-8 bytes, got ${describe(id)}`, field);
  }
  if (id.length === 0) fail('INVALID_ARGUMENT', `${field} must not be empty (1..${MAX_ID_BYTES} UTF-8 bytes)`, field);
  if (id.length > MAX_ID_BYTES) {
    // more UTF-16 units than bytes allowed: too long whatever they encode to
    fail('INVALID_ARGUMENT', `${field} is longer than ${MAX_ID_BYTES} UTF-8 bytes`, field);
  }
  if (!id.isWellFormed()) {
    fail('INVALID_ARGUMENT', `${field} contains a lone UTF-16 surrogate, which UTF-8 cannot encode`, field);
  }
  // A UTF-16 unit takes at most 3 UTF-8 bytes: only longer ids need measuring.
  if (id.length > MAX_ID_BYTES / 3) {
    const bytes = Buffer.byteLength(id, 'utf8');
    if (bytes > MAX_ID_BYTES) {
      fail('INVALID_ARGUMENT', `${field} is ${bytes} UTF-8 bytes; at most ${MAX_ID_BYTES} are allowed`, field);
    }
  }
}

/** A number in [0, 1]. */
export function checkUnit(value: unknown, field: string): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    fail('INVALID_ARGUMENT', `${field} must be a number in [0, 1], got ${describe(value)}`, field);
  }
  return value;
}

/** An integer number of milliseconds within the range of Date. */
export function checkTimestamp(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value > MAX_DATE_MS || value < -MAX_DATE_MS) {
    fail('INVALID_ARGUMENT', `${field} must be an integer number of milliseconds in [-8.64e15, 8.64e15], got ${describe(value)}`, field);
  }
  return value;
}

function isDetached(view: ArrayBufferView): boolean {
  if (view.byteLength !== 0) return false;
  const buffer = view.buffer as ArrayBuffer & { detached?: boolean };
  if (typeof buffer.detached === 'boolean') return buffer.detached;
  try {
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}

/** INVALID_ARGUMENT unless the float32 values dest[offset..offset+dims) are all finite. */
export function checkFiniteEmbedding(field: string, dims: number, dest: Float32Array, offset: number): void {
  const at = findNonFinite(dest, offset, offset + dims);
  if (at >= 0) fail('INVALID_ARGUMENT', nonFiniteMessage(field, at - offset, dest[at]!), `${field}[${at - offset}]`);
}

/** The message for an embedding value that is not finite as float32. */
export function nonFiniteMessage(field: string, index: number, value: number): string {
  return `${field}[${index}] is ${value} as float32; embedding values must be finite after conversion to float32`;
}

/**
 * The type half of an embedding's check: INVALID_ARGUMENT unless `value` is a
 * Float32Array, a Float64Array or an array of numbers. An array's values are
 * copied to dest here (each element is read once; at most `dims` are
 * written), a typed array's by finishEmbedding. Returns the value count,
 * which finishEmbedding checks: a caller may check other fields' types
 * between the two (a wrong type comes before any length check: docs/errors.md,
 * "Which check comes first").
 */
export function checkEmbeddingType(value: unknown, field: string, dims: number, dest: Float32Array, offset: number): number {
  if (Array.isArray(value)) {
    const n = value.length;
    for (let i = 0; i < n; i++) {
      const v: unknown = value[i];
      if (typeof v !== 'number') {
        fail('INVALID_ARGUMENT', `${field}[${i}] must be a number (an embedding is a Float32Array, a Float64Array or an array of numbers), got ${describe(v)}`, `${field}[${i}]`);
      }
      if (i < dims) dest[offset + i] = v;
    }
    return n;
  }
  if (ArrayBuffer.isView(value)) {
    // The kind comes from the array's internal slots, not Symbol.toStringTag,
    // which an own property can fake (a DataView or BigInt64Array posing as a
    // Float32Array would otherwise reach dest.set()).
    const tag = floatArrayKind(value);
    if (tag === undefined) {
      fail('INVALID_ARGUMENT', `${field} must be a Float32Array, a Float64Array or an array of numbers, got ${describe(value)}`, field);
    }
    if (isDetached(value)) fail('INVALID_ARGUMENT', `${field} is a ${tag} over a detached ArrayBuffer`, field);
    return (value as Float32Array | Float64Array).length;
  }
  fail('INVALID_ARGUMENT', `${field} must be a Float32Array, a Float64Array or an array of numbers, got ${describe(value)}`, field);
}

/**
 * 'Float32Array' or 'Float64Array' by the view's internal slots (not
 * Symbol.toStringTag, which an own property can fake), else undefined.
 */
function floatArrayKind(value: ArrayBufferView): 'Float32Array' | 'Float64Array' | undefined {
  return utilTypes.isFloat32Array(value) ? 'Float32Array' : utilTypes.isFloat64Array(value) ? 'Float64Array' : undefined;
}

/**
 * The length half of an embedding's check, for a value checkEmbeddingType passed
 * (an array of `n` values): DIMENSION_MISMATCH unless it has dims values;
 * then copies a typed array's values (also out of a SharedArrayBuffer: the
 * store keeps this snapshot, and the finiteness check runs on the copy, so
 * another thread writing the shared memory meanwhile cannot slip a NaN past
 * it; Float64 values round as Math.fround does). A typed array is measured
 * again here: a getter run since may have shrunk or detached its buffer.
 */
export function finishEmbedding(value: unknown, field: string, dims: number, dest: Float32Array, offset: number, n: number): void {
  if (Array.isArray(value)) {
    if (n !== dims) fail('DIMENSION_MISMATCH', `${field} has ${n} values; the store has ${dims} dimensions`, field);
    return;
  }
  const arr = value as Float32Array | Float64Array;
  if (isDetached(arr)) {
    fail('INVALID_ARGUMENT', `${field} is a ${floatArrayKind(arr)} over a detached ArrayBuffer`, field);
  }
  if (arr.length !== dims) fail('DIMENSION_MISMATCH', `${field} has ${arr.length} values; the store has ${dims} dimensions`, field);
  dest.set(arr, offset);
}

/** The index of the first NaN or ±Infinity in values[start..end), or -1. */
export function findNonFinite(values: Float32Array, start: number, end: number): number {
  // x * 0 is 0 for finite x and NaN for NaN or ±Infinity: one branch-free
  // pass, then a second only to find the bad value.
  let acc = 0;
  for (let i = start; i < end; i++) acc += values[i]! * 0;
  if (acc === 0) return -1;
  for (let i = start; i < end; i++) {
    const f = values[i]!;
    if (f - f !== 0) return i;
  }
  return -1;
}

/** A store path: a non-empty, well-formed string without NUL characters. */
export function checkPath(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    fail('INVALID_ARGUMENT', `open(): path must be a non-empty string, got ${describe(value)}`, 'path');
  }
  if (!value.isWellFormed() || value.includes('\0')) {
    fail('INVALID_ARGUMENT', 'open(): path must not contain NUL characters or lone UTF-16 surrogates', 'path');
  }
  return value;
}
