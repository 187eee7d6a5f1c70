// Fidelity: every field of every memory comes back bit-exact from every tier,
// after every migration path, after compact() and after close and reopen
// (docs/api.md: "Nothing is altered on the way down"). The system tierstore replaces replaced content with
// "Memory {id}" placeholders when a memory left RAM: these tests exist to make
// that impossible.
//
// One parameterised suite: the same records go through every path; each path
// is checked in its own session and again after close and reopen, through
// get, iterate (sync, async and batches), list and recall.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open } from '../lib/index.js';
import type { Memory, MemoryInput, MemoryStore, OpenOptions, Tier } from '../lib/index.js';
import { contentOfBytes, mulberry32, randomEmbedding, utf8Length, waitPastMs } from './helpers/random.js';
import {
  checkMemory,
  expectedOf,
  fromBatches,
  iterateAll,
  listAll,
  pickCounts,
  Scratch,
  type Expected,
} from './helpers/store.js';

const DIMS = 13; // not a multiple of 16: rows are not naturally 64-byte aligned
const MiB = 1024 * 1024;

/** The records every path carries; `big` adds a 16 MiB content. */
function fidelityRecords(big: boolean): MemoryInput[] {
  const rng = mulberry32(0xf1de1117);
  const emb = () => randomEmbedding(rng, DIMS, 'float32');

  // An embedding given as a view with a non-zero byteOffset into a larger buffer.
  const backing = randomEmbedding(rng, DIMS + 11, 'float32');
  const view = backing.subarray(5, 5 + DIMS);

  // Float32 edge values: signed zero, subnormals, extremes, and doubles that
  // only become exact (or finite) after rounding to float32.
  const special = [
    -0, 0, 1.401298464324817e-45, -1.401298464324817e-45, 3.4028234663852886e38, -3.4028234663852886e38,
    1.1754943508222875e-38, 1e-40, 0.1, -1 / 3, 65504.123, 3.4028235e38, 1e-50,
  ];

  const records: MemoryInput[] = [
    // Only the required fields: every default applies.
    { id: 'empty-content', content: '', embedding: emb() },
    {
      id: 'utf8-ÄÖÜ-日本-🚀',
      content:
        'Café naïve façade — Ελληνικά, Русский, 日本語のテキスト, 中文, 한국어, עברית, العربية, ' +
        'emoji 🚀🧠👩‍👩‍👧‍👦 🇯🇵, combining e\u0301, ZWJ \u200d, BOM \ufeff, 𝄞 (U+1D11E), U+FFFF \uffff, U+10FFFF \udbff\udfff',
      embedding: emb(),
      confidence: 0.1,
      activation: 0.7,
      createdAt: 1_700_000_000_123,
      metadata: { lang: 'mixed', 'ключ': 'значение', '日本': '🎌' },
    },
    {
      id: 'nul-\u0000-in-id',
      content: 'before\u0000middle\u0000\u0000after\u0000',
      embedding: emb(),
      metadata: { 'k\u0000ey': 'v\u0000al', s: '\u0000' },
      confidence: 0.9,
    },
    { id: '\u0000', content: '\u0000', embedding: emb() },
    { id: '€'.repeat(341) + 'a', content: 'id of exactly 1024 UTF-8 bytes', embedding: emb() },
    { id: 'x', content: 'x', embedding: emb() },
    { id: 'content-1MiB', content: contentOfBytes(rng, MiB, 0.05), embedding: emb(), activation: 0.25 },
    {
      id: 'metadata-nested',
      content: 'nested metadata',
      embedding: emb(),
      metadata: {
        tags: ['a', 'b', { deep: [1, -2.5, 3e-10, null, true, false, ''] }, []],
        nested: { a: { b: { c: { d: 'e', list: [[1, [2, [3]]]] } } }, empty: {} },
        numbers: { neg: -42, float: 3.141592653589793, tiny: -1e-300, huge: 1.7976931348623157e308, max: Number.MAX_SAFE_INTEGER, min: Number.MIN_SAFE_INTEGER, zero: 0 },
        'ключ': 'значение',
        '日本語キー': ['値', '🎌'],
        '🔑': { '🗝️': '🚪' },
        '': 'empty key',
        'a.b': 'dotted key',
        'with "quotes" and \\ backslash': '\n\t\r\b\f\u0001\u001f',
        nothing: null,
      },
    },
    {
      id: 'metadata-prototype-keys',
      content: 'metadata with keys that are special to JavaScript objects',
      embedding: emb(),
      metadata: JSON.parse('{"__proto__": {"polluted": true}, "constructor": "c", "toString": 5, "hasOwnProperty": []}') as Record<string, unknown>,
    },
    { id: 'embedding-float32', content: 'f32', embedding: emb(), confidence: 0.123456789, activation: 0.987654321 },
    { id: 'embedding-float64', content: 'f64', embedding: randomEmbedding(rng, DIMS, 'float64'), confidence: 1 / 3, createdAt: 1 },
    { id: 'embedding-array', content: 'number[]', embedding: randomEmbedding(rng, DIMS, 'array'), activation: 2 / 3 },
    { id: 'embedding-subarray-view', content: 'Float32Array view at byteOffset 20', embedding: view },
    { id: 'embedding-special-values', content: 'edge floats', embedding: special },
    { id: 'embedding-special-f64', content: 'edge floats as Float64Array', embedding: Float64Array.from(special) },
    { id: 'embedding-all-zero', content: 'zero vector', embedding: new Float32Array(DIMS) },
    { id: 'bounds-0-1', content: 'confidence 0, activation 1, createdAt 0', embedding: emb(), confidence: 0, activation: 1, createdAt: 0 },
    { id: 'bounds-1-default', content: 'confidence 1, activation defaults to it', embedding: emb(), confidence: 1, createdAt: -1 },
    { id: 'confidence-only', content: 'activation defaults to confidence 0.3', embedding: emb(), confidence: 0.3 },
    { id: 'activation-only', content: 'confidence defaults to 0.5', embedding: emb(), activation: 0.05 },
    { id: 'created-max', content: 'createdAt = max Date', embedding: emb(), createdAt: 8_640_000_000_000_000 },
    { id: 'created-min', content: 'createdAt = min Date', embedding: emb(), createdAt: -8_640_000_000_000_000 },
  ];
  if (big) {
    records.push({
      id: 'content-16MiB',
      content: contentOfBytes(rng, 16 * MiB, 0.02),
      embedding: emb(),
      metadata: { size: '16MiB' },
    });
  }
  return records;
}

