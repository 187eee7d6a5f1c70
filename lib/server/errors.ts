/**
 * Error bodies of the HTTP server: every failure is answered with
 * `{ error: { code, message, suggestion, example } }` (the three-part format
 * of the API this package replaces: what went wrong, what to do about it, and
 * a request that works). Maps TierStoreError codes and fastify's own errors
 * (schema, JSON, body limit, media type) to HTTP statuses.
 */
import { TierStoreError } from '../errors.js';
import type { ErrorCode } from '../errors.js';

/** Codes the server adds to the store's (ErrorCode) for failures of HTTP itself. */
export type HttpErrorCode =
  | ErrorCode
  | 'INVALID_JSON'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'NOT_FOUND'
  | 'SPACE_NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'SERVER_CLOSING'
  | 'INTERNAL_ERROR';

/** The body of every error response. */
export interface ErrorBody {
  /** What went wrong, in three parts. */
  error: {
    /** The error code: a store's TierStoreError code, or an HTTP-level one (NOT_FOUND, UNAUTHORIZED, …). */
    code: HttpErrorCode;
    /** What was wrong, naming the request field by its wire path (body.memories[1].embedding). */
    message: string;
    /** What to do about it. */
    suggestion: string;
    /** A request that would succeed. */
    example: string;
  };
}

/** HTTP status of each store error code. */
export const STATUS_OF_CODE: Readonly<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  DIMENSION_MISMATCH: 400,
  CONTENT_TOO_LARGE: 413,
  READ_ONLY: 403,
  STORE_CLOSED: 503,
  STORE_LOCKED: 503,
  CORRUPTION: 500,
  IO_ERROR: 500,
};

/** An error the route handlers raise with its status and code chosen. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: HttpErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Which request an error belongs to: picks the example. */
export type RouteKind = 'list' | 'create' | 'get' | 'delete' | 'recall' | 'health' | 'spaces' | 'space-delete' | 'other';

/** What the suggestions and examples need to know about the server. */
export interface ErrorContext {
  dimensions: number;
  maxContentBytes: number;
  bodyLimit: number;
  tokenRequired: boolean;
  /** The space the request named with X-Memory-Space (a valid name), shown in the examples. */
  space?: string | undefined;
  /** The request's Host header (a plain host[:port]): the examples go where the request went. */
  host?: string | undefined;
}

function embeddingExample(dims: number): string {
  const shown = Math.min(dims, 3);
  const values = [0.12, -0.05, 0.33].slice(0, shown).join(',');
  return dims <= 3 ? `[${values}]` : `[${values}, … ${dims} numbers in all]`;
}

function authHeader(ctx: ErrorContext): string {
  return ctx.tokenRequired ? " -H 'Authorization: Bearer <token>'" : '';
}

/** A request that works for each kind of route, as a curl command. */
export function exampleFor(kind: RouteKind, ctx: ErrorContext): string {
  const example = ctx.host === undefined ? exampleOf(kind, ctx) : exampleOf(kind, ctx).replace('127.0.0.1:8080', ctx.host);
  // The request's own space, so that the example works for it (not on the space routes, which take none).
  if (ctx.space === undefined || kind === 'spaces' || kind === 'space-delete') return example;
  return example.replace(/^curl /, `curl -H 'X-Memory-Space: ${ctx.space}' `);
}

function exampleOf(kind: RouteKind, ctx: ErrorContext): string {
  const auth = authHeader(ctx);
  switch (kind) {
    case 'list':
      return "curl 'http://127.0.0.1:8080/api/v1/memories?tier=all&limit=100&include_embeddings=false'";
    case 'create':
      return (
        `curl -X POST http://127.0.0.1:8080/api/v1/memories -H 'Content-Type: application/json'${auth} ` +
        `-d '{"id":"episode-1","content":"The user prefers concise answers.",` +
        `"embedding":${embeddingExample(ctx.dimensions)},"confidence":0.9,"metadata":{"source":"chat"}}'`
      );
    case 'get':
      return "curl 'http://127.0.0.1:8080/api/v1/memories/episode-1?include_embeddings=true'";
    case 'delete':
      return `curl -X DELETE${auth} http://127.0.0.1:8080/api/v1/memories/episode-1`;
    case 'recall':
      return (
        `curl -X POST http://127.0.0.1:8080/api/v1/recall -H 'Content-Type: application/json' ` +
        `-d '{"embedding":${embeddingExample(ctx.dimensions)},"k":10,"tier":"all"}'`
      );
    case 'spaces':
      return "curl http://127.0.0.1:8080/api/v1/spaces";
    case 'space-delete':
      return `curl -X DELETE${auth} http://127.0.0.1:8080/api/v1/spaces/team-a`;
    case 'health':
    case 'other':
      return 'curl http://127.0.0.1:8080/health';
  }
}

