// Generated data for `tierstore demo` and the built-in benchmark: a seeded
// PRNG (same seed, same memories), readable made-up memories built from small
// word lists, and embeddings clustered by topic, so a recall for one memory
// returns it first (score 1) and then memories about the same topic.
import type { MemoryInput } from '../types.js';

/** mulberry32: a small, fast, seedable 32-bit PRNG; returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const TOPICS: Readonly<Record<string, readonly string[]>> = {
  gardening: ['the tomato seedlings', 'the compost heap', 'the rose bushes', 'watering the herbs', 'the new greenhouse'],
  cooking: ['a lentil soup recipe', 'the sourdough starter', 'spicy noodles', 'the cast-iron pan', 'baking rye bread'],
  travel: ['the train to Lisbon', 'a cheap flight to Oslo', 'the hotel in Kyoto', 'renewing the passport', 'the hiking trip'],
  music: ['the piano lessons', 'a jazz playlist', 'the guitar strings', 'the concert tickets', 'learning to read sheet music'],
  finance: ['the monthly budget', 'the tax return', 'a savings account', 'the electricity bill', 'splitting the rent'],
  fitness: ['the morning run', 'a yoga class', 'the knee injury', 'swimming on Fridays', 'the marathon plan'],
  reading: ['a novel by Le Guin', 'the library card', 'a book on stoicism', 'the reading group', 'an old poetry collection'],
  coding: ['the failing unit test', 'a Rust side project', 'the slow SQL query', 'the code review', 'migrating to TypeScript'],
};

const SUBJECTS = ['The user', 'Alex', 'Priya', 'Sam', 'The user\'s sister', 'Jordan', 'The team', 'Mia'];
const VERBS = [
  'asked about', 'mentioned', 'wants to try', 'complained about', 'recommended', 'forgot about', 'is excited about',
  'made a plan for', 'changed their mind about', 'wrote a note about',
];
const WHEN = [
  'last Tuesday', 'before the meeting', 'during the weekend', 'every morning', 'in the chat', 'over lunch',
  'yesterday evening', 'after work', 'on the phone', 'twice this week',
];

const pick = <T>(random: () => number, list: readonly T[]): T => list[Math.floor(random() * list.length)]!;

/** An approximately normal sample (sum of uniforms). */
function gaussian(random: () => number): number {
  return random() + random() + random() + random() - 2;
}

export interface GeneratedMemory extends MemoryInput {
  embedding: Float32Array;
}

export interface GeneratedData {
  memories: GeneratedMemory[];
  dimensions: number;
}

/**
 * `count` memories with ids `mem-000001`…, `dimensions`-dimensional
 * embeddings = topic direction + noise, confidence and activation spread over
 * [0.05, 1], createdAt spread over the 30 days before `now`.
 */
export function generateMemories(count: number, dimensions: number, seed: number, now = Date.now()): GeneratedData {
  const random = seededRandom(seed);
  const topicNames = Object.keys(TOPICS);
  const directions = topicNames.map(() => Array.from({ length: dimensions }, () => gaussian(random)));
  const width = Math.max(6, String(count).length);
  const memories: GeneratedMemory[] = [];
  for (let i = 0; i < count; i++) {
    const topicIndex = Math.floor(random() * topicNames.length);
    const topic = topicNames[topicIndex]!;
    const content = `${pick(random, SUBJECTS)} ${pick(random, VERBS)} ${pick(random, TOPICS[topic]!)} ${pick(random, WHEN)}.`;
    const direction = directions[topicIndex]!;
    const embedding = new Float32Array(dimensions);
    for (let d = 0; d < dimensions; d++) embedding[d] = direction[d]! + 0.8 * gaussian(random);
    const confidence = Math.round((0.05 + 0.95 * random()) * 100) / 100;
    memories.push({
      id: `mem-${String(i + 1).padStart(width, '0')}`,
      content,
      embedding,
      confidence,
      activation: confidence,
      createdAt: now - Math.floor(random() * 30 * 24 * 3600 * 1000),
      metadata: { topic, turn: i + 1 },
    });
  }
  return { memories, dimensions };
}