// Sanity of the fixtures themselves.
{
  const r = fidelityRecords(false);
  if (utf8Length(r[4]!.id) !== 1024) throw new Error('fixture: the long id must be exactly 1024 bytes');
  if (new Set(r.map((x) => x.id)).size !== r.length) throw new Error('fixture: duplicate ids');
}

const FILLERS = ['zz-filler-a', 'zz-filler-b'];
const JUNK_PREFIX = 'junk-';

class Ctx {
  store: MemoryStore;
  readonly expected = new Map<string, Expected>();
  readonly fillers = new Set<string>();

  constructor(
    readonly scratch: Scratch,
    readonly dir: string,
    readonly records: MemoryInput[],
  ) {
    this.store = scratch.open(dir, { dimensions: DIMS });
  }

  /** Close and open again (new options apply to the new session only). */
  reopen(options?: OpenOptions): void {
    this.store.close();
    this.store = this.scratch.open(this.dir, options);
    expect(this.store.dimensions, 'dimensions read back from the store').toBe(DIMS);
  }

  putAll(): void {
    // Half through put(), half through one putMany(): both write paths.
    const half = Math.ceil(this.records.length / 2);
    for (const rec of this.records.slice(0, half)) {
      const t0 = Date.now();
      this.store.put(rec);
      const t1 = Date.now();
      this.expected.set(rec.id, expectedOf(rec, t0, t1));
    }
    const rest = this.records.slice(half);
    const t0 = Date.now();
    expect(this.store.putMany(rest)).toBe(rest.length);
    const t1 = Date.now();
    for (const rec of rest) this.expected.set(rec.id, expectedOf(rec, t0, t1));
  }

  moveAll(tier: Tier): void {
    for (const rec of this.records) expect(this.store.move(rec.id, tier), `move(${rec.id.slice(0, 20)}, ${tier})`).toBe(true);
  }

  /**
   * Two high-activation records that capacity migration must keep in the
   * upper tier: activation 1 and the most recent lastAccessAt, so they win
   * every tie against test records of activation 1.
   */
  addFillers(): void {
    for (const id of FILLERS) {
      this.store.put({ id, content: `filler ${id}`, embedding: new Float32Array(DIMS).fill(0.5), confidence: 1, activation: 1 });
      this.fillers.add(id);
    }
  }

  async refreshFillers(): Promise<void> {
    for (const id of FILLERS) {
      await waitPastMs();
      expect(this.store.get(id), `filler ${id} present`).toBeDefined();
    }
  }

