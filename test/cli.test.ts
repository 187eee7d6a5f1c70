// The `tierstore` command line (docs/cli.md): every command on a small store, its
// output and exit code (0 ok, 1 failure, 2 usage); --help on every command;
// read commands never modify the store; verify catches a damaged file and
// STORE_LOCKED is reported; JSONL export/import round-trips (Parquet and Arrow
// once each); the progress bar is absent when piped; demo runs to the end.
// The CLI runs as a child process from dist/ (built by tsc in beforeAll).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Progress, renderProgressLine } from '../lib/cli/progress.js';
import { open } from '../lib/index.js';
import type { ListPage, Memory, MemoryInput, RecallHit, StoreStats, Tier, TierCounts } from '../lib/index.js';
import { buildCli, cli, cliBinary, json, startCli, type CliResult } from './helpers/cli-run.js';
import { mulberry32, randomEmbedding } from './helpers/random.js';
import { Scratch } from './helpers/store.js';

const DIMS = 8;
const PER_TIER = 12;
const TIERS: readonly Tier[] = ['hot', 'warm', 'cold'];
const COMMANDS = ['stats', 'list', 'get', 'import', 'export', 'migrate', 'compact', 'verify', 'recall', 'bench', 'demo', 'serve'];

const scratch = new Scratch();
afterAll(() => scratch.cleanup());

/** The fixture: PER_TIER records placed in each tier with move(). */
const records: MemoryInput[] = [];
let storeDir = '';

function contentOf(i: number): string {
  return `fixture note ${i}: the user mentioned item-${i} ${'xyz'.repeat(i % 4)}`;
}

/** Bytes and mtime of every file of a store, to prove a command changed nothing. */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, name);
    const stat = fs.statSync(file);
    out[name] = `${stat.size}:${stat.mtimeMs}:${createHash('sha256').update(fs.readFileSync(file)).digest('hex')}`;
  }
  return out;
}

/** A copy of the fixture store that a test may change. */
function copyOfStore(): string {
  const dir = path.join(scratch.dir(), 'copy');
  fs.cpSync(storeDir, dir, { recursive: true });
  return dir;
}

function expectOk(r: CliResult): void {
  expect(r.status, `exit 0 expected; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`).toBe(0);
}