/** What to do about an error of this code. */
export function suggestionFor(code: HttpErrorCode, kind: RouteKind, ctx: ErrorContext): string {
  switch (code) {
    case 'INVALID_ARGUMENT':
      return 'Correct the field or parameter named in the message; the example shows a valid request.';
    case 'DIMENSION_MISMATCH':
      return `Send an embedding of exactly ${ctx.dimensions} numbers: the store was created with ${ctx.dimensions} dimensions.`;
    case 'CONTENT_TOO_LARGE':
      return `Keep content within ${ctx.maxContentBytes} UTF-8 bytes (the store's maxContentBytes), or split it into several memories.`;
    case 'BODY_TOO_LARGE':
      return `Keep each request body within ${ctx.bodyLimit} bytes: send a large batch as several smaller POSTs.`;
    case 'INVALID_JSON':
      return 'Send a well-formed, non-empty JSON body with Content-Type: application/json.';
    case 'UNSUPPORTED_MEDIA_TYPE':
      return "Send the body as JSON with the header 'Content-Type: application/json'.";
    case 'NOT_FOUND':
      return kind === 'get' || kind === 'delete'
        ? 'No memory has this id (it was never written or was deleted); list ids with GET /api/v1/memories?tier=all.'
        : 'Check the method and path. Routes: GET /health, GET|POST /api/v1/memories, GET|DELETE /api/v1/memories/:id, ' +
          'POST /api/v1/recall, GET /api/v1/spaces, DELETE /api/v1/spaces/:name.';
    case 'SPACE_NOT_FOUND':
      return 'Check the X-Memory-Space header (no header means the space "default"); GET /api/v1/spaces lists the spaces. ' +
        'On a server of spaces (--root) a successful POST /api/v1/memories creates the space it names.';
    case 'UNAUTHORIZED':
      return "Send the server's token as 'Authorization: Bearer <token>' (the token given to the server by --token or TIERSTORE_TOKEN).";
    case 'READ_ONLY':
      return 'The store is open read-only: restart the server on a writable store to write or delete.';
    case 'STORE_CLOSED':
    case 'SERVER_CLOSING':
      return 'The server is shutting down; retry the request once it (or another instance) is running.';
    case 'STORE_LOCKED':
      return 'Another process holds the store directory; stop it or serve another directory.';
    case 'CORRUPTION':
      return 'A store file is damaged (the message names it): restore it from a backup; the other tiers may still be readable.';
    case 'IO_ERROR':
      return 'Check free disk space and the permissions of the store directory, then retry.';
    case 'INTERNAL_ERROR':
      return 'Retry the request; if it keeps failing, report it with the server log.';
  }
}

export function errorBody(code: HttpErrorCode, message: string, kind: RouteKind, ctx: ErrorContext): ErrorBody {
  // For an unknown space, the request that helps is the list of spaces.
  const example = code === 'SPACE_NOT_FOUND' ? exampleFor('spaces', ctx) : exampleFor(kind, ctx);
  return { error: { code, message, suggestion: suggestionFor(code, kind, ctx), example } };
}

/** One ajv error as fastify hands it over. */
interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/** `/memories/3/confidence` -> `memories[3].confidence`. */
function dottedPath(instancePath: string): string {
  let out = '';
  for (const raw of instancePath.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(part) ? `[${part}]` : `.${part}`;
  }
  return out;
}

/** Query parameters whose values the schema checks as strings (no coercion): what they must be. */
const QUERY_RULES: Readonly<Record<string, string>> = {
  tier: "one of 'hot', 'warm', 'cold', 'all'",
  offset: 'an integer >= 0',
  limit: 'an integer >= 1 (values above 1000 are capped at 1000)',
  cursor: 'a pagination.next_cursor string from an earlier page',
  include_embeddings: "'true' or 'false'",
  created_after: 'a number of milliseconds since the epoch (createdAt >= it)',
  created_before: 'a number of milliseconds since the epoch (createdAt < it)',
  min_confidence: 'a number (confidence >= it, compared at float32)',
  min_activation: 'a number (activation >= it, compared at float32)',
};

/** The list's query parameters, for the message about an unknown one. */
const LIST_PARAMETERS = 'tier, offset, limit, cursor, include_embeddings, created_after, created_before, min_confidence, ' +
  'min_activation, metadata.KEY';

/**
 * A readable message for the first schema error: names the field (the body
 * path or the query parameter), says what was wrong and what is allowed.
 */
