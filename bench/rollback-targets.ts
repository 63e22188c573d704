/**
 * The targets both CLI benchmarks roll back (bench/cli.ts, bench/cli-latency.ts): function `orders` (versions 1-3,
 * live 3, stable 2, CodeDeploy tags) and site bucket `bench-site` with releases r3 (active), r2, r1. Created straight
 * against moto (process.env points the SDK at it), not through a benchmark's proxy.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SITE_HISTORY_KEY } from '../lambda/shared/contract';
import { createApi, createDistribution, createSiteBucket } from '../test/fixtures/cli/aws';

export const BENCH_SITE_BUCKET = 'bench-site';

const RELEASES = [
  { id: 'r3', createdAt: '2026-01-03T00:00:00Z', status: 'active' as const },
  { id: 'r2', createdAt: '2026-01-02T00:00:00Z', status: 'previous' as const },
  { id: 'r1', createdAt: '2026-01-01T00:00:00Z', status: 'retained' as const },
];

/** Creates the function and the site; returns the distribution id. */
export async function createRollbackTargets(): Promise<string> {
  await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
  await createSiteBucket(BENCH_SITE_BUCKET, RELEASES);
  return createDistribution(BENCH_SITE_BUCKET);
}

/** Puts the release history back as created (before the next `site rollback`). */
export async function resetSiteHistory(s3: S3Client): Promise<void> {
  await s3.send(new PutObjectCommand({
    Bucket: BENCH_SITE_BUCKET, Key: SITE_HISTORY_KEY,
    Body: JSON.stringify({ releases: RELEASES.map((r) => ({ ...r, sourceHash: `hash-${r.id}` })) }),
  }));
}
