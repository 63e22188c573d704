// Activation of a release: shared by the release custom resource (deploy, rollback Update) and by the CLI's
// `cdk-rollback site rollback`, so the two can never drift apart. No CDK imports.
import {
  CloudFrontKeyValueStoreClient, DescribeKeyValueStoreCommand, GetKeyCommand, UpdateKeysCommand,
} from '@aws-sdk/client-cloudfront-keyvaluestore';
import { CloudFrontClient, CreateInvalidationCommand, GetInvalidationCommand } from '@aws-sdk/client-cloudfront';
import { S3Client } from '@aws-sdk/client-s3';
import { SITE_HISTORY_KEY, SITE_KVS_ACTIVE_KEY, SITE_KVS_PREVIOUS_KEY } from '../shared/contract';
import { ReleaseManifest, SITE_POOL_PREFIX } from '../shared/site-contract';
import { getManifest, getText, manifestKey, putJson } from './bucket';
import { kvsClient } from './kvs';
import { errorName, isTransient, retryPolicy, withRetry } from './retry';

export interface ActivateOptions {
  kvsArn: string;
  bucketName: string;
  distributionId: string;
  releaseId: string;
  waitForInvalidation?: boolean;
  /**
   * CallerReference prefix of the invalidations. A retried event passes the same one, so CloudFront returns the
   * invalidation it already created instead of a second one. @default - a new reference per call
   */
  reference?: string;
  /**
   * What served before this activation began, when the caller knows it (a retried event whose first attempt
   * already moved the pointer): the invalidation is then computed against it even though the pointer does not move.
   */
  servedBefore?: string;
  /** Log a failed invalidation instead of throwing (the pointer has moved by then): the rollback Update. */
  invalidationBestEffort?: boolean;
  log?: (line: string) => void;
  clients?: { kvs?: CloudFrontKeyValueStoreClient; s3?: S3Client; cloudfront?: CloudFrontClient };
}

export interface ActivateResult {
  previousReleaseId?: string;
  releaseId: string;
  /** The pointer moved in this call (false: the release was already active). */
  moved?: boolean;
  invalidationIds: string[];
  paths: string[];
}

export interface ReleaseRecord {
  id: string;
  createdAt: string;
  sourceHash: string;
  status: 'active' | 'previous' | 'retained' | 'pruned' | 'failed';
  activatedAt?: string;
}

/** CloudFront limits: paths (and wildcard paths) of the invalidations in progress at once. */
export const MAX_INVALIDATION_PATHS = 3000;
export const MAX_INVALIDATION_WILDCARDS = 15;

/** The release history, newest first; [] when there is none. */
export async function readHistory(s3: S3Client, bucketName: string): Promise<ReleaseRecord[]> {
  const text = await getText(s3, bucketName, SITE_HISTORY_KEY);
  if (text === undefined) return [];
  const parsed = JSON.parse(text) as { releases?: ReleaseRecord[] };
  return sortHistory(parsed.releases ?? []);
}

export function sortHistory(records: ReleaseRecord[]): ReleaseRecord[] {
  return [...records].sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1));
}

export async function writeHistory(s3: S3Client, bucketName: string, records: ReleaseRecord[]): Promise<void> {
  await putJson(s3, bucketName, SITE_HISTORY_KEY, { releases: sortHistory(records) });
}

/** Adds or replaces the record of one release. */
export async function recordRelease(s3: S3Client, bucketName: string, record: ReleaseRecord): Promise<void> {
  const history = (await readHistory(s3, bucketName)).filter((r) => r.id !== record.id);
  await writeHistory(s3, bucketName, [record, ...history]);
}

function isConflict(e: unknown): boolean {
  const name = errorName(e);
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return name === 'ConflictException' || name === 'PreconditionFailed' || status === 409 || status === 412;
}

async function getKey(kvs: CloudFrontKeyValueStoreClient, kvsArn: string, key: string): Promise<string | undefined> {
  try {
    const res = await withRetry(`GetKey ${key}`, () => kvs.send(new GetKeyCommand({ KvsARN: kvsArn, Key: key })),
      (e) => errorName(e) !== 'ResourceNotFoundException' && isTransient(e));
    return res.Value;
  } catch (e) {
    if (errorName(e) === 'ResourceNotFoundException') return undefined;
    throw e;
  }
}

/** The KeyValueStore's `active` and `previous` keys (undefined when absent). */
export async function readPointer(kvs: CloudFrontKeyValueStoreClient, kvsArn: string): Promise<{ active?: string; previous?: string }> {
  const active = await getKey(kvs, kvsArn, SITE_KVS_ACTIVE_KEY);
  const previous = await getKey(kvs, kvsArn, SITE_KVS_PREVIOUS_KEY);
  return { active, previous };
}

/**
 * Moves `active` to `releaseId` and `previous` to the old `active` in one UpdateKeys call guarded by the
 * store's ETag; on an ETag conflict (someone else wrote in between) it reads again and retries.
 * Returns the release that was active before, and whether the pointer moved.
 */
