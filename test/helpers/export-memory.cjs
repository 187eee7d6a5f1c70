// Child process of export.test.ts (run with --expose-gc): builds a store of N
// cold records (8 dimensions, ~4 KB contents), reopens it, exports the
// cold tier to Parquet while sampling the JS heap plus external memory
// (ArrayBuffers and parquet-wasm's WebAssembly memory) after a GC at
// every progress callback (one per batch of 512), then imports the file into
// a fresh store the same way. Prints one JSON line with the counts, the data
// size and the growth over the baseline (overall and per half of the run: a
// leak of anything per batch would make the second half grow past the first).
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
const filler = 'lorem ipsum dolor sit amet, consectetur adipiscing elit — ünïcødé € '.repeat(80);

function used() {
  global.gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/**
 * The baseline: V8 frees ArrayBuffer memory after a GC asynchronously, so
 * let it settle first (an unsettled baseline would hide growth; unsettled
 * samples can only overstate it).
 */
async function settled() {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return used();
}

/** Growth samples (one per batch): their count, overall max, and max over each half of the run. */
function summary(samples) {
  const half = Math.floor(samples.length / 2);
  return {
    samples: samples.length,
    max: Math.max(0, ...samples),
    firstHalfMax: Math.max(0, ...samples.slice(0, half)),
    secondHalfMax: Math.max(0, ...samples.slice(half)),
  };
}

/** Builds the source store; a plain function, so its batches are garbage once it returns. */
function buildStore(storePath) {
  let contentBytes = 0;
  const store = open(storePath, { dimensions: dims, hotCapacity: 0, skipWarm: true });
  for (let start = 0; start < n; start += 20000) {
    const batch = [];
    for (let i = start; i < Math.min(n, start + 20000); i++) {
      const content = `record ${i}: ${filler.slice(0, 3800 + (i % 400))}`;
      contentBytes += Buffer.byteLength(content);
      const embedding = new Float32Array(dims);
      for (let d = 0; d < dims; d++) embedding[d] = Math.sin(i + d);
      batch.push({ id: `m-${i}`, content, embedding, metadata: { i } });
    }
    store.putMany(batch);
  }
  store.migrate();
  store.close();
  return contentBytes;
}

(async () => {
  const storePath = path.join(dir, 'source');
  const contentBytes = buildStore(storePath);
  const wasmMemory = require(require.resolve('parquet-wasm', { paths: [repo] })).wasmMemory();
  const wasmBefore = wasmMemory.buffer.byteLength;
  const store = open(storePath, { hotCapacity: 0, skipWarm: true });
  const file = path.join(dir, 'cold.parquet');
  const exportBaseline = await settled();
  const exportSamples = [];
  const exported = await exportStore(store, file, {
    format: 'parquet',
    tier: 'cold',
    batchSize: 512,
    onProgress: () => exportSamples.push(used() - exportBaseline),
  });
  store.close();

  const target = open(path.join(dir, 'target'), { dimensions: dims, hotCapacity: 0, skipWarm: true });
  const importBaseline = await settled();
  const importSamples = [];
  const imported = await importFile(target, file, {
    batchSize: 512,
    onProgress: () => importSamples.push(used() - importBaseline),
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
      exportGrowth: summary(exportSamples),
      importGrowth: summary(importSamples),
      // WebAssembly memory only grows: its size at the end is parquet-wasm's peak.
      wasmBefore,
      wasmAfter: wasmMemory.buffer.byteLength,
    }) + '\n',
  );
})().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(70);
});
