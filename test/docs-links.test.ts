// Every relative link of every Markdown file of the repository leads
// somewhere: the file (or folder) exists, and an #anchor names a heading of
// the target page. Links to other sites are not fetched. Also checks that the
// docs cite no document the repository does not hold.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';

import { REPO_ROOT } from './helpers/child.js';
import { buildCli } from './helpers/cli-run.js';
import { anchorsOf, linksOf, markdownFiles, proseOf, slugOf } from './helpers/markdown.js';

const files = markdownFiles();
const texts = new Map(files.map((f) => [f, fs.readFileSync(path.join(REPO_ROOT, f), 'utf8')]));

function anchorsOfFile(file: string): Set<string> {
  const text = texts.get(file) ?? fs.readFileSync(path.join(REPO_ROOT, file), 'utf8');
  return anchorsOf(text);
}

/** The dead relative links of one Markdown file, as "file:line: target (why)". */
function deadLinks(file: string): string[] {
  const dead: string[] = [];
  for (const { line, target } of linksOf(texts.get(file)!)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, …
    const [rawPath, anchor] = target.split('#', 2) as [string, string | undefined];
    const relPath = decodeURIComponent(rawPath);
    const resolved = relPath === '' ? path.join(REPO_ROOT, file) : path.resolve(path.dirname(path.join(REPO_ROOT, file)), relPath);
    const where = `${file}:${line}: ${target}`;
    if (!resolved.startsWith(REPO_ROOT)) {
      dead.push(`${where} (outside the repository)`);
      continue;
    }
    if (!fs.existsSync(resolved)) {
      dead.push(`${where} (no such file)`);
      continue;
    }
    if (anchor !== undefined && anchor !== '') {
      if (!resolved.toLowerCase().endsWith('.md')) continue;
      const rel = path.relative(REPO_ROOT, resolved);
      if (!anchorsOfFile(rel).has(decodeURIComponent(anchor))) dead.push(`${where} (no heading with this anchor in ${rel})`);
    }
  }
  return dead;
}

describe('Markdown links', () => {
  it('finds the pages it is meant to check', () => {
    for (const page of ['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md', 'docs/api.md', 'docs/errors.md', 'docs/tiers.md',
      'docs/durability.md', 'docs/cli.md', 'docs/http.md', 'docs/export.md', 'docs/benchmarks.md']) {
      expect(files).toContain(page);
    }
    expect(files.some((f) => f.startsWith('node_modules'))).toBe(false);
  });

  it.each(files)('%s has no dead relative link', (file) => {
    expect(deadLinks(file)).toEqual([]);
  });

  it('the README links every page of docs/', () => {
    const readme = texts.get('README.md')!;
    const linked = new Set(linksOf(readme).map((l) => path.normalize(l.target.split('#')[0]!)));
    const pages = files.filter((f) => /^docs\/[^/]+\.md$/.test(f) || f === 'docs/format/README.md');
    expect(pages.length).toBeGreaterThanOrEqual(8);
    expect(pages.filter((p) => !linked.has(path.normalize(p)))).toEqual([]);
  });

  it('cites no document that is not in the repository', () => {
    const cited: string[] = [];
    for (const [file, text] of texts) {
      if (file.startsWith('docs/format/')) continue; // written on another branch
      for (const [i, line] of text.split('\n').entries()) {
        if (/DESIGN(\.md| §)|BENCHMARKS\.md|\.\.\/shared/.test(line)) cited.push(`${file}:${i + 1}: ${line.trim()}`);
      }
    }
    expect(cited).toEqual([]);
  });

  it('the user docs speak of the project, not of how it was made', () => {
    const pages = files.filter((f) => f === 'README.md' || f === 'CONTRIBUTING.md' || f === 'CHANGELOG.md' || (f.startsWith('docs/') && !f.startsWith('docs/format/')));
    const found: string[] = [];
    for (const file of pages) {
      for (const [i, line] of proseOf(texts.get(file)!).split('\n').entries()) {
        if (/\bsessions? \d|\bissues? #?\d|\baudit\b|\bprobe\b|this sandbox/i.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`);
      }
    }
    expect(found).toEqual([]);
  });
});

/** The names a built declaration file exports (values and types). */
function exportedNames(declarationFile: string): string[] {
  const program = ts.createProgram([declarationFile], { noEmit: true, skipLibCheck: true, types: [] });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(declarationFile);
  if (source === undefined) throw new Error(`cannot read ${declarationFile}`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  if (moduleSymbol === undefined) throw new Error(`${declarationFile} is not a module`);
  return checker.getExportsOfModule(moduleSymbol).map((s) => s.getName()).filter((n) => n !== 'default').sort();
}

describe('the reference covers the public names', () => {
  beforeAll(() => buildCli(), 180_000);
  const pages = (names: string[]): string => names.map((f) => texts.get(f)!).join('\n');
  it.each([
    ['tierstore', 'dist/index.d.ts', ['docs/api.md']],
    ['tierstore/server', 'dist/server.d.ts', ['docs/api.md', 'docs/http.md']],
    ['tierstore/export', 'dist/export.d.ts', ['docs/api.md', 'docs/export.md']],
  ] as const)('every export of %s is named in the docs', (_entry, declarations, where) => {
    const file = path.join(REPO_ROOT, declarations);
    expect(fs.existsSync(file), `${declarations} (npm run build:ts)`).toBe(true);
    const names = exportedNames(file);
    expect(names.length).toBeGreaterThan(2);
    const text = pages([...where]);
    expect(names.filter((n) => !new RegExp(`\\b${n}\\b`).test(text))).toEqual([]);
  });

  it('every method of MemoryStore has its section in docs/api.md', () => {
    const api = texts.get('docs/api.md')!;
    const { MemoryStore } = createRequire(import.meta.url)(path.join(REPO_ROOT, 'dist', 'index.js')) as { MemoryStore: { prototype: object } };
    const methods = Object.getOwnPropertyNames(MemoryStore.prototype).filter((m) => m !== 'constructor' && m !== 'openIterator');
    expect(methods.length).toBeGreaterThan(15);
    expect(methods.filter((m) => !api.includes(`### .${m}(`) && !api.includes(`\`.${m}\``))).toEqual([]);
  });
});

describe('the link checker itself', () => {
  it('makes GitHub anchors', () => {
    expect(slugOf('Errors and `close()`')).toBe('errors-and-close');
    expect(slugOf('What survives a kill, a power cut, a damaged file')).toBe('what-survives-a-kill-a-power-cut-a-damaged-file');
    expect([...anchorsOf('# A\n## A\n```\n# not a heading\n```\n')]).toEqual(['a', 'a-1']);
  });

  it('finds links outside code only', () => {
    const links = linksOf('see [api](docs/api.md#open) and `[x](nope.md)`\n```\n[y](nope.md)\n```\n[ref]: ./CHANGELOG.md\n');
    expect(links.map((l) => l.target)).toEqual(['docs/api.md#open', './CHANGELOG.md']);
  });
});
