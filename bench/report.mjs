// Figures, ratios and tables. Also a CLI that prints the Markdown table of a
// results file (for docs/benchmarks.md):  node bench/report.mjs [.tmp/bench/latest.json]

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PEERS } from './stores.mjs';

// Every figure a run reports. `runs`: the runner op that produces it;
// `peerKey`: the peers' figure a tierstore-only figure is compared with;
// `noRatio`: a figure whose ratio to a peer's would not compare like with like.
export const OPS_INFO = {
  insert: { label: 'bulk insert', unit: 'records/s', better: 'higher' },
  'insert-mb': { label: 'bulk insert', unit: 'MB/s', better: 'higher', runs: ['insert'] },
  migrate: { label: 'migrate all to the tier', unit: 'records/s', better: 'higher', tsOnly: true },
  'warm-disk': { label: 'warm overhead on disk', unit: 'B/record', better: 'lower', tsOnly: true, runs: ['migrate'] },
  'warm-ram': { label: 'warm overhead in RAM', unit: 'B/record', better: 'lower', tsOnly: true, runs: ['migrate'] },
  'put-p50': { label: 'single put, median', unit: 'µs', better: 'lower', runs: ['put'] },
  'put-p99': { label: 'single put, p99', unit: 'µs', better: 'lower', runs: ['put'] },
  get: { label: 'get by id (random)', unit: 'ops/s', better: 'higher' },
  iter: { label: 'iterate, no embeddings', unit: 'records/s', better: 'higher' },
  'iter-emb': { label: 'iterate with embeddings', unit: 'records/s', better: 'higher' },
  'iter-batch': { label: 'iterate batches(), no emb', unit: 'records/s', better: 'higher', peerKey: 'iter', tsOnly: true },
  'iter-arrow': { label: 'arrow() scan, every id read', unit: 'records/s', better: 'higher', peerKey: 'iter', tsOnly: true },
  'iter-arrow-emb': { label: 'arrow() scan with embeddings', unit: 'records/s', better: 'higher', peerKey: 'iter-emb', tsOnly: true, runs: ['iter-arrow'] },
  'arrow-id-floor': { label: 'arrow id-read floor (Vector.get, no store)', unit: 'records/s', better: 'higher', tsOnly: true, runs: ['iter-arrow'] },
  'iter-floor': { label: 'per-record floor (JS: string + JSON.parse)', unit: 'records/s', better: 'higher', tsOnly: true },
  recall: { label: 'cosine top-10, all records', unit: 'ms/query', better: 'lower' },
  'recall-async': { label: 'top-10 recallAsync', unit: 'ms/query', better: 'lower', peerKey: 'recall', tsOnly: true },
  'recall-meta-1pct': { label: 'recallAsync, metadata filter matching 1%', unit: 'ms/query', better: 'lower', tsOnly: true, runs: ['recall-filter'] },
  'recall-meta-all': { label: 'recallAsync, metadata filter matching all', unit: 'ms/query', better: 'lower', tsOnly: true, runs: ['recall-filter'] },
  'recall-created-10pct': { label: 'recallAsync, createdAfter matching 10%', unit: 'ms/query', better: 'lower', tsOnly: true, runs: ['recall-filter'] },
  'move-cold': { label: "10,000 single move(id, 'cold'), relaxed", unit: 'ms', better: 'lower', tsOnly: true },
  reopen: { label: 'reopen + first get, in the writing process', unit: 'ms', better: 'lower' },
  // Reopens in a new process each (bench/reopen.mjs), files cached or not.
  'reopen-warm': { label: 'reopen + first get, new process, files cached', unit: 'ms', better: 'lower', runs: ['reopen'] },
  'reopen-cold': { label: 'reopen + first get, new process, cache dropped', unit: 'ms', better: 'lower', runs: ['reopen'] },
  'reopen-cold-read': { label: 'reopen: bytes read from the device (cold)', unit: 'MB', better: 'lower', runs: ['reopen'] },
  // lmdb-js reads through mmap, which rchar does not see: no ratio.
  'reopen-rchar': { label: 'reopen: bytes through read() (mmap not counted)', unit: 'MB', better: 'lower', noRatio: true, runs: ['reopen'] },
  'reopen-rss': { label: 'reopen: RSS added', unit: 'MB', better: 'lower', runs: ['reopen'] },
  'reopen-rss-anon': { label: 'reopen: RSS added, anonymous', unit: 'MB', better: 'lower', runs: ['reopen'] },
  'reopen-rss-file': { label: 'reopen: RSS added, file pages', unit: 'MB', better: 'lower', runs: ['reopen'] },
  'reopen-first-filter': { label: 'first filtered recallAsync (metadata 1%) after a reopen, files cached', unit: 'ms', better: 'lower', tsOnly: true, runs: ['reopen'] },
  'reopen-first-filter-cold': { label: 'first filtered recallAsync (metadata 1%) after a reopen, cache dropped', unit: 'ms', better: 'lower', tsOnly: true, runs: ['reopen'] },
  'hot-load': { label: 'hot tier load on open, files cached', unit: 'µs/record', better: 'lower', tsOnly: true, runs: ['reopen'] },
  'hot-load-floor': { label: 'hot tier load floor: its bytes copied into fresh memory', unit: 'µs/record', better: 'lower', tsOnly: true, runs: ['reopen'] },
  'hot-load-cold': { label: 'hot tier load on open, cache dropped', unit: 'µs/record', better: 'lower', tsOnly: true, runs: ['reopen'] },
  // The default tierstore at scale × N (--reopen-scale), built only to be reopened.
  'reopen-scaled-warm': { label: 'reopen + first get at scale×N, files cached', unit: 'ms', better: 'lower', tsOnly: true, scaled: true, runs: ['reopen'] },
  'reopen-scaled-cold': { label: 'reopen + first get at scale×N, cache dropped', unit: 'ms', better: 'lower', tsOnly: true, scaled: true, runs: ['reopen'] },
  'reopen-scaled-cold-read': { label: 'reopen at scale×N: bytes read from the device', unit: 'MB', better: 'lower', tsOnly: true, scaled: true, runs: ['reopen'] },
  'reopen-scaled-rchar': { label: 'reopen at scale×N: bytes through read()', unit: 'MB', better: 'lower', tsOnly: true, scaled: true, runs: ['reopen'] },
  'reopen-scaled-rss': { label: 'reopen at scale×N: RSS added', unit: 'MB', better: 'lower', tsOnly: true, scaled: true, runs: ['reopen'] },
  'reopen-scaled-rss-anon': { label: 'reopen at scale×N: RSS added, anonymous', unit: 'MB', better: 'lower', tsOnly: true, scaled: true, runs: ['reopen'] },
  'reopen-scaled-rss-file': { label: 'reopen at scale×N: RSS added, file pages', unit: 'MB', better: 'lower', tsOnly: true, scaled: true, runs: ['reopen'] },
  'reopen-scaled-first-filter': { label: 'first filtered recallAsync after a reopen at scale×N, files cached', unit: 'ms', better: 'lower', tsOnly: true, scaled: true, runs: ['reopen'] },
  'reopen-scaled-first-filter-cold': { label: 'first filtered recallAsync after a reopen at scale×N, cache dropped', unit: 'ms', better: 'lower', tsOnly: true, scaled: true, runs: ['reopen'] },
  disk: { label: 'bytes on disk', unit: 'MB', better: 'lower' },
  rss: { label: 'peak RSS of the process', unit: 'MB', better: 'lower' },
};
// Accepted by --only as op names besides the figure keys.
export const OP_ALIASES = { put: ['put-p50', 'put-p99'] };

