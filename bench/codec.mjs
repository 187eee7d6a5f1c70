// A compact binary value layout for the key-value peers (lmdb-js 'binary'
// encoding, classic-level 'buffer' values). The id is the key; the value holds
// every other field of a memory, so a peer stores what tierstore stores.
//
//   0  f64 createdAt      8  f64 lastAccessAt   16 f64 accessCount
//   24 f32 confidence     28 f32 activation     32 f32 norm (precomputed, so a
//   36 u32 content bytes  40 u32 metadata bytes     scan needs one dot product)
//   44 u32 dimensions     48 embedding f32[dims], then content, then metadata JSON
//
// The embedding comes first so that, in a freshly allocated Buffer, it is
// 4-byte aligned and a scan can read it through a Float32Array view.

import { norm } from './workload.mjs';

export const HEADER = 48;

export function encode(rec, now) {
  const emb = rec.embedding;
  const dims = emb.length;
  const meta = JSON.stringify(rec.metadata ?? {});
  const cBytes = Buffer.byteLength(rec.content, 'utf8');
  const mBytes = Buffer.byteLength(meta, 'utf8');
  const buf = Buffer.allocUnsafe(HEADER + dims * 4 + cBytes + mBytes);
  const confidence = rec.confidence ?? 0.5;
  buf.writeDoubleLE(rec.createdAt ?? now, 0);
  buf.writeDoubleLE(now, 8);
  buf.writeDoubleLE(0, 16);
  buf.writeFloatLE(confidence, 24);
  buf.writeFloatLE(rec.activation ?? confidence, 28);
  buf.writeFloatLE(norm(emb), 32);
  buf.writeUInt32LE(cBytes, 36);
  buf.writeUInt32LE(mBytes, 40);
  buf.writeUInt32LE(dims, 44);
  buf.set(new Uint8Array(emb.buffer, emb.byteOffset, dims * 4), HEADER);
  let off = HEADER + dims * 4;
  off += buf.utf8Write(rec.content, off, cBytes);
  buf.utf8Write(meta, off, mBytes);
  return buf;
}

// A Float32Array over (or copied from) dims floats at byte offset off of buf.
// copy=false returns a view when aligned: valid only while buf is.
export function f32(buf, off, dims, copy) {
  const at = buf.byteOffset + off;
  if (at % 4 === 0) {
    const view = new Float32Array(buf.buffer, at, dims);
    return copy ? view.slice() : view;
  }
  const out = new Float32Array(dims);
  new Uint8Array(out.buffer).set(buf.subarray(off, off + dims * 4));
  return out;
}

// The Memory object a user of the peer would build from a stored value.
export function decode(id, buf, withEmbedding) {
  const cBytes = buf.readUInt32LE(36);
  const mBytes = buf.readUInt32LE(40);
  const dims = buf.readUInt32LE(44);
  const cOff = HEADER + dims * 4;
  const mem = {
    id,
    content: buf.utf8Slice(cOff, cOff + cBytes),
    metadata: JSON.parse(buf.utf8Slice(cOff + cBytes, cOff + cBytes + mBytes)),
    confidence: buf.readFloatLE(24),
    activation: buf.readFloatLE(28),
    createdAt: buf.readDoubleLE(0),
    lastAccessAt: buf.readDoubleLE(8),
    accessCount: buf.readDoubleLE(16),
  };
  if (withEmbedding) mem.embedding = f32(buf, HEADER, dims, true);
  return mem;
}

// Cosine of query q (norm qn) with the record in buf, without decoding the rest.
export function cosineOf(buf, q, qn) {
  const dims = buf.readUInt32LE(44);
  const e = f32(buf, HEADER, dims, false);
  let s = 0;
  for (let d = 0; d < dims; d++) s += q[d] * e[d];
  const n = buf.readFloatLE(32);
  return n === 0 ? 0 : s / (qn * n);
}