function expectFailure(r: CliResult, pattern: RegExp): void {
  expect(r.status, `exit 1 expected; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(1);
  expect(r.stderr).toMatch(pattern);
}

function expectUsage(r: CliResult, pattern: RegExp): void {
  expect(r.status, `exit 2 expected; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(2);
  expect(r.stderr).toMatch(pattern);
}

/** What the library reads from the store (closed again before the CLI runs). */
function libraryView(dir: string): { counts: TierCounts; memories: Memory[] } {
  const store = open(dir, { readOnly: true });
  try {
    return { counts: store.counts(), memories: [...store.iterate({ includeEmbeddings: true })] };
  } finally {
    store.close();
  }
}

/** A memory as JSON prints it, without the access statistics (get updates them). */
function comparable(m: Memory | Record<string, unknown>): Record<string, unknown> {
  const { lastAccessAt: _a, accessCount: _c, embedding, ...rest } = m as Memory;
  return { ...rest, ...(embedding !== undefined ? { embedding: Array.from(embedding as ArrayLike<number>) } : {}) };
}

beforeAll(() => {
  buildCli();
  const rng = mulberry32(8);
  for (let i = 0; i < 3 * PER_TIER; i++) {
    records.push({
      id: `rec-${String(i).padStart(3, '0')}`,
      content: contentOf(i),
      embedding: randomEmbedding(rng, DIMS, 'float32'),
      confidence: Math.round(rng() * 100) / 100,
      createdAt: 1_700_000_000_000 + i * 60_000,
      metadata: { i, group: `g${i % 3}` },
    });
  }
  storeDir = path.join(scratch.dir(), 'store');
  const store = open(storeDir, { dimensions: DIMS });
  store.putMany(records);
  records.forEach((r, i) => store.move(r.id, TIERS[Math.floor(i / PER_TIER)]!));
  store.close();
}, 120_000);

describe('help, usage errors and exit codes', () => {
  it('--help on the program and on every command exits 0 with its usage', () => {
    const top = cli(['--help']);
    expectOk(top);
    for (const command of COMMANDS) expect(top.stdout).toContain(`  ${command}`);
    for (const command of COMMANDS) {
      const r = cli([command, '--help']);
      expectOk(r);
      expect(r.stdout).toContain(`Usage: tierstore ${command}`);
    }
    expectOk(cli(['help', 'list']));
  });

  it('usage errors exit 2 with a message on stderr', () => {
    expectUsage(cli([]), /Usage: tierstore/);
    expectUsage(cli(['frobnicate']), /unknown command 'frobnicate'/);
    expectUsage(cli(['--dir', storeDir, 'list', '--bogus']), /unknown option '--bogus'/);
    expectUsage(cli(['--dir', storeDir, 'get']), /missing required argument 'id'/);
    expectUsage(cli(['--dir', storeDir, 'list', '--limit', 'ten']), /--limit.*must be an integer/);
    expectUsage(cli(['--dir', storeDir, 'list', '--limit', '0']), /--limit.*must be an integer from 1 to 1000/);
    expectUsage(cli(['--dir', storeDir, 'list', '--tier', 'lukewarm']), /Allowed choices are hot, warm, cold, all/);
    expectUsage(cli(['--dir', storeDir, 'list', '--offset', '2', '--cursor', 'x']), /either --cursor or --offset/);
    expectUsage(cli(['--dir', storeDir, 'recall', '--k', '0', '--id', 'rec-000']), /--k.*must be an integer/);
    expectUsage(cli(['--dir', storeDir, 'recall']), /one of --query FILE or --id ID/);
    expectUsage(cli(['--dir', storeDir, 'recall', '--id', 'rec-000', '--min-confidence', 'high']), /finite number/);
    expectUsage(cli(['stats']), /no store given: pass --dir DIR/);
  });

  it('a store that does not exist, or an id that does not, exits 1', () => {
    const missing = path.join(scratch.dir(), 'nothing-here');
    expectFailure(cli(['--dir', missing, 'stats']), /no store at .*nothing-here/);
    expectFailure(cli(['--dir', missing, 'migrate']), /no store at/);
    const empty = scratch.dir();
    expectFailure(cli(['--dir', empty, 'list']), /INVALID_ARGUMENT/);
    expect(fs.readdirSync(empty), 'a read command on an empty directory creates nothing').toEqual([]);
    expectFailure(cli(['--dir', storeDir, 'get', 'no-such-id']), /no memory with id "no-such-id"/);
    expectFailure(cli(['--dir', storeDir, 'list', '--cursor', 'not-a-cursor']), /INVALID_ARGUMENT/);
  });

  it('--dir may come after the command, or from TIERSTORE_DIR', () => {
    const before = json<StoreStats>(cli(['stats', '--json', '--dir', storeDir]));
    const fromEnv = json<StoreStats>(cli(['stats', '--json'], { env: { TIERSTORE_DIR: storeDir } }));
    expect(fromEnv.counts).toEqual(before.counts);
  });

  it('--version prints the package version', () => {
    const r = cli(['--version']);
    expectOk(r);
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    expect(r.stdout.trim()).toBe(pkg.version);
  });
});

describe('read commands', () => {
  it('stats: counts per tier as text and as StoreStats JSON', () => {
    const { counts } = libraryView(storeDir);
    const text = cli(['--dir', storeDir, 'stats']);
    expectOk(text);
    expect(text.stdout).toContain(`${DIMS} dimensions`);
    expect(text.stdout).toContain(`hot ${counts.hot}, warm ${counts.warm}, cold ${counts.cold}`);
    const stats = json<StoreStats & { path: string }>(cli(['--dir', storeDir, 'stats', '--json']));
    expect(stats.counts).toEqual(counts);
    expect(stats.dimensions).toBe(DIMS);
    expect(stats.readOnly, 'stats opens the store read-only').toBe(true);
    expect(stats.path).toBe(path.resolve(storeDir));
  });

  it('list: a table of the tier (default hot), JSON pages, offsets and cursors', () => {
    const text = cli(['--dir', storeDir, 'list']);
    expectOk(text);
    const rows = text.stdout.split('\n').filter((line) => /^hot\s+rec-/.test(line));
    expect(rows).toHaveLength(PER_TIER);
    expect(text.stdout).toContain(contentOf(3));

    const warm = json<ListPage>(cli(['--dir', storeDir, 'list', '--tier', 'warm', '--json']));
    expect(warm.count).toBe(PER_TIER);
    expect(warm.memories.every((m) => m.tier === 'warm')).toBe(true);
    expect(warm.memories.map((m) => m.id).sort()).toEqual(records.slice(PER_TIER, 2 * PER_TIER).map((r) => r.id));
    expect(warm.memories[0]!.embedding, 'no embeddings unless asked').toBeUndefined();

    const offset = json<ListPage>(cli(['--dir', storeDir, 'list', '--tier', 'warm', '--offset', '5', '--limit', '3', '--json']));
    expect(offset.memories.map((m) => m.id)).toEqual(warm.memories.slice(5, 8).map((m) => m.id));

    // Cursor paging over every tier reaches each record once.
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const args = ['--dir', storeDir, 'list', '--tier', 'all', '--limit', '7', '--json', ...(cursor ? ['--cursor', cursor] : [])];
      const page = json<ListPage>(cli(args));
      seen.push(...page.memories.map((m) => m.id));
      cursor = page.pagination.nextCursor;
      pages++;
    } while (cursor !== undefined && pages < 20);
    expect(seen.sort()).toEqual(records.map((r) => r.id));

    // The text output tells how to get the next page.
    const first = cli(['--dir', storeDir, 'list', '--tier', 'all', '--limit', '7']);
    const next = first.stdout.match(/--cursor (\S+)/);
    expect(next, first.stdout).not.toBeNull();
    expectOk(cli(['--dir', storeDir, 'list', '--tier', 'all', '--limit', '7', '--cursor', next![1]!]));
  });

  it('list --include-embeddings writes each embedding as an array, bit-exact', () => {
    const page = json<ListPage>(cli(['--dir', storeDir, 'list', '--tier', 'cold', '--json', '--include-embeddings']));
    expect(page.count).toBe(PER_TIER);
    for (const m of page.memories) {
      const original = records.find((r) => r.id === m.id)!;
      expect(m.embedding as unknown as number[]).toEqual(Array.from(original.embedding as Float32Array));
    }
  });

  it('get: the memory as JSON, with --embedding on request', () => {
    const r = cli(['--dir', storeDir, 'get', 'rec-020']);
    expectOk(r);
    const memory = json<Memory>(r);
    const original = records[20]!;
    expect(memory).toMatchObject({ id: original.id, content: original.content, metadata: original.metadata, tier: 'warm' });
    expect(memory.createdAt).toBe(original.createdAt);
    expect(memory.embedding).toBeUndefined();
    const withEmbedding = json<Memory>(cli(['--dir', storeDir, 'get', 'rec-020', '--embedding']));
    expect(withEmbedding.embedding as unknown as number[]).toEqual(Array.from(original.embedding as Float32Array));
  });

  it('embedding values -0 print as -0 (JSON.stringify alone prints 0), in get and list', () => {
    const dir = path.join(scratch.dir(), 'negative-zero');
    const s = open(dir, { dimensions: 3 });
    s.put({ id: 'z', content: '', embedding: Float32Array.of(-0, 1, -0) });
    s.close();
    const got = json<{ embedding: number[] }>(cli(['--dir', dir, 'get', 'z', '--embedding']));
    expect(got.embedding.map((x) => Object.is(x, -0))).toEqual([true, false, true]);
    const page = json<{ memories: Array<{ embedding: number[] }> }>(cli(['--dir', dir, 'list', '--json', '--include-embeddings']));
    expect(page.memories[0]!.embedding.map((x) => Object.is(x, -0))).toEqual([true, false, true]);
  });

  it('recall: a JSON or raw float32 query finds its own record first, with k, tier and min-confidence', () => {
    const target = records[30]!; // cold
    const embedding = target.embedding as Float32Array;
    const dir = scratch.dir();
    const jsonQuery = path.join(dir, 'q.json');
    fs.writeFileSync(jsonQuery, JSON.stringify(Array.from(embedding)));
    const rawQuery = path.join(dir, 'q.f32');
    fs.writeFileSync(rawQuery, Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength));

    const hits = json<RecallHit[]>(cli(['--dir', storeDir, 'recall', '--query', jsonQuery, '--k', '5', '--json']));
    expect(hits).toHaveLength(5);
    expect(hits[0]!.id).toBe(target.id);
    expect(hits[0]!.score).toBeCloseTo(1, 5);
    expect(hits.map((h) => h.score)).toEqual([...hits.map((h) => h.score)].sort((a, b) => b - a));

    // The library gives the same ranking.
    const store = open(storeDir, { readOnly: true });
    const expected = store.recall(embedding, { k: 5 }).map((h) => h.id);
    const expectedWarm = store.recall(embedding, { k: 3, tier: 'warm' }).map((h) => h.id);
    const minConfidence = 0.5;
    const expectedConfident = store.recall(embedding, { k: 36, minConfidence }).map((h) => h.id);
    store.close();
    expect(hits.map((h) => h.id)).toEqual(expected);

    const raw = json<RecallHit[]>(cli(['--dir', storeDir, 'recall', '--query', rawQuery, '--k', '5', '--json']));
    expect(raw.map((h) => h.id)).toEqual(expected);
    const fromStdin = json<RecallHit[]>(cli(['--dir', storeDir, 'recall', '--query', '-', '--k', '5', '--json'], {
      input: JSON.stringify({ embedding: Array.from(embedding) }),
    }));
    expect(fromStdin.map((h) => h.id)).toEqual(expected);
    const byId = json<RecallHit[]>(cli(['--dir', storeDir, 'recall', '--id', target.id, '--k', '5', '--json']));
    expect(byId.map((h) => h.id)).toEqual(expected);

    const warm = json<RecallHit[]>(cli(['--dir', storeDir, 'recall', '--id', target.id, '--k', '3', '--tier', 'warm', '--json']));
    expect(warm.map((h) => h.id)).toEqual(expectedWarm);
    expect(warm.every((h) => h.tier === 'warm')).toBe(true);
    const confident = json<RecallHit[]>(cli([
      '--dir', storeDir, 'recall', '--id', target.id, '--k', '36', '--min-confidence', String(minConfidence), '--json']));
    expect(confident.map((h) => h.id)).toEqual(expectedConfident);
    expect(confident.every((h) => h.memory.confidence >= minConfidence)).toBe(true);

    const table = cli(['--dir', storeDir, 'recall', '--query', jsonQuery, '--k', '2']);
    expectOk(table);
    expect(table.stdout).toMatch(new RegExp(`^1\\s+1\\.0000\\s+cold\\s+${target.id}`, 'm'));

    const short = path.join(dir, 'short.json');
    fs.writeFileSync(short, JSON.stringify([1, 2, 3]));
    expectFailure(cli(['--dir', storeDir, 'recall', '--query', short]), /DIMENSION_MISMATCH/);
    const ragged = path.join(dir, 'ragged.bin');
    fs.writeFileSync(ragged, Buffer.alloc(DIMS * 4 + 2));
    expectFailure(cli(['--dir', storeDir, 'recall', '--query', ragged]), /not a whole number of float32 values/);
    expectFailure(cli(['--dir', storeDir, 'recall', '--query', path.join(dir, 'absent.json')]), /ENOENT/);
  });

  it('verify: reads every record, checks counts and duplicates, text and JSON', () => {
    const { counts } = libraryView(storeDir);
    const r = cli(['--dir', storeDir, 'verify']);
    expectOk(r);
    expect(r.stdout).toContain(`ok: ${counts.total} records`);
    for (const tier of TIERS) expect(r.stdout).toMatch(new RegExp(`${tier}\\s+${counts[tier]} records read`));
    expect(r.stderr, 'no progress bar when stderr is a pipe').toBe('');
    const result = json<{ ok: boolean; read: TierCounts; counts: TierCounts; problems: string[] }>(
      cli(['--dir', storeDir, 'verify', '--json', '--batch-size', '5']));
    expect(result).toMatchObject({ ok: true, read: counts, counts, problems: [] });
  });

  it('read commands leave every file of the store unchanged', () => {
    const before = fingerprint(storeDir);
    const exportFile = path.join(scratch.dir(), 'out.jsonl');
    for (const args of [
      ['stats'], ['list', '--tier', 'all'], ['get', 'rec-001'], ['get', 'rec-030'], ['verify'],
      ['recall', '--id', 'rec-015'], ['export', exportFile],
    ]) {
      expectOk(cli(['--dir', storeDir, ...args]));
    }
    // One comparison at the end (hashing the mapped files is the slow part): any change would show.
    expect(fingerprint(storeDir)).toEqual(before);
  });
});

