// Filter flags of `tierstore list` and `tierstore recall` (--created-after,
// --created-before, --min-confidence, --min-activation, --metadata KEY=VALUE
// repeatable) against the library's own filtered list and recall; the
// next-page hint carries the filter; an all-zero query is INVALID_ARGUMENT
// naming the flag; bad flags are usage errors; `serve --root` serves spaces
// and its usage errors. The CLI runs as a child process from dist/.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { flagOfField, timeValue } from '../lib/cli/filters.js';
import { open } from '../lib/index.js';
import type { ListPage, MemoryFilter, MemoryInput, RecallHit, Tier } from '../lib/index.js';
import { buildCli, cli, json, startCli, type CliResult } from './helpers/cli-run.js';
import { mulberry32, randomEmbedding } from './helpers/random.js';
import { Scratch } from './helpers/store.js';

const DIMS = 8;
const N = 90;
const T0 = Date.UTC(2026, 0, 1);
const TIERS: readonly Tier[] = ['hot', 'warm', 'cold'];

const scratch = new Scratch();
afterAll(() => scratch.cleanup());
let storeDir = '';
const records: MemoryInput[] = [];

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

beforeAll(() => {
  buildCli();
  const rng = mulberry32(31);
  for (let i = 0; i < N; i++) {
    records.push({
      id: `rec-${String(i).padStart(3, '0')}`,
      content: `note ${i}`,
      embedding: randomEmbedding(rng, DIMS, 'float32'),
      confidence: rng(),
      activation: rng(),
      createdAt: T0 + (i - 30) * 86_400_000, // one a day, from 30 days before 2026-01-01
      metadata: { group: `g${i % 3}`, n: i % 4, tags: i % 2 === 0 ? ['even', `t${i % 5}`] : [`t${i % 5}`], ...(i % 7 === 0 ? { flag: true } : {}) },
    });
  }
  storeDir = path.join(scratch.dir(), 'store');
  const store = open(storeDir, { dimensions: DIMS });
  store.putMany(records);
  records.forEach((r, i) => store.move(r.id, TIERS[i % 3]!));
  store.close();
}, 120_000);

