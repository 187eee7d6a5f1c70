/**
 * JSON schemas of the HTTP routes (checked by fastify's ajv before a handler
 * runs, without type coercion: a body field of the wrong type is a 400, not
 * silently converted). Query parameters arrive as strings and are checked as
 * strings here, then converted by the handlers. Bodies reject unknown fields.
 * The schemas check shapes; the store checks the rest (embedding length
 * against the store's dimensions, id and content byte lengths, metadata).
 */
import { MAX_DIMENSIONS, MAX_ID_BYTES } from '../validate.js';

/** k of POST /api/v1/recall (README): hits for one reply, not the store's limit. */
export const MAX_HTTP_RECALL_K = 10000;

const tier = { type: 'string', enum: ['hot', 'warm', 'cold', 'all'] } as const;
const booleanString = { type: 'string', enum: ['true', 'false'] } as const;
const embedding = { type: 'array', items: { type: 'number' }, maxItems: MAX_DIMENSIONS } as const;
const unit = { type: 'number', minimum: 0, maximum: 1 } as const;

/** One memory as POSTed: snake_case, the MemoryInput fields. */
export const memoryInputSchema = {
  type: 'object',
  required: ['id', 'content', 'embedding'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', minLength: 1, maxLength: MAX_ID_BYTES },
    content: { type: 'string' },
    embedding,
    confidence: unit,
    activation: unit,
    created_at: { type: 'integer' },
    metadata: { type: 'object' },
  },
} as const;

/** POST /api/v1/memories: one memory, or `{ memories: [...] }` written atomically. */
export const createBodySchema = {
  type: 'object',
  if: { required: ['memories'] },
  then: {
    type: 'object',
    additionalProperties: false,
    properties: { memories: { type: 'array', items: memoryInputSchema } },
  },
  else: memoryInputSchema,
} as const;

export const listQuerySchema = {
  type: 'object',
  properties: {
    tier,
    offset: { type: 'string', pattern: '^[0-9]+$' },
    limit: { type: 'string', pattern: '^0*[1-9][0-9]*$' },
    cursor: { type: 'string', minLength: 1 },
    include_embeddings: booleanString,
  },
} as const;

export const idParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1 } },
} as const;

export const getQuerySchema = {
  type: 'object',
  properties: { include_embeddings: booleanString },
} as const;

export const recallBodySchema = {
  type: 'object',
  required: ['embedding'],
  additionalProperties: false,
  properties: {
    embedding,
    k: { type: 'integer', minimum: 1, maximum: MAX_HTTP_RECALL_K },
    tier,
    min_confidence: { type: 'number' },
    include_embeddings: { type: 'boolean' },
  },
} as const;
