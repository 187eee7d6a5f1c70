// The cold segments' filter files (docs/format/cold-filter.md): every cold
// segment has its cold-<id>.filter from the moment it is sealed (a migration,
// a move, a merge, a compaction) and loses it with the segment; a filtered
// recall after a reopen takes the segment's signatures from it (shown by
// changing the segment's metadata bytes after the file was made: the file's
// signatures still exclude those records, while without the file the same
// recall reads them and fails on their checksums); a file that is missing,
// stale, truncated, zeroed or flipped changes no answer, a writable store
// writes it again at its first filtered recall and a read-only one leaves it;
// a store made before these files answers the same and gains them; and a kill
// at any system call on these files leaves a store that opens and filters
// exactly (strace fault injection, as test/index-file.test.ts does).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { MemoryFilter, MemoryInput, MemoryStore } from '../lib/index.js';
import { REPO_ROOT, spawnAsync } from './helpers/child.js';
import { bruteForce, expectHits, type Row } from './helpers/filter-reference.js';
import { mulberry32, randomEmbedding, toFloat32 } from './helpers/random.js';
import { useScratch } from './helpers/store.js';

const DIMS = 8;
const USERS = ['ann', 'bob', 'cy', 'dee', 'eve'];
const CAPACITIES = { hotCapacity: 40, warmCapacity: 40 };
const FILTERS: MemoryFilter[] = [
  { metadata: { user: 'ann' } },
  { metadata: { user: ['bob', 'eve'] } },
  { metadata: { tags: 't3' } },
  { metadata: { turn: 7 } },
  { metadata: { user: 'nobody' } },
  { metadata: { user: 'cy', tags: ['t1', 't2'] }, createdAfter: 1_700_000_300_000 },
  { createdAfter: 1_700_000_500_000 },
];

function inputs(prefix: string, n: number, seed: number): MemoryInput[] {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    content: `memory ${prefix} ${i}`,
    embedding: randomEmbedding(rng, DIMS, 'float32'),
    confidence: rng(),
    activation: rng(),
    createdAt: 1_700_000_000_000 + Math.floor(rng() * 1_000_000),
    metadata: { user: USERS[Math.floor(rng() * USERS.length)]!, turn: i % 20, tags: rng() < 0.5 ? `t${i % 5}` : [`t${i % 5}`, `t${(i * 3) % 5}`] },
  }));
}

/** The reference rows of `recs`, each in the tier the store holds it in now. */
function rowsOf(store: MemoryStore, recs: MemoryInput[]): Row[] {
  const tier = new Map([...store.iterate({ tier: 'all' })].map((m) => [m.id, m.tier] as const));
  return recs.filter((r) => tier.has(r.id)).map((r) => ({
    id: r.id, embedding: toFloat32(r.embedding), confidence: r.confidence!, activation: r.activation!,
    createdAt: r.createdAt!, metadata: r.metadata as Record<string, unknown>, tier: tier.get(r.id)!,
  }));
}

/** Every filter's recall (sync and async) against the brute force over `rows`. */
async function expectExact(store: MemoryStore, rows: Row[], what: string): Promise<void> {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const query = randomEmbedding(mulberry32(5), DIMS, 'float32');
  for (const filter of FILTERS) {
    const want = bruteForce(rows, query, 30, filter);
    const label = `${what} ${JSON.stringify(filter)}`;
    expectHits(await store.recallAsync(query, { k: 30, filter }), want, byId, query, `${label} (async)`);
    expectHits(store.recall(query, { k: 30, filter }), want, byId, query, label);
  }
}

const SEGMENT = /^cold-([0-9a-f]{8})\.seg$/;
const FILTER = /^cold-([0-9a-f]{8})\.filter$/;

/** The segment ids of dir's segment files and of its filter files. */
function coldFiles(dir: string): { segments: string[]; filters: string[]; other: string[] } {
  const names = fs.readdirSync(dir);
  return {
    segments: names.flatMap((n) => SEGMENT.exec(n)?.[1] ?? []).sort(),
    filters: names.flatMap((n) => FILTER.exec(n)?.[1] ?? []).sort(),
    other: names.filter((n) => n.startsWith('cold-') && !SEGMENT.test(n) && !FILTER.test(n)),
  };
}

/**
 * Checks every filter file of dir against its segment (docs/format/cold-filter.md):
 * magic, version, the segment's identity (id, rows, size, key range, header
 * checksum) and the size its row count gives. Returns what disagrees.
 */
