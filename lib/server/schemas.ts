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

/** A number in a query parameter: JSON's number syntax (no hex, no Infinity, no spaces). */
export const NUMBER_PATTERN = '^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$';
const numberString = { type: 'string', pattern: NUMBER_PATTERN } as const;

/**
 * GET /api/v1/memories. Filter parameters: created_after, created_before,
 * min_confidence, min_activation, and metadata.KEY=VALUE (repeatable: any of
 * the values). Any other parameter is refused, so a misspelt filter is a 400
 * rather than an unfiltered listing.
 */
export const listQuerySchema = {
  type: 'object',
  properties: {
    tier,
    offset: { type: 'string', pattern: '^[0-9]+$' },
    limit: { type: 'string', pattern: '^0*[1-9][0-9]*$' },
    cursor: { type: 'string', minLength: 1 },
    include_embeddings: booleanString,
    created_after: numberString,
    created_before: numberString,
    min_confidence: numberString,
    min_activation: numberString,
  },
  patternProperties: {
    '^metadata\\..': { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
  },
  additionalProperties: false,
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

/**
 * The `filter` of POST /api/v1/recall (snake_case MemoryFilter). Metadata
 * values are checked by the store, which names the bad one
 * (body.filter.metadata.tags[2]).
 */
export const recallFilterSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    created_after: { type: 'number' },
    created_before: { type: 'number' },
    min_confidence: { type: 'number' },
    min_activation: { type: 'number' },
    metadata: { type: 'object' },
  },
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
    filter: recallFilterSchema,
  },
} as const;
