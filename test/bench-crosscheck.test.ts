// The benchmark's cross-check (bench/check.mjs) rejects wrong answers: fed
// the answers of a correct store it passes, and fed the same answers with one
// thing broken — an embedding bit, content garbled at the same length, an id,
// a scalar, metadata, a missing get or recall answer, an iterator yielding
// nothing, a record read from the wrong tier, a batches() pass that reported
// nothing — it fails, naming what differs. No store is involved: the answers
// are built from the benchmark's own generator, as a store would return them.
import { describe, expect, it } from 'vitest';
// @ts-expect-error -- plain ESM scripts without type declarations
import { checkRun } from '../bench/check.mjs';
// @ts-expect-error -- plain ESM scripts without type declarations
import { Digest, RecordDigest } from '../bench/digest.mjs';
// @ts-expect-error -- plain ESM scripts without type declarations
import { referenceChecks } from '../bench/reference.mjs';
// @ts-expect-error -- plain ESM scripts without type declarations
import * as W from '../bench/workload.mjs';

const N = 120;
const O = { queries: 3, gets: 60, k: 10, refExtra: 10, seed: W.DEFAULT_SEED };
const ref = referenceChecks(N, O);

interface Rec {
  id: string; content: string; metadata: Record<string, unknown>; confidence: number; activation: number;
  createdAt: number; tier: string; embedding: Float32Array;
}

/** The records as a store holding them all in `tier` returns them. */
function records(tier: string): Rec[] {
  return Array.from({ length: N }, (_, i) => {
    const r = W.recordOf(i, O.seed);
    return { id: r.id, content: r.content, metadata: r.metadata, confidence: r.confidence, activation: r.confidence,
      createdAt: r.createdAt, tier, embedding: r.embedding };
  });
}

type Break = {
  iter?: (r: Rec[]) => Rec[]; iterEmb?: (r: Rec[]) => Rec[]; batches?: (r: Rec[]) => Rec[];
  get?: (r: Array<Rec | undefined>) => Array<Rec | undefined>; checks?: (c: Record<string, any>) => void;
};

/** A run result of store `store` answering from `recs`, with `brk` applied to one path. */
function runOf(store: string, tier: string, brk: Break = {}) {
  const recs = records(tier);
  const digest = (rs: Rec[], withEmb: boolean, d: any) => {
    for (const m of rs) d.add(withEmb ? m : { ...m, embedding: undefined });
    return d.toJSON();
  };
  const byId = new Map(recs.map((m) => [m.id, m]));
  const gets = Array.from(W.sampleIndices(O.gets, N, 1, O.seed) as Iterable<number>, (i) => byId.get(W.idOf(i, O.seed)));
  const got = (brk.get ?? ((x) => x))(gets);
  const getDigest = (d: any) => {
    for (const m of got) if (m) d.add({ ...m, embedding: undefined }); else d.miss();
    return d.toJSON();
  };
  const iter = (brk.iter ?? ((x) => x))(recs);
  const iterEmb = (brk.iterEmb ?? ((x) => x))(recs);
  const batches = (brk.batches ?? ((x) => x))(recs);
  const exact = () => new RecordDigest(W.DIMENSIONS);
  const recall = ref.recall.map((list: Array<{ id: string; score: number }>) => list.slice(0, 10));
  const counts = { hot: 0, warm: 0, cold: 0, total: N, [tier]: N };
  const checks: Record<string, any> = {
    iter: digest(iter, false, new Digest()), iterEmb: digest(iterEmb, true, new Digest()), iterBatch: digest(batches, false, new Digest()),
    get: getDigest(new Digest()),
    exact: {
      iter: digest(iter, false, exact()), iterEmb: digest(iterEmb, true, exact()), iterBatch: digest(batches, false, exact()),
      iterBatchEmb: digest(batches, true, exact()), get: getDigest(exact()),
      iterArrow: digest(batches, false, exact()), iterArrowEmb: digest(batches, true, exact()),
    },
    recall, recallAsync: recall.map((l: unknown[]) => [...l]), counts, countsAfterReopen: counts, reopenFound: true,
    recallFiltered: Object.fromEntries(Object.entries(ref.recallFiltered as Record<string, Array<Array<{ id: string; score: number }>>>)
      .map(([name, lists]) => [name, lists.map((l) => l.slice(0, 10))])),
    capabilities: { batches: true, recallAsync: true },
  };
  brk.checks?.(checks);
  return { checks };
}