  /** Records put, rewritten and deleted so compaction has garbage to reclaim. */
  putJunk(n: number): string[] {
    const rng = mulberry32(0x1234);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = `${JUNK_PREFIX}${i}`;
      for (let v = 0; v < 3; v++) {
        this.store.put({ id, content: contentOfBytes(rng, 20_000 + v, 0.05), embedding: randomEmbedding(rng, DIMS, 'float32'), metadata: { v } });
      }
      ids.push(id);
    }
    return ids;
  }

  deleteAll(ids: string[]): void {
    for (const id of ids) expect(this.store.delete(id), `delete(${id})`).toBe(true);
  }

  get expectedTotal(): number {
    return this.records.length + this.fillers.size;
  }
}

/** Asserts that `seen` holds every test record exactly once, plus only fillers. */
function indexById(ms: Memory[], ctx: Ctx, where: string): Map<string, Memory> {
  const byId = new Map<string, Memory>();
  for (const m of ms) {
    expect(byId.has(m.id), `${where}: ${JSON.stringify(m.id.slice(0, 40))} yielded once`).toBe(false);
    byId.set(m.id, m);
    expect(ctx.expected.has(m.id) || ctx.fillers.has(m.id), `${where}: unexpected record ${JSON.stringify(m.id.slice(0, 40))}`).toBe(true);
  }
  for (const rec of ctx.records) expect(byId.has(rec.id), `${where}: ${JSON.stringify(rec.id.slice(0, 40))} present`).toBe(true);
  return byId;
}

/**
 * Reads every record through every reading API (none of which may touch
 * access statistics) and compares each field exactly.
 */
async function verifyReads(ctx: Ctx, tier: Tier): Promise<void> {
  await waitPastMs(); // a read that wrongly touched lastAccessAt would now show
  const s = ctx.store;
  const check = (ms: Memory[], embedding: boolean, where: string) => {
    const byId = indexById(ms, ctx, where);
    for (const rec of ctx.records) checkMemory(byId.get(rec.id), ctx.expected.get(rec.id)!, tier, { embedding, where });
  };

  const counts = pickCounts(s.counts());
  expect(counts.total, 'counts().total').toBe(ctx.expectedTotal);
  expect(counts.hot + counts.warm + counts.cold, 'counts add up').toBe(counts.total);
  expect(counts[tier], `counts().${tier} holds every test record`).toBeGreaterThanOrEqual(ctx.records.length);

  check(iterateAll(s, tier, true), true, `iterate({tier:'${tier}', includeEmbeddings:true})`);
  check(iterateAll(s, tier, false), false, `iterate({tier:'${tier}'})`);

  const all = iterateAll(s, 'all', true);
  expect(all.length, "iterate('all') yields every record once").toBe(ctx.expectedTotal);
  const rank = { hot: 0, warm: 1, cold: 2 } as const;
  for (let i = 1; i < all.length; i++) {
    expect(rank[all[i]!.tier] >= rank[all[i - 1]!.tier], "iterate('all') yields hot, then warm, then cold").toBe(true);
  }
  check(all.filter((m) => !ctx.fillers.has(m.id)), true, "iterate({tier:'all'})");
  check([...s.iterate()].filter((m) => !ctx.fillers.has(m.id)) as Memory[], false, 'iterate()');

  check(fromBatches(s, tier, true, 3), true, `iterate({tier:'${tier}'}).batches() batchSize 3`);
  check(fromBatches(s, tier, false), false, `iterate({tier:'${tier}'}).batches()`);

  const asyncSeen: Memory[] = [];
  for await (const m of s.iterate({ tier, includeEmbeddings: true, batchSize: 4 })) asyncSeen.push(m as Memory);
  check(asyncSeen, true, `for await iterate({tier:'${tier}'})`);

  check(listAll(s, tier, 4, true), true, `list({tier:'${tier}', limit:4, includeEmbeddings:true}) + cursors`);
  check(listAll(s, tier, 1000, false), false, `list({tier:'${tier}', limit:1000})`);

  const query = randomEmbedding(mulberry32(7), DIMS, 'float32');
  const hits = s.recall(query, { k: ctx.expectedTotal, tier: 'all', includeEmbeddings: true });
  expect(hits.length, 'recall returns k hits').toBe(ctx.expectedTotal);
  for (let i = 1; i < hits.length; i++) expect(hits[i]!.score <= hits[i - 1]!.score, 'recall best first').toBe(true);
  for (const h of hits) {
    expect(h.id, 'hit.id = hit.memory.id').toBe(h.memory.id);
    if (ctx.expected.has(h.id)) expect(h.tier, `recall hit tier of ${h.id.slice(0, 20)}`).toBe(tier);
  }
  check(hits.map((h) => h.memory).filter((m) => !ctx.fillers.has(m.id)), true, 'recall(..., includeEmbeddings:true)');

  // No read above may have changed the access statistics: one more exact pass.
  check(iterateAll(s, tier, false), false, `iterate({tier:'${tier}'}) after the other reads`);
}