/** What the library answers for the same filter. */
function library<T>(fn: (store: ReturnType<typeof open>) => T): T {
  const store = open(storeDir, { readOnly: true });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

const CASES: [string[], MemoryFilter][] = [
  [['--created-after', '2026-01-01'], { createdAfter: T0 }],
  [['--created-after', String(T0 - 10 * 86_400_000), '--created-before', '2026-01-11T00:00:00Z'], { createdAfter: T0 - 10 * 86_400_000, createdBefore: T0 + 10 * 86_400_000 }],
  [['--min-activation', '0.5'], { minActivation: 0.5 }],
  [['--metadata', 'group=g1'], { metadata: { group: 'g1' } }],
  [['--metadata', 'n=2'], { metadata: { n: 2 } }],
  [['--metadata', 'n="2"'], { metadata: { n: '2' } }],
  [['--metadata', 'tags=t1', '--metadata', 'tags=t3'], { metadata: { tags: ['t1', 't3'] } }],
  [['--metadata', 'tags=even', '--metadata', 'group=g0', '--min-activation', '0.2'], { metadata: { tags: 'even', group: 'g0' }, minActivation: 0.2 }],
  [['--metadata', 'flag=true'], { metadata: { flag: true } }],
  [['--metadata', 'missing=null'], { metadata: { missing: null } }],
];

describe('list and recall with filter flags', () => {
  it('list: the same records as the library with the same filter, in every tier, and a hint that keeps the filter', () => {
    for (const [flags, filter] of CASES) {
      for (const tier of ['all', 'warm'] as const) {
        const page = json<ListPage>(cli(['--dir', storeDir, 'list', '--tier', tier, '--limit', '1000', '--json', ...flags]));
        const want = library((s) => s.list({ tier, limit: 1000, filter }).memories.map((m) => m.id));
        expect(page.memories.map((m) => m.id), `${flags.join(' ')} (${tier})`).toEqual(want);
      }
    }
    const minConfidence = json<ListPage>(cli(['--dir', storeDir, 'list', '--tier', 'all', '--limit', '1000', '--min-confidence', '0.6', '--json']));
    expect(minConfidence.memories.map((m) => m.id)).toEqual(library((s) => s.list({ tier: 'all', limit: 1000, filter: { minConfidence: 0.6 } }).memories.map((m) => m.id)));
    expect(minConfidence.memories.every((m) => m.confidence >= Math.fround(0.6))).toBe(true);

    // The table's next-page hint repeats the filter flags: following it pages through exactly the matching records.
    const want = library((s) => s.list({ tier: 'all', limit: 1000, filter: { metadata: { tags: 'even', group: ['g0', 'g2'] } } }).memories.map((m) => m.id));
    const seen: string[] = [];
    let args = ['--tier', 'all', '--limit', '4', '--metadata', 'tags=even', '--metadata', 'group=g0', '--metadata', 'group=g2'];
    for (let pages = 0; pages < 100; pages++) {
      const text = cli(['--dir', storeDir, 'list', ...args]);
      expectOk(text);
      expect(text.stdout).toContain('matching the filter');
      for (const id of text.stdout.match(/rec-\d{3}/g) ?? []) seen.push(id);
      const next = /next page: (.*)$/m.exec(text.stdout);
      if (next === null) break;
      expect(next[1]).toContain('--metadata tags=even --metadata group=g0 --metadata group=g2 --cursor');
      args = next[1]!.split(' ');
    }
    expect(seen).toEqual(want);
  });

  it('recall: the same hits as the library with the same filter', () => {
    const queryFile = path.join(scratch.dir(), 'q.json');
    fs.writeFileSync(queryFile, JSON.stringify(Array.from(records[5]!.embedding as Float32Array)));
    for (const [flags, filter] of CASES) {
      const hits = json<RecallHit[]>(cli(['--dir', storeDir, 'recall', '--query', queryFile, '--k', '7', '--json', ...flags]));
      const want = library((s) => s.recall(records[5]!.embedding, { k: 7, filter }).map((h) => h.id));
      expect(hits.map((h) => h.id), flags.join(' ')).toEqual(want);
    }
    const byId = json<RecallHit[]>(cli(['--dir', storeDir, 'recall', '--id', 'rec-010', '--k', '5', '--metadata', 'group=g2', '--json']));
    expect(byId.map((h) => h.id)).toEqual(library((s) => s.recall(records[10]!.embedding, { k: 5, filter: { metadata: { group: 'g2' } } }).map((h) => h.id)));
    expect(byId.every((h) => (h.memory.metadata as { group: string }).group === 'g2')).toBe(true);
  });

  it('bad filter flags are usage errors (exit 2); a value the store refuses names the flag (exit 1)', () => {
    expectUsage(cli(['--dir', storeDir, 'list', '--metadata', 'novalue']), /--metadata.*KEY=VALUE/);
    expectUsage(cli(['--dir', storeDir, 'list', '--metadata', '=x']), /KEY=VALUE/);
    expectUsage(cli(['--dir', storeDir, 'list', '--created-after', 'yesterday']), /--created-after.*ISO 8601/);
    expectUsage(cli(['--dir', storeDir, 'recall', '--id', 'rec-001', '--created-before', '2026-13']), /--created-before/);
    expectUsage(cli(['--dir', storeDir, 'list', '--min-activation', 'high']), /finite number/);
    expectFailure(cli(['--dir', storeDir, 'list', '--metadata', 'n=1e400']), /INVALID_ARGUMENT: --metadata n=… must be .*finite/);
  });
});

describe('a zero query is refused', () => {
  it('an all-zero --query file (also after rounding to float32), or --id of a zero embedding, is INVALID_ARGUMENT', () => {
    const dir = scratch.dir();
    const zeros = path.join(dir, 'zeros.json');
    fs.writeFileSync(zeros, JSON.stringify(new Array(DIMS).fill(0)));
    expectFailure(cli(['--dir', storeDir, 'recall', '--query', zeros]), /INVALID_ARGUMENT: --query is all zeros/);
    const tiny = path.join(dir, 'tiny.json');
    fs.writeFileSync(tiny, JSON.stringify([1e-46, -1e-46, 0, 0, 0, 0, 0, 0]));
    expectFailure(cli(['--dir', storeDir, 'recall', '--query', tiny]), /INVALID_ARGUMENT: --query is all zeros/);
    const raw = path.join(dir, 'zeros.f32');
    fs.writeFileSync(raw, Buffer.alloc(4 * DIMS));
    expectFailure(cli(['--dir', storeDir, 'recall', '--query', raw, '--json']), /INVALID_ARGUMENT/);
    // A zero embedding may be stored; recalling with it is what is refused.
    const zeroStore = path.join(dir, 'zs');
    const s = open(zeroStore, { dimensions: DIMS });
    s.put({ id: 'z', content: 'zero', embedding: new Array(DIMS).fill(0) });
    s.close();
    expectFailure(cli(['--dir', zeroStore, 'recall', '--id', 'z']), /INVALID_ARGUMENT: the embedding of --id z is all zeros/);
  });
});

describe('helpers', () => {
  it('timeValue reads ms and ISO 8601 dates; flagOfField names the flag of a field', () => {
    expect(timeValue('1700000000000')).toBe(1_700_000_000_000);
    expect(timeValue('-5')).toBe(-5);
    expect(timeValue('2026-01-01')).toBe(T0);
    expect(timeValue('2026-01-01T00:00:01Z')).toBe(T0 + 1000);
    expect(timeValue('2026-01-01T01:00:00+01:00')).toBe(T0);
    for (const bad of ['', 'now', '1.5', '2026-1-1', '1e3', '99999999999999999999']) expect(() => timeValue(bad), bad).toThrow();
    expect(flagOfField('filter.createdAfter', '--query')).toBe('--created-after');
    expect(flagOfField('filter.minActivation', '--query')).toBe('--min-activation');
    expect(flagOfField('filter.metadata.tags[1]', '--query')).toBe('--metadata tags=…');
    expect(flagOfField('query', '--query')).toBe('--query');
    expect(flagOfField('query[3]', '--query')).toBe('--query[3]');
    expect(flagOfField('minConfidence', '--query')).toBe('--min-confidence');
  });
});

describe('serve --root', () => {
  it('usage: --root needs --dimensions, not with --dir; --max-open-spaces goes with --root', () => {
    const root = path.join(scratch.dir(), 'spaces');
    expectUsage(cli(['serve', '--root', root, '--port', '0']), /--root needs --dimensions/);
    expectUsage(cli(['serve', '--root', root, '--dimensions', '4', '--dir', storeDir, '--port', '0']), /either --dir .* or --root/);
    expectUsage(cli(['--dir', storeDir, 'serve', '--max-open-spaces', '4', '--port', '0']), /--max-open-spaces goes with --root/);
    expectUsage(cli(['serve', '--root', root, '--dimensions', '4', '--max-open-spaces', '0']), /--max-open-spaces/);
    expect(fs.existsSync(root), 'nothing created by a refused command line').toBe(false);
  });

  it('serves one store per X-Memory-Space (TIERSTORE_DIR gives way to --root) and closes them all on SIGTERM', async () => {
    const root = path.join(scratch.dir(), 'spaces');
    const server = await startCli(['serve', '--root', root, '--dimensions', '4', '--max-open-spaces', '2', '--port', '0'],
      /listening on (http:\/\/\S+)/, { TIERSTORE_DIR: storeDir });
    const url = server.match[1]!.replace(/\/$/, '');
    const statuses: number[] = [];
    let spaces: { spaces: { name: string; tier_counts: { total: number } }[] } = { spaces: [] };
    let health: { open_spaces?: number; max_open_spaces?: number; mode?: string } = {};
    try {
      for (const space of ['a', 'b', 'c', 'a']) {
        const res = await fetch(`${url}/api/v1/memories`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-memory-space': space },
          body: JSON.stringify({ id: `${space}-${statuses.length}`, content: space, embedding: [1, 2, 3, 4] }),
        });
        statuses.push(res.status);
      }
      statuses.push((await fetch(`${url}/api/v1/memories`, { headers: { 'x-memory-space': 'nope' } })).status);
      statuses.push((await fetch(`${url}/api/v1/memories`, { headers: { 'x-memory-space': '..' } })).status);
      spaces = (await (await fetch(`${url}/api/v1/spaces`)).json()) as typeof spaces;
      health = (await (await fetch(`${url}/health`)).json()) as typeof health;
    } finally {
      const r = await server.stop('SIGTERM');
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/spaces in .*spaces, 4 dimensions, at most 2 open/);
    }
    expect(statuses).toEqual([201, 201, 201, 201, 404, 400]);
    expect(spaces.spaces.map((s) => [s.name, s.tier_counts.total])).toEqual([['a', 2], ['b', 1], ['c', 1]]);
    expect(health).toMatchObject({ mode: 'root', max_open_spaces: 2 });
    expect(health.open_spaces).toBeLessThanOrEqual(2);
    expect(fs.readdirSync(root).sort()).toEqual(['a', 'b', 'c']);
    // Closed cleanly: each space opens as a plain store with its records.
    const a = open(path.join(root, 'a'), { readOnly: true });
    expect(a.counts().total).toBe(2);
    a.close();
  });
});
