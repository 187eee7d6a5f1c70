// Shared pieces of the stress scripts (crash.mjs, damage.mjs, run.mjs and
// their child processes): a seeded PRNG, random record data, a canonical
// digest of a record's data fields (so a parent can compare what a child read
// without shipping whole records), a line-oriented child-process channel,
// argument parsing and the one-line SUMMARY protocol.
//
// The scripts load the BUILT package (dist/, `npm run build:ts`) through the
// repository root, exactly as a user's require('tierstore') would.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const STRESS_DIR = path.join(REPO_ROOT, 'scripts', 'stress');

/** The built package, loaded like a dependency (package.json main → dist/index.js). */
export function loadTierstore() {
  const require = createRequire(path.join(REPO_ROOT, 'package.json'));
  const api = require(REPO_ROOT);
  if (typeof api.open !== 'function') throw new Error(`no open() exported by ${REPO_ROOT} (run npm run build:ts)`);
  return api;
}

// ---------------------------------------------------------------------------
// Seeded randomness

/** mulberry32, the package's own seeded PRNG (lib/cli/data.ts, built into dist/): floats in [0, 1). */
export function mulberry32(seed) {
  return builtData().seededRandom(seed);
}
let data;
function builtData() {
  data ??= createRequire(path.join(REPO_ROOT, 'package.json'))(path.join(REPO_ROOT, 'dist', 'cli', 'data.js'));
  return data;
}

/** A 32-bit seed derived from several integers (so op i of round r has its own stream). */
export function mixSeed(...parts) {
  let h = 0x811c9dc5;
  for (const p of parts) {
    let v = Number(p) >>> 0;
    for (let i = 0; i < 4; i++) {
      h ^= v & 0xff;
      h = Math.imul(h, 0x01000193) >>> 0;
      v >>>= 8;
    }
  }
  return h >>> 0;
}

