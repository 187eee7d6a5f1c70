// Reading a recall query vector from a file (or stdin with '-'): JSON (an
// array of numbers, or an object with an `embedding` array, such as the
// output of `tierstore get ID --embedding`) or raw little-endian float32
// (.f32/.bin/.raw). Other extensions are recognised by their first byte.
import * as fs from 'node:fs';

import { CliError } from './common.js';

export function readQueryFile(file: string): Float32Array | number[] {
  const bytes = file === '-' ? fs.readFileSync(0) : fs.readFileSync(file);
  const name = file === '-' ? 'stdin' : file;
  const lower = file.toLowerCase();
  const binary = /\.(f32|bin|raw)$/.test(lower);
  const json = lower.endsWith('.json') || (!binary && /^\s*[[{]/.test(bytes.subarray(0, 64).toString('latin1')));
  if (json) return parseJsonQuery(bytes.toString('utf8'), name);
  if (bytes.length === 0 || bytes.length % 4 !== 0) {
    throw new CliError(`${name}: ${bytes.length} bytes is not a whole number of float32 values (raw little-endian float32 expected, or a JSON array)`);
  }
  const values = new Float32Array(bytes.length / 4);
  for (let i = 0; i < values.length; i++) values[i] = bytes.readFloatLE(4 * i);
  return values;
}

function parseJsonQuery(text: string, name: string): number[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CliError(`${name}: not valid JSON (${(error as Error).message})`);
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    value = (value as { embedding?: unknown }).embedding;
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((x) => typeof x === 'number')) {
    throw new CliError(`${name}: expected a JSON array of numbers (or an object with an "embedding" array)`);
  }
  return value as number[];
}
