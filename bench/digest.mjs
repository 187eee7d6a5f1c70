// Digests of what a store answered, compared with the reference's (run.mjs).
//
// Digest is cheap: it runs inside the timed loops (count, content length,
// metadata.turn and embedding[0] sums), so the figures measure the store and
// not the checking. RecordDigest is exact: an order-independent 64-bit hash
// over every record's id, content, metadata (keys sorted), confidence,
// activation and createdAt bits and, when asked for, every bit of its
// embedding; plus the count, the tiers records were read from and the number
// of missing answers. Each runner pass that is timed is followed by an untimed
// pass over the same API path with a RecordDigest, and both must match the
// reference: a wrong id, content garbled at the same length, a wrong scalar
// or one wrong embedding bit changes the hash.
//
// Both take add(memory) and addFields(...) (for columnar batches), and count
// a get that found nothing with miss().

export class Digest {
  constructor() {
    this.count = 0;
    this.contentChars = 0; // sum of content.length (UTF-16 units)
    this.turnSum = 0; // sum of metadata.turn (proves metadata was decoded)
    this.emb0Sum = 0; // sum of embedding[0] when embeddings were asked for
    this.missing = 0; // gets that found nothing
    this.tiers = {};
  }
  add(m) {
    this.addFields(m.id, m.content, m.metadata, m.confidence, m.activation, m.createdAt, m.tier, m.embedding, 0);
  }
  addFields(_id, content, metadata, _confidence, _activation, _createdAt, tier, embeddings, at) {
    this.count++;
    this.contentChars += content.length;
    this.turnSum += metadata.turn;
    if (embeddings) this.emb0Sum += embeddings[at];
    if (tier) this.tiers[tier] = (this.tiers[tier] ?? 0) + 1;
  }
  miss() { this.missing++; }
  toJSON() {
    return { count: this.count, contentChars: this.contentChars, turnSum: this.turnSum,
      emb0Sum: this.emb0Sum, missing: this.missing, tiers: this.tiers };
  }
}

// Murmur3's 32-bit block mixing, two lanes with different seeds.
const rotl = (x, r) => (x << r) | (x >>> (32 - r));
function block(h, k) {
  k = Math.imul(k, 0xcc9e2d51);
  k = rotl(k, 15);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = rotl(h, 13);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}
function fmix(h) {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const f32 = new Float32Array(1);
const f32bits = new Uint32Array(f32.buffer);
const f64 = new Float64Array(1);
const f64bits = new Uint32Array(f64.buffer);

/** JSON with object keys sorted at every level (metadata is compared deep-equal, not by key order). */
export function canonicalJson(v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
}

export class RecordDigest {
  constructor(dimensions) {
    this.dimensions = dimensions;
    this.count = 0;
    this.missing = 0;
    this.sumA = 0; // sums mod 2^32 of each record's two hashes: order-independent
    this.sumB = 0;
    this.embeddings = 0; // records whose embedding was hashed
    this.tiers = {};
  }
  add(m) {
    this.addFields(m.id, m.content, m.metadata, m.confidence, m.activation, m.createdAt, m.tier, m.embedding, 0);
  }
  /** One record; its embedding is embeddings[at .. at + dimensions) when given. */
  addFields(id, content, metadata, confidence, activation, createdAt, tier, embeddings, at) {
    let a = 0x9747b28c, b = 0x2545f491;
    const str = (s) => {
      const t = String(s);
      a = block(a, t.length); b = block(b, t.length ^ 0x5bd1e995);
      for (let i = 0; i < t.length; i++) {
        const c = t.charCodeAt(i);
        a = block(a, c); b = block(b, c ^ 0x5bd1e995);
      }
    };
    const word = (w) => { a = block(a, w); b = block(b, w ^ 0x27d4eb2f); };
    str(id);
    str(content);
    str(canonicalJson(metadata));
    f32[0] = confidence; word(f32bits[0]);
    f32[0] = activation; word(f32bits[0]);
    f64[0] = createdAt; word(f64bits[0]); word(f64bits[1]);
    if (embeddings) {
      this.embeddings++;
      const bits = new Uint32Array(embeddings.buffer, embeddings.byteOffset + at * 4, this.dimensions);
      for (let d = 0; d < bits.length; d++) word(bits[d]);
    }
    this.sumA = (this.sumA + fmix(a)) >>> 0;
    this.sumB = (this.sumB + fmix(b)) >>> 0;
    this.count++;
    if (tier) this.tiers[tier] = (this.tiers[tier] ?? 0) + 1;
  }
  miss() { this.missing++; }
  toJSON() {
    return { count: this.count, missing: this.missing, embeddings: this.embeddings,
      hash: this.sumA.toString(16).padStart(8, '0') + this.sumB.toString(16).padStart(8, '0'), tiers: this.tiers };
  }
}
