// The Arrow schema of a store's records (the export and arrow() scans share
// it), and native columnar chunks as Arrow record batches.
//
// Schema (every field of a Memory, none nullable):
//   id, content, metadata (JSON text), tier: utf8
//   confidence, activation: float32
//   createdAt, lastAccessAt: timestamp[ms, UTC] (int64 milliseconds since the epoch)
//   accessCount: int64
//   embedding: fixed_size_list<item: float32>[dimensions] (arrow(): only with includeEmbeddings)
// Schema metadata: tierstore.format, tierstore.dimensions, tierstore.tier.
//
// apache-arrow is loaded on first use, not with the package: it takes a
// noticeable time to load, and most hosts never scan into Arrow.
import * as nodePath from 'node:path';

import type * as Arrow from 'apache-arrow';

import type { NativeColumnChunk, NativeStringColumn } from '../native.js';
import type { TierSelector } from '../types.js';

export const FORMAT_KEY = 'tierstore.format';
export const FORMAT_VALUE = 'tierstore.memories/1';
export const DIMENSIONS_KEY = 'tierstore.dimensions';
export const TIER_KEY = 'tierstore.tier';

/** Memory fields as columns, in schema order. */
export const COLUMN_NAMES = [
  'id',
  'content',
  'metadata',
  'confidence',
  'activation',
  'createdAt',
  'lastAccessAt',
  'accessCount',
  'tier',
  'embedding',
] as const;

let loaded: typeof Arrow | undefined;
/**
 * The apache-arrow module, loaded on the first call: its ES module build
 * where Node can require one, so the batches tierstore makes are of the
 * same classes as those of a host that imports apache-arrow (the package
 * ships separate CommonJS and ES builds, and a CommonJS RecordBatch is not
 * usable with the ES build's Table); the CommonJS build otherwise.
 */
export function arrowLib(): typeof Arrow {
  if (loaded !== undefined) return loaded;
  const main = require.resolve('apache-arrow');
  try {
    loaded = require(nodePath.join(nodePath.dirname(main), 'Arrow.node.mjs')) as typeof Arrow;
  } catch {
    loaded = require(main) as typeof Arrow;
  }
  return loaded;
}

export function exportSchema(dimensions: number, tier: TierSelector, includeEmbeddings = true): Arrow.Schema {
  const arrow = arrowLib();
  const utf8 = (name: string): Arrow.Field => new arrow.Field(name, new arrow.Utf8(), false);
  const float32 = (name: string): Arrow.Field => new arrow.Field(name, new arrow.Float32(), false);
  const millis = (name: string): Arrow.Field => new arrow.Field(name, new arrow.TimestampMillisecond('UTC'), false);
  const fields = [
    utf8('id'),
    utf8('content'),
    utf8('metadata'),
    float32('confidence'),
    float32('activation'),
    millis('createdAt'),
    millis('lastAccessAt'),
    new arrow.Field('accessCount', new arrow.Int64(), false),
    utf8('tier'),
  ];
  if (includeEmbeddings) {
    fields.push(new arrow.Field(
      'embedding',
      new arrow.FixedSizeList(dimensions, new arrow.Field('item', new arrow.Float32(), false)),
      false,
    ));
  }
  return new arrow.Schema(fields, schemaMetadata(dimensions, tier));
}

export function schemaMetadata(dimensions: number, tier: TierSelector): Map<string, string> {
  return new Map([
    [FORMAT_KEY, FORMAT_VALUE],
    [DIMENSIONS_KEY, String(dimensions)],
    [TIER_KEY, tier],
  ]);
}

function utf8Data(column: NativeStringColumn, n: number): Arrow.Data<Arrow.Utf8> {
  const arrow = arrowLib();
  const data = new Uint8Array(column.data.buffer, column.data.byteOffset, column.data.byteLength);
  return arrow.makeData({ type: new arrow.Utf8(), length: n, nullCount: 0, valueOffsets: column.offsets, data });
}

/**
 * One native chunk as a RecordBatch of `schema` (from exportSchema, with or
 * without the embedding). Takes over the chunk's buffers: no copy, no JS
 * string until a value is read.
 */
export function chunkToRecordBatch(schema: Arrow.Schema, chunk: NativeColumnChunk): Arrow.RecordBatch {
  const arrow = arrowLib();
  const n = chunk.count;
  const fields = schema.fields;
  const children: Arrow.Data[] = [
    utf8Data(chunk.ids, n),
    utf8Data(chunk.contents, n),
    utf8Data(chunk.metadata, n),
    arrow.makeData({ type: new arrow.Float32(), length: n, nullCount: 0, data: chunk.confidence }),
    arrow.makeData({ type: new arrow.Float32(), length: n, nullCount: 0, data: chunk.activation }),
    arrow.makeData({ type: fields[5]!.type as Arrow.TimestampMillisecond, length: n, nullCount: 0, data: chunk.createdAt }),
    arrow.makeData({ type: fields[6]!.type as Arrow.TimestampMillisecond, length: n, nullCount: 0, data: chunk.lastAccessAt }),
    arrow.makeData({ type: new arrow.Int64(), length: n, nullCount: 0, data: chunk.accessCount }),
    utf8Data(chunk.tiers, n),
  ];
  if (fields.length > 9) {
    const type = fields[9]!.type as Arrow.FixedSizeList<Arrow.Float32>;
    const embeddings = chunk.embeddings!;
    const item = arrow.makeData({ type: new arrow.Float32(), length: embeddings.length, nullCount: 0, data: embeddings });
    children.push(arrow.makeData({ type, length: n, nullCount: 0, child: item }));
  }
  const struct = arrow.makeData({ type: new arrow.Struct(fields), length: n, nullCount: 0, children });
  return new arrow.RecordBatch(schema, struct);
}
