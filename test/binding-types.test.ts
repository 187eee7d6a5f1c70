// Type-level tests of the public API (checked by `tsc -p
// test/fixtures/tsconfig.types.json`, which binding-packaging.test.ts runs),
// plus the runtime values they describe.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';

import { open } from '../lib/index.js';
import type { IterateOptions, Memory, MemoryBatch, MemoryStore, Tier, TierIterable } from '../lib/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-types-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('iterate() types narrow by tier', () => {
  it("iterate({ tier: 'warm' }) yields Memory<'warm'>", () => {
    const store: MemoryStore = open(path.join(dir, 'warm'), { dimensions: 2 });
    store.put({ id: 'w', content: 'c', embedding: [1, 0] });
    expect(store.move('w', 'warm')).toBe(true);

    const warm = store.iterate({ tier: 'warm' });
    expectTypeOf(warm).toEqualTypeOf<TierIterable<'warm'>>();
    const seen: Memory<'warm'>[] = [];
    for (const m of warm) {
      expectTypeOf(m).toEqualTypeOf<Memory<'warm'>>();
      expectTypeOf(m.tier).toEqualTypeOf<'warm'>();
      seen.push(m);
    }
    expect(seen.map((m) => [m.id, m.tier])).toEqual([['w', 'warm']]);
    for (const b of warm.batches()) {
      expectTypeOf(b).toEqualTypeOf<MemoryBatch<'warm'>>();
      expectTypeOf(b.tiers).toEqualTypeOf<'warm'[]>();
    }
    store.close();
  });

  it("the default and 'all' yield Memory<Tier>; a union selector yields its tiers", () => {
    const store = open(path.join(dir, 'all'), { dimensions: 2 });
    expectTypeOf(store.iterate()).toEqualTypeOf<TierIterable<Tier>>();
    expectTypeOf(store.iterate({ tier: 'all' })).toEqualTypeOf<TierIterable<Tier>>();
    expectTypeOf(store.iterate({ includeEmbeddings: true })).toEqualTypeOf<TierIterable<Tier>>();
    expectTypeOf(store.iterate({ tier: 'cold' as 'cold' | 'hot' })).toEqualTypeOf<TierIterable<'cold' | 'hot'>>();
    expectTypeOf(store.get('x')).toEqualTypeOf<Memory | undefined>();
    expectTypeOf<Memory>().toEqualTypeOf<Memory<Tier>>();
    // @ts-expect-error not a tier
    expect(() => store.iterate({ tier: 'lukewarm' })).toThrow(/'hot', 'warm', 'cold' or 'all'/);
    // Options typed without a type argument take any selector.
    const options: IterateOptions = { tier: 'warm', batchSize: 10 };
    expectTypeOf(store.iterate(options)).toEqualTypeOf<TierIterable<Tier>>();
    expect([...store.iterate(options)]).toEqual([]);
    store.close();
  });
});

describe('recall() takes a query of the kinds an embedding may be', () => {
  it('a Float32Array, a Float64Array or an array of numbers, each scored alike', async () => {
    const store = open(path.join(dir, 'recall'), { dimensions: 2 });
    store.putMany([
      { id: 'x', content: '', embedding: [1, 0] },
      { id: 'y', content: '', embedding: [0, 1] },
    ]);
    expectTypeOf(store.recall).toBeCallableWith(new Float64Array(2));
    expectTypeOf(store.recallAsync).toBeCallableWith(new Float64Array(2));
    for (const query of [new Float32Array([0.2, 1]), new Float64Array([0.2, 1]), [0.2, 1]]) {
      expect(store.recall(query, { k: 1 }).map((h) => h.id)).toEqual(['y']);
      expect((await store.recallAsync(query, { k: 1 })).map((h) => h.id)).toEqual(['y']);
    }
    store.close();
  });
});
