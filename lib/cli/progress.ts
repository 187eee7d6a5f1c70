// A one-line progress bar for long CLI operations (import, export, verify,
// demo). On a TTY it redraws one line on stderr with done/total, a bar, the
// rate and the ETA (at most ~10 times a second); on anything else (a pipe, a
// file, CI) it writes nothing at all, so piped output stays clean.

/** The part of a stream the bar needs (process.stderr, or a fake in tests). */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressOptions {
  /** Where to draw; default process.stderr. Nothing is drawn unless stream.isTTY. */
  stream?: ProgressStream;
  /** What is counted, shown when the total is unknown, e.g. 'records'. */
  unit?: string;
  /** Milliseconds clock; injectable for tests. */
  now?: () => number;
  /** Minimum milliseconds between redraws. */
  intervalMs?: number;
  /** false: never draw (even on a TTY). */
  enabled?: boolean;
}

const BAR_WIDTH = 20;

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Seconds as m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** A rate with a k/M suffix: 1234567 -> "1.23M". */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '-';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e4) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond >= 100 ? String(Math.round(perSecond)) : perSecond.toFixed(1);
}

/**
 * The text of one progress line (no control characters). `total` undefined
 * means unknown: no bar, no percentage, no ETA.
 */
export function renderProgressLine(
  label: string, done: number, total: number | undefined, elapsedMs: number, unit: string, width: number,
): string {
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : NaN;
  let line: string;
  if (total !== undefined && total > 0) {
    const fraction = Math.min(1, done / total);
    const filled = Math.round(fraction * BAR_WIDTH);
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
    const eta = rate > 0 ? formatDuration((total - done) / rate) : '--:--';
    line = `${label} ${bar} ${formatCount(done)}/${formatCount(total)} ${(fraction * 100).toFixed(1)}% ${formatRate(rate)}/s ETA ${eta}`;
  } else {
    line = `${label} ${formatCount(done)} ${unit} ${formatRate(rate)}/s ${formatDuration(elapsedMs / 1000)}`;
  }
  return line.length > width ? line.slice(0, Math.max(0, width)) : line;
}

export class Progress {
  readonly enabled: boolean;
  readonly #stream: ProgressStream;
  readonly #label: string;
  readonly #unit: string;
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #started: number;
  #lastDraw = -Infinity;
  #drawn = false;
  #done = 0;
  #total: number | undefined;

  constructor(label: string, total?: number, options: ProgressOptions = {}) {
    this.#stream = options.stream ?? process.stderr;
    this.enabled = options.enabled !== false && this.#stream.isTTY === true;
    this.#label = label;
    this.#unit = options.unit ?? 'records';
    this.#now = options.now ?? Date.now;
    this.#intervalMs = options.intervalMs ?? 100;
    this.#started = this.#now();
    this.#total = total;
  }

  /** Records progress; redraws when enough time has passed since the last draw. */
  update(done: number, total?: number): void {
    this.#done = done;
    if (total !== undefined) this.#total = total;
    if (!this.enabled) return;
    const now = this.#now();
    if (now - this.#lastDraw < this.#intervalMs) return;
    this.#lastDraw = now;
    this.#draw(now);
  }

  /** Clears the line (the caller prints its own summary after). */
  finish(): void {
    if (this.enabled && this.#drawn) this.#stream.write('\r\x1b[K');
    this.#drawn = false;
  }

  #draw(now: number): void {
    const width = (this.#stream.columns || 80) - 1; // 0 when the terminal size is unknown
    const line = renderProgressLine(this.#label, this.#done, this.#total, now - this.#started, this.#unit, width);
    this.#stream.write(`\r\x1b[K${line}`);
    this.#drawn = true;
  }
}
