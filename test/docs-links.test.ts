// Every relative link of every Markdown file of the repository leads
// somewhere: the file (or folder) exists, and an #anchor names a heading of
// the target page. Links to other sites are not fetched. Also checks that the
// docs cite no document the repository does not hold.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { REPO_ROOT } from './helpers/child.js';
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
