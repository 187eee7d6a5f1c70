/**
 * Filters on the wire: the `filter` object of POST /api/v1/recall and the
 * filter parameters of GET /api/v1/memories, turned into the store's
 * MemoryFilter. Shapes are checked by the schemas (lib/server/schemas.ts);
 * values by the store, whose errors name the wire path (wireField).
 */
import type { MemoryFilter, MetadataFilterValue } from '../types.js';

/** The recall body's `filter` (snake_case MemoryFilter). */
export interface WireFilter {
  created_after?: number;
  created_before?: number;
  min_confidence?: number;
  min_activation?: number;
  metadata?: Record<string, unknown>;
}

/** The MemoryFilter of a recall body's `filter`; metadata goes to the store as sent (it checks the values). */
export function filterFromBody(w: WireFilter | undefined): MemoryFilter | undefined {
  if (w === undefined) return undefined;
  const f: MemoryFilter = {};
  if (w.created_after !== undefined) f.createdAfter = w.created_after;
  if (w.created_before !== undefined) f.createdBefore = w.created_before;
  if (w.min_confidence !== undefined) f.minConfidence = w.min_confidence;
  if (w.min_activation !== undefined) f.minActivation = w.min_activation;
  if (w.metadata !== undefined) f.metadata = w.metadata as MemoryFilter['metadata'];
  return f;
}

const JSON_NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;

/**
 * A metadata value given as text (a query parameter, a CLI flag): read as
 * JSON when it is a JSON number, `true`, `false`, `null` or a JSON string in
 * double quotes; as the plain string otherwise. So `3` is the number 3 and
 * `"3"` the string "3"; `red` is the string "red".
 */
export function metadataValue(text: string): MetadataFilterValue {
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (text === 'null') return null;
  if (JSON_NUMBER.test(text)) return Number(text);
  if (text.length >= 2 && text.startsWith('"') && text.endsWith('"')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'string') return parsed;
    } catch {
      // not a JSON string: the text as it is
    }
  }
  return text;
}

/** Metadata conditions from KEY=VALUE pairs: a key given more than once means any of its values. */
export function metadataConditions(pairs: Iterable<readonly [string, string]>): Record<string, MetadataFilterValue | MetadataFilterValue[]> {
  const out: Record<string, MetadataFilterValue[]> = Object.create(null) as Record<string, MetadataFilterValue[]>;
  for (const [key, text] of pairs) (out[key] ??= []).push(metadataValue(text));
  const conditions: Record<string, MetadataFilterValue | MetadataFilterValue[]> = {};
  for (const key of Object.keys(out)) {
    const values = out[key]!;
    Object.defineProperty(conditions, key, { value: values.length === 1 ? values[0] : values, enumerable: true, writable: true, configurable: true });
  }
  return conditions;
}

/** The list query's filter parameters (strings checked by listQuerySchema). */
export interface FilterQuery {
  created_after?: string;
  created_before?: string;
  min_confidence?: string;
  min_activation?: string;
  [metadataKey: `metadata.${string}`]: string | string[] | undefined;
}

/** The MemoryFilter of a list query, or undefined when it has no filter parameter. */
export function filterFromQuery(q: FilterQuery): MemoryFilter | undefined {
  const f: MemoryFilter = {};
  let any = false;
  const num = (v: string | undefined, set: (x: number) => void) => {
    if (v === undefined) return;
    set(Number(v));
    any = true;
  };
  num(q.created_after, (x) => (f.createdAfter = x));
  num(q.created_before, (x) => (f.createdBefore = x));
  num(q.min_confidence, (x) => (f.minConfidence = x));
  num(q.min_activation, (x) => (f.minActivation = x));
  const pairs: [string, string][] = [];
  for (const name of Object.keys(q)) {
    if (!name.startsWith('metadata.')) continue;
    const value = q[name as `metadata.${string}`];
    for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) pairs.push([name.slice('metadata.'.length), v]);
  }
  if (pairs.length > 0) {
    f.metadata = metadataConditions(pairs);
    any = true;
  }
  return any ? f : undefined;
}
