// Damaged files (docs/durability.md, "Damaged files"): a damaged file gives
// CORRUPTION naming the file, never a crash. A store with records in all three tiers is closed;
// then, one file and one kind of damage at a time, a CHILD process opens a
// copy and reads everything (iterate all with embeddings, get of every id,
// counts). A native crash shows up as a signal of the child and fails the
// test. The child must either read exactly the original data or get a
// TierStoreError with code CORRUPTION (or IO_ERROR) whose message names the
// damaged file.
//
// Files are found by listing the store directory (only the lock file, e.g.
// LOCK or *.lock, is left alone); the tiers' files are recognised by name patterns (/hot|log|wal/,
// /warm/, /cold|seg/).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemoryInput } from '../lib/index.js';
import { describeChild, runChild } from './helpers/child.js';
import { contentOfBytes, mulberry32, randomEmbedding } from './helpers/random.js';
import { pickCounts, Scratch } from './helpers/store.js';

const DIMS = 8;
const N = 30;
const MARKER = 'MARKER';

function record(i: number): MemoryInput {
  const rng = mulberry32(0xbad0 + i);
  const size = i === 7 ? 100_000 : 200 + i * 37;
  return {
    id: `corrupt-${String(i).padStart(3, '0')}`,
    content: `${MARKER}-${i}-` + contentOfBytes(rng, size, 0.03),
    embedding: randomEmbedding(rng, DIMS, 'float32'),
    confidence: rng(),
    activation: (N - i) / N, // deterministic demotion: higher i goes lower
    createdAt: 1_690_000_000_000 + i,
    metadata: { i, tags: ['t', i % 3], note: `ü-${i}` },
  };
}

/** The child: open, read everything, report; if reads succeeded, also try writing. */
const READ_ALL = String.raw`
  const plain = (m) => m && ({
    tier: m.tier, id: m.id, content: m.content, metadata: m.metadata, confidence: m.confidence,
    activation: m.activation, createdAt: m.createdAt, lastAccessAt: m.lastAccessAt, accessCount: m.accessCount,
    embedding: m.embedding ? Array.from(new Uint32Array(m.embedding.buffer, m.embedding.byteOffset, m.embedding.length)) : null,
  });
  let stage = 'open';
  let s;
  try {
    s = ts.open(args.p, {});
    stage = 'iterate';
    const records = [];
    for (const m of s.iterate({ tier: 'all', includeEmbeddings: true })) records.push(plain(m));
    stage = 'get';
    const gets = {};
    for (const id of args.ids) {
      const g = plain(s.get(id, { includeEmbedding: true }));
      if (g) delete g.lastAccessAt; // the time of this get
      gets[id] = g === undefined ? null : g;
    }
    stage = 'counts';
    const c = s.counts();
    const counts = { hot: c.hot, warm: c.warm, cold: c.cold, total: c.total };
    stage = 'close';
    s.close();
    let write;
    try {
      const w = ts.open(args.p, { hotCapacity: 1, warmCapacity: 1 });
      w.put({ id: 'post-damage', content: 'written after the damage', embedding: new Float32Array(${DIMS}).fill(0.25) });
      w.migrate();
      w.compact();
      let n = 0;
      for (const m of w.iterate({ includeEmbeddings: true })) n++;
      w.close();
      write = { ok: true, n };
    } catch (e) {
      write = { ok: false, ...errorInfo(e) };
    }
    emit('RESULT', { ok: true, records, gets, counts, write });
  } catch (e) {
    emit('RESULT', { ok: false, stage, ...errorInfo(e) });
  }
`;

interface ReadResult {
  ok: boolean;
  stage?: string;
  code?: string;
  message?: string;
  name?: string;
  isTierStoreError?: boolean;
  records?: Array<Record<string, unknown>>;
  gets?: Record<string, Record<string, unknown> | null>;
  counts?: Record<string, number>;
  write?: { ok: boolean; n?: number; code?: string; message?: string; isTierStoreError?: boolean };
}

function sortRecords(rs: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  return [...rs].sort((a, b) => (String(a.id) < String(b.id) ? -1 : String(a.id) > String(b.id) ? 1 : 0));
}

function withoutAccessStats(r: Record<string, unknown> | null): Record<string, unknown> | null {
  if (r === null) return null;
  const { lastAccessAt: _l, accessCount: _c, ...rest } = r;
  return rest;
}

type Damage = { name: string; apply: (file: string) => void };