/**
 * get() of every record returns it exactly, in place, and counts the access:
 * accessCount + 1 and lastAccessAt = the time of the get (only get does this).
 */
async function verifyGets(ctx: Ctx, tier: Tier): Promise<void> {
  const s = ctx.store;
  const lastBefore = new Map<string, number>();
  for (const rec of ctx.records) {
    const exp = ctx.expected.get(rec.id)!;
    expect(typeof exp.lastAccessAt, 'lastAccessAt pinned by an earlier read').toBe('number');
    lastBefore.set(rec.id, exp.lastAccessAt as number);
    await waitPastMs();
    for (const includeEmbedding of [true, false]) {
      const t0 = Date.now();
      const m = s.get(rec.id, { includeEmbedding });
      const t1 = Date.now();
      const where = `get(id, {includeEmbedding:${includeEmbedding}})`;
      checkMemory(m, exp, tier, { embedding: includeEmbedding, where, skipAccessStats: true });
      // The result shows the access statistics either as before or as after this get.
      const within = (v: number, pin: Expected['lastAccessAt']) => (typeof pin === 'number' ? v === pin : v >= pin[0] && v <= pin[1]);
      const pre = m!.accessCount === exp.accessCount && within(m!.lastAccessAt, exp.lastAccessAt);
      const post = m!.accessCount === exp.accessCount + 1 && m!.lastAccessAt >= t0 - 1 && m!.lastAccessAt <= t1 + 1;
      expect(pre || post, `${where}: access stats ${m!.accessCount}/${m!.lastAccessAt} are the state before (${exp.accessCount}/${exp.lastAccessAt}) or after this get`).toBe(true);
      exp.accessCount += 1;
      exp.lastAccessAt = post ? m!.lastAccessAt : [t0 - 1, t1 + 1];
    }
    expect(s.has(rec.id), 'has(id)').toBe(true);
  }
  // Iterate sees the updated statistics, in the same tier (get does not move).
  const byId = indexById(iterateAll(s, tier, true), ctx, 'iterate after get');
  for (const rec of ctx.records) {
    const exp = ctx.expected.get(rec.id)!;
    checkMemory(byId.get(rec.id), exp, tier, { embedding: true, where: 'iterate after get' });
    expect(exp.lastAccessAt as number, 'lastAccessAt moved forward').toBeGreaterThan(lastBefore.get(rec.id)!);
  }
}

interface PathDef {
  name: string;
  tier: Tier;
  big: boolean;
  run(ctx: Ctx): Promise<void> | void;
}

