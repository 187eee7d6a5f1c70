// Recall is exact for every finite float32 embedding, not only unit-scale
// ones: values near float32's largest (whose squared norm overflows float32)
// and subnormal values (whose products underflow to zero) must score the
// same cosine a double-precision brute force gives, in every tier.
import { describe, expect, it } from 'vitest';
import type { Tier } from '../lib/index.js';
import { cosine } from './helpers/recall.js';
import { useScratch } from './helpers/store.js';

const F = 3.4028234663852886e38; // the largest finite float32
const D = 1.401298464324817e-45; // the smallest subnormal float32

const RECORDS: Record<string, number[]> = {
  huge: [F, -F, 0, 0, 0],
  hugeAll: [F, F, F, F, F],
  unit: [1, 1, 0, 0, 0],
  tiny: [D * 4, D * 4, 0, 0, 0],
  tinyMixed: [D * 1000, 0, D * 7, 0, D],
  zero: [0, 0, 0, 0, 0],
};
const QUERIES = [
  [1, 0, 0, 0, 0],
  [F, 0, 0, 0, 0],
  [D * 8, 0, 0, 0, 0],
  [F, F, F, -F, F],
  [1e-20, 3e-21, 0, 0, 1e-22],
];

describe('recall with extreme but finite values', () => {
  const scratch = useScratch();

  it.each<Tier>(['hot', 'warm', 'cold'])('scores like a double-precision brute force in %s', (tier) => {
    const store = scratch.open(scratch.storePath(), { dimensions: 5 });
    for (const [id, embedding] of Object.entries(RECORDS)) store.put({ id, content: id, embedding });
    if (tier !== 'hot') for (const id of Object.keys(RECORDS)) store.move(id, tier);
    for (const query of QUERIES) {
      const hits = store.recall(query, { k: 10 });
      expect(hits).toHaveLength(Object.keys(RECORDS).length);
      for (const hit of hits) {
        expect(Number.isFinite(hit.score), `${hit.id} for ${query}`).toBe(true);
        expect(hit.score, `${hit.id} for ${query}`).toBeCloseTo(cosine(query, RECORDS[hit.id]!), 5);
        expect(hit.tier).toBe(tier);
      }
      // Best first.
      for (let i = 1; i < hits.length; i++) expect(hits[i - 1]!.score).toBeGreaterThanOrEqual(hits[i]!.score);
    }
  });
});
