// The write path's encoding (lib/write-batch.ts): strings are copied once,
// as UTF-16, straight into a growable buffer; the native layer converts them
// to UTF-8, refusing lone surrogates and content over maxContentBytes, and
// finds non-finite embedding values; the TS layer names them. These check
// the edges of those shortcuts, and that the errors come in the documented
// order although the checks run in two places.
import { describe, expect, it } from 'vitest';
import { open } from '../lib/index.js';
import { encodeMetadata } from '../lib/metadata-json.js';
import type { MemoryInput } from '../lib/index.js';
import { mulberry32, randomEmbedding } from './helpers/random.js';
import { expectTierStoreError, snapshot, useScratch } from './helpers/store.js';

const DIMS = 6;

function rec(id: string, over: Partial<Record<keyof MemoryInput, unknown>> = {}): MemoryInput {
  const rng = mulberry32(id.length * 7919 + id.charCodeAt(0));
  return { id, content: `content of ${id}`, embedding: randomEmbedding(rng, DIMS, 'float32'), ...over } as MemoryInput;
}

describe('write batch encoding', () => {
  const scratch = useScratch();

  it('names the first non-finite embedding value: memory.embedding[j] for put, memories[i].embedding[j] for putMany', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    s.put(rec('kept'));
    const before = snapshot(s);
    const nan = Float32Array.of(0, 1, NaN, 0, Infinity, 0);
    let e = expectTierStoreError(() => s.put(rec('a', { embedding: nan })), 'INVALID_ARGUMENT', 'put NaN');
    expect(e.message).toMatch(/^memory\.embedding\[2\] is NaN as float32; embedding values must be finite/);
    e = expectTierStoreError(
      () => s.putMany([rec('b'), rec('c'), rec('d', { embedding: [0, 0, 0, 0, -3.5e38, 0] }), rec('e', { embedding: nan })]),
      'INVALID_ARGUMENT', 'putMany -Infinity as float32');
    expect(e.message).toMatch(/^memories\[2\]\.embedding\[4\] is -Infinity as float32/);
    e = expectTierStoreError(
      () => s.putMany([rec('b'), rec('c', { embedding: Float64Array.of(0, 0, 0, 0, 0, 1e39) })]),
      'INVALID_ARGUMENT', 'putMany Float64 overflow');
    expect(e.message).toMatch(/^memories\[1\]\.embedding\[5\] is Infinity as float32/);
    expect(snapshot(s)).toEqual(before);
  });

  it('content checked natively still comes in record order and before the lengths: the first bad record is reported', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS, maxContentBytes: 100 });
    s.put(rec('kept'));
    const before = snapshot(s);
    const lone = 'fine text \ud800';
    const wide = 'é'.repeat(60); // 60 UTF-16 units, 120 UTF-8 bytes: only the UTF-8 length is too large
    const short = [1, 2, 3];
    const cases: Array<[string, () => unknown, string, RegExp]> = [
      ['put: lone surrogate before a wrong embedding length', () => s.put(rec('a', { content: lone, embedding: short })),
        'INVALID_ARGUMENT', /^memory\.content contains a lone UTF-16 surrogate/],
      ['put: UTF-8 length before a wrong embedding length', () => s.put(rec('a', { content: wide, embedding: short })),
        'CONTENT_TOO_LARGE', /^memory\.content is 120 UTF-8 bytes; maxContentBytes is 100/],
      ['put: UTF-8 length alone', () => s.put(rec('a', { content: wide })),
        'CONTENT_TOO_LARGE', /^memory\.content is 120 UTF-8 bytes/],
      ['putMany: an earlier lone surrogate before a later wrong length', () => s.putMany([rec('a'), rec('b', { content: lone }), rec('c', { embedding: short })]),
        'INVALID_ARGUMENT', /^memories\[1\]\.content contains a lone UTF-16 surrogate/],
      ['putMany: an earlier UTF-8 length before a later wrong type', () => s.putMany([rec('a', { content: wide }), rec('b', { confidence: 2 })]),
        'CONTENT_TOO_LARGE', /^memories\[0\]\.content is 120 UTF-8 bytes/],
      ['putMany: a later wrong type when the earlier contents are fine', () => s.putMany([rec('a'), rec('b', { confidence: 2 })]),
        'INVALID_ARGUMENT', /^memories\[1\]\.confidence/],
      // Finiteness is checked last within a record, yet an earlier record's
      // non-finite value is still the first bad record of the batch.
      ['putMany: an earlier non-finite value before a later bad content', () => s.putMany([rec('a', { embedding: [0, NaN, 0, 0, 0, 0] }), rec('b', { content: wide })]),
        'INVALID_ARGUMENT', /^memories\[0\]\.embedding\[1\] is NaN as float32/],
      ['putMany: an earlier non-finite value before a later lone surrogate', () => s.putMany([rec('a'), rec('b', { embedding: [0, 0, Infinity, 0, 0, 0] }), rec('c', { content: lone })]),
        'INVALID_ARGUMENT', /^memories\[1\]\.embedding\[2\] is Infinity as float32/],
      ['putMany: an earlier non-finite value before a later wrong type', () => s.putMany([rec('a', { embedding: Float64Array.of(0, 0, 0, 0, 0, 1e39) }), rec('b', { confidence: 'x' as unknown as number })]),
        'INVALID_ARGUMENT', /^memories\[0\]\.embedding\[5\] is Infinity as float32/],
      ['putMany: an earlier non-finite value before a later too-long content', () => s.putMany([rec('a', { embedding: [NaN, 0, 0, 0, 0, 0] }), rec('b', { content: 'x'.repeat(101) })]),
        'INVALID_ARGUMENT', /^memories\[0\]\.embedding\[0\] is NaN as float32/],
      ['putMany: a bad content before a non-finite value in the same record', () => s.putMany([rec('a'), rec('b', { content: wide, embedding: [NaN, 0, 0, 0, 0, 0] }), rec('c', { embedding: [NaN, 0, 0, 0, 0, 0] })]),
        'CONTENT_TOO_LARGE', /^memories\[1\]\.content is 120 UTF-8 bytes/],
      ['putMany: an earlier bad content before a later non-finite value', () => s.putMany([rec('a', { content: lone }), rec('b', { embedding: [NaN, 0, 0, 0, 0, 0] }), rec('c', { confidence: 2 })]),
        'INVALID_ARGUMENT', /^memories\[0\]\.content contains a lone UTF-16 surrogate/],
      ['putMany: the first of two bad contents', () => s.putMany([rec('a'), rec('b', { content: wide }), rec('c', { content: lone })]),
        'CONTENT_TOO_LARGE', /^memories\[1\]\.content/],
    ];
    for (const [what, call, code, message] of cases) {
      const e = expectTierStoreError(call, code, what);
      expect(e.message, what).toMatch(message);
      expect(Object.keys(e), what).not.toContain('recordIndex');
      expect(snapshot(s), what).toEqual(before);
    }
  });

  it('keeps U+FFFD and other U+F000..U+FFFF characters exactly, and refuses lone surrogates beside them', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const tricky = [
      '\uFFFD',
      'replacement \uFFFD in the middle',
      '\uF000\uFB01\uFEFF\uFF21\uFFEE\uFFFF',
      '🚀\uFFFD🚀',
      'x'.repeat(5000) + '\uFFFD',
    ];
    s.putMany(tricky.map((content, i) => rec(`t${i}`, { content })));
    for (let i = 0; i < tricky.length; i++) s.put(rec(`p${i}`, { content: tricky[i] }));
    for (let i = 0; i < tricky.length; i++) {
      expect(s.get(`t${i}`)?.content).toBe(tricky[i]);
      expect(s.get(`p${i}`)?.content).toBe(tricky[i]);
    }
    const before = snapshot(s);
    const lone = ['\uFFFD\ud800', '\ud800\uFFFD', 'a\udc00' + '\uFFFD'.repeat(100), 'é'.repeat(3000) + '\ud83d'];
    for (const content of lone) {
      expectTierStoreError(() => s.put(rec('bad', { content })), 'INVALID_ARGUMENT', `put ${JSON.stringify(content.slice(0, 8))}`);
      const e = expectTierStoreError(() => s.putMany([rec('ok'), rec('bad', { content })]), 'INVALID_ARGUMENT', 'putMany');
      expect(e.message).toMatch(/^memories\[1\]\.content contains a lone UTF-16 surrogate/);
    }
    expect(snapshot(s)).toEqual(before);
  });

  it('a batch whose strings outgrow the first guesses many times over comes back byte for byte', () => {
    const dir = scratch.storePath();
    const s = scratch.open(dir, { dimensions: DIMS });
    // Small records first (the buffer is sized from them), then ever larger ones.
    const batch: MemoryInput[] = [];
    for (let i = 0; i < 30; i++) {
      const size = i < 20 ? 3 : 1000 * 2 ** (i - 20);
      batch.push(rec(`g${i}`, { content: `${i}:` + 'ab€🚀'.repeat(size), metadata: { i, pad: 'm'.repeat(i * 50) } }));
    }
    expect(s.putMany(batch)).toBe(30);
    const check = (store: typeof s) => {
      for (const r of batch) {
        const m = store.get(r.id)!;
        expect(m.content === r.content, `${r.id} content`).toBe(true);
        expect(m.metadata).toEqual(r.metadata);
      }
    };
    check(s);
    // A bad record after the growth leaves the store as it was.
    const before = snapshot(s);
    expectTierStoreError(() => s.putMany([...batch.slice(20), rec('late', { confidence: 2 })]), 'INVALID_ARGUMENT', 'late bad');
    expect(snapshot(s)).toEqual(before);
    s.close();
    check(open(dir));
  }, 60_000);

  it('putMany batches of changing sizes, a failed one and a nested one leave no rows or bytes of one in another', () => {
    const dir = scratch.storePath();
    const s = scratch.open(dir, { dimensions: DIMS });
    const rng = mulberry32(99);
    const version = (id: string, v: number) =>
      rec(id, {
        content: `${id} v${v} ` + 'xé'.repeat(Math.floor(rng() * 300)),
        embedding: randomEmbedding(rng, DIMS, 'float32'),
        confidence: Math.fround(rng()),
        activation: Math.fround(rng()),
        createdAt: 1_000 + v,
        metadata: { v, tags: v % 2 === 0 ? ['even'] : [] },
      });
    const expected = new Map<string, MemoryInput>();
    // Large, then smaller (rows past the batch are stale), then a failed batch
    // (its rows and bytes half-written), then larger than any before.
    const sizes = [40, 7, 1, 25, 0, 60];
    let v = 0;
    for (const n of sizes) {
      const batch = Array.from({ length: n }, (_, i) => version(`id${(i * 7 + v) % 70}`, ++v));
      if (n === 0) {
        const bad = Array.from({ length: 30 }, (_, i) => version(`bad${i}`, ++v));
        bad[29] = rec('bad29', { content: 'é'.repeat(5000), confidence: -1 });
        expectTierStoreError(() => s.putMany(bad), 'INVALID_ARGUMENT', 'bad batch');
        continue;
      }
      expect(s.putMany(batch)).toBe(n);
      for (const r of batch) expected.set(r.id, r);
    }
    // A getter that calls putMany inside an outer putMany.
    const outer = [version('outer0', ++v), version('outer1', ++v)];
    const inner = version('inner', ++v);
    Object.defineProperty(outer[1], 'content', { get: () => { s.putMany([inner]); return 'outer1 content'; } });
    s.putMany(outer);
    expected.set('outer0', outer[0]);
    expected.set('outer1', { ...version('outer1', 0), ...outer[1], content: 'outer1 content' });
    expected.set('inner', inner);
    const check = (store: typeof s) => {
      expect(store.counts().total).toBe(expected.size);
      for (const [id, r] of expected) {
        const m = store.get(id, { includeEmbedding: true })!;
        expect(m.content === r.content, `${id} content`).toBe(true);
        expect(m.metadata).toEqual(r.metadata);
        expect(m.createdAt).toBe(r.createdAt);
        expect(m.confidence).toBe(r.confidence);
        expect(m.activation).toBe(r.activation);
        expect(Array.from(m.embedding!)).toEqual(Array.from(r.embedding as Float32Array));
      }
    };
    check(s);
    s.close();
    check(open(dir));
  });

  it('put after a put of several MiB still writes small records exactly', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const big = 'ü'.repeat(3 << 20);
    s.put(rec('big', { content: big }));
    s.put(rec('small', { content: 'small €' }));
    expect(s.get('big')?.content === big).toBe(true);
    expect(s.get('small')?.content).toBe('small €');
  });
});

