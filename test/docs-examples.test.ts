// The documentation's examples run as written.
//
// - Every ```ts, ```js, ```mjs and ```cjs block of README.md and docs/**/*.md
//   runs in its own node process, against the built package (dist/, reached
//   as `tierstore` through the package's own exports, as a user's import
//   resolves it), in a fresh temporary working directory. TypeScript blocks
//   are transpiled with typescript's transpileModule and also type-checked
//   together against the package's declarations. A block must exit 0.
// - The shell blocks of docs/cli.md and docs/http.md run too, page by page in
//   one temporary directory, with `tierstore` on the PATH: each `$ command` of
//   a ```console transcript runs in bash and its output must contain the
//   transcript's lines in order (numbers, dates and spacing may differ; a
//   line `…` stands for anything); each ```sh block runs whole and must exit
//   0. A `tierstore serve` command starts a server (on a free port, shown as
//   8080 in the docs) that the page's later commands talk to.
// - A block is left out only by a marker right above it that says why:
//   <!-- example: not run — REASON -->
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { REPO_ROOT } from './helpers/child.js';
import { buildCli, CLI_MAIN } from './helpers/cli-run.js';
import { codeBlocks, markdownFiles, type CodeBlock } from './helpers/markdown.js';

const JS_LANGS = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs', 'cjs']);
const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'console']);
const SHELL_PAGES = new Set(['docs/cli.md', 'docs/http.md']);
/** The working directory the shell transcripts show. */
const SHOWN_CWD = '/home/me';
/** The port the docs show; the tests serve on a free one. */
const SHOWN_PORT = '8080';

const pages = markdownFiles().filter((f) => f === 'README.md' || (f.startsWith('docs/') && !f.startsWith('docs/format/')));
const blocks = pages.flatMap((file) => codeBlocks(file, fs.readFileSync(path.join(REPO_ROOT, file), 'utf8')));
const jsBlocks = blocks.filter((b) => JS_LANGS.has(b.lang));
const nameOf = (b: CodeBlock): string => `${b.file}:${b.line} (${b.lang})`;

// Example files live inside the package (under .tmp/, ignored by git), so
// `import ... from 'tierstore'` resolves to this package as it would in a
// user's project: through package.json's exports, to dist/.
const EXAMPLES_DIR = path.join(REPO_ROOT, '.tmp', 'docs-examples');
const scratch: string[] = [];

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

function exampleFile(b: CodeBlock): string {
  const base = `${b.file.replace(/[/.]/g, '_')}-${b.line}`;
  if (b.lang === 'cjs') return path.join(EXAMPLES_DIR, `${base}.cjs`);
  if (b.lang === 'ts' || b.lang === 'typescript') return path.join(EXAMPLES_DIR, `${base}.mts`);
  return path.join(EXAMPLES_DIR, `${base}.mjs`);
}

function javascriptOf(b: CodeBlock): string {
  if (b.lang !== 'ts' && b.lang !== 'typescript') return b.code;
  const out = ts.transpileModule(b.code, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
    reportDiagnostics: true,
    fileName: path.basename(exampleFile(b)),
  });
  const errors = (out.diagnostics ?? []).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  if (errors.length > 0) throw new Error(`${nameOf(b)} does not parse:\n${errors.join('\n')}`);
  return out.outputText;
}

beforeAll(() => {
  buildCli();
  fs.rmSync(EXAMPLES_DIR, { recursive: true, force: true });
  fs.mkdirSync(EXAMPLES_DIR, { recursive: true });
}, 180_000);

afterAll(() => {
  for (const dir of scratch) fs.rmSync(dir, { recursive: true, force: true });
});

describe('markers', () => {
  it('every marker says why its block is not run', () => {
    expect(blocks.filter((b) => b.badMarker !== undefined).map((b) => `${nameOf(b)}: ${b.badMarker}`)).toEqual([]);
  });

  it('the docs have examples to run', () => {
    expect(jsBlocks.filter((b) => b.skipReason === undefined).length).toBeGreaterThanOrEqual(15);
    for (const page of ['README.md', 'docs/api.md', 'docs/export.md', 'docs/http.md', 'docs/tiers.md']) {
      expect(jsBlocks.some((b) => b.file === page && b.skipReason === undefined), page).toBe(true);
    }
  });
});

