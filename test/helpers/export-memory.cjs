// Child process of export.test.ts (run with --expose-gc): builds a store of N
// cold records (8 dimensions, ~500-byte contents), reopens it, exports the
// cold tier to Parquet while sampling the JS heap plus external memory
// (ArrayBuffers, including parquet-wasm's WebAssembly memory) after a GC at
// every progress callback, then imports the file into a fresh store the same
// way. Prints one JSON line with the counts, the data size and the peaks.
// Uses the built package (dist/).
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const repo = path.join(__dirname, '..', '..');
const { open } = require(path.join(repo, 'dist', 'index.js'));
const { exportStore, importFile } = require(path.join(repo, 'dist', 'export.js'));

const [dir, nArg] = process.argv.slice(2);
const n = Number(nArg);
const dims = 8;
const filler = 'lorem ipsum dolor sit amet, consectetur adipiscing elit — ünïcødé € '.repeat(8);

function used() {
  global.gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

(async () => {
  const storePath = path.join(dir, 'source');
  let contentBytes = 0;
  {
    const store = open(storePath, { dimensions: dims, hotCapacity: 0, skipWarm: true });
    for (let start = 0; start < n; start += 20000) {
      const batch = [];
      for (let i = start; i < Math.min(n, start + 20000); i++) {
        const content = `record ${i}: ${filler.slice(0, 400 + (i % 200))}`;
        contentBytes += Buffer.byteLength(content);
        const embedding = new Float32Array(dims);
        for (let d = 0; d < dims; d++) embedding[d] = Math.sin(i + d);
        batch.push({ id: `m-${i}`, content, embedding, metadata: { i } });
      }
      store.putMany(batch);
    }
    store.migrate();
    store.close();
  }

  const store = open(storePath, { hotCapacity: 0, skipWarm: true });
  const file = path.join(dir, 'cold.parquet');
  const exportBaseline = used();
  let exportPeak = exportBaseline;
  let exportCalls = 0;
  const exported = await exportStore(store, file, {
    format: 'parquet',
    tier: 'cold',
    batchSize: 4096,
    onProgress: () => {
      exportCalls++;
      exportPeak = Math.max(exportPeak, used());
    },
  });
  store.close();

  const target = open(path.join(dir, 'target'), { dimensions: dims, hotCapacity: 0, skipWarm: true });
  const importBaseline = used();
  let importPeak = importBaseline;
  let importCalls = 0;
  const imported = await importFile(target, file, {
    batchSize: 4096,
    onProgress: () => {
      importCalls++;
      importPeak = Math.max(importPeak, used());
    },
  });
  const counts = target.counts();
  target.close();

  process.stdout.write(
    JSON.stringify({
      n,
      contentBytes,
      fileBytes: fs.statSync(file).size,
      exported,
      imported,
      counts,
      exportCalls,
      importCalls,
      exportGrowth: exportPeak - exportBaseline,
      importGrowth: importPeak - importBaseline,
    }) + '\n',
  );
})().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(70);
});