describe('failures', () => {
  it('verify exits 1 with CORRUPTION when a stored content byte is damaged', () => {
    const dir = copyOfStore();
    const needle = Buffer.from(contentOf(30)); // a cold record
    let damaged = '';
    for (const name of fs.readdirSync(dir)) {
      const file = path.join(dir, name);
      const bytes = fs.readFileSync(file);
      const at = bytes.indexOf(needle);
      if (at === -1) continue;
      bytes[at + 5] ^= 0x20;
      fs.writeFileSync(file, bytes);
      damaged = name;
      break;
    }
    expect(damaged, 'the content was found in a store file').not.toBe('');
    const r = cli(['--dir', dir, 'verify']);
    expectFailure(r, /CORRUPTION/);
    expect(r.stderr).toContain(damaged);
    // The open maps the persisted index and reads no cold row: verify finds
    // the damage and says so in its verdict.
    const asJson = cli(['--dir', dir, 'verify', '--json']);
    expect(asJson.status).toBe(1);
    const verdict = json<{ ok: boolean }>(asJson);
    expect(verdict.ok).toBe(false);
    expect(JSON.stringify(verdict)).toMatch(/CORRUPTION/);
    expect(JSON.stringify(verdict)).toContain(damaged);
    // Without the index, the open rebuilds it from the data, and this store's
    // hot log still holds a copy of the cold record: the open itself finds the
    // damage, so there is no verdict to print, stdout stays empty even with --json.
    fs.rmSync(path.join(dir, 'id.index'));
    const rebuilt = cli(['--dir', dir, 'verify', '--json']);
    expect(rebuilt.status).toBe(1);
    expect(rebuilt.stdout).toBe('');
    expect(rebuilt.stderr).toMatch(/CORRUPTION/);
    expect(rebuilt.stderr).toContain(damaged);
  });

  it('verify --json prints ok:false with CORRUPTION when the damage is found by verify, not by the open', () => {
    const dir = copyOfStore();
    // After compact the log holds only hot records: even an open that
    // rebuilds its index reads no copy of this cold record but the damaged one.
    expectOk(cli(['--dir', dir, 'compact']));
    const needle = Buffer.from(contentOf(30)); // a cold record
    let damaged = '';
    for (const name of fs.readdirSync(dir)) {
      const file = path.join(dir, name);
      const bytes = fs.readFileSync(file);
      const at = bytes.indexOf(needle);
      if (at === -1) continue;
      bytes[at + 5] ^= 0x20;
      fs.writeFileSync(file, bytes);
      damaged = name;
      break;
    }
    expect(damaged, 'the content was found in a store file').toMatch(/cold/);
    const asJson = cli(['--dir', dir, 'verify', '--json']);
    expect(asJson.status).toBe(1);
    const verdict = json<{ ok: boolean }>(asJson);
    expect(verdict.ok).toBe(false);
    expect(JSON.stringify(verdict)).toMatch(/CORRUPTION/);
    expect(JSON.stringify(verdict)).toContain(damaged);
  });

  it('STORE_LOCKED while another process writes: read and write commands exit 1 with a hint', () => {
    const dir = copyOfStore();
    const writer = open(dir); // this test process holds the writer's lock
    try {
      for (const args of [['stats'], ['list'], ['verify'], ['migrate'], ['compact']]) {
        const r = cli(['--dir', dir, ...args]);
        expectFailure(r, /STORE_LOCKED/);
        expect(r.stderr).toContain('hint:');
      }
    } finally {
      writer.close();
    }
    expectOk(cli(['--dir', dir, 'stats']));
  });
});