function filterFileProblems(dir: string): string[] {
  const problems: string[] = [];
  for (const id of coldFiles(dir).filters) {
    const f = fs.readFileSync(path.join(dir, `cold-${id}.filter`));
    const segPath = path.join(dir, `cold-${id}.seg`);
    if (!fs.existsSync(segPath)) {
      problems.push(`cold-${id}.filter has no segment`);
      continue;
    }
    const seg = fs.readFileSync(segPath).subarray(0, 512);
    const rows = Number(seg.readBigUInt64LE(16));
    const fields: Array<[string, unknown, unknown]> = [
      ['magic', f.subarray(0, 8).toString('latin1'), 'TSCFILTR'],
      ['version', f.readUInt32LE(8), 1],
      ['segment id', f.readUInt32LE(12), seg.readUInt32LE(32)],
      ['rows', f.readBigUInt64LE(16), seg.readBigUInt64LE(16)],
      ['segment size', f.readBigUInt64LE(24), seg.readBigUInt64LE(24)],
      ['min key', f.readBigUInt64LE(32), seg.readBigUInt64LE(40)],
      ['max key', f.readBigUInt64LE(40), seg.readBigUInt64LE(48)],
      ['segment header crc', f.readUInt32LE(48), seg.readUInt32LE(496)],
      ['rows per chunk', f.readUInt32LE(52), 4096],
      ['signature bytes', f.readUInt32LE(56), 16],
      ['size', f.length, 64 + 16 * rows + 4 * Math.ceil(rows / 4096)],
    ];
    for (const [name, got, want] of fields) if (got !== want) problems.push(`cold-${id}.filter: ${name} ${got}, want ${want}`);
  }
  return problems;
}

/** Every segment of dir has a filter file that fits it, and no other cold file is there. */
function expectPaired(dir: string, what: string): void {
  const c = coldFiles(dir);
  expect(c.filters, `${what}: a filter file for each segment, none other`).toEqual(c.segments);
  expect(c.other, `${what}: no other cold file`).toEqual([]);
  expect(filterFileProblems(dir), what).toEqual([]);
}