/** size:sha1 of every file in `dir` (the lock file excluded). */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
    const full = path.join(dir, f);
    if (!fs.statSync(full).isFile() || /^(lock|lock[._-].*|.*[._-]lock)$/i.test(path.basename(f))) continue;
    const bytes = fs.readFileSync(full);
    out[f] = `${bytes.length}:${createHash('sha1').update(bytes).digest('hex').slice(0, 12)}`;
  }
  return out;
}

function findAll(haystack: Buffer, needle: Buffer): number[] {
  const out: number[] = [];
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) out.push(at);
  return out;
}

function flipByteAt(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

// Two stores: one compacted (the steady state: the log holds only what is in
// hot), and one whose log still holds the writes that moved down to warm and
// cold (a small log is not rewritten at close). In the second, a damaged warm
// or cold copy must not be dropped silently for the log's copy (which would
// move the record to hot): it is CORRUPTION after a clean close. Every kind of
// damage runs on both.
const VARIANTS = [
  { variant: 'compacted', compact: true },
  { variant: 'log still holding the moved-down writes', compact: false },
];

describe.each(VARIANTS)('damaged files give CORRUPTION naming the file, never a crash ($variant)', ({ compact }) => {
  const scratch = new Scratch();
  let pristine: string;
  let files: string[]; // relative paths of the store's files (the lock excluded)
  let baseline: ReadResult;
  const ids = Array.from({ length: N }, (_, i) => record(i).id);
  afterAll(() => scratch.cleanup());

  beforeAll(() => {
    pristine = scratch.storePath();
    // Put within capacity, so every write is in the log (a put over capacity
    // writes what it demotes straight to warm), then moved down.
    const first = scratch.open(pristine, { dimensions: DIMS });
    first.putMany(Array.from({ length: N }, (_, i) => record(i)));
    first.close();
    const s = scratch.open(pristine, { hotCapacity: 10, warmCapacity: 10 });
    s.migrate();
    if (compact) s.compact(); // the steady state: the hot log holds only what is in hot
    for (let i = 0; i < N; i += 4) s.get(ids[i]!); // some access statistics to carry
    const c = pickCounts(s.counts());
    expect(c.total).toBe(N);
    expect(c.hot, 'records in hot').toBeGreaterThan(0);
    expect(c.warm, 'records in warm').toBeGreaterThan(0);
    expect(c.cold, 'records in cold').toBeGreaterThan(0);
    s.close();
    // Counted by an open that reads every warm block and cold row: one that
    // rebuilds the id index (a copy without id.index, opened read-only); an
    // open that uses the index reads neither tier.
    const scanned = path.join(scratch.dir(), 'scanned');
    fs.cpSync(pristine, scanned, { recursive: true });
    fs.rmSync(path.join(scanned, 'id.index'));
    const reopened = scratch.open(scanned, { readOnly: true });
    const duplicates = reopened.stats().recoveredDuplicates;
    reopened.close();
    if (compact) expect(duplicates, 'the compacted log holds no copy of a warm or cold record').toBe(0);
    else expect(duplicates, 'the log still holds copies of warm and cold records').toBeGreaterThan(0);

    files = (fs.readdirSync(pristine, { recursive: true }) as string[])
      .filter((f) => fs.statSync(path.join(pristine, f)).isFile())
      .filter((f) => !/^(lock|lock[._-].*|.*[._-]lock)$/i.test(path.basename(f)))
      .sort();
    expect(files.some((f) => /warm/i.test(f)), `a warm file among ${files.join(', ')}`).toBe(true);
    expect(files.some((f) => /cold|seg/i.test(f)), `a cold file among ${files.join(', ')}`).toBe(true);
    expect(files.some((f) => /hot|log|wal/i.test(f)), `a hot log among ${files.join(', ')}`).toBe(true);

    const copy = path.join(scratch.dir(), 'copy');
    fs.cpSync(pristine, copy, { recursive: true });
    const b = runRead(copy);
    expect(b.ok, `the undamaged store reads back: ${JSON.stringify(b).slice(0, 500)}`).toBe(true);
    baseline = b;
    expect(baseline.records!.length).toBe(N);
    expect(baseline.write, 'the undamaged store accepts writes').toEqual({ ok: true, n: N + 1 });
  }, 120_000);

  /** Runs the reading child on `dir` (which it may modify: pass a copy). */
  function runRead(dir: string): ReadResult {
    const r = runChild(READ_ALL, { p: dir, ids });
    if (!(r.status === 0 && r.signal === null) || r.result === undefined) {
      return { ok: false, stage: 'CHILD CRASHED', message: describeChild(r) };
    }
    return r.result as ReadResult;
  }

  /** Applies `damage` to a copy of `file`'s store; returns a problem description or null. */
  function tryDamage(file: string, damage: Damage): string | null {
    const dir = path.join(scratch.dir(), 'damaged');
    fs.cpSync(pristine, dir, { recursive: true });
    damage.apply(path.join(dir, file));
    const damaged = fingerprint(dir);
    const r = runRead(dir);
    const afterRun = fingerprint(dir);
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
    const label = `${file} / ${damage.name}`;
    if (r.stage === 'CHILD CRASHED') return `${label}: the reading process crashed: ${r.message}`;
    const base = path.basename(file);
    if (!r.ok) {
      if (!r.isTierStoreError) return `${label}: failed at ${r.stage} with a non-TierStoreError ${r.name}: ${r.message}`;
      if (r.code !== 'CORRUPTION' && r.code !== 'IO_ERROR') return `${label}: failed at ${r.stage} with code ${r.code} (want CORRUPTION or IO_ERROR): ${r.message}`;
      if (!r.message?.includes(base)) return `${label}: ${r.code} at ${r.stage} does not name the file ${base}: ${JSON.stringify(r.message)}`;
      // A failed open is a bad call: it changes nothing (docs/errors.md), on disk included.
      if (r.stage === 'open' && JSON.stringify(afterRun) !== JSON.stringify(damaged)) {
        const changed = Object.keys({ ...damaged, ...afterRun }).filter((f) => damaged[f] !== afterRun[f]);
        return `${label}: open failed with ${r.code} but modified the store's files: ${changed.map((f) => `${f} (${damaged[f] ?? 'absent'} → ${afterRun[f] ?? 'absent'})`).join(', ')}`;
      }
      return null; // detected and reported properly
    }
    // Read "successfully": then it must be exactly the original data.
    // (Access statistics are best-effort and, by design, updated in place
    // without checksums, so they are compared separately.)
    const got = sortRecords(r.records!).map(withoutAccessStats);
    const want = sortRecords(baseline.records!).map(withoutAccessStats);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      const gotIds = got.map((x) => x!.id);
      const lost = want.filter((x) => !gotIds.includes(x!.id)).map((x) => x!.id);
      const changed = want.filter((x) => {
        const g = got.find((y) => y!.id === x!.id);
        return g && JSON.stringify(g) !== JSON.stringify(x);
      }).map((x) => x!.id);
      return `${label}: opened without error but the data differs (silently): ${got.length} of ${want.length} records; lost ${JSON.stringify(lost)}; altered ${JSON.stringify(changed)}`;
    }
    for (const id of ids) {
      if (JSON.stringify(withoutAccessStats(r.gets![id] ?? null)) !== JSON.stringify(withoutAccessStats(baseline.gets![id] ?? null))) {
        return `${label}: get(${id}) differs from the original without an error`;
      }
    }
    if (JSON.stringify(r.counts) !== JSON.stringify(baseline.counts)) return `${label}: counts differ: ${JSON.stringify(r.counts)} vs ${JSON.stringify(baseline.counts)}`;
    const w = r.write!;
    if (!w.ok) {
      if (!w.isTierStoreError || (w.code !== 'CORRUPTION' && w.code !== 'IO_ERROR')) return `${label}: writing after a clean read failed with ${w.code}: ${w.message}`;
      if (!w.message?.includes(base)) return `${label}: writing failed with ${w.code} not naming ${base}: ${w.message}`;
    } else if (w.n !== N + 1) {
      return `${label}: after put + migrate + compact the store holds ${w.n} records, want ${N + 1}`;
    }
    return null;
  }

  async function runAll(damagesFor: (file: string, bytes: Buffer) => Damage[]): Promise<void> {
    const problems: string[] = [];
    let cases = 0;
    for (const file of files) {
      const bytes = fs.readFileSync(path.join(pristine, file));
      for (const d of damagesFor(file, bytes)) {
        cases++;
        const p = tryDamage(file, d);
        if (p) problems.push(p);
        // Each case runs a child process synchronously: let the test worker's
        // event loop breathe between them, or a run of 30+ s starves vitest's
        // RPC ("Timeout calling onTaskUpdate") on a loaded machine.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    expect(cases, 'damage cases were generated').toBeGreaterThan(0);
    expect(problems, `${problems.length} of ${cases} damage cases misbehaved`).toEqual([]);
  }

  it('truncated to half', async () => {
    await runAll((_file, bytes) => [
      { name: `truncate ${bytes.length} → ${Math.floor(bytes.length / 2)} bytes`, apply: (f) => fs.truncateSync(f, Math.floor(bytes.length / 2)) },
    ]);
  }, 300_000);

  it('a byte flipped in the middle of the file', async () => {
    await runAll((_file, bytes) =>
      bytes.length === 0 ? [] : [{ name: `flip byte ${Math.floor(bytes.length / 2)} of ${bytes.length}`, apply: (f) => flipByteAt(f, Math.floor(bytes.length / 2)) }],
    );
  }, 300_000);

  it('a byte flipped inside a stored content, id or metadata', async () => {
    await runAll((_file, bytes) => {
      const out: Damage[] = [];
      const markers = findAll(bytes, Buffer.from(`${MARKER}-`));
      if (markers.length > 0) {
        for (const at of [markers[0]!, markers[markers.length - 1]!]) {
          out.push({ name: `flip a content byte at ${at + 9}`, apply: (f) => flipByteAt(f, at + 9) });
        }
      }
      const idAt = findAll(bytes, Buffer.from('corrupt-0'));
      if (idAt.length > 0) out.push({ name: `flip an id byte at ${idAt[0]! + 4}`, apply: (f) => flipByteAt(f, idAt[0]! + 4) });
      const metaAt = findAll(bytes, Buffer.from('"tags"'));
      if (metaAt.length > 0) out.push({ name: `flip a metadata byte at ${metaAt[0]! + 2}`, apply: (f) => flipByteAt(f, metaAt[0]! + 2) });
      return out;
    });
  }, 300_000);

  it('a byte flipped inside a stored embedding', async () => {
    await runAll((_file, bytes) => {
      const out: Damage[] = [];
      for (let i = 0; i < N && out.length < 2; i++) {
        const e = record(i).embedding as Float32Array;
        const at = bytes.indexOf(Buffer.from(e.buffer, e.byteOffset, e.byteLength));
        if (at !== -1) out.push({ name: `flip a byte of record ${i}'s embedding at ${at + 13}`, apply: (f) => flipByteAt(f, at + 13) });
      }
      return out;
    });
  }, 300_000);

  it('a byte flipped in the file header (magic, sizes, offsets, checksums)', async () => {
    await runAll((_file, bytes) =>
      [0, 4, 8, 12, 16, 20, 24, 32, 40, 48, 64, 100, 200]
        .filter((at) => at < bytes.length)
        .map((at): Damage => ({ name: `flip header byte ${at}`, apply: (f) => flipByteAt(f, at) })),
    );
  }, 300_000);

  it('a byte flipped next to a stored embedding (block fields, column data around it)', async () => {
    await runAll((_file, bytes) => {
      for (let i = 0; i < N; i++) {
        const e = record(i).embedding as Float32Array;
        const at = bytes.indexOf(Buffer.from(e.buffer, e.byteOffset, e.byteLength));
        if (at === -1) continue;
        const end = at + e.byteLength;
        return [at - 1, at - 4, at - 8, at - 12, at - 16, at - 24, at - 32, at - 40, at - 48, at - 56, at - 64, end, end + 4, end + 8, end + 16]
          .filter((o) => o >= 0 && o < bytes.length)
          .map((o): Damage => ({ name: `flip byte ${o} (embedding of record ${i} at ${at})`, apply: (f) => flipByteAt(f, o) }));
      }
      return [];
    });
  }, 300_000);

  it('garbage appended', async () => {
    const garbage = Buffer.alloc(4099);
    const rng = mulberry32(666);
    for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(rng() * 256);
    await runAll(() => [{ name: `append ${garbage.length} random bytes`, apply: (f) => fs.appendFileSync(f, garbage) }]);
  }, 300_000);

  it('deleted', async () => {
    await runAll(() => [{ name: 'delete the file', apply: (f) => fs.rmSync(f) }]);
  }, 300_000);

  it('truncated to zero bytes', async () => {
    await runAll((_file, bytes) => [{ name: `truncate ${bytes.length} → 0 bytes`, apply: (f) => fs.truncateSync(f, 0) }]);
  }, 300_000);
});