export const TS_COLUMNS = ['tierstore', 'tierstore-hot', 'tierstore-warm', 'tierstore-cold'];
const SHORT = { tierstore: 'tierstore', 'tierstore-hot': 'ts:hot', 'tierstore-warm': 'ts:warm', 'tierstore-cold': 'ts:cold', lmdb: 'lmdb', sqlite: 'sqlite', level: 'level' };

export function ratioOf(figures, ts, key, info) {
  const v = figures[ts]?.[key];
  if (v === undefined || info.noRatio) return undefined;
  let best, bestPeer;
  for (const p of PEERS) {
    const pv = figures[p]?.[info.peerKey ?? key];
    if (pv === undefined) continue;
    if (best === undefined || (info.better === 'higher' ? pv > best : pv < best)) { best = pv; bestPeer = p; }
  }
  if (best === undefined || best === 0) return undefined;
  const ratio = v / best;
  return { value: v, best, bestPeer, ratio, ahead: info.better === 'higher' ? ratio > 1 : ratio < 1 };
}

export function formatValue(x) {
  if (x === undefined || x === null || !Number.isFinite(x)) return 'n/a';
  const a = Math.abs(x);
  const sig = (y) => (Math.abs(y) >= 100 ? y.toFixed(0) : Math.abs(y) >= 10 ? y.toFixed(1) : y.toFixed(2));
  if (a >= 1e6) return sig(x / 1e6) + 'M';
  if (a >= 1e4) return sig(x / 1e3) + 'k';
  if (a >= 1000) return Math.round(x).toString();
  if (a >= 1) return sig(x);
  return x.toPrecision(2);
}

