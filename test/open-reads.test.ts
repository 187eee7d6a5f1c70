// Opening a store after a clean close reads the manifest, the id index and the
// hot log, never the warm blocks or cold segments: its cost does not grow with
// the warm and cold tiers (docs/durability.md). Measured as the bytes a fresh
// process reads from the disk (/proc/self/io read_bytes) while it opens a
// store of 200,000 records, whose files were first dropped from the page
// cache, and gets one warm and one cold record: at most 100 bytes per record
// plus the hot log. The same measurement of a full iteration must exceed that
// bound, so the measurement itself can fail. The cold segments' filter files
// stay out of the page cache through that open (fincore), and a filtered
// recall of cold brings them in, the same check failing.
//
// Needs a directory on a disk-backed file system (page-cache drops mean
// nothing on tmpfs), GNU dd (fdatasync and posix_fadvise DONTNEED through
// oflag/iflag=nocache) and, to check that the drop took, fincore (util-linux).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeChild, REPO_ROOT, runChild } from './helpers/child.js';

const N = 200_000;
const DIMS = 64;
const BYTES_PER_RECORD = 100;

function fsType(dir: string): string {
  return spawnSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).stdout.trim();
}

/** A fresh directory on a disk-backed file system: os.tmpdir(), else .test-data/ in the repository, else /var/tmp. */
function diskDir(): string | undefined {
  for (const parent of [os.tmpdir(), path.join(REPO_ROOT, '.test-data'), '/var/tmp']) {
    try {
      fs.mkdirSync(parent, { recursive: true });
      const t = fsType(parent);
      if (t === '' || t === 'tmpfs' || t === 'ramfs') continue;
      return fs.mkdtempSync(path.join(parent, 'tierstore-open-reads-'));
    } catch {
      // not writable: the next candidate
    }
  }
  return undefined;
}

/** Writes back and drops every file of `dir` from the page cache; returns the bytes still resident (fincore), or null without fincore. */
function dropFromCache(dir: string): { resident: number | null; files: string[] } {
  const files = fs.readdirSync(dir).map((f) => path.join(dir, f)).filter((f) => fs.statSync(f).isFile());
  for (const f of files) {
    const w = spawnSync('dd', [`of=${f}`, 'oflag=nocache', 'conv=notrunc,fdatasync', 'count=0', 'status=none'], { encoding: 'utf8' });
    expect(w.status, `dd (write back and drop) ${f}: ${w.stderr}`).toBe(0);
    const r = spawnSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none'], { encoding: 'utf8' });
    expect(r.status, `dd (drop) ${f}: ${r.stderr}`).toBe(0);
  }
  const fin = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', ...files], { encoding: 'utf8' });
  if (fin.error || fin.status !== 0) return { resident: null, files };
  const resident = fin.stdout.trim().split('\n').filter(Boolean).reduce((sum, l) => sum + Number(l.trim()), 0);
  return { resident, files };
}

/** What each file of `dir` has in the page cache (fincore), for a failure's message: after a drop, what was read since. */
function residentByFile(dir: string): string {
  const files = fs.readdirSync(dir).map((f) => path.join(dir, f)).filter((f) => fs.statSync(f).isFile());
  const fin = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES,SIZE,FILE', ...files], { encoding: 'utf8' });
  if (fin.error || fin.status !== 0) return '(fincore not available)';
  return fin.stdout.trim().split('\n').map((l) => {
    const [res, size, file] = l.trim().split(/\s+/);
    return `${path.basename(file!)} ${res}/${size}`;
  }).join(', ');
}

/** The bytes of `files` (names in `dir`) in the page cache (fincore), or null without fincore. */
function residentBytes(dir: string, files: string[]): number | null {
  const fin = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', ...files.map((f) => path.join(dir, f))], { encoding: 'utf8' });
  if (fin.error || fin.status !== 0) return null;
  return fin.stdout.trim().split('\n').filter(Boolean).reduce((sum, l) => sum + Number(l.trim()), 0);
}

/** Bytes read from the disk by the child while it runs `work` (after loading the package). */
const MEASURE = String.raw`
  const readBytes = () => Number(/read_bytes:\s*(\d+)/.exec(fs.readFileSync('/proc/self/io', 'utf8'))[1]);
  const before = readBytes();
  const s = ts.open(args.p, {});
  const out = {};
  if (args.work === 'filtered-recall') {
    out.hits = s.recall(new Float32Array(args.dims).fill(1), { k: 3, tier: 'cold', filter: { metadata: { user: 'nobody' } } }).length;
  } else if (args.work === 'open+get') {
    out.warm = s.get(args.warmId);
    out.cold = s.get(args.coldId);
    out.warm = out.warm && [out.warm.id, out.warm.tier, out.warm.content];
    out.cold = out.cold && [out.cold.id, out.cold.tier, out.cold.content];
  } else {
    let n = 0;
    for (const m of s.iterate({ tier: 'all', includeEmbeddings: true })) n++;
    out.iterated = n;
  }
  const read = readBytes() - before;
  const st = s.stats();
  s.close();
  emit('RESULT', { read, out, indexRebuilt: st.indexRebuilt, indexRebuildReason: st.indexRebuildReason, counts: st.counts });
`;