describe('code examples', () => {
  const runnable = jsBlocks.filter((b) => b.skipReason === undefined);
  it.each(runnable.map((b) => [nameOf(b), b] as const))('%s runs', (_name, b) => {
    const file = exampleFile(b).replace(/\.mts$/, '.mjs');
    fs.writeFileSync(file, javascriptOf(b));
    const cwd = tempDir('tierstore-docs-');
    const env = { ...process.env };
    delete env['TIERSTORE_DIR'];
    delete env['TIERSTORE_TOKEN'];
    const r = spawnSync(process.execPath, [file], { cwd, encoding: 'utf8', timeout: 60_000, env });
    const report = `exit ${r.status} ${r.signal ?? ''}\n--- stderr\n${r.stderr}\n--- stdout\n${r.stdout}\n--- code\n${b.code}`;
    expect(r.status, report).toBe(0);
    expect(r.stderr, report).toBe('');
  });

  it('the TypeScript examples type-check against the package declarations', () => {
    const tsBlocks = runnable.filter((b) => b.lang === 'ts' || b.lang === 'typescript');
    expect(tsBlocks.length).toBeGreaterThan(5);
    const names = tsBlocks.map((b) => {
      const file = exampleFile(b);
      fs.writeFileSync(file, `${b.code}\nexport {};\n`);
      return file;
    });
    const program = ts.createProgram(names, {
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
      typeRoots: [path.join(REPO_ROOT, 'node_modules', '@types')],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file ? `${path.basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : '';
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    expect(diagnostics).toEqual([]);
  }, 120_000);
});

// ---------------------------------------------------------------------------
// Shell transcripts

/** A regular expression for one expected output line: numbers and spacing may differ. */
function linePattern(expected: string): RegExp {
  const parts = expected.trim().split(/(\d[\d,.]*\d|\d|\s+)/);
  const source = parts.map((p) => {
    if (p === '') return '';
    if (/^\s+$/.test(p)) return '\\s+';
    if (/^\d/.test(p)) return '[\\d,.]+';
    return p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }).join('');
  return new RegExp(`^${source}$`);
}

/** The expected lines that `actual` lacks (they must appear in order). */
function missingLines(expected: readonly string[], actual: string): string[] {
  const lines = actual.split('\n').map((l) => l.trim());
  let at = 0;
  const missing: string[] = [];
  for (const line of expected) {
    if (line.trim() === '' || line.trim() === '…') continue;
    const pattern = linePattern(line);
    const found = lines.findIndex((l, i) => i >= at && pattern.test(l));
    if (found < 0) missing.push(line);
    else at = found + 1;
  }
  return missing;
}

interface Step {
  command: string;
  expected: string[];
}

/** The `$ command` steps of a console transcript (a line ending in `\` continues the command). */
function stepsOf(code: string): Step[] {
  const steps: Step[] = [];
  const lines = code.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('$ ')) {
      let command = line.slice(2);
      while (command.endsWith('\\') && i + 1 < lines.length) command = `${command}\n${lines[++i]!}`;
      steps.push({ command, expected: [] });
    } else if (steps.length > 0) {
      steps[steps.length - 1]!.expected.push(line);
    }
  }
  return steps;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

class ShellPage {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  port = SHOWN_PORT;
  servers: ChildProcess[] = [];
  lastStatus = 0;

  constructor() {
    this.cwd = tempDir('tierstore-docs-sh-');
    const bin = path.join(this.cwd, '.bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'tierstore'), `#!/bin/sh\nexec "${process.execPath}" "${CLI_MAIN}" "$@"\n`, { mode: 0o755 });
    this.env = { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, HOME: this.cwd };
    delete this.env['TIERSTORE_DIR'];
    delete this.env['TIERSTORE_TOKEN'];
  }

  #shown(output: string): string {
    return output.split(this.cwd).join(SHOWN_CWD).split(`:${this.port}`).join(`:${SHOWN_PORT}`);
  }

  #command(command: string): string {
    return command.split(`:${SHOWN_PORT}`).join(`:${this.port}`).split(`--port ${SHOWN_PORT}`).join(`--port ${this.port}`);
  }

  /** Runs one command; resolves with its output (stdout and stderr interleaved) as the docs show it. */
  async run(command: string): Promise<{ status: number; output: string }> {
    if (/^\s*(\w+=\S+\s+)*tierstore\b.*\bserve\b/.test(command)) return this.#serve(command);
    const r = spawnSync('bash', ['-c', `exec 2>&1\n${this.#command(command)}`], { cwd: this.cwd, env: this.env, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status ?? -1, output: this.#shown(r.stdout) };
  }

  async #serve(command: string): Promise<{ status: number; output: string }> {
    this.port = String(await freePort());
    const child = spawn('bash', ['-c', `exec 2>&1\n${this.#command(command)}`], { cwd: this.cwd, env: this.env, detached: true });
    this.servers.push(child);
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk; });
    const deadline = Date.now() + 20_000;
    while (!output.includes('listening on') && child.exitCode === null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { status: output.includes('listening on') ? 0 : child.exitCode ?? -1, output: this.#shown(output) };
  }

  async stop(): Promise<void> {
    for (const child of this.servers) {
      if (child.exitCode !== null || child.pid === undefined) continue;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(-child.pid, 'SIGINT');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
    }
  }
}

for (const page of SHELL_PAGES) {
  const pageBlocks = blocks.filter((b) => b.file === page && SHELL_LANGS.has(b.lang));
  describe(`shell examples of ${page}`, () => {
    let shell: ShellPage;
    beforeAll(() => {
      buildCli();
      shell = new ShellPage();
    });
    afterAll(async () => {
      await shell.stop();
    });

    it('has shell examples to run', () => {
      expect(pageBlocks.filter((b) => b.skipReason === undefined).length).toBeGreaterThanOrEqual(3);
    });

    for (const b of pageBlocks.filter((x) => x.skipReason === undefined)) {
      it(`${nameOf(b)} runs as shown`, async () => {
        if (b.lang !== 'console') {
          const r = await shell.run(b.code);
          expect(r.status, `${b.code}\n--- output\n${r.output}`).toBe(0);
          return;
        }
        const steps = stepsOf(b.code);
        expect(steps.length, 'a console block holds `$ command` lines').toBeGreaterThan(0);
        for (const [i, step] of steps.entries()) {
          if (step.command.trim() === 'echo $?') {
            // The previous command's exit status, as shown.
            expect(String(shell.lastStatus), `exit status of the command before ${nameOf(b)} step ${i + 1}`).toBe(step.expected.join('').trim());
            continue;
          }
          const r = await shell.run(step.command);
          shell.lastStatus = r.status;
          const next = steps[i + 1];
          if (next === undefined || next.command.trim() !== 'echo $?') {
            expect(r.status, `$ ${step.command}\n--- output\n${r.output}`).toBe(0);
          }
          expect(missingLines(step.expected, r.output), `$ ${step.command}\n--- output\n${r.output}`).toEqual([]);
        }
      });
    }
  });
}

describe('the transcript matcher itself', () => {
  it('lets numbers and spacing differ, not words', () => {
    expect(linePattern('hot   2 records read').test('hot 12 records read')).toBe(true);
    expect(linePattern('1  0.9838  hot   pref-2').test('1  0.9901  hot  pref-2')).toBe(true);
    expect(linePattern('hot   2 records read').test('warm   2 records read')).toBe(false);
    expect(missingLines(['a 1', '…', 'c'], 'a 2\nb\nc')).toEqual([]);
    expect(missingLines(['c', 'a 1'], 'a 2\nb\nc')).toEqual(['a 1']);
  });
});
