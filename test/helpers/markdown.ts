// Reading the repository's Markdown: which files there are, their fenced code
// blocks (with the language and the marker that may precede them), their
// links and the anchors their headings define (as GitHub renders them).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { REPO_ROOT } from './child.js';

/** Folders never searched for Markdown: dependencies, build output, generated docs. */
const SKIPPED_DIRS = new Set(['node_modules', '.git', 'dist', 'prebuilds', '.tmp', 'reference']);

/** Every Markdown file of the repository, relative to its root, sorted. */
export function markdownFiles(root: string = REPO_ROOT): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (SKIPPED_DIRS.has(entry.name) || entry.name.startsWith('build')) continue;
        walk(path.join(dir, entry.name));
      } else if (entry.isFile() && entry.name.toLowerCase().endsWith('.md')) {
        found.push(path.relative(root, path.join(dir, entry.name)));
      }
    }
  };
  walk(root);
  return found.sort();
}

export interface CodeBlock {
  /** The file, relative to the repository root. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The first word of the info string, lower-cased ('' when none). */
  lang: string;
  code: string;
  /** The reason given by a `<!-- example: not run — REASON -->` marker right above the fence. */
  skipReason?: string;
  /** A marker that is there but gives no reason. */
  badMarker?: string;
}

const MARKER = /^<!--\s*example:\s*(.*?)\s*-->$/;
const NOT_RUN = /^not run\s*[—–-]+\s*(\S.*)$/;

/** The fenced code blocks of a Markdown text. */
export function codeBlocks(file: string, text: string): CodeBlock[] {
  const lines = text.split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[1]!;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`).test(lines[j]!)) body.push(lines[j++]!);
    const block: CodeBlock = { file, line: i + 1, lang: open[2]!.toLowerCase(), code: body.join('\n') };
    // The marker: the nearest non-blank line above the fence.
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    const marker = k >= 0 ? MARKER.exec(lines[k]!.trim()) : null;
    if (marker) {
      const reason = NOT_RUN.exec(marker[1]!);
      if (reason) block.skipReason = reason[1]!;
      else block.badMarker = lines[k]!.trim();
    }
    blocks.push(block);
    i = j;
  }
  return blocks;
}

/** The text of a Markdown file outside its code blocks and inline code spans. */
export function proseOf(text: string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let fence: string | undefined;
  for (const line of lines) {
    const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence === undefined && m) {
      fence = m[1]!;
      out.push('');
      continue;
    }
    if (fence !== undefined) {
      if (new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`).test(line)) fence = undefined;
      out.push('');
      continue;
    }
    out.push(line.replace(/`+[^`]*`+/g, ''));
  }
  return out.join('\n');
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slugOf(heading: string): string {
  return heading
    .trim()
    .replace(/`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors a Markdown text defines: one per heading (repeats get -1, -2, …), plus explicit `<a id>`/`<a name>`. */
export function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of proseOf(text).split('\n')) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      const base = slugOf(heading[1]!);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(a[1]!);
  }
  return anchors;
}

export interface Link {
  line: number;
  target: string;
}

/** The links of a Markdown text (inline `[text](target)`, reference definitions, and `href`s), outside code. */
export function linksOf(text: string): Link[] {
  const links: Link[] = [];
  proseOf(text).split('\n').forEach((line, i) => {
    for (const m of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ line: i + 1, target: m[1]! });
    const def = /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/.exec(line);
    if (def) links.push({ line: i + 1, target: def[1]! });
    for (const m of line.matchAll(/href="([^"]+)"/g)) links.push({ line: i + 1, target: m[1]! });
  });
  return links;
}