export async function movePointer(
  kvs: CloudFrontKeyValueStoreClient, kvsArn: string, releaseId: string, log: (line: string) => void,
): Promise<{ previous?: string; moved: boolean }> {
  for (let attempt = 0; ; attempt++) {
    const desc = await withRetry('DescribeKeyValueStore', () => kvs.send(new DescribeKeyValueStoreCommand({ KvsARN: kvsArn })), isTransient, log);
    const current = await getKey(kvs, kvsArn, SITE_KVS_ACTIVE_KEY);
    if (current === releaseId) {
      return { previous: await getKey(kvs, kvsArn, SITE_KVS_PREVIOUS_KEY), moved: false };
    }
    const puts = [{ Key: SITE_KVS_ACTIVE_KEY, Value: releaseId }];
    if (current !== undefined) puts.push({ Key: SITE_KVS_PREVIOUS_KEY, Value: current });
    try {
      await withRetry('UpdateKeys', () => kvs.send(new UpdateKeysCommand({ KvsARN: kvsArn, IfMatch: desc.ETag, Puts: puts })), isTransient, log);
      log(`key value store: ${SITE_KVS_ACTIVE_KEY} ${current ?? '(none)'} -> ${releaseId}`);
      return { previous: current, moved: true };
    } catch (e) {
      if (!isConflict(e) || attempt + 1 >= retryPolicy.maxAttempts) throw e;
      log(`key value store changed under us (${errorName(e)}), reading it again`);
      await retryPolicy.sleep(Math.min(retryPolicy.baseDelayMs * 2 ** attempt, retryPolicy.maxDelayMs));
    }
  }
}

/** `/docs/index.html` is also served as `/docs/`; `/index.html` as `/`. */
function viewerPaths(path: string): string[] {
  const out = [`/${path}`];
  if (path === 'index.html') out.push('/');
  else if (path.endsWith('/index.html')) out.push(`/${path.slice(0, -'index.html'.length)}`);
  return out;
}

/**
 * What could still serve the previous release from a cache once the pointer has moved:
 * - the viewer paths of the mutable (non-pooled) files that differ between the two releases (AWS asks for the
 *   viewer URI as well as the rewritten one when a function rewrites; the rewritten `releases/<id>/...` URIs
 *   are immutable and never need it);
 * - the pool objects the activated release overwrote with different bytes, under both URIs.
 * Above MAX_INVALIDATION_PATHS paths this collapses to `/*`.
 */
export function invalidationPaths(next: ReleaseManifest, prev: ReleaseManifest | undefined): string[] {
  const paths = new Set<string>();
  const mutable = (m: ReleaseManifest | undefined) => Object.entries(m?.files ?? {}).filter(([, f]) => !f.pooled);
  const nextFiles = new Map(mutable(next));
  const prevFiles = new Map(mutable(prev));
  for (const p of new Set([...nextFiles.keys(), ...prevFiles.keys()])) {
    const a = nextFiles.get(p);
    const b = prevFiles.get(p);
    if (!a || !b || a.size !== b.size || a.crc32 !== b.crc32) for (const v of viewerPaths(p)) paths.add(v);
  }
  for (const p of next.overwrittenPoolPaths ?? []) {
    paths.add(p);
    paths.add(`/${SITE_POOL_PREFIX}${p.slice(1)}`);
  }
  const sorted = [...paths].sort();
  return sorted.length > MAX_INVALIDATION_PATHS ? ['/*'] : sorted;
}

