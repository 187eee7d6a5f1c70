// Filter flags of `list` and `recall` (--created-after, --created-before,
// --min-activation, --min-confidence on list, --metadata KEY=VALUE
// repeatable), the MemoryFilter they make, and store errors renamed to the
// flag that caused them.
import { Command, InvalidArgumentError } from 'commander';

import { TierStoreError } from '../errors.js';
import { metadataConditions } from '../server/filters.js';
import type { MemoryFilter } from '../types.js';
import { finiteNumber } from './common.js';

export interface FilterFlags {
  createdAfter?: number;
  createdBefore?: number;
  minActivation?: number;
  /** list only (recall's --min-confidence is RecallOptions.minConfidence). */
  minConfidence?: number;
  metadata?: [string, string][];
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** A time flag: milliseconds since the epoch, or an ISO 8601 date (2026-01-31, 2026-01-31T12:00:00Z). */
export function timeValue(value: string): number {
  const text = value.trim().replace(/_/g, '');
  if (/^-?\d+$/.test(text)) {
    const n = Number(text);
    if (Number.isSafeInteger(n)) return n;
  } else if (ISO_DATE.test(text)) {
    const ms = Date.parse(text);
    if (Number.isFinite(ms)) return ms;
  }
  throw new InvalidArgumentError('must be milliseconds since the epoch or an ISO 8601 date such as 2026-01-31 or 2026-01-31T12:00:00Z');
}

function metadataPair(value: string, previous: [string, string][] | undefined): [string, string][] {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('must be KEY=VALUE (a metadata key, then = and the value)');
  return [...(previous ?? []), [value.slice(0, eq), value.slice(eq + 1)]];
}

export function addFilterOptions(command: Command, withMinConfidence: boolean): Command {
  command
    .option('--created-after <time>', 'only memories created at or after this time (ms since the epoch or an ISO 8601 date)', timeValue)
    .option('--created-before <time>', 'only memories created before this time (ms since the epoch or an ISO 8601 date)', timeValue)
    .option('--min-activation <x>', 'only memories with activation >= x (compared at float32)', finiteNumber);
  if (withMinConfidence) command.option('--min-confidence <x>', 'only memories with confidence >= x (compared at float32)', finiteNumber);
  return command.option(
    '--metadata <key=value>',
    'only memories whose metadata KEY equals VALUE (or is an array holding it); VALUE is JSON when it is a number, ' +
      'true, false, null or a "quoted string", else text. Repeatable: different keys must all match, a repeated key means any of its values',
    metadataPair,
  );
}

/** The MemoryFilter of the flags, or undefined when none is given. */
export function filterOf(flags: FilterFlags, withMinConfidence: boolean): MemoryFilter | undefined {
  const f: MemoryFilter = {};
  let any = false;
  if (flags.createdAfter !== undefined) (f.createdAfter = flags.createdAfter), (any = true);
  if (flags.createdBefore !== undefined) (f.createdBefore = flags.createdBefore), (any = true);
  if (flags.minActivation !== undefined) (f.minActivation = flags.minActivation), (any = true);
  if (withMinConfidence && flags.minConfidence !== undefined) (f.minConfidence = flags.minConfidence), (any = true);
  if (flags.metadata !== undefined && flags.metadata.length > 0) (f.metadata = metadataConditions(flags.metadata)), (any = true);
  return any ? f : undefined;
}

function shellWord(word: string): string {
  return /^[A-Za-z0-9_.,:/=+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The filter flags again, as command-line arguments (for the next-page hint: a cursor keeps its filter). */
export function filterArgs(flags: FilterFlags): string {
  const out: string[] = [];
  if (flags.createdAfter !== undefined) out.push('--created-after', String(flags.createdAfter));
  if (flags.createdBefore !== undefined) out.push('--created-before', String(flags.createdBefore));
  if (flags.minActivation !== undefined) out.push('--min-activation', String(flags.minActivation));
  if (flags.minConfidence !== undefined) out.push('--min-confidence', String(flags.minConfidence));
  for (const [k, v] of flags.metadata ?? []) out.push('--metadata', shellWord(`${k}=${v}`));
  return out.map((w) => ` ${w}`).join('');
}

/**
 * The flag a store error's `field` is about: `filter.createdAfter` is
 * --created-after, `filter.metadata.KEY…` is --metadata KEY=…, `query` is
 * `queryName` (--query, or the embedding of --id).
 */
export function flagOfField(field: string, queryName: string): string | undefined {
  if (field === 'query' || field.startsWith('query[')) return queryName + field.slice('query'.length);
  const meta = /^filter\.metadata\.(.*?)(\[\d+\])?$/s.exec(field);
  if (meta !== null) return `--metadata ${meta[1]}=…`;
  const flag = field.replace(/^filter\./, '');
  if (!/^[A-Za-z]+$/.test(flag)) return undefined;
  return `--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Runs `fn`; a store error about one value is reported naming the flag that gave it. */
export async function withFlagNames<T>(fn: () => T | Promise<T>, queryName = '--query'): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (!(error instanceof TierStoreError) || error.field === undefined) throw error;
    const flag = flagOfField(error.field, queryName);
    if (flag === undefined) throw error;
    const message = error.message.replace(/^[A-Za-z]+\(\): /, '').replace(/^options\./, '');
    const rest = message.startsWith(error.field) ? message.slice(error.field.length) : `: ${message}`;
    throw new TierStoreError(error.code, `${flag}${rest}`, { field: error.field, cause: error });
  }
}