describe('cold filter files', () => {
  const scratch = useScratch();

  /** A store with records in every tier and several cold segments, and its records' inputs. */
  function build(dir: string): MemoryInput[] {
    const recs = inputs('r', 400, 3);
    const s = scratch.open(dir, { dimensions: DIMS, ...CAPACITIES });
    for (let at = 0; at < recs.length; at += 40) s.putMany(recs.slice(at, at + 40));
    s.migrate();
    s.close();
    return recs;
  }

  it('a seal, a move, a merge and a compaction leave each segment its filter file; a removed segment takes it along', () => {
    const dir = scratch.storePath();
    const recs = build(dir);
    const first = coldFiles(dir).segments;
    expect(first.length, 'several cold segments').toBeGreaterThan(2);
    expectPaired(dir, 'after the migrations');
    const s = scratch.open(dir, CAPACITIES);
    for (const r of recs.slice(0, 5)) expect(s.move(r.id, 'cold')).toBe(true);
    expectPaired(dir, 'after single moves to cold');
    s.compact();
    const compacted = coldFiles(dir).segments;
    expect(compacted).toHaveLength(1);
    expect(first.filter((id) => compacted.includes(id)), 'the compaction replaced every segment').toEqual([]);
    expectPaired(dir, 'after the compaction');
    const cold = [...s.iterate({ tier: 'cold' })].map((m) => m.id);
    for (const id of cold) s.delete(id);
    s.compact();
    expect(coldFiles(dir), 'nothing left in cold: no segment, no filter file').toEqual({ segments: [], filters: [], other: [] });
    s.close();
  });

  it('a filtered recall after a reopen takes the signatures from the file, not from the metadata bytes', async () => {
    const dir = scratch.storePath();
    const recs = Array.from({ length: 20 }, (_, i) => ({
      id: `p-${i}`, content: `c${i}`, embedding: new Float32Array([1, i, 2, 3, 0, 0, 0, 1]), metadata: { kind: 'a', i },
    }));
    let s = scratch.open(dir, { dimensions: DIMS });
    s.putMany(recs);
    for (const r of recs) s.move(r.id, 'cold');
    s.compact();
    s.close();
    const [id] = coldFiles(dir).segments;
    const segPath = path.join(dir, `cold-${id}.seg`);
    // The metadata bytes column (directory entry 14: offset, size): "a" becomes "b", lengths and offsets unchanged.
    const seg = fs.readFileSync(segPath);
    const off = Number(seg.readBigUInt64LE(64 + 24 * 14));
    const size = Number(seg.readBigUInt64LE(64 + 24 * 14 + 8));
    const column = seg.subarray(off, off + size).toString('latin1');
    expect(column.split('"kind":"a"').length - 1).toBe(recs.length);
    Buffer.from(column.replaceAll('"kind":"a"', '"kind":"b"'), 'latin1').copy(seg, off);
    fs.writeFileSync(segPath, seg);
    const query = new Float32Array([1, 1, 2, 3, 0, 0, 0, 1]);

    // With the file: its signatures (kind "a") exclude every record, none is read.
    s = scratch.open(dir);
    expect(await s.recallAsync(query, { k: 5, filter: { metadata: { kind: 'b' } } })).toEqual([]);
    expect(s.recall(query, { k: 5, filter: { metadata: { kind: 'b' } } })).toEqual([]);
    s.close();
    // Without it: the signatures are made from the bytes as they are now, the
    // records become candidates, and reading them fails on their checksums.
    fs.rmSync(path.join(dir, `cold-${id}.filter`));
    s = scratch.open(dir);
    await expect(s.recallAsync(query, { k: 5, filter: { metadata: { kind: 'b' } } })).rejects.toMatchObject({ code: 'CORRUPTION', message: expect.stringContaining(`cold-${id}.seg`) });
    s.close();
  });

  it('a damaged, stale or missing file changes no answer; a writable store writes it again, a read-only one leaves it', async () => {
    const pristine = scratch.storePath();
    const recs = build(pristine);
    const ids = coldFiles(pristine).segments;
    // The largest segment's file, the one damaged; another's, for the stale kind.
    const sizes = ids.map((id) => fs.statSync(path.join(pristine, `cold-${id}.seg`)).size);
    const victim = ids[sizes.indexOf(Math.max(...sizes))]!;
    const other = ids.find((id) => id !== victim)!;
    const victimFile = `cold-${victim}.filter`;
    const intact = fs.readFileSync(path.join(pristine, victimFile));
    const flip = (at: number) => () => {
      const b = Buffer.from(intact);
      b[at]! ^= 0x24;
      return b;
    };
    const damages: Array<[string, () => Buffer | null]> = [
      ['removed', () => null],
      ['emptied', () => Buffer.alloc(0)],
      ['cut in half', () => intact.subarray(0, intact.length >> 1)],
      ['one byte short', () => intact.subarray(0, intact.length - 1)],
      ['a byte appended', () => Buffer.concat([intact, Buffer.from([0])])],
      ['zeroed', () => Buffer.alloc(intact.length)],
      ['header flipped', flip(16)],
      ['a signature flipped', flip(64 + 16 * 3 + 5)],
      ['a chunk checksum flipped', flip(intact.length - 2)],
      ['another segment\'s file', () => fs.readFileSync(path.join(pristine, `cold-${other}.filter`))],
    ];
    for (const [what, damage] of damages) {
      for (const readOnly of [false, true]) {
        const label = `${what}${readOnly ? ' (read-only)' : ''}`;
        const dir = path.join(scratch.dir(), 'db');
        fs.cpSync(pristine, dir, { recursive: true });
        const file = path.join(dir, victimFile);
        const bytes = damage();
        if (bytes === null) fs.rmSync(file);
        else fs.writeFileSync(file, bytes);
        const s = scratch.open(dir, readOnly ? { readOnly: true } : CAPACITIES);
        await expectExact(s, rowsOf(s, recs), label);
        s.close();
        if (readOnly) {
          expect(bytes === null ? !fs.existsSync(file) : fs.readFileSync(file).equals(bytes), `${label}: a read-only store leaves the file`).toBe(true);
        } else {
          expect(fs.readFileSync(file).equals(intact), `${label}: written again as the seal wrote it`).toBe(true);
          expectPaired(dir, label);
        }
      }
    }
  });

  it('a store made before filter files answers the same and gains them at its first filtered recall', async () => {
    // test/fixtures/pre-index-store (see test/index-file.test.ts): one cold segment and no filter file.
    const fixture = path.join(REPO_ROOT, 'test', 'fixtures', 'pre-index-store');
    const dir = path.join(scratch.dir(), 'db');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(fixture)) fs.writeFileSync(path.join(dir, f.replace(/\.gz$/, '')), gunzipSync(fs.readFileSync(path.join(fixture, f))));
    const c = coldFiles(dir);
    expect(c.segments).toHaveLength(1);
    expect(c.filters).toEqual([]);
    // The reference: the store's own records, read by iteration.
    const reference = (s: MemoryStore): Row[] => [...s.iterate({ tier: 'all', includeEmbeddings: true })].map((m) => ({
      id: m.id, embedding: m.embedding!, confidence: m.confidence, activation: m.activation, createdAt: m.createdAt,
      metadata: m.metadata as Record<string, unknown>, tier: m.tier,
    }));
    const query = new Float32Array(DIMS).fill(0.5);
    const filters: MemoryFilter[] = [{ metadata: { tag: 't2' } }, { metadata: { v: 0, tag: ['t1', 't4'] } }, { metadata: { tag: 'none' } }];
    const check = async (s: MemoryStore, what: string) => {
      const rows = reference(s);
      expect(rows.filter((r) => r.tier === 'cold').length, `${what}: cold records`).toBeGreaterThan(10);
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const filter of filters) expectHits(await s.recallAsync(query, { k: 20, filter }), bruteForce(rows, query, 20, filter), byId, query, `${what} ${JSON.stringify(filter)}`);
    };
    let s = scratch.open(dir, { readOnly: true });
    await check(s, 'read-only');
    s.close();
    expect(coldFiles(dir).filters, 'a read-only store writes none').toEqual([]);
    s = scratch.open(dir);
    expect(coldFiles(dir).filters, 'an open writes none').toEqual([]);
    await check(s, 'writable');
    expect(coldFiles(dir).filters, 'the first filtered recall wrote it').toEqual(c.segments);
    s.close();
    expectPaired(dir, 'after the first filtered recall');
    s = scratch.open(dir, { readOnly: true });
    await check(s, 'read-only, with the file');
    s.close();
  });
});

