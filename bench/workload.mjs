// The standard workload (docs/benchmarks.md), generated deterministically from a seed.
//
// Every record is a pure function of (seed, index): any process can build
// record i without building records 0..i-1, so each benchmark child streams the
// workload in chunks instead of holding N records at once, and every store gets
// byte-identical data.
//
//   id          'm' + 16 hex digits; a bijective mix of the index, so ids are
//               unique and arrive in random key order (like UUIDs do).
//   content     50..2000 UTF-8 bytes (uniform), words from a seeded vocabulary;
//               about 2% of characters are multi-byte (2-, 3- and 4-byte).
//   embedding   768 float32 values, uniform in [-1, 1).
//   metadata    a small object (~90 bytes of JSON).
//   confidence  a float32 in [0, 1); createdAt an integer ms timestamp.

export const DIMENSIONS = 768;
export const DEFAULT_SEED = 0x5eed2024;
const CONTENT_MIN = 50;
const CONTENT_MAX = 2000;

// ---- integer hashing and a small PRNG ---------------------------------------

// A bijective 32-bit mixer (murmur3 fmix32): distinct inputs give distinct outputs.
export function fmix32(h) {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hash3(seed, i, stream) {
  return fmix32((fmix32(seed ^ Math.imul(i, 0x9e3779b9)) + Math.imul(stream + 1, 0x7f4a7c15)) >>> 0);
}

// mulberry32: fast, good enough for test data. Returns a function giving u32.
export function prng(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const U32 = 4294967296;

// ---- vocabulary ------------------------------------------------------------

const MULTIBYTE = ['é', 'ü', 'ñ', 'ß', 'ø', 'ç', '中', '文', '日', '本', '한', '€', '—', '🙂', '🚀', '🧠'];
const vocabCache = new Map();

function vocabulary(seed) {
  let v = vocabCache.get(seed);
  if (v) return v;
  const r = prng(hash3(seed, 0, 99));
  const words = [];
  const bytes = [];
  for (let w = 0; w < 4096; w++) {
    const len = 2 + (r() % 9); // 2..10 letters
    let s = '';
    for (let c = 0; c < len; c++) s += String.fromCharCode(97 + (r() % 26));
    // ~14% of words carry one multi-byte character: with the spaces between
    // words that is ~2% of all characters.
    if (r() / U32 < 0.14) {
      const pos = r() % len;
      s = s.slice(0, pos) + MULTIBYTE[r() % MULTIBYTE.length] + s.slice(pos + 1);
    }
    words.push(s);
    bytes.push(Buffer.byteLength(s, 'utf8'));
  }
  v = { words, bytes };
  vocabCache.set(seed, v);
  return v;
}

// ---- records ---------------------------------------------------------------

export function idOf(i, seed = DEFAULT_SEED) {
  const a = fmix32((i ^ seed) >>> 0); // bijective in i: ids are unique
  const b = hash3(seed, i, 7);
  return 'm' + a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

// Fills out (a Float32Array of DIMENSIONS, or a subarray) with record i's embedding.
export function embeddingInto(i, out, seed = DEFAULT_SEED) {
  const r = prng(hash3(seed, i, 1));
  for (let d = 0; d < DIMENSIONS; d++) out[d] = r() / 2147483648 - 1;
  return out;
}

export function contentOf(i, seed = DEFAULT_SEED) {
  const { words, bytes } = vocabulary(seed);
  const r = prng(hash3(seed, i, 2));
  const target = CONTENT_MIN + (r() % (CONTENT_MAX - CONTENT_MIN + 1));
  const parts = [];
  let n = 0;
  for (;;) {
    const w = r() & 4095;
    const add = (n === 0 ? 0 : 1) + bytes[w];
    if (n + add > target) break;
    parts.push(words[w]);
    n += add;
  }
  let s = parts.join(' ');
  if (n < target) s += n === 0 ? 'x'.repeat(target) : ' ' + 'x'.repeat(target - n - 1);
  return s;
}

const SOURCES = ['chat', 'tool', 'reflection', 'observation', 'plan'];
const TAGS = ['user', 'project', 'preference', 'fact', 'task', 'error', 'code', 'todo'];

export function metadataOf(i, seed = DEFAULT_SEED) {
  const r = prng(hash3(seed, i, 3));
  return {
    source: SOURCES[r() % SOURCES.length],
    session: 's' + (r() % 5000),
    turn: r() % 500,
    tags: [TAGS[r() % TAGS.length], TAGS[r() % TAGS.length]],
    importance: (r() % 100) / 100,
  };
}

const BASE_TIME = 1_700_000_000_000;

// The full MemoryInput of record i (docs/api.md).
export function recordOf(i, seed = DEFAULT_SEED) {
  const r = prng(hash3(seed, i, 4));
  return {
    id: idOf(i, seed),
    content: contentOf(i, seed),
    embedding: embeddingInto(i, new Float32Array(DIMENSIONS), seed),
    confidence: Math.fround(r() / U32),
    createdAt: BASE_TIME + i * 1000,
    metadata: metadataOf(i, seed),
  };
}

// Records [start, end) as an array (one chunk).
export function chunk(start, end, seed = DEFAULT_SEED) {
  const out = new Array(end - start);
  for (let i = start; i < end; i++) out[i - start] = recordOf(i, seed);
  return out;
}

// Logical bytes of a record, the unit of MB/s: id + content + metadata JSON
// (UTF-8) + the embedding's float32 bytes.
export function logicalBytes(rec) {
  return (
    Buffer.byteLength(rec.id, 'utf8') +
    Buffer.byteLength(rec.content, 'utf8') +
    Buffer.byteLength(JSON.stringify(rec.metadata), 'utf8') +
    rec.embedding.length * 4
  );
}

// ---- queries and sampled ids -----------------------------------------------

// Query q: even q are a stored record's embedding plus noise (a realistic
// "find the memory like this one"); odd q are random vectors.
export function queryOf(q, n, seed = DEFAULT_SEED) {
  const r = prng(hash3(seed, q, 11));
  const out = new Float32Array(DIMENSIONS);
  if (q % 2 === 0) {
    const base = embeddingInto(r() % n, new Float32Array(DIMENSIONS), seed);
    for (let d = 0; d < DIMENSIONS; d++) out[d] = base[d] + 0.5 * (r() / 2147483648 - 1);
  } else {
    for (let d = 0; d < DIMENSIONS; d++) out[d] = r() / 2147483648 - 1;
  }
  return out;
}

// count record indices in [0, n), uniformly at random (with repeats), seeded.
export function sampleIndices(count, n, stream, seed = DEFAULT_SEED) {
  const r = prng(hash3(seed, stream, 12));
  const out = new Uint32Array(count);
  for (let k = 0; k < count; k++) out[k] = r() % n;
  return out;
}

// ---- cosine and top-k (shared by the reference and the peers' JS scans) ------

export function norm(v) {
  let s = 0;
  for (let d = 0; d < v.length; d++) s += v[d] * v[d];
  return Math.sqrt(s);
}

export function dot(a, b) {
  let s = 0;
  for (let d = 0; d < a.length; d++) s += a[d] * b[d];
  return s;
}

// Keeps the best k (score desc, id asc on ties), as recall orders its hits.
export class TopK {
  constructor(k) {
    this.k = k;
    this.ids = [];
    this.scores = [];
  }
  worst() {
    return this.ids.length < this.k ? -Infinity : this.scores[this.scores.length - 1];
  }
  offer(id, score) {
    const ids = this.ids, scores = this.scores;
    if (ids.length >= this.k) {
      const ws = scores[scores.length - 1];
      if (score < ws || (score === ws && id > ids[ids.length - 1])) return;
    }
    let j = ids.length;
    while (j > 0 && (scores[j - 1] < score || (scores[j - 1] === score && ids[j - 1] > id))) j--;
    ids.splice(j, 0, id);
    scores.splice(j, 0, score);
    if (ids.length > this.k) {
      ids.pop();
      scores.pop();
    }
  }
  result() {
    return this.ids.map((id, j) => ({ id, score: this.scores[j] }));
  }
}

// Fraction of code points that are multi-byte in UTF-8, over records [0, n).
export function multibyteFraction(n, seed = DEFAULT_SEED) {
  let multi = 0, total = 0;
  for (let i = 0; i < n; i++) {
    for (const ch of contentOf(i, seed)) {
      total++;
      if (ch.codePointAt(0) > 0x7f) multi++;
    }
  }
  return multi / total;
}

// The filtered recalls the bench times (tierstore only), each with a
// predicate the reference applies to the generator's records:
// - meta-1pct: a metadata value 1% of records hold (importance is 0..0.99);
// - meta-all: a metadata condition every record meets;
// - created-10pct: the newest tenth by createdAt.
export function benchFilters(n) {
  const after = BASE_TIME + Math.floor(n * 0.9) * 1000;
  return [
    { name: 'meta-1pct', filter: { metadata: { importance: 0.37 } }, matches: (m) => m.metadata.importance === 0.37 },
    { name: 'meta-all', filter: { metadata: { source: SOURCES } }, matches: (m) => SOURCES.includes(m.metadata.source) },
    { name: 'created-10pct', filter: { createdAfter: after }, matches: (m) => m.createdAt >= after },
  ];
}

