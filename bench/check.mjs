// The cross-check of one store's answers against the reference's (run.mjs
// prints figures only when it finds nothing). Every answer the run asked for
// must be there: a missing digest, a missing or short list of recall answers,
// a get that found nothing or a record read from the wrong tier is a failure,
// never a note.

const RUNNER_OPS = ['insert', 'migrate', 'iter', 'iter-emb', 'iter-batch', 'iter-arrow', 'iter-floor', 'get', 'recall', 'recall-async', 'recall-filter', 'put', 'reopen', 'disk', 'rss'];

/** The tier every record of a tierstore variant must be read from, or null (the default variant: any). */
export function tierOfVariant(store) {
  const m = /^tierstore-(hot|warm|cold)$/.exec(store);
  return m ? m[1] : null;
}

/**
 * The failures (strings) of store `store`'s run result `r` against the
 * reference checks `ref`, for `n` records and the runner ops `opsArg` ('all'
 * or a comma list). A peer's optional paths ({ batches, recallAsync }) come
 * from its run (c.capabilities) or `capabilities`; tierstore must have both.
 */
export function checkRun(store, r, ref, n, opsArg = 'all', capabilities = {}) {
  const failures = [];
  const fail = (what) => failures.push(`${store}: ${what}`);
  const c = r.checks ?? {};
  const ops = new Set(opsArg === 'all' ? RUNNER_OPS : ['insert', 'iter', ...opsArg.split(',')]);
  const isTs = store.startsWith('tierstore');
  // tierstore must answer through batches() and recallAsync(); a peer only
  // through the paths its adapter has (the runner reports them).
  const caps = isTs ? { batches: true, recallAsync: true } : { batches: false, recallAsync: false, ...c.capabilities, ...capabilities };

  // The cheap summaries of the timed passes.
  const sameSummary = (label, got, want, withEmb) => {
    if (!got) return fail(`${label}: no answer (the timed pass reported nothing)`);
    for (const k of ['count', 'contentChars', 'turnSum', 'missing']) {
      if ((got[k] ?? 0) !== (want[k] ?? 0)) fail(`${label}: ${k} ${got[k]} != expected ${want[k]}`);
    }
    if (withEmb && !(Math.abs(got.emb0Sum - want.emb0Sum) <= 1e-6 + 1e-9 * Math.abs(want.emb0Sum))) {
      fail(`${label}: sum of embedding[0] ${got.emb0Sum} != expected ${want.emb0Sum}`);
    }
  };
  // The exact digests of the checking passes.
  const sameExact = (label, got, want) => {
    if (!got) return fail(`${label}: no answer (the checking pass reported nothing)`);
    if (got.count !== want.count) return fail(`${label}: ${got.count} records, expected ${want.count}`);
    if (got.missing !== want.missing) return fail(`${label}: ${got.missing} answers missing, expected ${want.missing}`);
    if (got.embeddings !== want.embeddings) return fail(`${label}: ${got.embeddings} embeddings, expected ${want.embeddings}`);
    if (got.hash !== want.hash) {
      fail(`${label}: digest ${got.hash} != expected ${want.hash} (some id, content, metadata, scalar or embedding bit differs)`);
    }
  };
  const exact = c.exact ?? {};
  const refExact = ref.exact;

  sameSummary('iteration', c.iter, ref.iter, false);
  sameExact('iteration', exact.iter, refExact.iter);
  if (ops.has('iter-emb')) {
    sameSummary('iteration with embeddings', c.iterEmb, ref.iterEmb, true);
    sameExact('iteration with embeddings', exact.iterEmb, refExact.iterEmb);
  }
  if (ops.has('iter-batch') && caps.batches) {
    sameSummary('batches() iteration', c.iterBatch, ref.iter, false);
    sameExact('batches() iteration', exact.iterBatch, refExact.iter);
    sameExact('batches() iteration with embeddings', exact.iterBatchEmb, refExact.iterEmb);
  }
  if (ops.has('iter-arrow') && isTs) {
    sameExact('arrow() iteration', exact.iterArrow, refExact.iter);
    sameExact('arrow() iteration with embeddings', exact.iterArrowEmb, refExact.iterEmb);
  }
  if (ops.has('get')) {
    sameSummary('get', c.get, ref.get, false);
    sameExact('get', exact.get, refExact.get);
  }

  // Recall: one answer per query, each the reference's top 10.
  const queries = ref.queries ?? ref.recall.length;
  if (ops.has('recall')) sameTopK(fail, 'top-10', c.recall, ref.recall, 10, queries);
  if (ops.has('recall-async') && caps.recallAsync) sameTopK(fail, 'top-10 async', c.recallAsync, ref.recall, 10, queries);
  if (ops.has('recall-filter') && isTs) {
    for (const [name, lists] of Object.entries(ref.recallFiltered ?? {})) {
      sameTopK(fail, `filtered top-10 (${name})`, c.recallFiltered?.[name], lists, 10, queries);
    }
  }

  if (ops.has('reopen') && c.reopenFound !== true) fail(`reopen: probe id ${c.reopenFound === false ? 'not found' : 'not checked'}`);
  for (const k of ['counts', 'countsAfterPut', 'countsAfterReopen']) {
    if (c[k] && c[k].total !== n) fail(`${k}: total ${c[k].total} != ${n}`);
  }

  // Tiers: every record of a tier variant is read from that tier (counts(),
  // the tier labels of iteration and of the batches' tier column); in the
  // default variant the labels add up to counts().
  if (isTs) {
    if (!c.counts) fail('counts() not reported');
    const tier = tierOfVariant(store);
    const labelled = [['iteration', exact.iter?.tiers], ['batches() tier column', exact.iterBatch?.tiers], ['arrow() tier column', exact.iterArrow?.tiers]];
    if (tier) {
      if (c.counts && c.counts[tier] !== n) fail(`counts() ${JSON.stringify(c.counts)}: expected all ${n} records in ${tier}`);
      for (const [label, tiers] of labelled) {
        if (tiers && JSON.stringify(tiers) !== JSON.stringify({ [tier]: n })) fail(`${label}: records read from tiers ${JSON.stringify(tiers)}, expected all ${n} in ${tier}`);
      }
    } else {
      // Any tier (a background migration may move records between reads),
      // but every record labelled with one.
      for (const [label, tiers] of labelled) {
        if (!tiers) continue;
        const labelledCount = ['hot', 'warm', 'cold'].reduce((sum, t) => sum + (tiers[t] ?? 0), 0);
        if (labelledCount !== n || Object.keys(tiers).some((t) => !['hot', 'warm', 'cold'].includes(t))) {
          fail(`${label}: tier labels ${JSON.stringify(tiers)} do not cover the ${n} records`);
        }
      }
    }
  }
  return failures;
}

