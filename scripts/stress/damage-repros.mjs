// Minimal reproducers of the engine issues the damage fuzzer found (all
// fixed since). Each
// builds a tiny store, damages one file the way the fuzzer did, opens it and
// returns what went wrong ([] when the store behaves: exact data or an
// error). npm test runs them as regression checks
// (test/reliability-damage.test.ts); by hand:
//
//   node scripts/stress/damage-repros.mjs            # all; exit 1 if any reproduces
//   node scripts/stress/damage-repros.mjs --only failed-open-changes-files
//
// "Unclean" stores are made by a child process that writes and is SIGKILLed
// with the store open (a crash), the state the fuzzer's 'killed' store is in.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMain, loadTierstore, parseArgs } from './common.mjs';

const SELF = fileURLToPath(import.meta.url);
const DIMS = 4;

function recordsFor(prefix, n) {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    content: `content of ${prefix}-${i}`,
    embedding: [i + 1, 1, 0.5, -1],
    createdAt: 1_700_000_000_000 + i,
    metadata: { i },
  }));
}

/** Child mode: 3 records in each tier of `dir`, then wait to be killed. */
function hold(dir, prefix, dims) {
  const { open } = loadTierstore();
  const s = open(dir, { dimensions: dims, hotCapacity: 1000, warmCapacity: 1000 });
  const recs = recordsFor(prefix, 9).map((r) => ({ ...r, embedding: r.embedding.slice(0, dims).concat(Array(Math.max(0, dims - 4)).fill(0)) }));
  s.putMany(recs);
  for (let i = 3; i < 6; i++) s.move(recs[i].id, 'warm');
  for (let i = 6; i < 9; i++) s.move(recs[i].id, 'cold');
  s.compact(); // the log now holds only the hot records
  process.stdout.write('ready\n');
  setInterval(() => {}, 1 << 30);
}

/** A store with 3 records per tier, left as after a crash (its writer SIGKILLed). */
async function crashedStore(dir, prefix = 'r', dims = DIMS) {
  const child = spawn(process.execPath, [SELF, '--hold', dir, '--prefix', prefix, '--dims', String(dims)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`holder exited ${code}`)));
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.on('exit', resolve));
}

/** The same, closed cleanly. */
function cleanStore(dir, { skipWarm = false } = {}) {
  const { open } = loadTierstore();
  const s = open(dir, { dimensions: DIMS, hotCapacity: 1000, warmCapacity: 1000, skipWarm });
  const recs = recordsFor('r', 9);
  s.putMany(recs);
  for (let i = 3; i < 6; i++) s.move(recs[i].id, skipWarm ? 'cold' : 'warm');
  for (let i = 6; i < 9; i++) s.move(recs[i].id, 'cold');
  s.close();
}

/** Opens and reads everything: { ids } or { error }. */
function readStore(dir) {
  const { open } = loadTierstore();
  try {
    const s = open(dir);
    const ids = [...s.iterate()].map((m) => m.id).sort();
    s.close();
    return { ids };
  } catch (e) {
    return { error: `${e.code}: ${e.message}` };
  }
}

/** The size of a new store's hot.log: its file header, where the first entry starts. */
export function logHeaderBytes(dir) {
  const { open } = loadTierstore();
  const s = open(dir, { dimensions: DIMS });
  const bytes = s.stats().hotLogBytes;
  s.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return bytes;
}

const files = (dir) => fs.readdirSync(dir).filter((f) => f !== 'LOCK').sort();
const segmentOf = (dir) => files(dir).find((f) => /^cold-.*\.seg$/.test(f));