describe('metadata text', () => {
  const scratch = useScratch();

  it('keys and strings that JSON must escape, and ones it must not, come back exactly', () => {
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    let every = '';
    for (let c = 0; c < 0x80; c++) every += String.fromCharCode(c);
    const metadata = {
      every,
      [every]: 'key with every ASCII character',
      quote: 'say "hi"',
      backslash: 'a\\b\\\\c',
      separators: '\u2028\u2029\u007f',
      plain: 'nothing to escape: é 日本 🚀',
      nested: [{ 'k"': ['\n', '\t', '\u0000'] }],
    };
    s.put(rec('m', { metadata }));
    s.putMany([rec('m2', { metadata })]);
    expect(s.get('m')?.metadata).toEqual(metadata);
    expect(s.get('m2')?.metadata).toEqual(metadata);
  });

  it('the JSON text of random short and long keys and strings is what JSON.stringify gives; a lone surrogate anywhere is refused', () => {
    // Strings around the length where quoting changes method (32 units),
    // from an alphabet of characters JSON escapes, ones it does not,
    // pairs, and lone surrogates of both kinds.
    const alphabet = ['a', 'Z', ' ', '"', '\\', '\n', '\u0000', '\u001f', '\u007f', 'é', '日', '\u2028', '🚀', '\ud800', '\udfff'];
    const random = mulberry32(17);
    let refused = 0;
    let accepted = 0;
    for (let round = 0; round < 3000; round++) {
      const len = Math.floor(random() * 48);
      const lone = random() < 0.2;
      let text = '';
      while (text.length < len) {
        const pick = alphabet[Math.floor(random() * (lone ? alphabet.length : alphabet.length - 2))]!;
        text += pick;
      }
      const asKey = round % 2 === 0;
      const metadata = asKey ? { [text]: 1 } : { v: [text] };
      if (text.isWellFormed()) {
        expect(encodeMetadata(metadata, 'memory.metadata')).toBe(JSON.stringify(metadata));
        accepted++;
      } else {
        expectTierStoreError(() => encodeMetadata(metadata, 'memory.metadata'), 'INVALID_ARGUMENT', JSON.stringify(text));
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(100);
    expect(accepted).toBeGreaterThan(1000);
  });
});

describe('metadata written into the batch as it is checked', () => {
  const scratch = useScratch();

  it('metadata that outgrows the buffer mid-text, with a getter that puts into the same store meanwhile, comes back exactly', () => {
    const dir = scratch.storePath();
    const s = scratch.open(dir, { dimensions: DIMS });
    // 600 short keys and values (copied unit by unit) and a few long or
    // escaped ones: far more text than the first buffer of a put holds.
    const build = (tag: string): Record<string, unknown> => {
      const m: Record<string, unknown> = {};
      for (let i = 0; i < 600; i++) m[`k${i}`] = i % 3 === 0 ? `${tag}-${'v'.repeat(i % 40)}` : i % 3 === 1 ? i * 1.5 : [i, `é${i}`, null];
      m.long = `${tag} ` + 'long text 日本 '.repeat(20);
      m.escaped = `${tag}\n"quoted"\\\u0001`;
      return m;
    };
    const plain = build('outer');
    const withGetter = { ...build('outer') };
    // Mid-object: its key is already in the buffer when the getter runs.
    Object.defineProperty(withGetter, 'k300', {
      enumerable: true,
      get: () => {
        s.put(rec('inner-put', { metadata: build('inner-put') }));
        s.putMany([rec('inner-many', { metadata: build('inner-many') })]);
        return plain.k300;
      },
    });
    s.put(rec('outer-put', { metadata: withGetter }));
    s.putMany([rec('outer-many-0', { metadata: plain }), rec('outer-many-1', { metadata: withGetter })]);
    const check = (store: typeof s) => {
      expect(store.counts().total).toBe(5);
      for (const id of ['outer-put', 'outer-many-0', 'outer-many-1']) {
        expect(JSON.stringify(store.get(id)!.metadata), id).toBe(JSON.stringify(plain));
      }
      expect(store.get('inner-put')!.metadata).toEqual(build('inner-put'));
      expect(store.get('inner-many')!.metadata).toEqual(build('inner-many'));
    };
    check(s);
    s.close();
    check(open(dir));
  });

  it('the JSON text of random nested metadata is what JSON.stringify gives, and comes back from the store equal', () => {
    const random = mulberry32(2024);
    const alphabet = ['a', 'Z', ' ', '"', '\\', '\n', '\u0000', '\u001f', '\u007f', 'é', '日', '\u2028', '🚀'];
    const text = (max: number) => {
      let t = '';
      const len = Math.floor(random() * max);
      while (t.length < len) t += alphabet[Math.floor(random() * alphabet.length)]!;
      return t;
    };
    const numbers = [0, 1, -1, 0.1, 1e21, 1e-7, 5e-324, -1.7976931348623157e308, 123456789012345680000, 2 ** 53 + 2];
    const value = (depth: number): unknown => {
      const pick = random();
      if (depth > 3 || pick < 0.3) {
        const kind = Math.floor(random() * 5);
        if (kind === 0) {
          const n = numbers[Math.floor(random() * numbers.length)]!;
          return n !== 0 && random() < 0.5 ? -n : n;  // never -0, which metadata refuses
        }
        if (kind === 1) return random() < 0.5;
        if (kind === 2) return null;
        return text(random() < 0.8 ? 12 : 80);
      }
      if (pick < 0.6) return Array.from({ length: Math.floor(random() * 5) }, () => value(depth + 1));
      const o: Record<string, unknown> = {};
      const keys = Math.floor(random() * 5);
      for (let i = 0; i < keys; i++) o[text(random() < 0.9 ? 8 : 50)] = value(depth + 1);
      return o;
    };
    const s = scratch.open(scratch.storePath(), { dimensions: DIMS });
    const stored: Array<[string, Record<string, unknown>]> = [];
    for (let round = 0; round < 2000; round++) {
      const metadata: Record<string, unknown> = { root: value(0), [text(10)]: value(1) };
      expect(encodeMetadata(metadata, 'memory.metadata')).toBe(JSON.stringify(metadata));
      if (round % 10 === 0) stored.push([`r${round}`, metadata]);
    }
    s.putMany(stored.map(([id, metadata]) => rec(id, { metadata })));
    for (const [id, metadata] of stored) expect(s.get(id)!.metadata).toEqual(metadata);
  });
});
