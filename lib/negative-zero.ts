// JSON.stringify prints -0 as 0, which parses back as +0, so an embedding
// value -0 would not round-trip. Arrays made by numbersOf hold a placeholder
// string for each -0; restoreNegativeZeros prints it as -0 (valid JSON,
// parsed back as -0) in the finished text. The placeholder is random per
// process, so no stored string can be mistaken for it.
import { randomUUID } from 'node:crypto';

const PLACEHOLDER = `tierstore-negative-zero-${randomUUID()}`;
const PLACEHOLDER_JSON = JSON.stringify(PLACEHOLDER);

/** The values as a plain array for JSON.stringify, each -0 as the placeholder. */
export function numbersOf(values: ArrayLike<number>): Array<number | string> {
  const out: Array<number | string> = Array.from(values);
  for (let i = 0; i < values.length; i++) if (values[i] === 0 && 1 / values[i]! < 0) out[i] = PLACEHOLDER;
  return out;
}

/** JSON text of values made with numbersOf, with each placeholder printed as -0. */
export function restoreNegativeZeros(json: string): string {
  return json.includes(PLACEHOLDER_JSON) ? json.replaceAll(PLACEHOLDER_JSON, '-0') : json;
}
