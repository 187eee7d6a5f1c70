// The buffer a write's strings are copied into as UTF-16LE, back to back,
// for NativeStore.putMany (which converts them to UTF-8). Long strings go
// in by Buffer.write (V8 copies them out); short ones, and the metadata JSON
// text, unit by unit through a Uint16Array view, which costs less than a
// call into C++ per string.
import { constants as bufferConstants } from 'node:buffer';

import { fail } from './errors.js';

/**
 * A growable UTF-16LE buffer. Growth copies what was written; it projects
 * the batch's total from the records so far, so a batch grows only a few
 * times. `units` views the same bytes and is replaced with them on growth:
 * read it after reserve().
 */
export class Utf16Sink {
  bytes: Buffer;
  units: Uint16Array;
  /** Bytes written (always even). */
  length = 0;
  #records = 0;
  readonly #expectedRecords: number;

  constructor(capacity: number, expectedRecords: number) {
    this.bytes = Buffer.allocUnsafeSlow(capacity + (capacity & 1));
    this.units = new Uint16Array(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length >> 1);
    this.#expectedRecords = expectedRecords;
  }

  /** Starts over (the bytes are kept). */
  reset(): void {
    this.length = 0;
    this.#records = 0;
  }

  endRecord(): void {
    this.#records++;
  }

  /** Makes room for `count` more UTF-16 units. */
  reserve(count: number): void {
    if (this.length + 2 * count > this.bytes.length) this.#grow(this.length + 2 * count);
  }

  /** Appends `s` as is (lone surrogates included: the native layer refuses them); returns its UTF-16 length. */
  write(s: string): number {
    const count = s.length;
    if (count === 0) return 0;
    this.reserve(count);
    if (count <= SHORT_STRING) {
      // A short string costs less copied in JS than through Buffer.write.
      const u = this.units;
      let p = this.length >> 1;
      for (let i = 0; i < count; i++) u[p++] = s.charCodeAt(i);
    } else {
      this.bytes.write(s, this.length, 'utf16le');
    }
    this.length += 2 * count;
    return count;
  }

  /** Appends one UTF-16 unit. */
  unit(c: number): void {
    this.reserve(1);
    this.units[this.length >> 1] = c;
    this.length += 2;
  }

  #grow(need: number): void {
    if (need > bufferConstants.MAX_LENGTH) {
      fail('INVALID_ARGUMENT',
        `the strings of this write exceed ${bufferConstants.MAX_LENGTH} bytes as UTF-16, the largest Buffer; split the batch into smaller batches`);
    }
    const done = Math.max(this.#records, 1);
    const projected = (this.length / done) * Math.max(this.#expectedRecords, done) * 1.25;
    let capacity = Math.min(bufferConstants.MAX_LENGTH, Math.ceil(Math.max(need, 2 * this.bytes.length, projected)));
    capacity -= capacity & 1;  // need is even, so this stays >= need
    const grown = Buffer.allocUnsafeSlow(capacity);
    this.bytes.copy(grown, 0, 0, this.length);
    this.bytes = grown;
    this.units = new Uint16Array(grown.buffer, grown.byteOffset, grown.length >> 1);
  }
}

/** Strings up to this length are copied unit by unit rather than by Buffer.write. */
export const SHORT_STRING = 32;