// A figure this system could not measure (a cold reopen on tmpfs, say) is
// 'not measured', not 'n/a': it exists, just not here.
const cell = (figures, unmeasured, s, key) =>
  figures[s][key] === undefined && unmeasured?.[s]?.[key] !== undefined ? 'not measured' : formatValue(figures[s][key]);

function rows({ figures, ratios, stores, unmeasured }) {
  const cols = stores.filter((s) => figures[s]);
  const header = ['operation', 'unit', 'better', ...cols.map((s) => SHORT[s] ?? s), 'best peer', 'tierstore/best', 'tierstore is'];
  const body = [];
  for (const [key, info] of Object.entries(OPS_INFO)) {
    if (!cols.some((s) => figures[s][key] !== undefined || unmeasured?.[s]?.[key] !== undefined)) continue;
    const r = ratios?.tierstore?.[key];
    body.push([
      info.label, info.unit, info.better,
      ...cols.map((s) => cell(figures, unmeasured, s, key)),
      r ? `${r.bestPeer} ${formatValue(r.best)}` : '',
      r ? `${r.ratio >= 10 ? r.ratio.toFixed(0) : r.ratio < 0.1 ? r.ratio.toPrecision(2) : r.ratio.toFixed(2)}×` : '',
      r ? (r.ahead ? 'ahead' : 'BEHIND') : '',
    ]);
  }
  return { header, body, numericFrom: 3 };
}

export function renderTable(data) {
  const { header, body, numericFrom } = rows(data);
  const w = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i >= numericFrom && i < r.length - 1 ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ');
  const out = [line(header), w.map((x) => '-'.repeat(x)).join('  '), ...body.map(line)];
  out.push('');
  out.push(`N = ${data.n.toLocaleString('en-US')}. "tierstore/best" = the default tierstore column divided by the best peer's figure;`);
  out.push('"better" says which direction wins, so the ratio is ahead above 1 for "higher" rows and below 1 for "lower" rows.');
  out.push('ts:hot/warm/cold: the same records all in one tier. iterate batches() and recallAsync are compared with the peers\' per-record iteration and JS scan.');
  out.push(...reopenNotes(data));
  return out.join('\n');
}

