// Output helpers of the CLI: JSON with embeddings as plain arrays, compact
// text tables, byte sizes and one-line previews of memory content.
import { numbersOf, restoreNegativeZeros } from '../negative-zero.js';
import type { Memory, TierCounts } from '../types.js';

/** JSON.stringify that writes typed arrays (embeddings) as plain number arrays, -0 as -0. */
export function toJson(value: unknown, indent: number | undefined = 2): string {
  return restoreNegativeZeros(JSON.stringify(
    value,
    (_key, v: unknown) => (ArrayBuffer.isView(v) && !(v instanceof DataView) ? numbersOf(v as Float32Array) : v),
    indent,
  ));
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export function formatCounts(counts: TierCounts): string {
  return `hot ${counts.hot}, warm ${counts.warm}, cold ${counts.cold}, total ${counts.total}`;
}

/** Milliseconds since the epoch as "YYYY-MM-DD HH:MM:SS" (UTC). */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

/** One line of at most `max` characters: control characters escaped, long text cut with "…". */
export function preview(text: string, max: number): string {
  const oneLine = text.replace(/[\r\n\t]/g, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'));
  const chars = Array.from(oneLine);
  return chars.length <= max ? oneLine : `${chars.slice(0, Math.max(0, max - 1)).join('')}…`;
}

/**
 * Rows as left-aligned columns separated by two spaces; the last column is
 * not padded (it holds free text).
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => Array.from(r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - Array.from(c).length)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Width left for the content column of a memory table: the terminal's rest, or 200 characters when piped. */
export function contentWidth(used: number): number {
  if (!process.stdout.isTTY) return 200;
  return Math.max(20, (process.stdout.columns ?? 100) - used);
}

/** The compact table of memories shown by list and recall (`scores` adds a SCORE column). */
export function memoryTable(memories: readonly Memory[], scores?: readonly number[]): string {
  const header = [...(scores ? ['#', 'SCORE'] : []), 'TIER', 'ID', 'CONF', 'ACT', 'CREATED (UTC)', 'GETS', 'CONTENT'];
  const rows = memories.map((m, i) => [
    ...(scores ? [String(i + 1), scores[i]!.toFixed(4)] : []),
    m.tier,
    preview(m.id, 40),
    m.confidence.toFixed(2),
    m.activation.toFixed(2),
    formatTime(m.createdAt),
    String(m.accessCount),
    m.content,
  ]);
  // Width of everything but the content column, to fit content on one terminal line.
  let fixed = 0;
  for (let c = 0; c < header.length - 1; c++) {
    fixed += Math.max(header[c]!.length, ...rows.map((r) => Array.from(r[c]!).length)) + 2;
  }
  const width = contentWidth(fixed);
  return table(header, rows.map((r) => [...r.slice(0, -1), preview(r[r.length - 1]!, width)]));
}
