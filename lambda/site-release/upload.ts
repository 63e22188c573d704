// Uploads one release from the CDK asset zip to the site bucket: streamed from S3 by ranged GETs (no /tmp),
// bounded parallelism, only what the bucket does not already hold, manifest last.
import { promisify } from 'util';
import * as zlib from 'zlib';
import { PutObjectCommand, PutObjectCommandInput, S3Client } from '@aws-sdk/client-s3';
import * as mime from 'mime-types';
import { SITE_RELEASES_PREFIX } from '../../lib/private/contract';
import {
  CACHE_IMMUTABLE, CACHE_REVALIDATE, ManifestFile, ReleaseManifest, SITE_POOL_PREFIX,
} from '../../lib/private/site-contract';
import { getManifest, listKeys, manifestKey, putJson } from './bucket';
import { isTransient, runBounded, withRetry } from './retry';
import { S3ZipSource, ZipEntry, entrySpan, localDataStart, readDirectory } from './zip';

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

const crc32: ((data: Buffer) => number) | undefined = (zlib as unknown as { crc32?: (d: Buffer) => number }).crc32;

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
  const planned: Planned[] = [];
  const seen = new Set<string>();
  for (const entry of dir.entries) {
    if (entry.name.endsWith('/')) continue;
    const path = checkPath(entry.name);
    if (seen.has(path)) throw new Error(`the site source holds ${path} twice`);
    seen.add(path);
    const pooled = opts.immutable.test(`/${path}`);
    const key = pooled ? `${SITE_POOL_PREFIX}${path}` : `${SITE_RELEASES_PREFIX}${releaseId}/${path}`;
    planned.push({ entry, path, key, pooled });
  }
  if (planned.length === 0) throw new Error(`the site source s3://${opts.assetBucket}/${opts.assetKey} holds no file`);

  // What the bucket already holds: a release prefix is content-addressed (a key there is complete and right),
  // a pool key names a content hash (same name and size: same bytes).
  const [inRelease, inPool] = await Promise.all([
    listKeys(s3, bucketName, `${SITE_RELEASES_PREFIX}${releaseId}/`),
    planned.some((p) => p.pooled) ? listKeys(s3, bucketName, SITE_POOL_PREFIX) : Promise.resolve(new Map<string, number>()),
  ]);
  const overwritten: string[] = [];
  const todo = planned.filter((p) => {
    const size = p.pooled ? inPool.get(p.key) : inRelease.get(p.key);
    if (size === undefined) return true;
    if (size === p.entry.size) return false;
    if (p.pooled) overwritten.push(`/${p.path}`);
    return true;
  });
  if (overwritten.length > 0) {
    log(`warning: ${overwritten.length} pooled file(s) changed content under the same name (not content-hashed?), e.g. ${overwritten[0]}`);
  }
  log(`release ${releaseId}: ${planned.length} files, ${todo.length} to upload, ${planned.length - todo.length} already in the bucket`);

  const concurrency = opts.concurrency ?? 16;
  const batchBytes = opts.batchBytes ?? 512 * 1024;
  let uploadedBytes = 0;

  const put = async (p: Planned, body: PutObjectCommandInput['Body']): Promise<void> => {
    await withRetry(`PutObject ${p.key}`, () => s3.send(new PutObjectCommand({
      Bucket: bucketName,
      Key: p.key,
      Body: body,
      ContentLength: p.entry.size,
      ContentType: contentTypeOf(p.path),
      CacheControl: cacheControlOf(p.pooled),
    })), isTransient);
    uploadedBytes += p.entry.size;
  };

  const decode = async (p: Planned, raw: Buffer): Promise<Buffer> => {
    const data = p.entry.method === 8 ? await inflateRaw(raw) : raw;
    if (data.length !== p.entry.size || (crc32 && crc32(data) >>> 0 !== p.entry.crc32 >>> 0)) {
      throw new Error(`zip entry ${p.path} is corrupt (size or CRC-32 mismatch)`);
    }
    return data;
  };

  // Group consecutive entries into ranged GETs of at most batchBytes; a big entry is streamed on its own.
  todo.sort((a, b) => a.entry.offset - b.entry.offset);
  const groups: Planned[][] = [];
  let group: Planned[] = [];
  let groupStart = 0;
  for (const p of todo) {
    const end = p.entry.offset + entrySpan(p.entry);
    if (group.length > 0 && end - groupStart <= batchBytes) {
      group.push(p);
      continue;
    }
    if (group.length > 0) groups.push(group);
    group = [p];
    groupStart = p.entry.offset;
  }
  if (group.length > 0) groups.push(group);

  const fetchSingle = async (p: Planned): Promise<void> => {
    const headEnd = Math.min(dir.centralDirectoryOffset, p.entry.offset + entrySpan(p.entry) - p.entry.compressedSize);
    const head = await withRetry('GetObject range', () => zip.range(p.entry.offset, headEnd));
    const start = p.entry.offset + localDataStart(head, 0, p.entry);
    if (p.entry.compressedSize <= batchBytes) {
      const raw = await withRetry('GetObject range', () => zip.range(start, start + p.entry.compressedSize));
      await put(p, await decode(p, raw));
      return;
    }
    // Large file: stream it through the inflater straight into PutObject (length known from the directory).
    // A failed PutObject cannot replay a consumed stream, so each attempt opens a new ranged GET.
    await withRetry(`PutObject ${p.key}`, async () => {
      const body = await zip.stream(start, start + p.entry.compressedSize);
      const data = p.entry.method === 8 ? body.pipe(zlib.createInflateRaw()) : body;
      await s3.send(new PutObjectCommand({
        Bucket: bucketName, Key: p.key, Body: data, ContentLength: p.entry.size,
        ContentType: contentTypeOf(p.path), CacheControl: cacheControlOf(p.pooled),
      }));
    });
    uploadedBytes += p.entry.size;
  };

  const fetchers = Math.max(1, Math.ceil(concurrency / 4));
  // A group's puts run `concurrency / fetchers` at a time; fetchers x batchBytes bounds the buffered bytes.
  const putsPerGroup = Math.max(1, Math.floor(concurrency / fetchers));
  await runBounded(groups, fetchers, async (g) => {
    if (g.length === 1 && g[0].entry.compressedSize > batchBytes) return fetchSingle(g[0]);
    const start = g[0].entry.offset;
    const last = g[g.length - 1].entry;
    const end = Math.min(dir.centralDirectoryOffset, last.offset + entrySpan(last));
    const buf = await withRetry('GetObject range', () => zip.range(start, end));
    await runBounded(g, putsPerGroup, async (p) => {
      const at = p.entry.offset - start;
      const dataStart = localDataStart(buf, at, p.entry);
      if (dataStart + p.entry.compressedSize > buf.length) return fetchSingle(p); // unusually long local extra field
      await put(p, await decode(p, buf.subarray(dataStart, dataStart + p.entry.compressedSize)));
    });
  });

  const files: Record<string, ManifestFile> = {};
  for (const p of [...planned].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    files[p.path] = { size: p.entry.size, crc32: p.entry.crc32 >>> 0, pooled: p.pooled };
  }
  const manifest: ReleaseManifest = {
    version: 1, id: releaseId, sourceHash: opts.sourceHash, createdAt: (opts.now?.() ?? new Date()).toISOString(), files,
    ...(overwritten.length > 0 ? { overwrittenPoolPaths: overwritten.sort() } : {}),
  };
  // Written last: from now on the release exists and may be activated.
  await putJson(s3, bucketName, manifestKey(releaseId), manifest);
  log(`release ${releaseId}: uploaded ${todo.length} files (${uploadedBytes} bytes)`);
  return {
    alreadyComplete: false, files: planned.length, uploaded: todo.length, skipped: planned.length - todo.length,
    uploadedBytes, overwrittenPoolPaths: overwritten, manifest,
  };
}