describe('an open after a clean close reads no warm or cold data', () => {
  const dir = diskDir();
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`open + a warm and a cold get of a store of ${N.toLocaleString('en')} records read at most ${BYTES_PER_RECORD} bytes per record plus the hot log; a full iteration reads more`, () => {
    expect(dir, 'a writable directory on a disk-backed file system (os.tmpdir(), .test-data/ or /var/tmp)').toBeDefined();
    const p = path.join(dir!, 'db');

    // The store: default capacities but for warm, so the records are in warm and cold.
    const built = runChild(String.raw`
      const s = ts.open(args.p, { dimensions: args.dims, warmCapacity: args.n / 2 });
      const batch = 10000;
      for (let at = 0; at < args.n; at += batch) {
        const recs = [];
        for (let i = at; i < Math.min(args.n, at + batch); i++) {
          const e = new Float32Array(args.dims);
          for (let d = 0; d < args.dims; d++) e[d] = Math.sin(i * 0.37 + d);
          recs.push({ id: 'r' + i, content: 'memory ' + i, embedding: e, createdAt: 1700000000000 + i });
        }
        s.putMany(recs);
      }
      s.flush();
      const first = (tier) => { for (const m of s.iterate({ tier })) return m.id; };
      const c = s.counts();
      const out = { warmId: first('warm'), coldId: first('cold'), counts: { hot: c.hot, warm: c.warm, cold: c.cold, total: c.total } };
      // A filtered scan makes the warm filter entries, which the close saves as warm.filter: the open maps it and reads its header only.
      s.list({ tier: 'warm', limit: 1, filter: { createdAfter: 0 } });
      s.close();
      emit('RESULT', out);
    `, { p, n: N, dims: DIMS }, 300_000);
    expect(built.status === 0 && built.result !== undefined, describeChild(built)).toBe(true);
    const info = built.result as { warmId: string; coldId: string; counts: Record<'hot' | 'warm' | 'cold' | 'total', number> };
    expect(info.counts.total).toBe(N);
    expect(info.counts.warm + info.counts.cold, 'most records are in warm and cold').toBeGreaterThan(N * 0.9);
    expect(info.warmId && info.coldId, 'a warm and a cold record').toBeTruthy();
    expect(fs.readdirSync(p), 'the clean close wrote the index').toContain('id.index');
    expect(fs.readdirSync(p), 'and the warm filter entries').toContain('warm.filter');

    const hotLog = fs.statSync(path.join(p, 'hot.log')).size;
    const bound = BYTES_PER_RECORD * N + hotLog;

    // Open + two gets, every file of the store out of the page cache.
    const drop1 = dropFromCache(p);
    if (drop1.resident !== null) expect(drop1.resident, `bytes of the store still in the page cache after the drop (${drop1.files.join(', ')})`).toBeLessThanOrEqual(64 * 1024);
    const opened = runChild(MEASURE, { p, work: 'open+get', warmId: info.warmId, coldId: info.coldId }, 120_000);
    expect(opened.status === 0 && opened.result !== undefined, describeChild(opened)).toBe(true);
    const o = opened.result as { read: number; out: { warm: unknown[]; cold: unknown[] }; indexRebuilt: boolean; indexRebuildReason: string };
    expect(o.indexRebuilt, `the open used the index (reason ${JSON.stringify(o.indexRebuildReason)})`).toBe(false);
    expect(o.out.warm, 'the warm record read back').toEqual([info.warmId, 'warm', `memory ${info.warmId.slice(1)}`]);
    expect(o.out.cold, 'the cold record read back').toEqual([info.coldId, 'cold', `memory ${info.coldId.slice(1)}`]);
    expect(o.read, `bytes read by open + 2 gets (bound ${bound} = ${BYTES_PER_RECORD} × ${N} + hot.log ${hotLog}); cached bytes/size per file since the drop: ${residentByFile(p)}`).toBeLessThanOrEqual(bound);
    // Nor any cold segment's filter file: the first filtered recall of a segment reads it.
    const filters = fs.readdirSync(p).filter((f) => /^cold-[0-9a-f]{8}\.filter$/.test(f));
    expect(filters.length, 'the cold segments have their filter files').toBeGreaterThan(0);
    const filtersCached = residentBytes(p, filters);
    if (filtersCached !== null) {
      expect(filtersCached, `bytes of the cold filter files read by open + 2 gets: ${residentByFile(p)}`).toBe(0);
      // The control: a filtered recall of cold reads them.
      dropFromCache(p);
      const filtered = runChild(MEASURE, { p, work: 'filtered-recall', dims: DIMS }, 120_000);
      expect(filtered.status === 0 && filtered.result !== undefined, describeChild(filtered)).toBe(true);
      expect(residentBytes(p, filters), 'a filtered recall of cold read the filter files').toBeGreaterThan(0);
    }

    // The control: a full iteration in the same setup reads more than the bound.
    const drop2 = dropFromCache(p);
    if (drop2.resident !== null) expect(drop2.resident, 'bytes still in the page cache after the second drop').toBeLessThanOrEqual(64 * 1024);
    const iterated = runChild(MEASURE, { p, work: 'iterate' }, 120_000);
    expect(iterated.status === 0 && iterated.result !== undefined, describeChild(iterated)).toBe(true);
    const it2 = iterated.result as { read: number; out: { iterated: number } };
    expect(it2.out.iterated).toBe(N);
    expect(it2.read, `bytes read by a full iteration exceed the bound ${bound} (else the measurement proves nothing)`).toBeGreaterThan(bound);
  }, 300_000);
});
