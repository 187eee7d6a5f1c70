// Running tierstore in a separate Node process: for cross-process locking
// and for reading damaged stores, where a native crash must show up as a
// signal of the child instead of killing the test runner.
//
// The child loads the BUILT package (dist/, from `npm run build`); when it is
// missing the child fails and so does the test (never a skip).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const PRELUDE = String.raw`
const path = require('node:path');
const fs = require('node:fs');
const { pathToFileURL } = require('node:url');
async function loadTierstore() {
  const repo = process.env.TIERSTORE_REPO;
  let entry = path.join(repo, 'dist', 'index.js');
  if (!fs.existsSync(entry)) entry = require.resolve(repo); // package.json main/exports
  const m = await import(pathToFileURL(entry).href);
  const api = m && typeof m.open === 'function' ? m : m && m.default;
  if (!api || typeof api.open !== 'function') throw new Error('no open() exported by ' + entry);
  return api;
}
function errorInfo(e) {
  return { name: e && e.name, code: e && e.code, message: String(e && e.message),
           isTierStoreError: !!(e && e.constructor && e.constructor.name === 'TierStoreError') };
}
function emit(tag, value) { process.stdout.write(tag + ' ' + JSON.stringify(value) + '\n'); }
`;

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The value the child passed to emit('RESULT', ...), if any. */
  result: unknown;
}

/**
 * Runs `body` (JavaScript, inside an async function with `ts` = the loaded
 * package and `args` = the given JSON args) in a new node process and waits.
 * The body reports with emit('RESULT', value).
 */
/** What a finished child process printed and how it ended. */
export interface SpawnResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * spawnSync without blocking the test worker: a long synchronous wait keeps
 * vitest's worker from answering its own RPC, which vitest then reports as an
 * unhandled "Timeout calling onTaskUpdate" error on a busy machine.
 */
export function spawnAsync(
  command: string, args: readonly string[], options: { timeout: number; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<SpawnResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (status, signal) => { clearTimeout(timer); resolve({ status, signal, stdout, stderr }); });
  });
}

export function runChild(body: string, args: unknown, timeoutMs = 120_000): ChildResult {
  const script = `${PRELUDE}
(async () => {
  const ts = await loadTierstore();
  const args = JSON.parse(process.env.TIERSTORE_ARGS);
  ${body}
})().catch((e) => { console.error(e && e.stack || e); process.exit(70); });`;
  const r = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, TIERSTORE_REPO: REPO_ROOT, TIERSTORE_ARGS: JSON.stringify(args) },
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    timeout: timeoutMs,
  });
  let result: unknown;
  for (const line of (r.stdout ?? '').split('\n')) {
    if (line.startsWith('RESULT ')) result = JSON.parse(line.slice('RESULT '.length));
  }
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', result };
}

export function describeChild(r: ChildResult): string {
  return `status=${r.status} signal=${r.signal}\nstderr: ${r.stderr.slice(-4000)}\nstdout: ${r.stdout.slice(-2000)}`;
}

/**
 * A child running `body` (like runChild) asynchronously, so the test can
 * watch its stdout lines and kill it at any moment.
 */
export class ScriptChild {
  lines: string[] = [];
  stderr = '';
  private partial = '';
  private waiters: Array<() => void> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly child: ChildProcessWithoutNullStreams;

  constructor(body: string, args: unknown) {
    const script = `${PRELUDE}
(async () => {
  const ts = await loadTierstore();
  const args = JSON.parse(process.env.TIERSTORE_ARGS);
  ${body}
})().catch((e) => { console.error(e && e.stack || e); process.exit(70); });`;
    this.child = spawn(process.execPath, ['-e', script], {
      env: { ...process.env, TIERSTORE_REPO: REPO_ROOT, TIERSTORE_ARGS: JSON.stringify(args) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    const stdoutDone = new Promise<void>((resolve) => this.child.stdout.on('end', resolve));
    this.child.stdout.on('data', (d: string) => {
      const parts = (this.partial + d).split('\n');
      this.partial = parts.pop()!;
      this.lines.push(...parts);
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr.on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        // all of stdout (what was written before death) is read before resolving
        void stdoutDone.then(() => {
          if (this.partial !== '') this.lines.push(this.partial);
          this.partial = '';
          for (const w of this.waiters.splice(0)) w();
          resolve({ code, signal });
        });
      });
    });
  }

  /** Waits until `cond(lines)` holds or the child exits; returns whether it held. */
  async waitFor(cond: (lines: string[]) => boolean, timeoutMs = 60_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (cond(this.lines)) return true;
      if (this.child.exitCode !== null || this.child.signalCode !== null) return cond(this.lines);
      if (Date.now() > deadline) return false;
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.kill(signal);
    return this.exited;
  }
}

/** A child process that opened a store and keeps it open until told to close or killed. */
export class StoreHolder {
  private buffered = '';
  private waiters: Array<() => void> = [];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  private constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      this.buffered += d;
      for (const w of this.waiters.splice(0)) w();
    });
    child.stderr.on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        for (const w of this.waiters.splice(0)) w();
        resolve({ code, signal });
      });
    });
  }

  /**
   * Starts a child that opens `storePath` with `options`, reports READY (or
   * OPEN_FAILED with the error) and then waits: "close" on stdin closes the
   * store and exits 0.
   */
  static async start(storePath: string, options: Record<string, unknown>): Promise<StoreHolder> {
    const script = `${PRELUDE}
(async () => {
  const ts = await loadTierstore();
  let store;
  try { store = ts.open(${JSON.stringify(storePath)}, ${JSON.stringify(options)}); }
  catch (e) { emit('OPEN_FAILED', errorInfo(e)); process.exit(0); }
  emit('READY', { count: store.counts().total });
  let input = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    input += d;
    if (input.includes('close')) { store.close(); emit('CLOSED', {}); process.exit(0); }
  });
  setInterval(() => {}, 1 << 30);
})().catch((e) => { console.error(e && e.stack || e); process.exit(70); });`;
    const child = spawn(process.execPath, ['-e', script], {
      env: { ...process.env, TIERSTORE_REPO: REPO_ROOT },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new StoreHolder(child);
  }

  /** Waits for the child's first READY / OPEN_FAILED line (or its exit). */
  async opened(timeoutMs = 60_000): Promise<{ tag: string; value: unknown }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const line of this.buffered.split('\n')) {
        const m = /^(READY|OPEN_FAILED) (.*)$/.exec(line);
        if (m) return { tag: m[1]!, value: JSON.parse(m[2]!) };
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`holder exited before opening the store: ${this.child.exitCode} ${this.child.signalCode}\n${this.stderr}`);
      }
      if (Date.now() > deadline) throw new Error(`holder did not open the store in time\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  async closeAndExit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.stdin.write('close\n');
    return this.exited;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.kill(signal);
    return this.exited;
  }
}
