// Child process of iterate-contract.test.ts: builds a store of N cold records
// (8 dimensions, small content), reopens it, and iterates the cold tier
// without embeddings, sampling RSS after every batch. Prints one JSON line:
// { count, unique, baselineRss, peakRss }. Uses the built package (dist/).
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
const store = open(dir, { hotCapacity: 0, skipWarm: true });
if (store.counts().cold !== n) throw new Error(`expected ${n} cold records, have ${JSON.stringify(store.counts())}`);
// The open uses the persisted id index and touches no cold row; verify()
// reads them all, so the segments' mapped pages are in the baseline as they
// were when every open read them, and the growth measured is iteration's own.
if (store.verify().damaged.length !== 0) throw new Error('the store is damaged');
global.gc();
const baselineRss = process.memoryUsage().rss;
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
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}
for (const m of store.iterate({ tier: 'cold', batchSize: 4096 })) {
  if (m.tier !== 'cold') throw new Error('not cold');
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}
store.close();
console.log(JSON.stringify({ count, unique, baselineRss, peakRss }));