// ---------------------------------------------------------------------------
// A kill at each system call on the filter files: a putMany that seals a
// segment, the first filtered recall (which writes a removed file again) and
// a compaction (which writes the merged segment's file and removes the
// sources'), in durability 'sync'.

const straceWorks = spawnSync('strace', ['-f', '-o', '/dev/null', 'true']).status === 0;
const straceRequired = process.env.TIERSTORE_REQUIRE_STRACE === '1' || process.env.CI === 'true';
if (!straceWorks && !straceRequired) {
  console.warn('NOT RUN: the kills at each system call on the cold filter files (strace is missing or ptrace is refused here); CI requires them');
}

const WRITER = String.raw`
const fs = require('node:fs');
const { open } = require(process.env.TIERSTORE_REPO);
const [dir, markerFile, opsFile] = process.argv.slice(2);
const ops = JSON.parse(fs.readFileSync(opsFile, 'utf8'));
const marker = fs.openSync(markerFile, 'w');
const s = open(dir, { durability: 'sync', hotCapacity: ${CAPACITIES.hotCapacity}, warmCapacity: ${CAPACITIES.warmCapacity} });
fs.writeSync(marker, '@@ops@@');
s.putMany(ops.recs.map((r) => ({ ...r, embedding: new Float32Array(r.embedding) })));
s.recall(new Float32Array(ops.query), { k: 5, filter: ops.filter });
s.compact();
fs.writeSync(marker, '@@done@@');
fs.writeSync(1, 'DONE\n');
process.exit(0);
`;

// The calls that change a file, by name: what a kill lands on.
const KILLABLE = /^(openat|write|pwrite64|fdatasync|fsync|rename|renameat2?|unlink|unlinkat|close)$/;

