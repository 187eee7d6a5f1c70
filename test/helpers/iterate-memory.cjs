// Child process of iterate-contract.test.ts: builds a store of N cold records
// (8 dimensions, small content), reopens it, and iterates the cold tier
// without embeddings, sampling RSS after every batch. Prints one JSON line:
// { count, unique, baselineRss, peakRss }. Uses the built package (dist/).
// RSS here is the anonymous part (RssAnon): the store's files are mapped,
// and their pages, which the kernel can drop at will, join the RSS as an
// iteration reads them; what must stay bounded is the memory the process
// allocates.
'use strict';
const path = require('node:path');
const { open } = require(path.join(__dirname, '..', '..'));

const [dir, nArg] = process.argv.slice(2);
const n = Number(nArg);
const dims = 8;
{
  const store = open(dir, { dimensions: dims, hotCapacity: 0, skipWarm: true });
  const embedding = new Float32Array(dims);
  for (let start = 0; start < n; start += 50000) {
    const batch = [];
    for (let i = start; i < Math.min(n, start + 50000); i++) {
      embedding[i % dims] = (i % 97) / 97;
      batch.push({ id: `c-${i}`, content: `cold record number ${i}`, embedding });
    }
    store.putMany(batch);
  }
  store.migrate();
  store.close();
}
global.gc();
function anonRss() {
  const m = /RssAnon:\s+(\d+) kB/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error('no RssAnon in /proc/self/status');
  return Number(m[1]) * 1024;
}
const store = open(dir, { hotCapacity: 0, skipWarm: true });
if (store.counts().cold !== n) throw new Error(`expected ${n} cold records, have ${JSON.stringify(store.counts())}`);
global.gc();
const baselineRss = anonRss();
let peakRss = baselineRss;
let count = 0;
// Uniqueness without keeping a million strings: ids are c-<i>, so a bitmap.
const seen = new Uint8Array(n);
let unique = 0;
for (const batch of store.iterate({ tier: 'cold', batchSize: 4096 }).batches()) {
  for (const id of batch.ids) {
    const i = Number(id.slice(2));
    if (seen[i] === 0) {
      seen[i] = 1;
      unique++;
    }
  }
  count += batch.ids.length;
  peakRss = Math.max(peakRss, anonRss());
}
for (const m of store.iterate({ tier: 'cold', batchSize: 4096 })) {
  if (m.tier !== 'cold') throw new Error('not cold');
  peakRss = Math.max(peakRss, anonRss());
}
store.close();
console.log(JSON.stringify({ count, unique, baselineRss, peakRss }));
