// The reference of the filter suites: whether a record matches a filter (the
// documented semantics, written independently of the store), the brute-force
// filtered top k, and the check of a filtered recall's hits against it.
import { expect } from 'vitest';
import type { MemoryFilter, RecallHit, Tier } from '../../lib/index.js';
import { byUtf8, cosine } from './recall.js';

export interface Row {
  id: string;
  embedding: Float32Array;
  confidence: number;
  activation: number;
  createdAt: number;
  metadata: Record<string, unknown>;
  tier: Tier;
}

export type Scalar = string | number | boolean | null;

/** The reference: does `row` match `filter` (the documented semantics, written independently of the store)? */
export function matches(row: Row, filter: MemoryFilter): boolean {
  if (filter.createdAfter !== undefined && !(row.createdAt >= filter.createdAfter)) return false;
  if (filter.createdBefore !== undefined && !(row.createdAt < filter.createdBefore)) return false;
  if (filter.minConfidence !== undefined && !(Math.fround(row.confidence) >= Math.fround(filter.minConfidence))) return false;
  if (filter.minActivation !== undefined && !(Math.fround(row.activation) >= Math.fround(filter.minActivation))) return false;
  for (const [key, want] of Object.entries(filter.metadata ?? {})) {
    if (!Object.prototype.hasOwnProperty.call(row.metadata, key)) return false;
    const wanted: Scalar[] = Array.isArray(want) ? want : [want as Scalar];
    const have = row.metadata[key];
    const candidates = Array.isArray(have) ? have : [have];
    if (!candidates.some((c) => wanted.some((w) => c === w))) return false;
  }
  return true;
}

export function bruteForce(rows: Row[], query: Float32Array, k: number, filter: MemoryFilter): Array<[string, number]> {
  return rows
    .filter((r) => matches(r, filter))
    .map((r): [string, number] => [r.id, cosine(r.embedding, query)])
    .sort((a, b) => b[1] - a[1] || byUtf8(a[0], b[0]))
    .slice(0, k);
}

export function expectHits(hits: RecallHit[], want: Array<[string, number]>, rows: Map<string, Row>, query: Float32Array, what: string): void {
  expect(hits.length, `${what}: number of hits`).toBe(want.length);
  for (let i = 0; i < hits.length; i++) {
    const h = hits[i]!;
    const row = rows.get(h.id);
    expect(row, `${what}: ${h.id} is a record`).toBeDefined();
    // The same score at each rank (near-equal scores may swap within rounding).
    expect(Math.abs(cosine(row!.embedding, query) - want[i]![1]), `${what}: rank ${i}`).toBeLessThan(1e-5);
    expect(h.tier).toBe(row!.tier);
  }
}
