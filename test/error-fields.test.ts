// TierStoreError.field and .index: an error about one value names its path
// within the call's arguments (an option without `options.`), and putMany
// names the position of the first bad record; errors about no one value
// carry neither.
import { describe, expect, it } from 'vitest';
import { TierStoreError } from '../lib/index.js';
import { expectTierStoreError, useScratch } from './helpers/store.js';

describe('TierStoreError.field and .index', () => {
  const scratch = useScratch();
  const good = (id: string) => ({ id, content: 'c', embedding: [1, 0, 0] });

  it('name the bad value of each call', () => {
    const p = scratch.storePath();
    expect(expectTierStoreError(() => scratch.open(p), 'INVALID_ARGUMENT', 'no dimensions').field).toBe('dimensions');
    const store = scratch.open(p, { dimensions: 3 });
    store.put(good('a'));
    const cases: Array<[() => unknown, string, string]> = [
      [() => scratch.open(p, { dimensions: 4 }), 'DIMENSION_MISMATCH', 'dimensions'],
      [() => scratch.open(scratch.storePath(), { dimensions: 3, hotCapacity: -1 }), 'INVALID_ARGUMENT', 'hotCapacity'],
      [() => store.put({ ...good('b'), embedding: [1, '0', 0] as unknown as number[] }), 'INVALID_ARGUMENT', 'memory.embedding[1]'],
      [() => store.put({ ...good('b'), embedding: [1, NaN, 0] }), 'INVALID_ARGUMENT', 'memory.embedding[1]'],
      [() => store.put({ ...good('b'), embedding: [1, 0] }), 'DIMENSION_MISMATCH', 'memory.embedding'],
      [() => store.put({ ...good('b'), confidence: 2 }), 'INVALID_ARGUMENT', 'memory.confidence'],
      [() => store.put({ ...good('b'), metadata: { tags: ['x', undefined] } }), 'INVALID_ARGUMENT', 'memory.metadata.tags[1]'],
      [() => store.put({ ...good(''), id: '' }), 'INVALID_ARGUMENT', 'memory.id'],
      [() => store.get(42 as unknown as string), 'INVALID_ARGUMENT', 'id'],
      [() => store.recall([1, 0, 0], { k: 0 }), 'INVALID_ARGUMENT', 'k'],
      [() => store.recall([0, 0, 0]), 'INVALID_ARGUMENT', 'query'],
      [() => store.recall([1, 0]), 'DIMENSION_MISMATCH', 'query'],
      [() => store.list({ limit: 0 }), 'INVALID_ARGUMENT', 'limit'],
      [() => store.list({ tier: 'tepid' as 'hot' }), 'INVALID_ARGUMENT', 'tier'],
      [() => store.iterate({ batchSize: 0 }), 'INVALID_ARGUMENT', 'batchSize'],
    ];
    for (const [call, code, field] of cases) {
      const e = expectTierStoreError(call, code, field);
      expect(e.field, `${code} ${e.message}`).toBe(field);
      expect(e.index).toBeUndefined();
      expect(e.message).toContain(field);
    }
    expect(store.counts().total, 'no refused call wrote anything').toBe(1);
  });

  it('putMany names the first bad record by index and field', () => {
    const store = scratch.open(scratch.storePath(), { dimensions: 3 });
    const batches: Array<[unknown[], number, string, string]> = [
      [[good('a'), good('b'), { ...good('c'), embedding: [1] }], 2, 'memories[2].embedding', 'DIMENSION_MISMATCH'],
      [[good('a'), { ...good('b'), activation: -1 }, { ...good('c'), embedding: [1] }], 1, 'memories[1].activation', 'INVALID_ARGUMENT'],
      [[good('a'), { ...good('b'), embedding: [0, Infinity, 0] }, { ...good('c'), id: 7 }], 1, 'memories[1].embedding[1]', 'INVALID_ARGUMENT'],
      [[good('a'), { ...good('b'), content: 'x\ud800' }], 1, 'memories[1].content', 'INVALID_ARGUMENT'],
    ];
    for (const [batch, index, field, code] of batches) {
      const e = expectTierStoreError(() => store.putMany(batch as never), code, field);
      expect(e.index).toBe(index);
      expect(e.field).toBe(field);
      expect(e.message.startsWith(field)).toBe(true);
    }
    expect(store.counts().total).toBe(0);
  });

  it('errors about no one value carry neither', () => {
    const store = scratch.open(scratch.storePath(), { dimensions: 3 });
    store.close();
    const e = expectTierStoreError(() => store.put(good('a')), 'STORE_CLOSED', 'closed');
    expect(e).toBeInstanceOf(TierStoreError);
    expect(e.field).toBeUndefined();
    expect(e.index).toBeUndefined();
  });
});