describe('write commands', () => {
  it('migrate applies the capacities given and prints the MigrationReport', () => {
    const dir = copyOfStore();
    const r = cli(['--dir', dir, 'migrate', '--hot-capacity', '5', '--warm-capacity', '100', '--json']);
    expectOk(r);
    const report = json<{ hotToWarm: number; hotToCold: number; warmToCold: number; batches: number; before: TierCounts; counts: TierCounts }>(r);
    const { counts } = libraryView(dir);
    expect(report.counts).toEqual(counts);
    expect(counts.hot).toBeLessThanOrEqual(5);
    expect(report.hotToWarm).toBe(report.before.hot - counts.hot);
    expect(counts.warm).toBe(report.before.warm + report.hotToWarm);
    expect(counts.total).toBe(records.length);

    const text = cli(['--dir', dir, 'migrate', '--hot-capacity', '0', '--skip-warm']);
    expectOk(text);
    expect(text.stdout).toMatch(/migrated: 0 hot→warm, \d+ hot→cold, 0 warm→cold/);
    expect(libraryView(dir).counts.hot).toBe(0);
  });

  it('compact prints the CompactionReport and keeps every record', () => {
    const dir = copyOfStore();
    const before = libraryView(dir);
    const r = cli(['--dir', dir, 'compact', '--json']);
    expectOk(r);
    const report = json<Record<string, number>>(r);
    for (const key of ['warmBytesReclaimed', 'coldBytesReclaimed', 'coldSegmentsBefore', 'coldSegmentsAfter', 'hotLogBytesBefore', 'hotLogBytesAfter']) {
      expect(typeof report[key], key).toBe('number');
    }
    const text = cli(['--dir', dir, 'compact']);
    expectOk(text);
    expect(text.stdout).toMatch(/hot log: .* → /);
    const after = libraryView(dir);
    expect(after.counts).toEqual(before.counts);
    expect(after.memories.map(comparable)).toEqual(before.memories.map(comparable));
    expectOk(cli(['--dir', dir, 'verify']));
  });
});

