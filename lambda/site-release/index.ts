// VersionedSite release custom resource (Provider framework onEvent / isComplete).
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { CloudFrontClient } from '@aws-sdk/client-cloudfront';
import { S3Client } from '@aws-sdk/client-s3';
import { SITE_RELEASES_PREFIX } from '../../lib/private/contract';
import { SITE_POOL_PREFIX } from '../../lib/private/site-contract';
import { activateRelease, invalidationsComplete, recordRelease } from './activate';
import { deleteKeys, listKeys } from './bucket';
import { CloudFrontKeyValueStoreClient, kvsClient } from './kvs';
import { log } from './log';
import { pruneReleases } from './prune';
import { uploadRelease } from './upload';

/** ResourceProperties of Custom::CdkRollbackSiteRelease (strings, as CloudFormation sends them). */
export interface ReleaseProps {
  readonly BucketName: string;
  readonly DistributionId: string;
  readonly KvsArn: string;
  readonly AssetBucket: string;
  readonly AssetKey: string;
  readonly ReleaseId: string;
  readonly SourceHash: string;
  readonly ImmutablePattern: string;
  readonly RetainReleases: string;
  readonly WaitForInvalidation: string;
  readonly RemovalPolicy: string;
  readonly Concurrency?: string;
}

export interface OnEventResponse {
  PhysicalResourceId: string;
  Data?: { ReleaseId: string; PreviousReleaseId: string; InvalidationIds: string };
}

export interface IsCompleteEvent {
  RequestType: string;
  ResourceProperties: ReleaseProps;
  Data?: { InvalidationIds?: string };
}

/** Clients; tests replace them. */
export const clients: { s3: () => S3Client; cloudfront: () => CloudFrontClient; kvs: () => CloudFrontKeyValueStoreClient } = {
  s3: () => new S3Client({}),
  cloudfront: () => new CloudFrontClient({}),
  kvs: () => kvsClient(),
};

const info = (line: string) => log('info', line);

export async function onEvent(event: CloudFormationCustomResourceEvent): Promise<OnEventResponse> {
  log('info', 'event', { ...event });
  const props = event.ResourceProperties as unknown as ReleaseProps;
  const physicalId = `${props.BucketName}/site-release`;
  const s3 = clients.s3();

  if (event.RequestType === 'Delete') {
    if (props.RemovalPolicy === 'destroy') {
      for (const prefix of [SITE_RELEASES_PREFIX, SITE_POOL_PREFIX, '_cdk-rollback/']) {
        const keys = [...(await listKeys(s3, props.BucketName, prefix)).keys()];
        await deleteKeys(s3, props.BucketName, keys);
        info(`removalPolicy destroy: deleted ${keys.length} object(s) under ${prefix}`);
      }
    } else {
      info('Delete: releases are kept (removalPolicy retain)');
    }
    return { PhysicalResourceId: event.PhysicalResourceId };
  }

  // Create, Update, and the Update CloudFormation sends with the old properties during a rollback: the same
  // steps. The old release still exists (active and previous are never pruned), so its upload is a no-op.
  const releaseId = props.ReleaseId;
  let upload;
  try {
    upload = await uploadRelease({
      s3, assetBucket: props.AssetBucket, assetKey: props.AssetKey, bucketName: props.BucketName, releaseId,
      sourceHash: props.SourceHash, immutable: new RegExp(props.ImmutablePattern),
      concurrency: props.Concurrency ? Number(props.Concurrency) : undefined, log: info,
    });
  } catch (e) {
    log('error', `upload of release ${releaseId} failed: the active release is unchanged`, { error: String(e) });
    await recordRelease(s3, props.BucketName, { id: releaseId, createdAt: new Date().toISOString(), sourceHash: props.SourceHash, status: 'failed' })
      .catch((err) => log('warn', 'could not record the failed release', { error: String(err) }));
    throw e;
  }
  if (!upload.alreadyComplete) {
    await recordRelease(s3, props.BucketName, { id: releaseId, createdAt: upload.manifest.createdAt, sourceHash: props.SourceHash, status: 'retained' });
  }
  const result = await activateRelease({
    kvsArn: props.KvsArn, bucketName: props.BucketName, distributionId: props.DistributionId, releaseId,
    waitForInvalidation: false, log: info, clients: { s3, kvs: clients.kvs(), cloudfront: clients.cloudfront() },
  });
  await pruneReleases(s3, props.BucketName, Number(props.RetainReleases), info);
  const response = {
    PhysicalResourceId: physicalId,
    Data: { ReleaseId: releaseId, PreviousReleaseId: result.previousReleaseId ?? '', InvalidationIds: result.invalidationIds.join(',') },
  };
  log('info', 'response', { ...response });
  return response;
}

export async function isComplete(event: IsCompleteEvent): Promise<{ IsComplete: boolean }> {
  const props = event.ResourceProperties;
  const ids = (event.Data?.InvalidationIds ?? '').split(',').filter((s) => s.length > 0);
  if (event.RequestType === 'Delete' || props.WaitForInvalidation !== 'true' || ids.length === 0) return { IsComplete: true };
  const done = await invalidationsComplete(clients.cloudfront(), props.DistributionId, ids);
  log('info', done ? 'invalidations complete' : 'waiting for invalidations', { ids });
  return { IsComplete: done };
}

