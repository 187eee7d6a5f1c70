// Deterministic generators shared by the store-* suites.
//
// Everything here is driven by a seeded PRNG (mulberry32) so a failing case
// can be reproduced exactly from its seed.

/** mulberry32, the package's own seeded PRNG (lib/cli/data.ts), returning floats in [0, 1). */
export { seededRandom as mulberry32 } from '../../lib/cli/data.js';

/** An integer in [lo, hi] (inclusive). */
export function randInt(rng: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

export type EmbeddingKind = 'float32' | 'float64' | 'array';

/**
 * Random embedding values in about [-1, 1] with a full mantissa (so a lossy
 * path, e.g. a float16 or quantised copy, would show), as the requested input
 * type. float64/array values are generally NOT representable in float32: the
 * store must round them exactly as Math.fround does.
 */
export function randomEmbedding(rng: () => number, dims: number, kind: 'float32'): Float32Array;
export function randomEmbedding(rng: () => number, dims: number, kind: 'float64'): Float64Array;
export function randomEmbedding(rng: () => number, dims: number, kind: 'array'): number[];
export function randomEmbedding(rng: () => number, dims: number, kind?: EmbeddingKind): Float32Array | Float64Array | number[];
export function randomEmbedding(
  rng: () => number,
  dims: number,
  kind: EmbeddingKind = 'float32',
): Float32Array | Float64Array | number[] {
  const values: number[] = new Array(dims);
  for (let i = 0; i < dims; i++) values[i] = rng() * 2 - 1;
  if (kind === 'float32') return Float32Array.from(values);
  if (kind === 'float64') return Float64Array.from(values);
  return values;
}

/** The float32 values the store must hand back for an embedding input. */
export function toFloat32(embedding: ArrayLike<number>): Float32Array {
  const out = new Float32Array(embedding.length);
  for (let i = 0; i < embedding.length; i++) out[i] = Math.fround(embedding[i]!);
  return out;
}

const MULTIBYTE_POOL = ['é', 'ß', 'ñ', 'Ж', '€', '日', '本', '語', '한', '🚀', '🧠', '😀', '𝄞'];

/**
 * A string of exactly `bytes` UTF-8 bytes: random printable ASCII with about
 * `multibyteRatio` of the characters drawn from 2-, 3- and 4-byte sequences.
 * Non-repetitive, so a misplaced or duplicated chunk would show.
 */
export function contentOfBytes(rng: () => number, bytes: number, multibyteRatio = 0.02): string {
  const buf = Buffer.allocUnsafe(bytes);
  const encoded = MULTIBYTE_POOL.map((c) => Buffer.from(c, 'utf8'));
  let i = 0;
  while (i < bytes) {
    if (multibyteRatio > 0 && rng() < multibyteRatio) {
      const mb = encoded[Math.floor(rng() * encoded.length)]!;
      if (i + mb.length <= bytes) {
        mb.copy(buf, i);
        i += mb.length;
        continue;
      }
    }
    buf[i++] = 0x20 + Math.floor(rng() * 95); // printable ASCII
  }
  const s = buf.toString('utf8');
  if (Buffer.byteLength(s, 'utf8') !== bytes) throw new Error('contentOfBytes: length bug');
  return s;
}

export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Busy-waits until Date.now() has advanced past `t` (at least 1 ms later). */
export async function waitPastMs(t: number = Date.now()): Promise<void> {
  while (Date.now() <= t + 1) await sleep(2);
}
