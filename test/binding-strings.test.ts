// Strings cross the binding through the addon's own UTF-8 decoder (one pass,
// ASCII 16 bytes at a time, Latin-1 text handed to V8 as one-byte strings).
// Every kind of text must come back exactly, from every tier and every read
// path: ASCII runs of every length around the 16-byte step, Latin-1, the rest
// of the BMP, astral characters (surrogate pairs), NUL, and mixtures with the
// multi-byte character at every offset of a 16-byte block.
import { describe, expect, it } from 'vitest';
import type { Tier } from '../lib/index.js';
import { mulberry32 } from './helpers/random.js';
import { iterateAll, listAll, useScratch } from './helpers/store.js';

const DIMS = 4;

function texts(): string[] {
  const rng = mulberry32(0x5791);
  const pick = (alphabet: string[]) => alphabet[Math.floor(rng() * alphabet.length)]!;
  const ascii = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).concat(['\0', '\n', '\t', '\x7f']);
  const latin1 = ['é', 'ü', 'ñ', 'ß', 'ø', 'ç', '\u00a0', 'ÿ', '\u0080', '\u00ff'];
  const bmp = ['中', '文', '한', '€', '—', '\u0800', '\uffff', '\ufffd', 'Ω', '\u07ff'];
  const astral = ['🙂', '🚀', '🧠', '\u{10000}', '\u{10ffff}', '𝄞'];
  const out: string[] = ['', 'a', 'é', '中', '🙂', '\0', '\0'.repeat(40)];
  // One non-ASCII character at every position of the first 40 characters.
  for (const special of ['é', '中', '🙂', '\u0080']) {
    for (let at = 0; at < 40; at++) out.push('x'.repeat(at) + special + 'y'.repeat(39 - at));
  }
  // ASCII of every length around the 16-byte steps.
  for (let len = 0; len <= 49; len++) out.push(Array.from({ length: len }, () => pick(ascii)).join(''));
  // Random mixtures, mostly ASCII or mostly multi-byte.
  for (let k = 0; k < 200; k++) {
    const len = Math.floor(rng() * 300);
    const weights = k % 2 === 0 ? [0.9, 0.04, 0.03, 0.03] : [0.25, 0.25, 0.25, 0.25];
    let s = '';
    for (let i = 0; i < len; i++) {
      const r = rng();
      if (r < weights[0]!) s += pick(ascii);
      else if (r < weights[0]! + weights[1]!) s += pick(latin1);
      else if (r < weights[0]! + weights[1]! + weights[2]!) s += pick(bmp);
      else s += pick(astral);
    }
    out.push(s);
  }
  return out;
}

/** The first n code points (never half a surrogate pair). */
const prefix = (s: string, n: number) => Array.from(s).slice(0, n).join('');
const idOf = (i: number, content: string) => `id-${i}-${prefix(content, 8)}`;
const keyOf = (content: string) => prefix(content, 5) || 'k';

describe('strings through the binding', () => {
  const scratch = useScratch();

  it.each<Tier>(['hot', 'warm', 'cold'])('come back exactly from %s through get, iterate, batches, list and recall', (tier) => {
    const all = texts();
    const store = scratch.open(scratch.storePath(), { dimensions: DIMS });
    store.putMany(
      all.map((content, i) => ({
        id: idOf(i, content),
        content,
        metadata: { text: content, [keyOf(content)]: i },
        embedding: [1, i % 7, 2, 3],
      })),
    );
    if (tier !== 'hot') for (let i = 0; i < all.length; i++) store.move(idOf(i, all[i]!), tier);
    expect(store.counts()[tier]).toBe(all.length);

    const expectedById = new Map(
      all.map((content, i) => [idOf(i, content), { content, i }]),
    );
    const check = (id: string, content: string, metadata: Record<string, unknown>) => {
      const exp = expectedById.get(id);
      expect(exp, id).toBeDefined();
      // === on strings compares code units: byte-exact for well-formed text.
      expect(content === exp!.content, `content of ${id}`).toBe(true);
      expect(metadata.text === exp!.content, `metadata of ${id}`).toBe(true);
      expect(metadata[keyOf(exp!.content)]).toBe(exp!.i);
    };
    for (const id of expectedById.keys()) {
      const m = store.get(id)!;
      check(m.id, m.content, m.metadata);
    }
    const iterated = iterateAll(store, tier);
    expect(iterated).toHaveLength(all.length);
    for (const m of iterated) check(m.id, m.content, m.metadata);
    let batched = 0;
    for (const b of store.iterate({ tier, batchSize: 7 }).batches()) {
      for (let j = 0; j < b.ids.length; j++, batched++) check(b.ids[j]!, b.contents[j]!, b.metadata[j]!);
    }
    expect(batched).toBe(all.length);
    const listed = listAll(store, tier, 50, false);
    expect(listed).toHaveLength(all.length);
    for (const m of listed) check(m.id, m.content, m.metadata);
    const hits = store.recall([1, 3, 2, 3], { k: 50, tier });
    expect(hits).toHaveLength(Math.min(50, all.length));
    expect(new Set(hits.map((h) => h.id)).size).toBe(hits.length);
    for (const h of hits) {
      expect(h.memory.id).toBe(h.id);
      expect(h.tier).toBe(tier);
      check(h.memory.id, h.memory.content, h.memory.metadata);
    }
  });
});
