// Child process of reliability-resources.test.ts, run as
//   node --expose-gc reliability-io-resources.cjs <package root> <scratch dir> <cycles> <warm-up>
// Prints one line `RESULT {json}` with what it measured (open file
// descriptors from /proc/self/fd, mappings of store files from
// /proc/self/maps, RSS) in three phases:
//
// 1. cycles: open / putMany / put / migrate / iterate (sync, batches, async)
//    / list / recall / recallAsync / close, over 4 stores reused in turn (the
//    first keeps records in warm and cold, the others skip warm: reopening a
//    populated warm tier costs ~35 ms, which 1,000 cycles cannot afford)
//    plus every 50th cycle a new store that is deleted after close; compact()
//    every 50th. Baseline after the warm-up cycles, then again at the end.
// 2. dropped: 12 stores with a partly consumed sync, async and batch iterator
//    each are dropped without close(); gc() and setImmediate until the file
//    descriptors are back (at most 200 rounds); then another process must be
//    able to open each store (its lock was released).
// 3. dropped iterators: 300 partly consumed iterators of one open store are
//    dropped; after gc() its stats().openIterators must be back to 0.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const [root, scratch, cyclesArg, warmupArg] = process.argv.slice(2);
const { open } = require(root);
const CYCLES = Number(cyclesArg);
const WARMUP = Number(warmupArg);
const DIMS = 32;

if (typeof global.gc !== 'function') throw new Error('run with --expose-gc');

const fdCount = () => fs.readdirSync('/proc/self/fd').length;
const fdTargets = () => fs.readdirSync('/proc/self/fd').map((fd) => {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return '?';
  }
});
/** Mappings (lines of /proc/self/maps) of files under the scratch directory. */
const storeMaps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(scratch)).length;
const rss = () => process.memoryUsage().rss;
const tick = () => new Promise((resolve) => setImmediate(resolve));

async function settle(rounds = 4) {
  for (let i = 0; i < rounds; i++) {
    global.gc();
    await tick();
  }
}

function record(i, j) {
  const embedding = new Float32Array(DIMS);
  for (let d = 0; d < DIMS; d++) embedding[d] = Math.sin(i * 7 + j * 13 + d);
  return {
    id: `r${j}`,
    content: `cycle ${i} record ${j} ${'é'.repeat((i + j) % 50)}${'x'.repeat((i * 31 + j) % 600)}`,
    embedding,
    metadata: { i, j, tags: ['a', 'b'] },
  };
}

async function cycle(i) {
  const fresh = i % 50 === 25;
  const dir = fresh ? path.join(scratch, `fresh-${i}`) : path.join(scratch, `store-${i % 4}`);
  const s = open(dir, { dimensions: DIMS, hotCapacity: 8, warmCapacity: 8, skipWarm: !fresh && i % 4 !== 0 });
  s.putMany(Array.from({ length: 20 }, (_, j) => record(i, j)));
  s.put(record(i + 1, i % 20));
  s.migrate();
  let n = 0;
  for (const m of s.iterate({ includeEmbeddings: i % 2 === 0, batchSize: 7 })) n += m.id.length > 0 ? 1 : 0;
  for (const b of s.iterate({ tier: 'cold' }).batches()) n += b.ids.length * 0;
  if (i % 3 === 0) for await (const m of s.iterate({ tier: 'warm', batchSize: 3 })) void m;
  if (i % 5 === 0) {
    s.list({ tier: 'all', limit: 5 });
    s.recall(record(i, 0).embedding, { k: 3 });
    await s.recallAsync(record(i, 1).embedding, { k: 3 });
  }
  if (i % 50 === 49) s.compact();
  if (n !== 20) throw new Error(`cycle ${i}: iterated ${n} records, expected 20`);
  s.close();
  if (fresh) fs.rmSync(dir, { recursive: true, force: true });
}