const PATHS: PathDef[] = [
  { name: 'stays hot', tier: 'hot', big: true, run: () => {} },
  {
    name: 'hot→warm by hotCapacity + migrate()',
    tier: 'warm',
    big: false,
    async run(ctx) {
      ctx.addFillers();
      await ctx.refreshFillers();
      ctx.reopen({ hotCapacity: 1 });
      ctx.store.migrate();
      expect(ctx.store.counts().hot, 'hot within hotCapacity after migrate()').toBeLessThanOrEqual(1);
    },
  },
  { name: 'hot→warm by move', tier: 'warm', big: true, run: (ctx) => ctx.moveAll('warm') },
  {
    name: 'hot→warm→cold by capacities + migrate()',
    tier: 'cold',
    big: true,
    async run(ctx) {
      ctx.addFillers();
      await ctx.refreshFillers();
      ctx.reopen({ hotCapacity: 1 });
      ctx.store.migrate();
      await verifyReads(ctx, 'warm');
      await ctx.refreshFillers();
      ctx.reopen({ hotCapacity: 1, warmCapacity: 1 });
      ctx.store.migrate();
      const c = ctx.store.counts();
      expect(c.hot, 'hot within capacity').toBeLessThanOrEqual(1);
      expect(c.warm, 'warm within capacity').toBeLessThanOrEqual(1);
    },
  },
  {
    name: 'hot→warm→cold by move',
    tier: 'cold',
    big: false,
    async run(ctx) {
      ctx.moveAll('warm');
      await verifyReads(ctx, 'warm');
      ctx.moveAll('cold');
    },
  },
  {
    name: 'hot→cold by skipWarm + migrate()',
    tier: 'cold',
    big: true,
    async run(ctx) {
      ctx.addFillers();
      await ctx.refreshFillers();
      ctx.reopen({ hotCapacity: 1, skipWarm: true });
      ctx.store.migrate();
      const c = ctx.store.counts();
      expect(c.hot, 'hot within capacity').toBeLessThanOrEqual(1);
      expect(c.warm, 'skipWarm: nothing went to warm').toBe(0);
    },
  },
  { name: 'hot→cold by move', tier: 'cold', big: false, run: (ctx) => ctx.moveAll('cold') },
  {
    name: 'warm→hot by move',
    tier: 'hot',
    big: false,
    async run(ctx) {
      ctx.moveAll('warm');
      await verifyReads(ctx, 'warm');
      ctx.moveAll('hot');
    },
  },
  {
    name: 'cold→hot by move',
    tier: 'hot',
    big: true,
    async run(ctx) {
      ctx.moveAll('cold');
      await verifyReads(ctx, 'cold');
      ctx.moveAll('hot');
    },
  },
  {
    name: 'cold→warm by move',
    tier: 'warm',
    big: false,
    async run(ctx) {
      ctx.moveAll('cold');
      await verifyReads(ctx, 'cold');
      ctx.moveAll('warm');
    },
  },
  {
    name: 'compact() with records in hot',
    tier: 'hot',
    big: false,
    run(ctx) {
      const junk = ctx.putJunk(6);
      ctx.deleteAll(junk);
      const report = ctx.store.compact();
      expect(typeof report, 'compact() returns a report').toBe('object');
    },
  },
  {
    name: 'compact() with records in warm',
    tier: 'warm',
    big: false,
    run(ctx) {
      const junk = ctx.putJunk(6);
      for (const id of junk.slice(0, 3)) expect(ctx.store.move(id, 'warm')).toBe(true);
      ctx.moveAll('warm');
      for (const id of junk.slice(3)) expect(ctx.store.move(id, 'warm')).toBe(true);
      ctx.deleteAll(junk);
      expect(typeof ctx.store.compact(), 'compact() returns a report').toBe('object');
    },
  },
  {
    name: 'compact() with records in cold',
    tier: 'cold',
    big: true,
    run(ctx) {
      const junk = ctx.putJunk(6);
      for (const id of junk.slice(0, 3)) expect(ctx.store.move(id, 'cold')).toBe(true);
      // Records reach cold in several steps, so there are several segments to merge.
      const half = Math.floor(ctx.records.length / 2);
      for (const rec of ctx.records.slice(0, half)) expect(ctx.store.move(rec.id, 'cold')).toBe(true);
      ctx.store.flush();
      for (const id of junk.slice(3)) expect(ctx.store.move(id, 'cold')).toBe(true);
      for (const rec of ctx.records.slice(half)) expect(ctx.store.move(rec.id, 'cold')).toBe(true);
      ctx.deleteAll(junk);
      expect(typeof ctx.store.compact(), 'compact() returns a report').toBe('object');
    },
  },
];

describe.each(PATHS)('fidelity: $name', (p) => {
  const scratch = new Scratch();
  let ctx: Ctx;
  afterAll(() => scratch.cleanup());

  beforeAll(async () => {
    ctx = new Ctx(scratch, scratch.storePath(), fidelityRecords(p.big));
    ctx.putAll();
    await p.run(ctx);
  }, 120_000);

  it(`every field comes back exactly from ${p.tier} through iterate, batches, list and recall (which leave access stats alone)`, async () => {
    await verifyReads(ctx, p.tier);
  }, 120_000);

  it('get returns every record exactly, in place, counting the access', async () => {
    await verifyGets(ctx, p.tier);
  }, 120_000);

  it('after close and reopen everything, access stats included, is still exact', async () => {
    ctx.reopen();
    await verifyReads(ctx, p.tier);
    await verifyGets(ctx, p.tier);
  }, 120_000);

  it('after a second close and reopen with explicit dimensions, still exact', async () => {
    ctx.reopen({ dimensions: DIMS });
    await verifyReads(ctx, p.tier);
    // A never-reopened store sees the same through a second handle.
    const second = open(ctx.dir);
    try {
      const a = iterateAll(ctx.store, 'all', true).map((m) => m.id);
      const b = iterateAll(second, 'all', true).map((m) => m.id);
      expect(b, 'a second handle in the same process sees the same records').toEqual(a);
    } finally {
      second.close();
    }
    await verifyReads(ctx, p.tier);
  }, 120_000);
});
