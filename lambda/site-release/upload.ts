// Uploads one release from the CDK asset zip to the site bucket: streamed from S3 by ranged GETs (no /tmp),
// bounded parallelism, only what the bucket does not already hold, manifest last.
import { pipeline } from 'stream';
import { promisify } from 'util';
import * as zlib from 'zlib';
import { ListObjectsV2Command, PutObjectCommand, PutObjectCommandInput, S3Client } from '@aws-sdk/client-s3';
import * as mime from 'mime-types';
import { SITE_RELEASES_PREFIX } from '../shared/contract';
import {
  CACHE_IMMUTABLE, CACHE_REVALIDATE, ManifestFile, ReleaseManifest, SITE_MANIFESTS_PREFIX, SITE_POOL_PREFIX,
} from '../shared/site-contract';
import { getManifest, getText, manifestKey, putJson } from './bucket';
import { isTransient, runBounded, withRetry } from './retry';
import {
  EntryCheck, S3ZipSource, ZipEntry, checkEntry, crc32Base64, entrySpan, localDataStart, readDirectory,
} from './zip';

const inflateRaw = promisify(zlib.inflateRaw);

export interface UploadOptions {
  readonly s3: S3Client;
  /** Where CDK published the site's asset zip. */
  readonly assetBucket: string;
  readonly assetKey: string;
  readonly bucketName: string;
  readonly releaseId: string;
  readonly sourceHash: string;
  /** The immutable-path rule (tested against `/<path>`), the same one the router uses. */
  readonly immutable: RegExp;
  /** Parallel PutObject requests. @default 16 */
  readonly concurrency?: number;
  /** Consecutive small entries are fetched from the zip with one ranged GET of up to this many bytes. @default 512 KiB */
  readonly batchBytes?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => Date;
}

export interface UploadResult {
  /** The release already existed (its manifest was there): nothing was read or written. */
  readonly alreadyComplete: boolean;
  readonly files: number;
  readonly uploaded: number;
  readonly skipped: number;
  readonly uploadedBytes: number;
  /** Viewer paths (`/assets/x.js`) of pool objects this release replaced with different bytes. */
  readonly overwrittenPoolPaths: string[];
  readonly manifest: ReleaseManifest;
}

interface Planned {
  readonly entry: ZipEntry;
  readonly path: string;
  readonly key: string;
  readonly pooled: boolean;
}

/** A key of the bucket as ListObjectsV2 reports it. */
interface Listed {
  readonly size: number;
  /** The ETag without quotes: the MD5 of the bytes for an object written by one PutObject (SSE-S3). */
  readonly etag: string;
}

/** Content of a pool key as a release manifest recorded it when that release uploaded or found it. */
interface PoolRecord {
  readonly size: number;
  readonly crc32: number;
  readonly etag: string;
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^"|"$/g, '');
}

