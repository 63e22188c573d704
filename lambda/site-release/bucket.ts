// Small S3 helpers shared by upload, activation and pruning.
import {
  DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { SITE_MANIFESTS_PREFIX, ReleaseManifest } from '../shared/site-contract';
import { isTransient, withRetry } from './retry';

export function manifestKey(releaseId: string): string {
  return `${SITE_MANIFESTS_PREFIX}${releaseId}.json`;
}

function isNotFound(e: unknown): boolean {
  const name = (e as { name?: string }).name;
  return name === 'NoSuchKey' || name === 'NotFound' || (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404;
}

/** The object's text, or undefined when it does not exist. */
export async function getText(s3: S3Client, bucket: string, key: string): Promise<string | undefined> {
  try {
    const res = await withRetry(`GetObject ${key}`, () => s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })),
      (e) => !isNotFound(e) && isTransient(e));
    return await res.Body!.transformToString();
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

export async function putJson(s3: S3Client, bucket: string, key: string, value: unknown): Promise<void> {
  await withRetry(`PutObject ${key}`, () => s3.send(new PutObjectCommand({
    Bucket: bucket, Key: key, Body: JSON.stringify(value, null, 1), ContentType: 'application/json', CacheControl: 'no-store',
  })));
}

export async function getManifest(s3: S3Client, bucket: string, releaseId: string): Promise<ReleaseManifest | undefined> {
  const text = await getText(s3, bucket, manifestKey(releaseId));
  return text === undefined ? undefined : JSON.parse(text) as ReleaseManifest;
}

/** Every key under `prefix` with its size. */
export async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<Map<string, number>> {
  const keys = new Map<string, number>();
  let token: string | undefined;
  do {
    const page = await withRetry(`ListObjectsV2 ${prefix}`, () => s3.send(new ListObjectsV2Command({
      Bucket: bucket, Prefix: prefix, ContinuationToken: token,
    })));
    for (const o of page.Contents ?? []) keys.set(o.Key!, o.Size ?? 0);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Deletes `keys` (1,000 per request); throws when S3 reports a key it could not delete. */
export async function deleteKeys(s3: S3Client, bucket: string, keys: readonly string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const chunk = keys.slice(i, i + 1000);
    const res = await withRetry('DeleteObjects', () => s3.send(new DeleteObjectsCommand({
      Bucket: bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true },
    })));
    if (res.Errors && res.Errors.length > 0) {
      throw new Error(`could not delete ${res.Errors.length} object(s) from ${bucket}: ${res.Errors.slice(0, 3).map((e) => `${e.Key}: ${e.Code}`).join(', ')}`);
    }
  }
}