async function main() {
  const out = {};
  // 1. cycles
  for (let i = 0; i < WARMUP; i++) await cycle(i);
  await settle();
  const base = { fds: fdCount(), maps: storeMaps(), rss: rss(), fdTargets: fdTargets() };
  let peakRss = base.rss;
  const rssSamples = [];
  for (let i = WARMUP; i < WARMUP + CYCLES; i++) {
    await cycle(i);
    if ((i - WARMUP) % 100 === 99) {
      await settle(2);
      const r = rss();
      peakRss = Math.max(peakRss, r);
      rssSamples.push(Math.round(r / 1048576));
    }
  }
  await settle();
  const end = { fds: fdCount(), maps: storeMaps(), rss: rss(), fdTargets: fdTargets() };
  out.cycles = {
    count: CYCLES,
    warmup: WARMUP,
    baseFds: base.fds,
    endFds: end.fds,
    leakedFds: end.fdTargets.filter((t) => !base.fdTargets.includes(t)),
    baseMaps: base.maps,
    endMaps: end.maps,
    baseRssMiB: base.rss / 1048576,
    endRssMiB: end.rss / 1048576,
    peakRssMiB: peakRss / 1048576,
    rssSamplesMiB: rssSamples,
  };

  // 2. stores and their iterators dropped without close()
  const before = { fds: fdCount(), maps: storeMaps() };
  const paths = [];
  await (async () => {
    const keep = [];
    for (let k = 0; k < 12; k++) {
      const p = path.join(scratch, `dropped-${k}`);
      paths.push(p);
      const s = open(p, { dimensions: DIMS, hotCapacity: 10, warmCapacity: 10 });
      s.putMany(Array.from({ length: 40 }, (_, j) => record(k, j)));
      const sync = s.iterate({ batchSize: 2 })[Symbol.iterator]();
      sync.next();
      const asyncIt = s.iterate({ tier: 'cold', batchSize: 2 })[Symbol.asyncIterator]();
      await asyncIt.next();
      const batches = s.iterate({ tier: 'warm', batchSize: 2 }).batches();
      batches.next();
      keep.push(sync, asyncIt, batches);
    }
    out.droppedOpen = { fds: fdCount(), maps: storeMaps() };
    // everything created here becomes unreachable when this function returns
    keep.length = 0;
  })();
  let rounds = 0;
  while ((fdCount() !== before.fds || storeMaps() !== before.maps) && rounds < 200) {
    global.gc();
    await tick();
    await new Promise((resolve) => setTimeout(resolve, 5));
    rounds++;
  }
  const others = spawnSync(process.execPath, ['-e', `
    const { open } = require(${JSON.stringify(root)});
    const res = [];
    for (const p of ${JSON.stringify(paths)}) {
      try { const s = open(p); res.push(s.counts().total); s.close(); } catch (e) { res.push(e.code || String(e)); }
    }
    console.log(JSON.stringify(res));`], { encoding: 'utf8' });
  out.dropped = {
    stores: paths.length,
    beforeFds: before.fds,
    openFds: out.droppedOpen.fds,
    afterFds: fdCount(),
    beforeMaps: before.maps,
    openMaps: out.droppedOpen.maps,
    afterMaps: storeMaps(),
    gcRounds: rounds,
    otherProcess: others.status === 0 ? JSON.parse(others.stdout) : `failed: ${others.status} ${others.signal} ${others.stderr}`,
  };

  // 3. iterators dropped while their store stays open
  const s = open(path.join(scratch, 'iterators'), { dimensions: DIMS, hotCapacity: 10, warmCapacity: 10 });
  s.putMany(Array.from({ length: 40 }, (_, j) => record(0, j)));
  const fdsWithStore = fdCount();
  await (async () => {
    for (let k = 0; k < 100; k++) {
      s.iterate({ batchSize: 1 })[Symbol.iterator]().next();
      await s.iterate({ tier: 'cold', batchSize: 1 })[Symbol.asyncIterator]().next();
      s.iterate({ tier: 'warm', batchSize: 1 }).batches().next();
    }
  })();
  const openWhileHeld = s.stats().openIterators;
  let itRounds = 0;
  while (s.stats().openIterators !== 0 && itRounds < 200) {
    global.gc();
    await tick();
    itRounds++;
  }
  out.iterators = { created: 300, openBeforeGc: openWhileHeld, openAfterGc: s.stats().openIterators, gcRounds: itRounds, fdsWithStore, fdsAfter: fdCount() };
  s.close();
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(70);
});
