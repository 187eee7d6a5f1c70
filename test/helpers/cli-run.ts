// Running the built `tierstore` command (dist/cli/main.js) in a child process:
// building it once per suite, and spawning it with pipes (so stdout and
// stderr are not TTYs, as when piped) and without an inherited TIERSTORE_DIR.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { REPO_ROOT } from './child.js';

export const CLI_MAIN = path.join(REPO_ROOT, 'dist', 'cli', 'main.js');

/** True when every lib/ source has a compiled file in dist/ at least as new (as make would judge). */
function distIsFresh(): boolean {
  const lib = path.join(REPO_ROOT, 'lib');
  const dist = path.join(REPO_ROOT, 'dist');
  const sources = fs.readdirSync(lib, { recursive: true, encoding: 'utf8' }).filter((f) => /\.m?ts$/.test(f) && !f.endsWith('.d.ts'));
  return sources.every((source) => {
    const compiled = path.join(dist, source.replace(/\.ts$/, '.js').replace(/\.mts$/, '.mjs'));
    return fs.existsSync(compiled) && fs.statSync(compiled).mtimeMs >= fs.statSync(path.join(lib, source)).mtimeMs;
  });
}

/**
 * Compiles lib/ into dist/ with tsc unless dist/ is already up to date. Type
 * errors elsewhere in lib/ do not stop the CLI's tests, since tsc still
 * emits; type errors in lib/cli/ do.
 */
export function buildCli(): void {
  if (distIsFresh()) return;
  const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 });
  const cliErrors = (r.stdout ?? '').split('\n').filter((line) => line.startsWith('lib/cli/'));
  if (cliErrors.length > 0) throw new Error(`tsc reports errors in lib/cli:\n${cliErrors.join('\n')}`);
  if (!fs.existsSync(CLI_MAIN)) throw new Error(`tsc did not produce ${CLI_MAIN}: ${r.stdout}${r.stderr}`);
}

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliRunOptions {
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  timeoutMs?: number;
}

function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('TIERSTORE_DIR' in extra)) delete env['TIERSTORE_DIR'];
  if (!('TIERSTORE_TOKEN' in extra)) delete env['TIERSTORE_TOKEN'];
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  return env;
}

/** Runs `tierstore ...args` to the end. */
export function cli(args: readonly string[], options: CliRunOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI_MAIN, ...args], {
    cwd: REPO_ROOT,
    env: cliEnv(options.env),
    encoding: 'utf8',
    input: options.input,
    maxBuffer: 1 << 28,
    timeout: options.timeoutMs ?? 60_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** `tierstore ...args` with stdout as a Buffer (binary export to stdout). */
export function cliBinary(args: readonly string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [CLI_MAIN, ...args], {
    cwd: REPO_ROOT, env: cliEnv(), maxBuffer: 1 << 28, timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** Parses stdout as JSON, failing with the whole output when it is not. */
export function json<T = unknown>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.status}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

/** Starts a long-running `tierstore ...args` (serve); resolves once stdout has a line matching `ready`. */
export function startCli(args: readonly string[], ready: RegExp, env: Record<string, string | undefined> = {}): Promise<{
  match: RegExpMatchArray;
  stop(signal: NodeJS.Signals): Promise<CliResult>;
}> {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], { cwd: REPO_ROOT, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<CliResult>((resolve) => {
    child.on('exit', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no line matching ${ready} within 30 s; stdout: ${stdout}; stderr: ${stderr}`));
    }, 30_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const match = stdout.match(ready);
      if (match) {
        clearTimeout(timer);
        resolve({
          match,
          stop: (signal) => {
            child.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then((r) => {
      clearTimeout(timer);
      reject(new Error(`exited (${r.status ?? r.signal}) before printing ${ready}; stdout: ${r.stdout}; stderr: ${r.stderr}`));
    });
  });
}
