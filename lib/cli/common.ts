// Shared pieces of the CLI commands: the two kinds of CLI failure (usage
// errors exit 2, operational failures exit 1), option parsers that turn bad
// numbers into usage errors, and opening the selected store read-only (read
// commands never modify a store) or for writing with the handle options given.
import * as fs from 'node:fs';

import { Command, InvalidArgumentError, Option } from 'commander';

import { TierStoreError } from '../errors.js';
import { open, type MemoryStore } from '../store.js';
import type { OpenOptions } from '../types.js';

/** A wrong command line (exit 2), found after commander's own checks. */
export class UsageError extends Error {}

/** A failure that is not a TierStoreError (exit 1): a missing file, a failed check. */
export class CliError extends Error {}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Parser of an integer option in [min, max]. */
export function integerIn(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    const n = Number(value.replace(/_/g, ''));
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER ? `must be an integer >= ${min}` : `must be an integer from ${min} to ${max}`);
    }
    return n;
  };
}

export function finiteNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('must be a finite number');
  return n;
}

export function tierOption(flags: string, description: string, withAll: boolean): Option {
  return new Option(flags, description).choices(withAll ? ['hot', 'warm', 'cold', 'all'] : ['hot', 'warm', 'cold']);
}

/** Options of the handle that matter when writing: capacities decide what migrates. */
export function addWriteOptions(command: Command): Command {
  return command
    .option('--hot-capacity <n>', 'records kept in hot before demotion (default 10000)', integerIn(0))
    .option('--warm-capacity <n>', 'records kept in warm before demotion (default 1000000)', integerIn(0))
    .option('--skip-warm', 'demote hot records straight to cold')
    .addOption(new Option('--durability <mode>', "'sync' fsyncs every write (default relaxed)").choices(['relaxed', 'sync']));
}

export interface WriteFlags {
  hotCapacity?: number;
  warmCapacity?: number;
  skipWarm?: boolean;
  durability?: 'relaxed' | 'sync';
}

export function openOptionsOf(flags: WriteFlags): OpenOptions {
  const options: OpenOptions = {};
  if (flags.hotCapacity !== undefined) options.hotCapacity = flags.hotCapacity;
  if (flags.warmCapacity !== undefined) options.warmCapacity = flags.warmCapacity;
  if (flags.skipWarm) options.skipWarm = true;
  if (flags.durability !== undefined) options.durability = flags.durability;
  return options;
}

/** The store directory from --dir or TIERSTORE_DIR. */
export function storeDir(command: Command): string {
  const dir = (command.optsWithGlobals() as { dir?: string }).dir;
  if (dir === undefined || dir === '') {
    throw new UsageError('no store given: pass --dir DIR (before or after the command) or set TIERSTORE_DIR');
  }
  return dir;
}

const CREATE_HINT = 'create one with `tierstore import FILE --dir DIR --dimensions N`, or run `tierstore demo` to see one';

function requireDirectory(dir: string): void {
  if (!fs.existsSync(dir)) throw new CliError(`no store at ${dir}: the directory does not exist (${CREATE_HINT})`);
}

/** Opens an existing store read-only: shares the lock with other readers and never writes. */
export function openForReading(dir: string): MemoryStore {
  requireDirectory(dir);
  return open(dir, { readOnly: true });
}

/** Opens an existing store for writing with the given handle options (never creates one). */
export function openForWriting(dir: string, options: OpenOptions): MemoryStore {
  requireDirectory(dir);
  return open(dir, options);
}

/** True if `dir` is missing or an empty directory (a store would be created there). */
export function isEmptyLocation(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length === 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw error;
  }
}

/** Runs `body` with the store and closes it afterwards, whatever happens. */
export async function withStore<T>(store: MemoryStore, body: (store: MemoryStore) => T | Promise<T>): Promise<T> {
  try {
    return await body(store);
  } finally {
    store.close();
  }
}

/** The text printed for an error, and the exit code it maps to. */
export function describeFailure(error: unknown): { text: string; exitCode: number } {
  if (error instanceof UsageError) {
    return { text: `error: ${error.message}\n(add --help for usage)`, exitCode: EXIT_USAGE };
  }
  if (error instanceof TierStoreError) {
    let text = `error: ${error.code}: ${error.message}`;
    if (error.code === 'STORE_LOCKED') {
      text += '\nhint: another process (an application, `tierstore serve` or another tierstore command) has this store open.' +
        ' Read commands (stats, list, get, export, verify, recall) share it with other readers but not with a writer;' +
        ' import, migrate, compact and serve need it to themselves.';
    }
    return { text, exitCode: EXIT_FAILURE };
  }
  if (error instanceof CliError) return { text: `error: ${error.message}`, exitCode: EXIT_FAILURE };
  const errno = error as NodeJS.ErrnoException;
  if (error instanceof Error && typeof errno.code === 'string' && typeof errno.syscall === 'string') {
    return { text: `error: ${error.message}`, exitCode: EXIT_FAILURE }; // fs errors: the message names the path
  }
  const stack = error instanceof Error ? error.stack ?? error.message : String(error);
  return { text: `error: unexpected failure (a bug in tierstore):\n${stack}`, exitCode: EXIT_FAILURE };
}

/** Writes to stdout and resolves once the text is handed to the OS (or buffered without back-pressure). */
export function print(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = process.stdout.write(text.endsWith('\n') ? text : `${text}\n`, (error) => (error ? reject(error) : undefined));
    if (ok) resolve();
    else process.stdout.once('drain', () => resolve());
  });
}

/** Lets pending events (a Ctrl-C) run between long synchronous steps. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Removes `folder` if the process is interrupted (SIGINT, SIGTERM) before the
 * returned function is called, then exits 130: a temporary store must not be
 * left behind by Ctrl-C. (Signals are handled between synchronous steps:
 * callers await yieldToEventLoop() between them.)
 */
export function removeOnInterrupt(folder: string): () => void {
  const handler = (signal: NodeJS.Signals): void => {
    fs.rmSync(folder, { recursive: true, force: true });
    process.stderr.write(`\n${signal}: removed ${folder}\n`);
    process.exit(130);
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