export function randInt(rng, lo, hi) {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

export function pick(rng, items) {
  return items[Math.floor(rng() * items.length)];
}

/** Picks a key of `weights` ({ name: weight }) with probability proportional to its weight. */
export function pickWeighted(rng, weights) {
  const entries = Object.entries(weights);
  let total = 0;
  for (const [, w] of entries) total += w;
  let r = rng() * total;
  for (const [k, w] of entries) {
    if ((r -= w) < 0) return k;
  }
  return entries[entries.length - 1][0];
}

const MULTIBYTE = ['é', 'ß', 'ñ', 'Ж', '€', '日', '本', '語', '한', '🚀', '🧠', '😀', '𝄞', '\u0000'];

/** A string of exactly `bytes` UTF-8 bytes, mostly printable ASCII with some 2-, 3- and 4-byte characters. */
export function textOfBytes(rng, bytes, multibyteRatio = 0.05) {
  const buf = Buffer.allocUnsafe(bytes);
  let i = 0;
  while (i < bytes) {
    if (rng() < multibyteRatio) {
      const mb = Buffer.from(MULTIBYTE[Math.floor(rng() * MULTIBYTE.length)], 'utf8');
      if (i + mb.length <= bytes) {
        mb.copy(buf, i);
        i += mb.length;
        continue;
      }
    }
    buf[i++] = 0x20 + Math.floor(rng() * 95);
  }
  return buf.toString('utf8');
}

/** Random JSON metadata that survives a JSON round trip unchanged (no -0, NaN, undefined). */
export function randomMetadata(rng, depth = 0) {
  const out = {};
  const n = randInt(rng, 0, depth === 0 ? 5 : 3);
  for (let i = 0; i < n; i++) {
    const key = rng() < 0.2 ? `ключ-${i}` : `k${i}`;
    const r = rng();
    if (r < 0.25) out[key] = randInt(rng, -1_000_000, 1_000_000);
    else if (r < 0.4) out[key] = rng() * 1000 - 500 || 0.5; // never -0
    else if (r < 0.6) out[key] = textOfBytes(rng, randInt(rng, 0, 40), 0.1);
    else if (r < 0.7) out[key] = rng() < 0.5;
    else if (r < 0.75) out[key] = null;
    else if (r < 0.88 && depth < 2) out[key] = randomMetadata(rng, depth + 1);
    else out[key] = [randInt(rng, 0, 9), textOfBytes(rng, randInt(rng, 0, 8), 0.2), depth < 2 ? randomMetadata(rng, depth + 1) : null];
  }
  return out;
}

/** A random embedding as a Float32Array, Float64Array or number[] (values need fround to compare). */
export function randomEmbedding(rng, dims) {
  const kind = rng();
  if (kind < 0.05) return new Float32Array(dims); // all-zero embeddings are allowed
  const values = Array.from({ length: dims }, () => (rng() * 2 - 1) * (rng() < 0.05 ? 1e6 : 1));
  if (kind < 0.5) return Float32Array.from(values);
  if (kind < 0.75) return Float64Array.from(values);
  return values;
}

// ---------------------------------------------------------------------------
// Canonical digests of a record's data (access statistics and tier excluded)

function sha1(s) {
  return createHash('sha1').update(s).digest('hex').slice(0, 16);
}

/** JSON with object keys sorted, so deep-equal metadata gives the same text. */
export function stableJson(v) {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function float32Bits(x) {
  const f = new Float32Array([x]);
  return new Uint32Array(f.buffer)[0].toString(16);
}

function embeddingDigest(values) {
  const f = Float32Array.from(values, (x) => Math.fround(x));
  return sha1(Buffer.from(f.buffer, f.byteOffset, f.byteLength));
}

/**
 * The data fields of a record as short comparable strings:
 * { content, metadata, confidence, activation, createdAt, embedding }.
 * Works on a MemoryInput (applying the documented defaults; createdAt must be
 * given) and on a Memory read back with its embedding.
 */
export function fieldDigests(r) {
  const confidence = r.confidence ?? 0.5;
  return {
    content: sha1(Buffer.from(r.content, 'utf8')) + ':' + Buffer.byteLength(r.content, 'utf8'),
    metadata: sha1(stableJson(r.metadata ?? {})),
    confidence: float32Bits(confidence),
    activation: float32Bits(r.activation ?? confidence),
    createdAt: String(r.createdAt),
    embedding: r.embedding ? embeddingDigest(r.embedding) : 'none',
  };
}

export const DIGEST_FIELDS = ['content', 'metadata', 'confidence', 'activation', 'createdAt', 'embedding'];

/** One string for all data fields of a record. */
export function recordDigest(r) {
  const f = fieldDigests(r);
  return DIGEST_FIELDS.map((k) => f[k]).join('|');
}

/** Names the fields in which two recordDigest strings differ. */
export function digestDifference(a, b) {
  if (a === null || b === null) return a === b ? [] : ['presence'];
  const x = a.split('|');
  const y = b.split('|');
  return DIGEST_FIELDS.filter((_, i) => x[i] !== y[i]);
}

// ---------------------------------------------------------------------------
// Child processes speaking in lines

/**
 * A node child process whose stdout is read line by line. `onLine(line,
 * complete)` is called for each line, in order (complete = false only for a
 * last line cut short without its newline); everything the child wrote before dying
 * is delivered before `exited` resolves.
 */
export class LineChild {
  constructor(script, args, { env = {}, onLine = () => {} } = {}) {
    this.stderr = '';
    this.lineCount = 0;
    this.onLine = onLine;
    this.partial = '';
    this.waiters = [];
    this.child = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-20000);
    });
    const stdoutDone = new Promise((resolve) => this.child.stdout.on('end', resolve));
    this.child.stdout.on('data', (d) => {
      const parts = (this.partial + d).split('\n');
      this.partial = parts.pop();
      for (const line of parts) this.deliver(line, true);
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        void stdoutDone.then(() => {
          if (this.partial !== '') this.deliver(this.partial, false); // cut short by the child's death
          this.partial = '';
          this.exitInfo = { code, signal };
          this.wake();
          resolve({ code, signal });
        });
      });
    });
  }

  deliver(line, complete) {
    this.lineCount++;
    this.onLine(line, complete);
    this.wake();
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  get running() {
    return this.exitInfo === undefined;
  }

  /** Resolves when cond() holds (true), the child has exited (cond()), or after timeoutMs (false). */
  async waitFor(cond, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (cond()) return true;
      if (!this.running) return cond();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, Math.min(left, 50));
      });
    }
  }

  async kill(signal = 'SIGKILL') {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }
}

/**
 * Writes a line to fd 1 synchronously, so it is in the pipe before the next
 * operation starts (and survives a SIGKILL right after). Retries EAGAIN on a
 * non-blocking pipe that is momentarily full.
 */
export function writeLineSync(line) {
  const buf = Buffer.from(line + '\n', 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(1, buf, off, buf.length - off);
    } catch (e) {
      if (e && e.code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        continue;
      }
      throw e;
    }
  }
}

// ---------------------------------------------------------------------------
// Command line and summary

/** --name value / --flag pairs into an object (numbers converted). */
export function parseArgs(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option ${a}; known: ${Object.keys(defaults).map((k) => '--' + k).join(' ')}`);
    if (typeof defaults[key] === 'boolean') {
      out[key] = true;
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    out[key] = typeof defaults[key] === 'number' ? Number(v) : v;
    if (typeof defaults[key] === 'number' && !Number.isFinite(out[key])) throw new Error(`${a} needs a number, got ${v}`);
  }
  return out;
}

/** Prints the one-line summary run.mjs reads: `SUMMARY {json}`. */
export function printSummary(summary) {
  process.stdout.write(`SUMMARY ${JSON.stringify(summary)}\n`);
}

/** The last `SUMMARY {json}` line of a script's output, or undefined. */
export function parseSummary(output) {
  const lines = output.split('\n').filter((l) => l.startsWith('SUMMARY '));
  if (lines.length === 0) return undefined;
  try {
    return JSON.parse(lines[lines.length - 1].slice('SUMMARY '.length));
  } catch {
    return undefined;
  }
}

/** True when this module file is the script node was started with. */
export function isMain(importMetaUrl) {
  return process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(importMetaUrl);
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