// The reopens in new processes (bench/runner.mjs freshReopens): every one
// found the record and gave finite figures; the cold series is complete or
// has a reason; a cold reopen read something from the device (reading
// nothing means the drop did not take, and the figure would be a warm one).
const REOPEN_FIGURES = ['reopen-warm', 'reopen-cold', 'reopen-cold-read', 'reopen-rchar', 'reopen-rss', 'reopen-rss-anon', 'reopen-rss-file', 'hot-load', 'hot-load-cold', 'hot-load-floor', 'reopen-first-filter', 'reopen-first-filter-cold'];

function checkFreshReopens(m, figures, unmeasured, n, isTs, tier, reps = m?.reps) {
  const out = [];
  if (!m) return ['reopen in a new process: no measurements'];
  if (!Array.isArray(m.warm) || m.warm.length === 0) out.push('reopen in a new process, files cached: no measurement');
  if (reps !== undefined && m.warm?.length !== reps) out.push(`reopen in a new process: ${m.warm?.length} cached measurements, expected ${reps}`);
  if (!m.coldReason && m.cold?.length !== m.warm?.length) out.push(`reopen, cache dropped: ${m.cold?.length} measurements for ${m.warm?.length} cached ones and no reason`);
  for (const [label, list] of [['files cached', m.warm ?? []], ['cache dropped', m.cold ?? []]]) {
    list.forEach((x, i) => {
      const at = `reopen in a new process (${label}, #${i + 1})`;
      if (x.found !== true) out.push(`${at}: the first get ${x.found === false ? 'did not find the record' : 'was not checked'}`);
      if (!(Number.isFinite(x.ms) && x.ms > 0)) out.push(`${at}: time ${x.ms} ms`);
      for (const k of ['readBytes', 'rchar', 'rss', 'rssAnon', 'rssFile', 'majorFaults', 'firstFilterMs', 'firstFilterReadBytes']) {
        if (x[k] !== undefined && !Number.isFinite(x[k])) out.push(`${at}: ${k} ${x[k]}`);
      }
      if (isTs) {
        if (x.counts?.total !== n) out.push(`${at}: counts() total ${x.counts?.total} != ${n}`);
        if (tier && x.counts?.[tier] !== n) out.push(`${at}: counts() ${JSON.stringify(x.counts)}: expected all ${n} records in ${tier}`);
      }
    });
  }
  for (const x of m.cold ?? []) {
    if (x.readBytes !== undefined && !(x.readBytes > 0)) {
      out.push(`reopen, cache dropped: read ${x.readBytes} bytes from the device, so the files were still cached`);
      break;
    }
  }
  for (const k of REOPEN_FIGURES) {
    if (figures[k] !== undefined && !Number.isFinite(figures[k])) out.push(`${k}: ${figures[k]}`);
  }
  if (figures['reopen-warm'] === undefined) out.push('reopen-warm: no figure');
  if (figures['reopen-cold'] === undefined && unmeasured['reopen-cold'] === undefined) out.push('reopen-cold: neither a figure nor a reason it was not measured');
  if (tier === 'hot' && figures['hot-load'] === undefined) out.push('hot-load: no figure for the all-hot store');
  return out;
}