export function schemaMessage(context: string, errors: readonly SchemaError[], query: unknown): string {
  // With if/then, ajv reports the inner error first and a generic "must match then" after it.
  const e = errors.find((x) => x.keyword !== 'if') ?? errors[0];
  if (e === undefined) return `${context} is invalid`;
  if (context === 'querystring') {
    const name = e.instancePath.split('/')[1] ?? '';
    const rule = QUERY_RULES[name];
    const got = (query as Record<string, unknown> | undefined)?.[name];
    if (rule !== undefined) {
      return `query parameter ${name} must be ${rule}, got ${JSON.stringify(got)}`;
    }
    if (e.keyword === 'additionalProperties') {
      return `unknown query parameter ${JSON.stringify(e.params.additionalProperty)} (parameters: ${LIST_PARAMETERS}, ` +
        'where KEY is a metadata key and a repeated metadata.KEY means any of its values)';
    }
  }
  if (context === 'params') {
    return e.keyword === 'minLength' ? 'the id in the path must not be empty' : `the id in the path ${e.message ?? 'is invalid'}`;
  }
  const where = context === 'querystring' ? 'query' : context;
  const at = `${where}${dottedPath(e.instancePath)}`;
  switch (e.keyword) {
    case 'additionalProperties':
      return `${at} has an unknown field ${JSON.stringify(e.params.additionalProperty)} (fields are snake_case, e.g. created_at)`;
    case 'required':
      return `${at} is missing the required field ${JSON.stringify(e.params.missingProperty)}`;
    case 'enum':
      return `${at} must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'type':
      return `${at} must be ${e.params.type === 'integer' ? 'an integer' : `of type ${String(e.params.type)}`}`;
    default:
      return `${at} ${e.message ?? 'is invalid'}`;
  }
}

/** Whether `error` is a store error (TierStoreError or an Error with a store code). */
export function storeErrorCode(error: unknown): ErrorCode | undefined {
  if (error instanceof TierStoreError) return error.code;
  return undefined;
}

/** The API's camelCase names, as the wire spells them. */
const WIRE_WORDS = /\b(createdAt|createdAfter|createdBefore|minConfidence|minActivation|includeEmbeddings?|nextCursor|lastAccessAt|accessCount|maxContentBytes)\b/g;

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Which request shape a field is named in: a body (create, recall) or the list's query parameters. */
export type WireShape = 'create' | 'recall' | 'list';

/**
 * The wire path of a library error's `field` (TierStoreError.field): the
 * one place where the library's names become the request's. Names are
 * snake_case (`filter.createdAfter` -> `filter.created_after`), metadata
 * keys are kept as they are (`filter.metadata.myKey[2]`), and the roots
 * become the request's: put()'s `memory.x` is the body's `x`, recall's
 * `query` is `embedding`, and a list's `filter.x` is the query parameter `x`
 * (`filter.metadata.k` -> `metadata.k`). Batch paths pass through
 * (`memories[3].embedding`). '' is the body itself.
 */
export function wireField(field: string, shape: WireShape): string {
  // Everything after a `metadata` segment is a user's key: kept verbatim.
  const m = /(?:^|[.\]])metadata(?=$|[.[])/.exec(field);
  const cut = m === null ? field.length : m.index + m[0].length;
  let path = field.slice(0, cut).replace(/[A-Za-z_][A-Za-z0-9_]*/g, snake) + field.slice(cut);
  if (shape === 'create' && /^memory(?=$|[.[])/.test(path)) path = path.slice('memory'.length).replace(/^\./, '');
  if (shape === 'recall' && /^query(?=$|\[)/.test(path)) path = `embedding${path.slice('query'.length)}`;
  if (shape === 'list' && path.startsWith('filter.')) path = path.slice('filter.'.length);
  return path;
}

/** How a message names a wire path: `body.x` (`body` itself for ''), or `query parameter x`. */
function wireLocation(path: string, shape: WireShape): string {
  if (shape === 'list') return `query parameter ${path}`;
  return path === '' ? 'body' : path.startsWith('[') ? `body${path}` : `body.${path}`;
}

/**
 * The message of a library error as the wire names things: the value the
 * error is about (its `field`) is named by its wire path (wireField), the
 * method prefix (`recallAsync(): `) is dropped and the API's camelCase names
 * in the rest of the message are spelled snake_case.
 */
export function wireMessage(error: { message: string; field?: string | undefined }, shape: WireShape | undefined): string {
  const message = error.message.replace(/^[A-Za-z]+\(\): /, '');
  const words = (text: string) => text.replace(/\boptions\./g, '').replace(WIRE_WORDS, snake);
  const field = error.field;
  if (field === undefined || shape === undefined) return words(message);
  const location = wireLocation(wireField(field, shape), shape);
  const named = message.startsWith('options.') ? message.slice('options.'.length) : message;
  return named.startsWith(field) ? location + words(named.slice(field.length)) : `${location}: ${words(message)}`;
}