const check = (store: string, tier: string, brk?: Break): string[] => checkRun(store, runOf(store, tier, brk), ref, N, 'all');

describe("the bench's cross-check", () => {
  it('passes the answers of a correct store (each tier variant, and a peer)', () => {
    expect(check('tierstore-hot', 'hot')).toEqual([]);
    expect(check('tierstore-warm', 'warm')).toEqual([]);
    expect(check('tierstore-cold', 'cold')).toEqual([]);
    expect(check('tierstore', 'hot')).toEqual([]);
    expect(check('lmdb', '', { checks: (c) => { delete c.counts; delete c.countsAfterReopen; } })).toEqual([]);
  });

  const edit = (i: number, f: (m: Rec) => Rec) => (rs: Rec[]) => rs.map((m, j) => (j === i ? f(m) : m));

  it('rejects one garbled embedding value (one bit of one record)', () => {
    const flipped = edit(37, (m) => {
      const e = m.embedding.slice();
      new Uint32Array(e.buffer)[500]! ^= 1;
      return { ...m, embedding: e };
    });
    const f = check('tierstore-warm', 'warm', { iterEmb: flipped });
    expect(f).toHaveLength(1);
    expect(f[0]).toMatch(/^tierstore-warm: iteration with embeddings: digest \w+ != expected \w+ \(.*differs\)$/);
    expect(check('tierstore-warm', 'warm', { batches: flipped }).join('\n')).toMatch(/batches\(\) iteration with embeddings: digest/);
  });

  it('rejects 767 wrong dimensions that keep embedding[0] (the old sum check passed them)', () => {
    const f = check('tierstore-cold', 'cold', { iterEmb: edit(3, (m) => {
      const e = new Float32Array(m.embedding.length);
      e[0] = m.embedding[0]!;
      return { ...m, embedding: e };
    }) });
    expect(f.join('\n')).toMatch(/iteration with embeddings: digest/);
  });

  it('rejects content garbled at the same length, a wrong id, a wrong scalar, other metadata', () => {
    const swapped = edit(5, (m) => ({ ...m, content: m.content.slice(1, 2) + m.content.slice(0, 1) + m.content.slice(2) }));
    expect(check('tierstore-hot', 'hot', { iter: swapped }).join('\n')).toMatch(/^tierstore-hot: iteration: digest/);
    expect(check('tierstore-hot', 'hot', { iter: edit(9, (m) => ({ ...m, id: `${m.id.slice(0, -1)}~` })) }).join('\n')).toMatch(/iteration: digest/);
    expect(check('tierstore-hot', 'hot', { iter: edit(9, (m) => ({ ...m, confidence: Math.fround(m.confidence + 1e-6) })) }).join('\n')).toMatch(/iteration: digest/);
    expect(check('tierstore-hot', 'hot', { iter: edit(9, (m) => ({ ...m, createdAt: m.createdAt + 1 })) }).join('\n')).toMatch(/iteration: digest/);
    expect(check('tierstore-hot', 'hot', { iter: edit(9, (m) => ({ ...m, metadata: { ...m.metadata, session: 'other' } })) }).join('\n')).toMatch(/iteration: digest/);
    // the same metadata with its keys in another order is the same metadata
    expect(check('tierstore-hot', 'hot', { iter: edit(9, (m) => ({ ...m, metadata: Object.fromEntries(Object.entries(m.metadata).reverse()) })) })).toEqual([]);
  });

  it('rejects a garbled arrow() scan, a filtered recall answer missing, and a filtered hit outside the filter', () => {
    const brokenArrow = (c: Record<string, any>) => { c.exact.iterArrow = { ...c.exact.iterArrow, hash: '0' }; };
    expect(check('tierstore', 'hot', { checks: brokenArrow }).join('\n')).toMatch(/arrow\(\) iteration: digest/);
    const missing = (c: Record<string, any>) => { c.recallFiltered['meta-1pct'] = c.recallFiltered['meta-1pct'].slice(1); };
    expect(check('tierstore', 'hot', { checks: missing }).join('\n')).toMatch(/filtered top-10 \(meta-1pct\)/);
    const unfiltered = (c: Record<string, any>) => { c.recallFiltered['created-10pct'] = c.recall.map((l: unknown[]) => [...l]); };
    expect(check('tierstore', 'hot', { checks: unfiltered }).join('\n')).toMatch(/filtered top-10 \(created-10pct\)/);
  });

  it('rejects an iterator that yields nothing, and one record twice instead of another', () => {
    expect(check('tierstore', 'hot', { iter: () => [] }).join('\n')).toMatch(/iteration: count 0 != expected 120/);
    expect(check('tierstore', 'hot', { iter: edit(1, (_m) => records('hot')[0]!) }).join('\n')).toMatch(/iteration: digest/);
  });

  it('rejects a get that found nothing, and a get answering with another record', () => {
    expect(check('sqlite', '', { get: (g) => g.map((m, i) => (i === 4 ? undefined : m)), checks: (c) => { delete c.counts; delete c.countsAfterReopen; } }).join('\n'))
      .toMatch(/get: missing 1 != expected 0/);
    expect(check('tierstore-hot', 'hot', { get: (g) => g.map((m, i) => (i === 4 ? g[5] : m)) }).join('\n')).toMatch(/get: digest/);
  });

  it('rejects missing recall answers: fewer lists than queries, none at all, a short list', () => {
    expect(check('tierstore', 'hot', { checks: (c) => c.recall.pop() }).join('\n')).toMatch(/top-10: 2 answers for 3 queries/);
    expect(check('tierstore', 'hot', { checks: (c) => { delete c.recall; } }).join('\n')).toMatch(/top-10: no answers \(expected 3\)/);
    expect(check('tierstore', 'hot', { checks: (c) => { delete c.recallAsync; } }).join('\n')).toMatch(/top-10 async: no answers/);
    expect(check('tierstore', 'hot', { checks: (c) => c.recall[1].pop() }).join('\n')).toMatch(/top-10 q1: 9 hits, expected 10/);
  });

  it('rejects a tierstore run whose batches() pass reported nothing (no "unavailable" escape)', () => {
    const f = check('tierstore', 'hot', { checks: (c) => { delete c.iterBatch; delete c.exact.iterBatch; delete c.exact.iterBatchEmb; } });
    expect(f.join('\n')).toMatch(/batches\(\) iteration: no answer/);
  });

  it('rejects a record read from the wrong tier: the tier column of batches(), the iteration labels, counts()', () => {
    const moved = edit(11, (m) => ({ ...m, tier: 'warm' }));
    expect(check('tierstore-cold', 'cold', { batches: moved }).join('\n')).toMatch(/batches\(\) tier column: records read from tiers \{"cold":119,"warm":1\}/);
    expect(check('tierstore-cold', 'cold', { iter: moved }).join('\n')).toMatch(/^tierstore-cold: iteration: records read from tiers/m);
    expect(check('tierstore-cold', 'cold', { checks: (c) => { c.counts = { hot: 0, warm: 1, cold: N - 1, total: N }; } }).join('\n'))
      .toMatch(/counts\(\).*expected all 120 records in cold/);
  });
});