/** Every key under `prefix` with its size and ETag. */
async function listObjects(s3: S3Client, bucket: string, prefix: string): Promise<Map<string, Listed>> {
  const out = new Map<string, Listed>();
  let token: string | undefined;
  do {
    const page = await withRetry(`ListObjectsV2 ${prefix}`, () => s3.send(new ListObjectsV2Command({
      Bucket: bucket, Prefix: prefix, ContinuationToken: token,
    })));
    for (const o of page.Contents ?? []) out.set(o.Key!, { size: o.Size ?? 0, etag: unquote(o.ETag) });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/**
 * What the release manifests in the bucket say about the pool: for each pool key, the (size, CRC-32, ETag)
 * triples some release recorded for it. A manifest that cannot be read or parsed is left out (its files are
 * then uploaded again rather than trusted).
 */
async function poolRecords(s3: S3Client, bucket: string, log: (line: string) => void): Promise<Map<string, PoolRecord[]>> {
  const keys = [...(await listObjects(s3, bucket, SITE_MANIFESTS_PREFIX)).keys()].filter((k) => k.endsWith('.json')).sort();
  const records = new Map<string, PoolRecord[]>();
  await runBounded(keys, 8, async (key) => {
    const text = await getText(s3, bucket, key);
    let manifest: ReleaseManifest | undefined;
    try {
      manifest = text === undefined ? undefined : JSON.parse(text) as ReleaseManifest;
    } catch {
      log(`warning: ${key} is not valid JSON; its pool files are not trusted`);
    }
    for (const [path, f] of Object.entries(manifest?.files ?? {})) {
      if (!f.pooled || typeof f.etag !== 'string') continue;
      const k = `${SITE_POOL_PREFIX}${path}`;
      const list = records.get(k) ?? [];
      list.push({ size: f.size, crc32: f.crc32 >>> 0, etag: f.etag });
      records.set(k, list);
    }
  });
  return records;
}

function checkPath(name: string): string {
  const p = name.replace(/^\.\//, '');
  if (p.startsWith('/') || p.includes('\\') || p.split('/').some((s) => s === '..' || s === '.')) {
    throw new Error(`the site source holds an unsafe path: ${JSON.stringify(name)}`);
  }
  return p;
}

export function contentTypeOf(path: string): string {
  return mime.contentType(path.split('/').pop() ?? path) || 'application/octet-stream';
}

export function cacheControlOf(pooled: boolean): string {
  return pooled ? CACHE_IMMUTABLE : CACHE_REVALIDATE;
}

/**
 * Uploads one release: plans the zip's files, skips what the bucket provably holds, uploads the rest from the zip
 * with bounded parallelism, then writes the manifest (last: from then on the release exists and may be activated).
 */
export async function uploadRelease(opts: UploadOptions): Promise<UploadResult> {
  const { s3, bucketName, releaseId } = opts;
  const log = opts.log ?? (() => undefined);
  const existing = await getManifest(s3, bucketName, releaseId);
  if (existing) {
    const n = Object.keys(existing.files).length;
    log(`release ${releaseId} is already complete (${n} files): nothing to upload`);
    return { alreadyComplete: true, files: n, uploaded: 0, skipped: n, uploadedBytes: 0, overwrittenPoolPaths: [], manifest: existing };
  }
  const zip = new S3ZipSource(s3, opts.assetBucket, opts.assetKey);
  const dir = await readDirectory(zip);
  const planned = planFiles(dir.entries, opts);
  const held = await whatTheBucketHolds(opts, planned, log);
  log(`release ${releaseId}: ${planned.length} files, ${held.todo.length} to upload, ${planned.length - held.todo.length} already in the bucket`);

  const uploader = new EntryUploader(opts, zip, dir.centralDirectoryOffset, held.etags);
  await uploader.uploadAll(held.todo);

  const overwritten = overwrittenPoolPaths(held, log);
  const manifest = releaseManifest(opts, planned, held.etags, overwritten);
  await putJson(s3, bucketName, manifestKey(releaseId), manifest);
  log(`release ${releaseId}: uploaded ${held.todo.length} files (${uploader.uploadedBytes} bytes)`);
  return {
    alreadyComplete: false, files: planned.length, uploaded: held.todo.length, skipped: planned.length - held.todo.length,
    uploadedBytes: uploader.uploadedBytes, overwrittenPoolPaths: overwritten, manifest,
  };
}

/**
 * Where each file of the zip goes: a content-hashed name (the immutable rule) into the shared pool, anything else
 * under the release's own prefix. Refuses unsafe or repeated paths, and a zip without a file.
 */
function planFiles(entries: readonly ZipEntry[], opts: UploadOptions): Planned[] {
  const planned: Planned[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    if (entry.name.endsWith('/')) continue;
    const path = checkPath(entry.name);
    if (seen.has(path)) throw new Error(`the site source holds ${path} twice`);
    seen.add(path);
    const pooled = opts.immutable.test(`/${path}`);
    const key = pooled ? `${SITE_POOL_PREFIX}${path}` : `${SITE_RELEASES_PREFIX}${opts.releaseId}/${path}`;
    planned.push({ entry, path, key, pooled });
  }
  if (planned.length === 0) throw new Error(`the site source s3://${opts.assetBucket}/${opts.assetKey} holds no file`);
  return planned;
}

/** What the bucket already holds of a release's files, and what is left to upload. */
interface Holdings {
  /** The files to upload. */
  readonly todo: Planned[];
  /** The pool as listed before the upload. */
  readonly inPool: ReadonlyMap<string, Listed>;
  /** The ETag of every key found in the bucket with these bytes; the upload adds the keys it writes. */
  readonly etags: Map<string, string>;
}

/**
 * What the bucket already holds. A release prefix is content-addressed: a key there of the right size was
 * written from this very zip (and checked against its CRC-32). A pool key is shared with other releases and is
 * skipped only when it provably holds these bytes: a release manifest recorded this size and CRC-32 for it
 * together with the ETag (MD5) the key still has. Anything else is uploaded; an existing pool key whose ETag
 * the upload changes held other bytes: it is reported as overwritten (warning, and invalidated on activation).
 */
async function whatTheBucketHolds(opts: UploadOptions, planned: readonly Planned[], log: (line: string) => void): Promise<Holdings> {
  const { s3, bucketName } = opts;
  const [inRelease, inPool] = await Promise.all([
    listObjects(s3, bucketName, `${SITE_RELEASES_PREFIX}${opts.releaseId}/`),
    planned.some((p) => p.pooled) ? listObjects(s3, bucketName, SITE_POOL_PREFIX) : Promise.resolve(new Map<string, Listed>()),
  ]);
  const sameSizeInPool = planned.some((p) => p.pooled && inPool.get(p.key)?.size === p.entry.size);
  const records = sameSizeInPool ? await poolRecords(s3, bucketName, log) : new Map<string, PoolRecord[]>();
  const etags = new Map<string, string>();
  const todo = planned.filter((p) => {
    const found = p.pooled ? inPool.get(p.key) : inRelease.get(p.key);
    if (found === undefined || found.size !== p.entry.size) return true;
    const known = !p.pooled || (records.get(p.key) ?? []).some((r) =>
      r.size === p.entry.size && r.crc32 === p.entry.crc32 >>> 0 && r.etag === found.etag);
    if (known) etags.set(p.key, found.etag);
    return !known;
  });
  return { todo, inPool, etags };
}

/**
 * Uploads entries of the asset zip to the site bucket. Consecutive small entries are fetched with one ranged GET
 * of at most `batchBytes`, inflated and checked against the zip's size and CRC-32 in memory; a big entry is
 * streamed on its own. Records the ETag of every key it writes in `etags`.
 */
class EntryUploader {
  uploadedBytes = 0;
  private readonly concurrency: number;
  private readonly batchBytes: number;

  constructor(
    private readonly opts: UploadOptions,
    private readonly zip: S3ZipSource,
    /** Where the zip's entries end (its central directory starts). */
    private readonly entriesEnd: number,
    private readonly etags: Map<string, string>,
  ) {
    this.concurrency = opts.concurrency ?? 16;
    this.batchBytes = opts.batchBytes ?? 512 * 1024;
  }

  async uploadAll(todo: Planned[]): Promise<void> {
    const groups = this.rangeGroups(todo);
    const fetchers = Math.max(1, Math.ceil(this.concurrency / 4));
    // A group's puts run `concurrency / fetchers` at a time; fetchers x batchBytes bounds the buffered bytes.
    const putsPerGroup = Math.max(1, Math.floor(this.concurrency / fetchers));
    await runBounded(groups, fetchers, async (g) => {
      if (g.length === 1 && g[0].entry.compressedSize > this.batchBytes) return this.fetchSingle(g[0]);
      const start = g[0].entry.offset;
      const last = g[g.length - 1].entry;
      const end = Math.min(this.entriesEnd, last.offset + entrySpan(last));
      const buf = await withRetry('GetObject range', () => this.zip.range(start, end));
      await runBounded(g, putsPerGroup, async (p) => {
        const at = p.entry.offset - start;
        const dataStart = localDataStart(buf, at, p.entry);
        if (dataStart + p.entry.compressedSize > buf.length) return this.fetchSingle(p); // unusually long local extra field
        await this.put(p, await decode(p, buf.subarray(dataStart, dataStart + p.entry.compressedSize)));
      });
    });
  }

  /** Consecutive entries (in zip order) grouped into ranged GETs of at most batchBytes. */
  private rangeGroups(todo: Planned[]): Planned[][] {
    const sorted = [...todo].sort((a, b) => a.entry.offset - b.entry.offset);
    const groups: Planned[][] = [];
    let group: Planned[] = [];
    let groupStart = 0;
    for (const p of sorted) {
      const end = p.entry.offset + entrySpan(p.entry);
      if (group.length > 0 && end - groupStart <= this.batchBytes) {
        group.push(p);
        continue;
      }
      if (group.length > 0) groups.push(group);
      group = [p];
      groupStart = p.entry.offset;
    }
    if (group.length > 0) groups.push(group);
    return groups;
  }

  // S3 checks the body against the zip's CRC-32 too (x-amz-checksum-crc32), and stores it with the object.
  private putInput(p: Planned, body: PutObjectCommandInput['Body']): PutObjectCommandInput {
    return {
      Bucket: this.opts.bucketName,
      Key: p.key,
      Body: body,
      ContentLength: p.entry.size,
      ContentType: contentTypeOf(p.path),
      CacheControl: cacheControlOf(p.pooled),
      ChecksumCRC32: crc32Base64(p.entry.crc32),
    };
  }

  private uploaded(p: Planned, etag: string | undefined): void {
    this.etags.set(p.key, unquote(etag));
    this.uploadedBytes += p.entry.size;
  }

  private async put(p: Planned, body: Buffer): Promise<void> {
    const res = await withRetry(`PutObject ${p.key}`, () => this.opts.s3.send(new PutObjectCommand(this.putInput(p, body))), isTransient);
    this.uploaded(p, res.ETag);
  }

  /** One entry with its own ranged GETs: in memory up to batchBytes, streamed beyond. */
  private async fetchSingle(p: Planned): Promise<void> {
    const headEnd = Math.min(this.entriesEnd, p.entry.offset + entrySpan(p.entry) - p.entry.compressedSize);
    const head = await withRetry('GetObject range', () => this.zip.range(p.entry.offset, headEnd));
    const start = p.entry.offset + localDataStart(head, 0, p.entry);
    if (p.entry.compressedSize <= this.batchBytes) {
      const raw = await withRetry('GetObject range', () => this.zip.range(start, start + p.entry.compressedSize));
      await this.put(p, await decode(p, raw));
      return;
    }
    // Large file: stream it through the inflater and the size and CRC-32 check straight into PutObject (length
    // known from the directory; the check holds back the last chunk until the entry is proven right, so a
    // corrupt entry never becomes an object). A failed PutObject cannot replay a consumed stream, so each
    // attempt opens a new ranged GET. A corrupt entry fails the upload at once (no retry).
    const res = await withRetry(`PutObject ${p.key}`, async () => {
      const body = await this.zip.stream(start, start + p.entry.compressedSize);
      const check = new EntryCheck(p.entry);
      const data = p.entry.method === 8
        ? pipeline(body, zlib.createInflateRaw(), check, () => undefined)
        : pipeline(body, check, () => undefined);
      // The SDK pipes the body into the request without watching it for errors: abort the request ourselves.
      const abort = new AbortController();
      data.once('error', () => abort.abort());
      try {
        return await this.opts.s3.send(new PutObjectCommand(this.putInput(p, data)), { abortSignal: abort.signal });
      } catch (e) {
        throw check.failure ?? e;
      } finally {
        data.destroy();
      }
    });
    this.uploaded(p, res.ETag);
  }
}

/** An entry's bytes, inflated if compressed, checked against the zip's size and CRC-32. */
async function decode(p: Planned, raw: Buffer): Promise<Buffer> {
  const data = p.entry.method === 8 ? await inflateRaw(raw) : raw;
  checkEntry(p.entry, data);
  return data;
}

/** Viewer paths (sorted) of existing pool keys the upload gave another ETag: they held other bytes under the same name. */
function overwrittenPoolPaths(held: Holdings, log: (line: string) => void): string[] {
  const overwritten = held.todo.filter((p) => p.pooled && held.inPool.has(p.key) && held.inPool.get(p.key)!.etag !== held.etags.get(p.key))
    .map((p) => `/${p.path}`).sort();
  if (overwritten.length > 0) {
    log(`warning: ${overwritten.length} pooled file(s) changed content under the same name (not content-hashed?), e.g. ${overwritten[0]}; ` +
      'overwritten, and invalidated when this release is activated');
  }
  return overwritten;
}

/** The release manifest: every file (sorted by path) with its size, CRC-32, place and ETag. */
function releaseManifest(opts: UploadOptions, planned: readonly Planned[], etags: ReadonlyMap<string, string>, overwritten: string[]): ReleaseManifest {
  const files: Record<string, ManifestFile> = {};
  for (const p of [...planned].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    const etag = etags.get(p.key);
    files[p.path] = { size: p.entry.size, crc32: p.entry.crc32 >>> 0, pooled: p.pooled, ...(etag ? { etag } : {}) };
  }
  return {
    version: 1, id: opts.releaseId, sourceHash: opts.sourceHash, createdAt: (opts.now?.() ?? new Date()).toISOString(), files,
    ...(overwritten.length > 0 ? { overwrittenPoolPaths: overwritten } : {}),
  };
}
