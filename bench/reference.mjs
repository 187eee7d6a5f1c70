// The reference answers of a benchmark run, from the generator alone (no
// store): what every store must answer (bench/check.mjs compares). Used by
// runner.mjs and by the tests of the cross-check.
import * as W from './workload.mjs';
import { Digest, RecordDigest } from './digest.mjs';

/** o: { queries, gets, k, refExtra, seed } as in runner.mjs. */
export function referenceChecks(n, o, progress = () => {}) {
  const qs = Array.from({ length: o.queries }, (_, q) => W.queryOf(q, n, o.seed));
  const qn = qs.map(W.norm);
  const keep = o.k + o.refExtra;
  const tops = qs.map(() => new W.TopK(keep));
  const filters = W.benchFilters(n);
  const filteredTops = filters.map(() => qs.map(() => new W.TopK(keep)));
  const getCount = new Uint32Array(n);
  for (const i of W.sampleIndices(o.gets, n, 1, o.seed)) getCount[i]++;
  // The cheap summaries the timed passes produce, and the exact digests of
  // the untimed checking passes (bench/digest.mjs).
  const iter = new Digest(), iterEmb = new Digest(), get = new Digest();
  const exact = new RecordDigest(W.DIMENSIONS), exactEmb = new RecordDigest(W.DIMENSIONS), exactGet = new RecordDigest(W.DIMENSIONS);
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    // The record as every store returns it (activation defaults to confidence).
    const { id, content, metadata, confidence, createdAt, embedding: e } = W.recordOf(i, o.seed);
    const m = { id, content, metadata, confidence, activation: confidence, createdAt };
    iter.add(m);
    iterEmb.add({ ...m, embedding: e });
    exact.add(m);
    exactEmb.add({ ...m, embedding: e });
    for (let c = getCount[i]; c > 0; c--) {
      get.add(m);
      exactGet.add(m);
    }
    bytes += Buffer.byteLength(id) + Buffer.byteLength(content) + Buffer.byteLength(JSON.stringify(metadata)) + 4 * W.DIMENSIONS;
    const en = Math.fround(W.norm(e));
    const passes = filters.map((f) => f.matches(m));
    for (let q = 0; q < qs.length; q++) {
      const score = en === 0 ? 0 : W.dot(qs[q], e) / (qn[q] * en);
      tops[q].offer(id, score);
      for (let f = 0; f < filters.length; f++) if (passes[f]) filteredTops[f][q].offer(id, score);
    }
    if ((i & 1023) === 0) progress(i);
  }
  return {
    iter: iter.toJSON(), iterEmb: iterEmb.toJSON(), get: get.toJSON(),
    exact: { iter: exact.toJSON(), iterEmb: exactEmb.toJSON(), get: exactGet.toJSON() },
    recall: tops.map((t) => t.result()), logicalBytes: bytes, queries: qs.length,
    recallFiltered: Object.fromEntries(filters.map((f, i) => [f.name, filteredTops[i].map((t) => t.result())])),
  };
}