// What the reopen rows need said: the larger N, and why a figure is missing.
export function reopenNotes({ reopenScale, unmeasured, figures }) {
  const out = [];
  if (reopenScale) {
    const ts = figures?.tierstore ?? {};
    const grew = ['warm', 'cold']
      .filter((k) => ts[`reopen-${k}`] > 0 && ts[`reopen-scaled-${k}`] !== undefined)
      .map((k) => `${(ts[`reopen-scaled-${k}`] / ts[`reopen-${k}`]).toFixed(2)}× ${k === 'warm' ? 'cached' : 'cache dropped'}`);
    out.push(`scale×N: a default tierstore of ${reopenScale.n.toLocaleString('en-US')} records (--reopen-scale ${reopenScale.scale}), built only to be reopened;`
      + ` its reopen takes ${grew.length ? grew.join(', ') : 'n/a'} of the one at N.`);
  }
  const reasons = new Set(Object.values(unmeasured ?? {}).flatMap((byKey) => Object.values(byKey)));
  for (const r of reasons) out.push(`not measured: ${r}`);
  return out;
}

export function renderMarkdown(data) {
  const { header, body, numericFrom } = rows(data);
  const out = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i >= numericFrom && i < header.length - 1 ? '---:' : '---')).join('|')}|`];
  for (const r of body) out.push(`| ${r.join(' | ')} |`);
  return out.join('\n');
}

// tierstore's recall (1 thread) and recallAsync (the scan split across every
// core) against scan_bench's plain C AVX2 loop on the same N, in the same run.
// The C loop reads one contiguous matrix; it is compared on huge pages (what
// hot records and large anonymous matrices get) and on 4 KiB pages (what file
// mappings usually get), each with the number of threads tierstore used.
export function referenceRatios(scanBench, figures) {
  const c = (pages, threads) =>
    scanBench.results.find((r) => r.kernel === 'dot-avx2 top-10' && r.pages === pages && r.threads === threads)?.median_ms;
  const out = [];
  for (const [key, threads] of [['recall', 1], ['recall-async', 2]]) {
    for (const ts of TS_COLUMNS) {
      const v = figures[ts]?.[key];
      if (v === undefined) continue;
      const huge = c('huge', threads), small = c('4k', threads);
      out.push({ store: ts, op: key, threads, ms: v, cHuge: huge, c4k: small,
        ratioHuge: huge ? v / huge : undefined, ratio4k: small ? v / small : undefined });
    }
  }
  return out;
}

export function renderReferenceTable(reference) {
  const header = ['operation', 'store', 'ms/query', 'C loop huge', 'ratio', 'C loop 4k', 'ratio'];
  const f = (x) => (x === undefined ? 'n/a' : x.toFixed(2));
  const body = reference.map((r) => [
    r.op === 'recall' ? 'recall (1 thread)' : `recallAsync (${r.threads} threads)`, SHORT[r.store] ?? r.store,
    f(r.ms), f(r.cHuge), r.ratioHuge === undefined ? 'n/a' : `${r.ratioHuge.toFixed(2)}×`, f(r.c4k),
    r.ratio4k === undefined ? 'n/a' : `${r.ratio4k.toFixed(2)}×`,
  ]);
  const w = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (row) => row.map((c, i) => (i >= 2 ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ');
  return [
    'against the C reference loop (native/bench/scan_bench, plain AVX2, same N, this run; target: ratio <= 1.3)',
    line(header), w.map((x) => '-'.repeat(x)).join('  '), ...body.map(line),
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2] ?? new URL('../.tmp/bench/latest.json', import.meta.url);
  const d = JSON.parse(readFileSync(file, 'utf8'));
  const m = d.machine;
  console.log(`N = ${d.n.toLocaleString('en-US')}, ${d.config.repeat} run(s) per store (medians), ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.date.slice(0, 10)}, commit ${m.commit}${m.dirty ? ' (uncommitted changes)' : ''}, load ${m.loadavgStart.join(' ')} → ${m.loadavgEnd?.join(' ')}\n`);
  console.log(renderMarkdown({ ...d, stores: d.config.stores }));
  const notes = reopenNotes(d);
  if (notes.length) console.log('\n' + notes.join('\n'));
  if (d.cReference) console.log('\n' + renderReferenceTable(d.cReference));
}
