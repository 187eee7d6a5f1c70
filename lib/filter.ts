// MemoryFilter: validation, and the form the native layer takes. The native
// layer evaluates the filter against each record (before scoring it, in
// recall); this file owns what a valid filter is and how it is named in
// errors (`filter.metadata.tags[2]`).
import { createHash } from 'node:crypto';

import { fail } from './errors.js';
import type { MemoryFilter } from './types.js';
import { describe } from './validate.js';

const FILTER_KEYS: ReadonlySet<string> = new Set([
  'createdAfter', 'createdBefore', 'minConfidence', 'minActivation', 'metadata',
]);

/** A validated filter as the native layer takes it, plus the key a cursor carries. */
export interface NativeFilter {
  /** createdAfter, createdBefore, minConfidence, minActivation; NaN where absent. */
  readonly scalars: Float64Array;
  /** `{"key":[value,…],…}`, or '' for no metadata condition. */
  readonly metadata: string;
  /** A short digest of the filter's conditions, carried by list cursors. */
  readonly key: string;
}

type Scalar = string | number | boolean | null;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function checkScalar(value: unknown, name: string): Scalar {
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) fail('INVALID_ARGUMENT', `${name} contains a lone UTF-16 surrogate`, name);
      return value;
    case 'number':
      if (!Number.isFinite(value)) fail('INVALID_ARGUMENT', `${name} must be a finite number, got ${describe(value)}`, name);
      return value;
    case 'boolean':
      return value;
    default:
      if (value === null) return null;
      fail(
        'INVALID_ARGUMENT',
        `${name} must be a string, a finite number, a boolean or null (or an array of them), got ${describe(value)}`,
        name,
      );
  }
}

function checkFiniteOption(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    fail('INVALID_ARGUMENT', `${name} must be a finite number, got ${describe(value)}`, name);
  }
  return value;
}

/**
 * Checks `value` as the `filter` option of `where` (e.g. 'recall()') and
 * returns its native form, or undefined when it is undefined or sets no
 * condition. Every property is read once.
 */
export function checkFilter(value: unknown, where: string): NativeFilter | undefined {
  if (value === undefined) return undefined;
  const base = `${where}: options.filter`;
  if (!isPlainObject(value)) fail('INVALID_ARGUMENT', `${base} must be a plain object, got ${describe(value)}`, base);
  const given: Record<string, unknown> = {};
  for (const key of Reflect.ownKeys(value)) {
    if (typeof key !== 'string' || !FILTER_KEYS.has(key)) {
      const shown = typeof key === 'string' ? key : String(key);
      fail(
        'INVALID_ARGUMENT',
        `${base}.${shown} is not a filter condition (allowed: createdAfter, createdBefore, minConfidence, minActivation, metadata)`,
        `${base}.${shown}`,
      );
    }
    given[key] = value[key];
  }
  const scalars = new Float64Array([NaN, NaN, NaN, NaN]);
  const names = ['createdAfter', 'createdBefore', 'minConfidence', 'minActivation'] as const;
  names.forEach((name, i) => {
    const v = given[name];
    if (v !== undefined) scalars[i] = checkFiniteOption(v, `${base}.${name}`);
  });
  let metadata = '';
  const meta = given['metadata'];
  if (meta !== undefined) {
    const metaName = `${base}.metadata`;
    if (!isPlainObject(meta)) {
      fail('INVALID_ARGUMENT', `${metaName} must be a plain object of key: value conditions, got ${describe(meta)}`, metaName);
    }
    const conditions: Record<string, Scalar[]> = Object.create(null) as Record<string, Scalar[]>;
    let count = 0;
    for (const key of Reflect.ownKeys(meta)) {
      if (typeof key !== 'string') fail('INVALID_ARGUMENT', `${metaName} has a symbol key`, metaName);
      const name = `${metaName}.${key}`;
      if (!key.isWellFormed()) fail('INVALID_ARGUMENT', `${metaName} has a key with a lone UTF-16 surrogate`, metaName);
      const v = meta[key];
      if (Array.isArray(v)) {
        if (v.length === 0) {
          fail('INVALID_ARGUMENT', `${name} is an empty array; give at least one value (an array means any of its values)`, name);
        }
        const values: Scalar[] = [];
        for (let i = 0; i < v.length; i++) values.push(checkScalar(v[i], `${name}[${i}]`));
        conditions[key] = values;
      } else {
        conditions[key] = [checkScalar(v, name)];
      }
      count++;
    }
    if (count > 0) metadata = JSON.stringify(conditions);
  }
  if (metadata === '' && scalars.every(Number.isNaN)) return undefined;
  // The digest a cursor carries is of the conditions, not of how they were
  // written: keys and any-of values in a canonical order, repeats dropped
  // (the same filter with its keys in another order continues a listing).
  const canonical = metadata === ''
    ? ''
    : JSON.stringify(
      Object.entries(JSON.parse(metadata) as Record<string, Scalar[]>)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, values]) => [k, [...new Set(values.map((v) => JSON.stringify(v)))].sort()]),
    );
  const key = createHash('sha256')
    .update(`${Array.from(scalars, (x) => (Number.isNaN(x) ? '' : String(x))).join(',')}|${canonical}`)
    .digest('base64url')
    .slice(0, 16);
  return { scalars, metadata, key };
}

/** The filter arguments of a native call: none, or (scalars, metadata). */
export function nativeFilterArgs(filter: NativeFilter | undefined): [] | [Float64Array, string] {
  return filter === undefined ? [] : [filter.scalars, filter.metadata];
}