describe('export and import', () => {
  it('JSONL round-trips through export and import (file and stdout), tiers kept', () => {
    const dir = scratch.dir();
    const file = path.join(dir, 'all.jsonl');
    const exported = cli(['--dir', storeDir, 'export', file]);
    expectOk(exported);
    expect(exported.stdout).toContain(`exported ${records.length} records`);
    expect(exported.stderr).toBe('');
    expect(fs.readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(records.length);

    const toStdout = cli(['--dir', storeDir, 'export', '--tier', 'warm']);
    expectOk(toStdout);
    expect(toStdout.stderr).toBe('');
    expect(toStdout.stdout.trim().split('\n')).toHaveLength(PER_TIER);

    // Dimensions come from the JSONL file when --dimensions is omitted.
    const target = path.join(dir, 'imported');
    const imported = cli(['--dir', target, 'import', file]);
    expectOk(imported);
    expect(imported.stdout).toContain(`imported ${records.length} records`);
    expect(imported.stderr, 'no progress bar when piped').toBe('');
    const original = libraryView(storeDir);
    const copy = libraryView(target);
    expect(copy.counts).toEqual(original.counts);
    const byId = (a: Memory, b: Memory): number => (a.id < b.id ? -1 : 1);
    expect(copy.memories.sort(byId).map(comparable)).toEqual(original.memories.sort(byId).map(comparable));

    // --no-keep-tiers puts everything in hot; --dimensions that disagree with the store fail.
    const flat = path.join(dir, 'flat');
    expectOk(cli(['--dir', flat, 'import', file, '--no-keep-tiers', '--dimensions', String(DIMS)]));
    expect(libraryView(flat).counts).toMatchObject({ hot: records.length, total: records.length });
    expectFailure(cli(['--dir', flat, 'import', file, '--dimensions', String(DIMS + 1)]), /DIMENSION_MISMATCH/);
  });

  it('import: a format it cannot tell, or a new store without dimensions, is a usage error; a bad file fails and leaves no store', () => {
    const dir = scratch.dir();
    const unknown = path.join(dir, 'data.txt');
    fs.writeFileSync(unknown, 'hello');
    expectUsage(cli(['--dir', path.join(dir, 's1'), 'import', unknown]), /--format/);
    const parquetLike = path.join(dir, 'data.parquet');
    fs.writeFileSync(parquetLike, 'not parquet');
    expectUsage(cli(['--dir', path.join(dir, 's2'), 'import', parquetLike]), /--dimensions/);
    const broken = path.join(dir, 'broken.jsonl');
    fs.writeFileSync(broken, '{"id": "a", "content": "x", "embedding": [1, 2]}\n{not json\n');
    const r = cli(['--dir', path.join(dir, 's3'), 'import', broken]);
    expectFailure(r, /CORRUPTION: .*broken\.jsonl, line 2/);
    expect(r.stderr).toContain('removed the store it had created');
    expect(fs.existsSync(path.join(dir, 's3')), 'a failed import removes the store it created').toBe(false);
    expectFailure(cli(['--dir', path.join(dir, 's4'), 'import', path.join(dir, 'absent.jsonl')]), /no such file/);
  });

  it('Parquet and Arrow: export and import once each', () => {
    const dir = scratch.dir();
    const { counts } = libraryView(storeDir);
    for (const format of ['parquet', 'arrow'] as const) {
      const file = path.join(dir, `all.${format}`);
      const exported = cli(['--dir', storeDir, 'export', '--out', file]);
      expectOk(exported);
      expect(exported.stdout).toContain(`as ${format}`);
      const target = path.join(dir, `from-${format}`);
      expectOk(cli(['--dir', target, 'import', file, '--dimensions', String(DIMS)]));
      expect(libraryView(target).counts).toEqual(counts);
    }
    const piped = cliBinary(['--dir', storeDir, 'export', '--format', 'arrow', '--tier', 'cold']);
    expect(piped.status, piped.stderr).toBe(0);
    expect(piped.stdout.length).toBeGreaterThan(0);
  });
});

describe('demo and bench', () => {
  it('demo runs to the end: all three tiers hold records, the recalled memory comes first, the folder is deleted', () => {
    const r = cli(['demo', '--n', '400']);
    expectOk(r);
    expect(r.stderr, 'no progress bar when piped').toBe('');
    const now = r.stdout.match(/now hot (\d+), warm (\d+), cold (\d+), total (\d+)/);
    expect(now, r.stdout).not.toBeNull();
    const [hot, warm, cold, total] = now!.slice(1).map(Number) as [number, number, number, number];
    expect(hot).toBeGreaterThan(0);
    expect(warm).toBeGreaterThan(0);
    expect(cold).toBeGreaterThan(0);
    expect(hot + warm + cold).toBe(400);
    expect(total).toBe(400);
    for (const tier of TIERS) expect(r.stdout).toMatch(new RegExp(`^\\s+${tier}\\s+mem-\\d+`, 'm'));
    const probe = r.stdout.match(/recall with the embedding of (mem-\d+)/)![1]!;
    expect(r.stdout).toMatch(new RegExp(`^\\s+1\\s+1\\.0000\\s+\\w+\\s+${probe}`, 'm'));
    const folder = r.stdout.match(/Deleted (\S+) \(pass --keep/)![1]!;
    expect(fs.existsSync(folder)).toBe(false);
  });

  it('demo --keep leaves a store the other commands can read', () => {
    const r = cli(['demo', '--n', '100', '--keep']);
    expectOk(r);
    const dir = r.stdout.match(/The store is kept at (\S+);/)![1]!;
    try {
      const stats = json<StoreStats>(cli(['--dir', dir, 'stats', '--json']));
      expect(stats.counts.total).toBe(100);
      expectOk(cli(['--dir', dir, 'verify']));
    } finally {
      fs.rmSync(path.dirname(dir), { recursive: true, force: true });
    }
  });

  it('bench --builtin runs the small tierstore-only benchmark and says so', () => {
    const r = cli(['bench', '--builtin', '--n', '300', '--dimensions', '16']);
    expectOk(r);
    expect(r.stdout).toContain('built-in, tierstore only');
    for (const op of ['putMany', 'put (one at a time)', 'get', 'iterate', 'list', 'recall']) expect(r.stdout).toContain(op);
    expectUsage(cli(['bench', '--builtin', '--smoke']), /built-in benchmark takes only/);
  });

  it('bench in an installed package (no bench/ folder) runs the built-in benchmark', () => {
    // A package-like copy: dist/, package.json, the addon and the dependencies, but no bench/.
    const root = path.join(scratch.dir(), 'installed');
    const repo = path.join(__dirname, '..');
    fs.mkdirSync(root);
    fs.cpSync(path.join(repo, 'dist'), path.join(root, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(repo, 'package.json'), path.join(root, 'package.json'));
    // The addon as node-gyp-build finds it: a local build and/or prebuilds.
    const addon = path.join('build', 'Release', 'tierstore.node');
    if (fs.existsSync(path.join(repo, addon))) {
      fs.mkdirSync(path.join(root, 'build', 'Release'), { recursive: true });
      fs.copyFileSync(path.join(repo, addon), path.join(root, addon));
    }
    if (fs.existsSync(path.join(repo, 'prebuilds'))) fs.cpSync(path.join(repo, 'prebuilds'), path.join(root, 'prebuilds'), { recursive: true });
    fs.symlinkSync(path.join(repo, 'node_modules'), path.join(root, 'node_modules'));
    const r = spawnSync(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'bench', '--n', '200', '--dimensions', '8'], {
      cwd: root, encoding: 'utf8', timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('built-in, tierstore only');
    expect(r.stdout).toContain('recall k=10');
  });

  it('bench in a repository checkout runs bench/run.mjs with the arguments passed through', () => {
    const out = path.join(scratch.dir(), 'bench.json');
    const r = cli(['bench', '--smoke', '--only', 'tierstore', '--json', out], { timeoutMs: 120_000 });
    expectOk(r);
    expect(r.stderr).toContain('running the benchmark suite');
    expect(fs.existsSync(out), 'the suite wrote its figures where --json said').toBe(true);
  });
});

describe('serve', () => {
  it('prints its URL, answers HTTP, holds the writer lock, and closes cleanly on SIGINT', async () => {
    const dir = copyOfStore();
    const server = await startCli(['serve', '--dir', dir, '--port', '0'], /listening on (http:\/\/\S+)/);
    const url = server.match[1]!.replace(/\/$/, '');
    let listing: { count?: number } = {};
    let health: { auth?: string } = {};
    let locked: CliResult | undefined;
    try {
      listing = (await (await fetch(`${url}/api/v1/memories?tier=hot`)).json()) as typeof listing;
      health = (await (await fetch(`${url}/health`)).json()) as typeof health;
      locked = cli(['--dir', dir, 'stats']);
    } finally {
      const r = await server.stop('SIGINT');
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain('closed');
    }
    expect(listing.count).toBe(PER_TIER);
    expect(health.auth).toBe('none');
    expectFailure(locked!, /STORE_LOCKED/);
    expectOk(cli(['--dir', dir, 'stats']));
  });

  it('passes the token (from TIERSTORE_TOKEN) and --protect-reads to the server', async () => {
    const dir = copyOfStore();
    const server = await startCli(['serve', '--dir', dir, '--port', '0', '--protect-reads'], /listening on (http:\/\/\S+)/,
      { TIERSTORE_TOKEN: 'cli-test-token' });
    const url = server.match[1]!.replace(/\/$/, '');
    let health: { auth?: string } = {};
    let withoutToken = 0;
    let withToken = 0;
    try {
      health = (await (await fetch(`${url}/health`)).json()) as typeof health;
      withoutToken = (await fetch(`${url}/api/v1/memories`)).status;
      withToken = (await fetch(`${url}/api/v1/memories`, { headers: { authorization: 'Bearer cli-test-token' } })).status;
    } finally {
      const r = await server.stop('SIGTERM');
      expect(r.status, r.stderr).toBe(0);
    }
    expect(health.auth).toBe('all');
    expect(withoutToken).toBe(401);
    expect(withToken).toBe(200);
  });
});

describe('progress bar', () => {
  function fakeTty(columns = 120): { isTTY: boolean; columns: number; written: string[]; write(s: string): boolean } {
    return { isTTY: true, columns, written: [], write(s: string) { this.written.push(s); return true; } };
  }

  it('on a TTY: redraws one line with done/total, percentage, rate and ETA, then clears it', () => {
    let now = 0;
    const stream = fakeTty();
    const progress = new Progress('import', 200, { stream, now: () => now, intervalMs: 100 });
    expect(progress.enabled).toBe(true);
    now = 2000;
    progress.update(100);
    expect(stream.written).toHaveLength(1);
    const line = stream.written[0]!;
    expect(line.startsWith('\r\x1b[K')).toBe(true);
    expect(line).toContain('100/200');
    expect(line).toContain('50.0%');
    expect(line).toContain('50.0/s');
    expect(line).toContain('ETA 0:02');
    now = 2050;
    progress.update(120);
    expect(stream.written, 'no redraw within the interval').toHaveLength(1);
    now = 2200;
    progress.update(150);
    expect(stream.written).toHaveLength(2);
    progress.finish();
    expect(stream.written.at(-1)).toBe('\r\x1b[K');
  });

  it('with an unknown total: count, rate and elapsed time; cut to the terminal width', () => {
    const line = renderProgressLine('export', 1500, undefined, 3000, 'records', 200);
    expect(line).toContain('1,500 records');
    expect(line).toContain('500/s');
    expect(line).not.toContain('ETA');
    expect(renderProgressLine('export', 1, 10, 1000, 'records', 20).length).toBeLessThanOrEqual(20);
  });

  it('not a TTY, or disabled: writes nothing', () => {
    const pipe = { ...fakeTty(), isTTY: false };
    const progress = new Progress('verify', 10, { stream: pipe, now: () => 5000 });
    progress.update(5);
    progress.finish();
    expect(progress.enabled).toBe(false);
    expect(pipe.written).toEqual([]);
    const tty = fakeTty();
    const disabled = new Progress('export', 10, { stream: tty, enabled: false, now: () => 5000 });
    disabled.update(5);
    disabled.finish();
    expect(tty.written).toEqual([]);
  });
});