export const REPROS = {
  async 'unclean-open-ignores-missing-files'(dir) {
    const out = [];
    for (const target of ['hot.log', 'warm.blocks', 'segment']) {
      const d = path.join(dir, target);
      await crashedStore(d);
      const name = target === 'segment' ? segmentOf(d) : target;
      fs.rmSync(path.join(d, name));
      const r = readStore(d);
      if (r.ids) out.push(`after a crash, removing ${name} silently leaves ${r.ids.length} of 9 records`);
    }
    return out;
  },
  async 'unclean-damaged-warm-block-reads-as-free'(dir) {
    await crashedStore(dir);
    const file = path.join(dir, 'warm.blocks');
    const bytes = fs.readFileSync(file);
    const emb = Buffer.from(new Float32Array([4, 1, 0.5, -1]).buffer); // r-3's embedding, a warm record
    const at = bytes.indexOf(emb);
    if (at < 0) return ['(could not find the warm record in warm.blocks)'];
    const page = Math.floor(at / 4096) * 4096;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, page);
    fs.closeSync(fd);
    const r = readStore(dir);
    return r.ids ? [`after a crash, zeroing page ${page / 4096} of warm.blocks silently leaves ${r.ids.length} of 9 records (missing ${['r-3', 'r-4', 'r-5'].filter((id) => !r.ids.includes(id)).join(', ')})`] : [];
  },
  async 'cold-deletion-bitmap-not-checksummed'(dir) {
    await crashedStore(dir);
    const file = path.join(dir, segmentOf(dir));
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(8, 0xff), 0, 8, size - 8); // the deletion bitmap is the segment's last word
    fs.closeSync(fd);
    const r = readStore(dir);
    return r.ids && r.ids.length < 9 ? [`after a crash, setting the last 8 bytes of ${path.basename(file)} (its deletion bitmap) silently deletes ${9 - r.ids.length} cold records`] : [];
  },
  async 'cold-count-mismatch-names-no-file'(dir) {
    // A clean store with a deleted cold row; then the active deletion bitmap
    // copy's generation is zeroed, so the older copy (without the deletion)
    // wins and the row count disagrees with the manifest.
    const { open } = loadTierstore();
    const s = open(dir, { dimensions: DIMS, hotCapacity: 1000, warmCapacity: 1000 });
    const recs = recordsFor('r', 6);
    s.putMany(recs);
    for (let i = 3; i < 6; i++) s.move(recs[i].id, 'cold');
    s.compact();
    s.delete(recs[4].id);
    s.close();
    const seg = segmentOf(dir);
    const file = path.join(dir, seg);
    const b = fs.readFileSync(file);
    // The two bitmap copies are the segment's last two 64-byte-aligned blocks
    // here (6 rows: a 64-byte header and one 64-byte word block each); the
    // generation is a copy's first 8 bytes.
    const copy0 = b.length - 256;
    const copy1 = b.length - 128;
    const active = b.readBigUInt64LE(copy1) > b.readBigUInt64LE(copy0) ? copy1 : copy0;
    b.fill(0, active, active + 8);
    fs.writeFileSync(file, b);
    const r = readStore(dir);
    return r.error && !r.error.includes(seg) ? [`the active deletion bitmap of ${seg} with its generation zeroed gives "${r.error}", which does not name ${seg}`] : [];
  },
  async 'failed-open-changes-files'(dir) {
    const out = [];
    const state = (d) => files(d).map((f) => `${f}:${fs.statSync(path.join(d, f)).size}:${fs.statSync(path.join(d, f)).mtimeMs}`);
    const tryOpen = (d, what) => {
      const before = state(d);
      const r = readStore(d);
      const after = state(d);
      const changed = [...new Set([...before, ...after].filter((x) => !before.includes(x) || !after.includes(x)).map((x) => x.split(':')[0]))];
      if (r.error && changed.length > 0) out.push(`${what}: the open failed ("${r.error.slice(0, 110)}") yet changed ${changed.join(', ')}`);
    };
    // 1. A clean store with a cut warm var file and a cut cold segment.
    const a = path.join(dir, 'a');
    cleanStore(a);
    const varFile = files(a).find((f) => f.startsWith('warm-var-'));
    fs.truncateSync(path.join(a, varFile), fs.statSync(path.join(a, varFile)).size - 7);
    fs.truncateSync(path.join(a, segmentOf(a)), 100);
    tryOpen(a, `${varFile} cut by 7 bytes and ${segmentOf(a)} cut to 100 bytes`);
    // 2. A crashed store without hot.log whose warm.blocks header is zeroed.
    const b = path.join(dir, 'b');
    await crashedStore(b);
    fs.rmSync(path.join(b, 'hot.log'));
    const fd = fs.openSync(path.join(b, 'warm.blocks'), 'r+');
    fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, 0);
    fs.closeSync(fd);
    tryOpen(b, 'after a crash, hot.log removed and the first page of warm.blocks zeroed');
    return out;
  },
  async 'foreign-file-dimension-mismatch'(dir) {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    await crashedStore(a, 'a', 4);
    await crashedStore(b, 'b', 8);
    fs.copyFileSync(path.join(b, 'warm.blocks'), path.join(a, 'warm.blocks'));
    const r = readStore(a);
    return r.error && r.error.startsWith('DIMENSION_MISMATCH') ? [`open(path) without dimensions of a store whose warm.blocks came from another store gives ${r.error.slice(0, 160)}`] : [];
  },
  async 'unclean-log-length-flip-drops-later-entries'(dir) {
    const header = logHeaderBytes(path.join(dir, 'probe'));
    await crashedStore(path.join(dir, 'db'));
    const file = path.join(dir, 'db', 'hot.log');
    const log = fs.readFileSync(file);
    log[header + 8 + 6] ^= 0x01; // bit 48 of the first entry's length (an entry starts: crc u32, type u8, pad, length u64)
    fs.writeFileSync(file, log);
    const { open } = loadTierstore();
    let s;
    try {
      s = open(path.join(dir, 'db'));
    } catch (e) {
      return []; // reported as damage: fixed
    }
    const ids = [...s.iterate()].map((m) => m.id);
    const torn = s.stats().tornLogBytes;
    s.close();
    return ids.length < 9 ? [`after a crash, one flipped bit in the first log entry's length drops all ${torn} following log bytes as a "torn tail": ${9 - ids.length} acknowledged records silently gone`] : [];
  },
  async 'unclean-foreign-hot-log-accepted'(dir) {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    await crashedStore(a, 'a');
    await crashedStore(b, 'b');
    fs.copyFileSync(path.join(b, 'hot.log'), path.join(a, 'hot.log'));
    const r = readStore(a);
    return r.ids && r.ids.some((id) => id.startsWith('b-')) ? [`after a crash, another store's hot.log is replayed: the store now holds ${r.ids.filter((id) => id.startsWith('b-')).join(', ')}`] : [];
  },
};

const args = isMain(import.meta.url) ? parseArgs(process.argv.slice(2), { only: '', hold: '', prefix: 'r', dims: DIMS }) : undefined;
if (!args) {
  // imported (by the tests): nothing to run
} else if (args.hold) {
  hold(args.hold, args.prefix, args.dims);
} else {
  let reproduced = 0;
  for (const [name, repro] of Object.entries(REPROS)) {
    if (args.only && args.only !== name) continue;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierstore-repro-'));
    try {
      const shown = await repro(dir);
      reproduced += shown.length > 0 ? 1 : 0;
      process.stdout.write(`${shown.length > 0 ? 'REPRODUCED' : 'ok (does not reproduce)'} ${name}\n${shown.map((s) => `  ${s}\n`).join('')}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  process.exitCode = reproduced > 0 ? 1 : 0;
}