/** Splits paths into invalidation batches of at most 3,000 paths and 15 wildcard paths each. */
export function batchInvalidationPaths(paths: readonly string[]): string[][] {
  const batches: string[][] = [];
  let batch: string[] = [];
  let wildcards = 0;
  for (const p of paths) {
    const w = p.includes('*') ? 1 : 0;
    if (batch.length >= MAX_INVALIDATION_PATHS || wildcards + w > MAX_INVALIDATION_WILDCARDS) {
      batches.push(batch);
      batch = [];
      wildcards = 0;
    }
    batch.push(p);
    wildcards += w;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** Creates the invalidations, backing off while CloudFront answers TooManyInvalidationsInProgress. */
export async function invalidate(
  cf: CloudFrontClient, distributionId: string, paths: readonly string[], reference: string, log: (line: string) => void,
): Promise<string[]> {
  const ids: string[] = [];
  const batches = batchInvalidationPaths(paths);
  for (let i = 0; i < batches.length; i++) {
    const items = batches[i];
    const res = await withRetry('CreateInvalidation', () => cf.send(new CreateInvalidationCommand({
      DistributionId: distributionId,
      InvalidationBatch: { CallerReference: `${reference}-${i}`, Paths: { Quantity: items.length, Items: items } },
    })), (e) => errorName(e) === 'TooManyInvalidationsInProgress' || isTransient(e), log);
    ids.push(res.Invalidation!.Id!);
    log(`invalidation ${res.Invalidation!.Id} for ${items.length} path(s)`);
  }
  return ids;
}

/** true when every invalidation has completed. */
export async function invalidationsComplete(cf: CloudFrontClient, distributionId: string, ids: readonly string[]): Promise<boolean> {
  for (const id of ids) {
    const res = await withRetry('GetInvalidation', () => cf.send(new GetInvalidationCommand({ DistributionId: distributionId, Id: id })));
    if ((res.Invalidation?.Status ?? '').toLowerCase() !== 'completed') return false;
  }
  return true;
}

/**
 * The history once `manifest`'s release is active and `previous` was active before it (shared with the CLI's
 * `site rollback`, which moves the pointer itself). Mutates and returns `history`.
 */
export function markActivated(
  history: ReleaseRecord[], releaseId: string, manifest: ReleaseManifest, previous: string | undefined, moved: boolean, now: string,
): ReleaseRecord[] {
  if (!history.some((r) => r.id === releaseId)) {
    history.push({ id: releaseId, createdAt: manifest.createdAt, sourceHash: manifest.sourceHash, status: 'retained' });
  }
  for (const r of history) {
    if (r.id === releaseId) {
      r.status = 'active';
      if (moved || !r.activatedAt) r.activatedAt = now;
    } else if (r.id === previous) {
      r.status = 'previous';
    } else if (r.status === 'active' || r.status === 'previous') {
      r.status = 'retained';
    }
  }
  return history;
}

/**
 * Checks the release exists in the bucket, sets `active` (and `previous`) with the KVS ETag (retry on
 * conflict), updates the history, then invalidates exactly what a deploy invalidates. Throws if the release
 * is missing (the pointer does not move).
 */
export async function activateRelease(opts: ActivateOptions): Promise<ActivateResult> {
  const log = opts.log ?? (() => undefined);
  const s3 = opts.clients?.s3 ?? new S3Client({});
  const kvs = opts.clients?.kvs ?? kvsClient();
  const cf = opts.clients?.cloudfront ?? new CloudFrontClient({});
  const { bucketName, releaseId } = opts;

  const manifest = await getManifest(s3, bucketName, releaseId);
  if (!manifest) {
    throw new Error(`release ${releaseId} does not exist in bucket ${bucketName} (no manifest at ${manifestKey(releaseId)}): ` +
      'it was never uploaded completely or it was pruned; the active release is unchanged');
  }

  const { previous, moved } = await movePointer(kvs, opts.kvsArn, releaseId, log);
  const now = new Date().toISOString();

  // The history is bookkeeping: the pointer has moved, so a failure to write it is logged, never thrown.
  try {
    await writeHistory(s3, bucketName, markActivated(await readHistory(s3, bucketName), releaseId, manifest, previous, moved, now));
  } catch (e) {
    log(`warning: could not update the release history (the pointer moved all the same): ${String(e)}`);
  }

  // What the caches may hold: the release that served before. Normally the old `active`; for a retried event whose
  // first attempt already moved the pointer, the release its caller recorded as serving before.
  const before = moved ? previous : opts.servedBefore !== releaseId ? opts.servedBefore : undefined;
  if (!moved && before === undefined) {
    log(`release ${releaseId} is already active: nothing to invalidate`);
    return { previousReleaseId: previous, releaseId, moved, invalidationIds: [], paths: [] };
  }
  const prevManifest = before ? await getManifest(s3, bucketName, before) : undefined;
  // A previous release whose manifest is gone cannot be compared file by file: invalidate everything.
  // First release: nothing was served from this bucket before, so no cache can hold a previous release.
  const paths = !before ? [] : !prevManifest ? ['/*'] : invalidationPaths(manifest, prevManifest);
  let invalidationIds: string[] = [];
  try {
    invalidationIds = paths.length > 0
      ? await invalidate(cf, opts.distributionId, paths, opts.reference ?? `cdk-rollback-${releaseId}-${Date.now()}`, log)
      : [];
  } catch (e) {
    if (!opts.invalidationBestEffort) throw e;
    log(`warning: release ${releaseId} is active but the invalidation failed; invalidate ${paths.join(' ')} by hand: ${String(e)}`);
    return { previousReleaseId: previous, releaseId, moved, invalidationIds: [], paths };
  }
  if (opts.waitForInvalidation && invalidationIds.length > 0) {
    for (let attempt = 0; !(await invalidationsComplete(cf, opts.distributionId, invalidationIds)); attempt++) {
      log(`waiting for invalidation(s) ${invalidationIds.join(', ')}`);
      await retryPolicy.sleep(Math.min(retryPolicy.baseDelayMs * 2 ** attempt, retryPolicy.maxDelayMs));
    }
  }
  return { previousReleaseId: previous, releaseId, moved, invalidationIds, paths };
}