/**
 * The failures of store `store`'s reopen measurements in run result `r` (n
 * records, runner ops `opsArg`): kept apart from checkRun, which checks
 * answers against the reference, because these check measurements.
 */
export function checkReopens(store, r, n, opsArg = 'all') {
  if (opsArg !== 'all' && !opsArg.split(',').includes('reopen')) return [];
  return checkFreshReopens(r.checks?.reopenFresh, r.figures ?? {}, r.unmeasured ?? {}, n, store.startsWith('tierstore'), tierOfVariant(store))
    .map((f) => `${store}: ${f}`);
}

/** The failures of the --reopen-scale run `r` (a default tierstore of `n` records). */
export function checkReopenScaled(store, r, n, reps) {
  const c = r.checks ?? {};
  const out = checkFreshReopens(c.reopenFresh, r.figures ?? {}, r.unmeasured ?? {}, n, true, null, reps);
  if (c.counts && c.counts.total !== n) out.push(`counts() after insert: total ${c.counts.total} != ${n}`);
  return out.map((f) => `${store} at ${n} records: ${f}`);
}

// A store's top-k agrees with the reference when there is one list per query
// and, rank by rank, its id has the reference's score at that rank (within
// float32 rounding: ties and near-ties may swap), its ids are distinct, and
// the scores it reports are right.
export function sameTopK(fail, label, got, refLists, k, queries) {
  if (!Array.isArray(got)) return fail(`${label}: no answers (expected ${queries})`);
  if (got.length !== queries) return fail(`${label}: ${got.length} answers for ${queries} queries`);
  got.forEach((hits, q) => {
    const ref = refLists[q];
    const refScore = new Map(ref.map((h) => [h.id, h.score]));
    const want = ref.slice(0, k);
    if (!Array.isArray(hits)) return fail(`${label} q${q}: no answer`);
    if (hits.length !== want.length) return fail(`${label} q${q}: ${hits.length} hits, expected ${want.length}`);
    if (new Set(hits.map((h) => h.id)).size !== hits.length) return fail(`${label} q${q}: duplicate ids`);
    for (let j = 0; j < hits.length; j++) {
      const rs = refScore.get(hits[j].id);
      if (rs === undefined || Math.abs(rs - want[j].score) > 1e-5) {
        return fail(`${label} q${q} rank ${j + 1}: ${hits[j].id} (reference score ${rs ?? 'below top ' + ref.length}) where the reference has ${want[j].id} (${want[j].score.toFixed(7)})`);
      }
      if (!(Math.abs(hits[j].score - rs) <= 1e-4)) {
        return fail(`${label} q${q} rank ${j + 1}: ${hits[j].id} scored ${hits[j].score}, reference ${rs}`);
      }
    }
  });
}
