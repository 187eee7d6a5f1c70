// Metadata: validated and written as JSON text straight into a write's
// Utf16Sink in one pass. Building the text as a string first cost about
// twice as much: concatenation makes a tree of string pieces that V8 then
// flattens to copy it out.
import { constants as bufferConstants } from 'node:buffer';

import { fail } from './errors.js';
import { SHORT_STRING, Utf16Sink } from './utf16-sink.js';
import { describe } from './validate.js';

/** Characters JSON.stringify escapes in a well-formed string. */
const JSON_ESCAPED = /["\\\u0000-\u001f]/;
const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;

/**
 * Validates `value` as a memory's metadata (a plain object that survives
 * JSON.parse(JSON.stringify(x))) and appends its JSON text to `sink`.
 * Returns the text's length in UTF-16 units. Every property is read exactly
 * once, so a getter or Proxy that answers differently on a second read
 * cannot make the stored text differ from what was checked. The text is
 * what JSON.stringify gives for the values read. On failure part of the
 * text may be in `sink`: callers drop or reset it.
 */
export function writeMetadata(value: unknown, field: string, sink: Utf16Sink): number {
  const start = sink.length;
  if (value === undefined) {
    sink.unit(0x7b);
    sink.unit(0x7d);
    return 2;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !isPlainObject(value)) {
    fail('INVALID_ARGUMENT', `${field} must be a plain object (JSON-serialisable), got ${describe(value)}`, field);
  }
  const writer = new JsonWriter(sink, field, start);
  try {
    writer.value(value);
  } catch (error) {
    // Stack overflow (deep nesting), or no memory for a huge text. Other
    // errors (a getter's own) pass through unchanged.
    if (error instanceof RangeError) {
      if (/call stack/i.test(error.message)) fail('INVALID_ARGUMENT', `${field} is nested too deeply`, field);
      if (/allocation failed|invalid (typed )?array length|invalid string length/i.test(error.message)) {
        fail('INVALID_ARGUMENT', `${field} is too large: ${error.message}`, field);
      }
    }
    throw error;
  }
  writer.checkLength(0);
  return (sink.length - start) >> 1;
}

/** The JSON text of `value` as writeMetadata writes it (for tests and tools). */
export function encodeMetadata(value: unknown, field: string): string {
  const sink = new Utf16Sink(256, 1);
  writeMetadata(value, field, sink);
  return sink.bytes.toString('utf16le', 0, sink.length);
}

/** One metadata value's JSON text, written depth first into a sink. */
class JsonWriter {
  /** The path below `base` (keys and indexes), kept as a stack so that valid input builds no path strings. */
  readonly #at: Array<string | number> = [];
  readonly #ancestors: object[] = [];

  constructor(
    private readonly sink: Utf16Sink,
    private readonly base: string,
    private readonly start: number,
  ) {}

  value(value: unknown): void {
    switch (typeof value) {
      case 'string':
        if (!this.#string(value)) fail('INVALID_ARGUMENT', `${this.#path()} contains a lone UTF-16 surrogate`, this.#path());
        return;
      case 'number':
        if (!Number.isFinite(value)) {
          fail('INVALID_ARGUMENT', `${this.#path()} is ${value}, which JSON cannot represent (metadata must be JSON)`, this.#path());
        }
        if (value === 0 && 1 / value < 0) {
          fail('INVALID_ARGUMENT', `${this.#path()} is -0, which JSON turns into 0 (metadata must survive JSON unchanged)`, this.#path());
        }
        this.sink.write(String(value)); // JSON's number format for finite numbers
        return;
      case 'boolean':
        this.sink.write(value ? 'true' : 'false');
        return;
      case 'object':
        if (value === null) this.sink.write('null');
        else if (Array.isArray(value)) this.#array(value);
        else this.#object(value);
        return;
      default:
        fail('INVALID_ARGUMENT', `${this.#path()} is ${describe(value)}, which JSON cannot represent (metadata must survive JSON.parse(JSON.stringify(x)) unchanged)`, this.#path());
    }
  }

  /** Fails when the text, with `more` units still to come, would be longer than a string can be (get() returns it as one). */
  checkLength(more: number): void {
    if (((this.sink.length - this.start) >> 1) + more > bufferConstants.MAX_STRING_LENGTH) {
      fail('INVALID_ARGUMENT', `${this.base} is too large: its JSON text exceeds the longest string JavaScript allows`, this.base);
    }
  }

  #array(value: unknown[]): void {
    this.#enter(value);
    if (Object.getPrototypeOf(value) !== Array.prototype && !isPlainObjectLikeArray(value)) {
      fail('INVALID_ARGUMENT', `${this.#path()} must be a plain array, got ${describe(value)}`, this.#path());
    }
    const n = value.length;
    this.sink.unit(0x5b);
    for (let i = 0; i < n; i++) {
      if (!(i in value)) fail('INVALID_ARGUMENT', `${this.#path()}[${i}] is a hole, which JSON turns into null`, `${this.#path()}[${i}]`);
      if (i !== 0) this.sink.unit(COMMA);
      this.#at.push(i);
      this.value(value[i]);
      this.#at.pop();
    }
    this.sink.unit(0x5d);
    if (Object.keys(value).length !== n) {
      fail('INVALID_ARGUMENT', `${this.#path()} is an array with non-index properties, which JSON drops`, this.#path());
    }
    this.#ancestors.pop();
  }

  #object(value: object): void {
    this.#enter(value);
    if (!isPlainObject(value)) {
      fail('INVALID_ARGUMENT', `${this.#path()} must be a plain object, array or JSON primitive, got ${describe(value)}`, this.#path());
    }
    if (Object.getOwnPropertySymbols(value).length !== 0) {
      fail('INVALID_ARGUMENT', `${this.#path()} has symbol keys, which JSON drops`, this.#path());
    }
    const record = value as Record<string, unknown>;
    this.sink.unit(0x7b);
    let first = true;
    for (const key of Object.keys(record)) {
      if (!first) this.sink.unit(COMMA);
      first = false;
      if (!this.#string(key)) fail('INVALID_ARGUMENT', `${this.#path()} has a key with a lone UTF-16 surrogate`, this.#path());
      this.sink.unit(COLON);
      this.#at.push(key);
      this.value(record[key]);
      this.#at.pop();
    }
    this.sink.unit(0x7d);
    this.#ancestors.pop();
  }

  #enter(value: object): void {
    if (this.#ancestors.includes(value)) fail('INVALID_ARGUMENT', `${this.#path()} refers back to itself (a cycle)`, this.#path());
    this.#ancestors.push(value);
  }

  /**
   * Appends JSON.stringify(s); false, with nothing appended, when s holds a
   * lone surrogate. Metadata is mostly short keys and values, copied here
   * unit by unit with one check of each for escapes and surrogates.
   */
  #string(s: string): boolean {
    const n = s.length;
    const sink = this.sink;
    if (n <= SHORT_STRING) {
      sink.reserve(n + 2);
      const u = sink.units;
      let p = sink.length >> 1;
      u[p++] = QUOTE;
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c < 0x20 || c === QUOTE || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return this.#escapedString(s);
        u[p++] = c;
      }
      u[p++] = QUOTE;
      sink.length = p << 1;
      return true;
    }
    return this.#escapedString(s);
  }

  #escapedString(s: string): boolean {
    if (!s.isWellFormed()) return false;
    if (JSON_ESCAPED.test(s)) {
      const quoted = JSON.stringify(s);
      this.checkLength(quoted.length);
      this.sink.write(quoted);
    } else {
      this.checkLength(s.length + 2);
      this.sink.unit(QUOTE);
      this.sink.write(s);
      this.sink.unit(QUOTE);
    }
    return true;
  }

  /** The path of the current value, for messages (built only on failure). */
  #path(): string {
    let path = this.base;
    for (const seg of this.#at) {
      if (typeof seg === 'number') path += `[${seg}]`;
      else path += /^[A-Za-z_$][\w$]*$/.test(seg) ? `.${seg}` : `[${JSON.stringify(seg)}]`;
    }
    return path;
  }
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto === null || proto === Object.prototype) return true;
  // An object of another realm (vm context): its Object.prototype
  if (Object.getPrototypeOf(proto) !== null) return false;
  const ctor = (proto as { constructor?: unknown }).constructor;
  return typeof ctor === 'function' && ctor.name === 'Object' && !Array.isArray(value);
}

function isPlainObjectLikeArray(value: unknown[]): boolean {
  // An array of another realm
  const proto = Object.getPrototypeOf(value) as { constructor?: unknown } | null;
  return proto !== null && typeof proto.constructor === 'function' && proto.constructor.name === 'Array';
}