describe('a kill at each system call on the cold filter files', () => {
  const scratch = useScratch('all');

  it.skipIf(!straceWorks && !straceRequired)('leaves a store that opens, holds every record once and filters exactly', async () => {
    expect(straceWorks, 'strace is required here (TIERSTORE_REQUIRE_STRACE=1 or CI=true): apt-get install strace, allow ptrace').toBe(true);
    const base = scratch.dir();
    const pristine = path.join(base, 'pristine');
    const old = inputs('o', 200, 11);
    let s = scratch.open(pristine, { dimensions: DIMS, ...CAPACITIES });
    for (let at = 0; at < old.length; at += 40) s.putMany(old.slice(at, at + 40));
    s.close();
    const segments = coldFiles(pristine).segments;
    expect(segments.length, 'cold segments to merge').toBeGreaterThan(1);
    fs.rmSync(path.join(pristine, `cold-${segments[0]}.filter`)); // the first filtered recall writes it again
    const batch = inputs('n', 60, 12);
    const opsFile = path.join(base, 'ops.json');
    fs.writeFileSync(opsFile, JSON.stringify({
      recs: batch.map((r) => ({ ...r, embedding: Array.from(r.embedding) })),
      query: Array.from(randomEmbedding(mulberry32(9), DIMS, 'float32')),
      filter: FILTERS[0],
    }));
    const scriptFile = path.join(base, 'writer.cjs');
    fs.writeFileSync(scriptFile, WRITER);
    // Every filter file name (and its .tmp) the run may use, and the marker.
    const maxId = Math.max(...segments.map((id) => parseInt(id, 16)));
    const names = Array.from({ length: maxId + 24 }, (_, i) => `cold-${(i + 1).toString(16).padStart(8, '0')}.filter`).flatMap((n) => [n, `${n}.tmp`]);
    const traced = async (dir: string, extra: string[]) => {
      const markerFile = `${dir}.marker`;
      const traceFile = `${dir}.trace`;
      const paths = [markerFile, ...names.map((n) => path.join(dir, n))].flatMap((p) => ['-P', p]);
      const r = await spawnAsync('strace', ['-f', '-y', '-qq', '-s', '48', ...paths, ...extra, '-o', traceFile, process.execPath, scriptFile, dir, markerFile, opsFile], {
        timeout: 120_000, env: { ...process.env, TIERSTORE_REPO: REPO_ROOT },
      });
      return { r, trace: fs.readFileSync(traceFile, 'utf8') };
    };
    const copy = (name: string) => {
      const dir = path.join(base, name);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.cpSync(pristine, dir, { recursive: true });
      return dir;
    };

    // 1. A whole run: the calls between the markers, each with its ordinal
    // among the same thread's calls of that name (what strace's "when" counts).
    const whole = copy('whole');
    const { r, trace } = await traced(whole, []);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('DONE');
    const counts = new Map<string, number>();
    const points: Array<{ name: string; when: number; line: string }> = [];
    let inside = false;
    for (const raw of trace.split('\n')) {
      const m = /^(\d+)\s+(\w+)\((.*)$/.exec(raw);
      if (!m || raw.includes('resumed>')) continue;
      const [, tid, name, rest] = m;
      const key = `${tid}:${name}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (name === 'write' && rest!.includes('@@ops@@')) inside = true;
      else if (name === 'write' && rest!.includes('@@done@@')) inside = false;
      else if (inside && KILLABLE.test(name!)) points.push({ name: name!, when: counts.get(key)!, line: raw });
    }
    const listing = `calls on the filter files:\n${points.map((p) => p.line).join('\n')}`;
    for (const [what, re] of [
      ['a filter file written', /^\d+\s+(write|pwrite64)\(\d+<[^>]*\.filter\.tmp>/],
      ['one synced', /^\d+\s+fdatasync\(\d+<[^>]*\.filter\.tmp>/],
      ['one renamed into place', /^\d+\s+rename\("[^"]*\.filter\.tmp", "[^"]*\.filter"\)/],
      ['a source segment\'s file removed', /^\d+\s+unlink\("[^"]*\.filter"\)/],
    ] as const) {
      expect(points.some((p) => re.test(p.line)), `${what}: ${listing}`).toBe(true);
    }
    expect(filterFileProblems(whole)).toEqual([]);
    expect(points.length, `every step, of three files at least: ${listing}`).toBeGreaterThan(15);

    // 2. A run killed at each call, then the store read back.
    const problems: string[] = [];
    const killAt = async (i: number) => {
      const pt = points[i]!;
      const dir = copy(`kill-${i}`);
      const what = `SIGKILL at ${pt.name} #${pt.when} (${pt.line.slice(0, 160)})`;
      try {
        const k = await traced(dir, ['-e', `inject=${pt.name}:signal=SIGKILL:when=${pt.when}`]);
        expect(k.r.stdout, `${what}: the process died inside the operations`).not.toContain('DONE');
        const last = k.trace.split('\n').filter((l) => /^\d+\s+\w+\(/.test(l)).pop() ?? '';
        expect(last.replace(/^\d+\s+/, '').replace(/\(.*$/, ''), `${what}: the kill landed on a ${pt.name}: ${last.slice(0, 200)}`).toBe(pt.name);
        const st = scratch.open(dir, CAPACITIES);
        const ids = new Set([...st.iterate({ tier: 'all' })].map((m) => m.id));
        const got = batch.filter((b) => ids.has(b.id)).length;
        expect(got === 0 || got === batch.length, `${what}: the putMany is all or nothing (${got} of ${batch.length})`).toBe(true);
        expect(ids.size, `${what}: every record once`).toBe(old.length + got);
        await expectExact(st, rowsOf(st, [...old, ...batch]), what);
        st.close();
        expectPaired(dir, `${what}, after a filtered recall`);
      } catch (e) {
        problems.push(String((e as Error).message).split('\n').slice(0, 3).join(' | '));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    };
    for (let i = 0; i < points.length; i += 2) await Promise.all([killAt(i), ...(i + 1 < points.length ? [killAt(i + 1)] : [])]);
    expect(problems, `${problems.length} of ${points.length} kill points misbehaved`).toEqual([]);
  }, 600_000);
});
