// VersionedSite release custom resource (Provider framework onEvent / isComplete).
//
// Decides from intent (OldResourceProperties and the stack status read with DescribeStacks), never from the
// current state alone:
// - Create / forward Update (new ReleaseId): upload, record what actually served (the KVS `active` key) in
//   _cdk-rollback/deployments.json, activate, invalidate, prune.
// - Update whose ReleaseId (and bucket, store) equal the old ones: housekeeping only; the pointer never moves, so an
//   operator's `cdk-rollback site rollback` stands.
// - Rollback Update (stack *ROLLBACK_IN_PROGRESS): restores what served before the failed update began (the
//   record of the deploy it undoes), uploads nothing, never throws.
// - Retried event (same RequestId): finds its own record and resumes; housekeeping failures are only logged.
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { CloudFrontClient } from '@aws-sdk/client-cloudfront';
import { S3Client } from '@aws-sdk/client-s3';
import { SITE_RELEASES_PREFIX } from '../shared/contract';
import { SITE_POOL_PREFIX } from '../shared/site-contract';
import { activateRelease, ActivateResult, invalidationsComplete, readPointer, recordRelease } from './activate';
import { deleteKeys, getManifest, listKeys } from './bucket';
import { DeploymentRecord, deployToUndo, readDeployments, saveDeployment, stackPhase } from './intent';
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

/** What onEvent did: `release` (Create, forward Update), `housekeeping` (same release), `rollback` (stack rollback). */
export type ReleaseAction = 'release' | 'housekeeping' | 'rollback';

export interface OnEventResponse {
  PhysicalResourceId: string;
  Data?: {
    ReleaseId: string; PreviousReleaseId: string; InvalidationIds: string;
    /** The release the KeyValueStore's `active` key names after the event. */
    ActiveReleaseId?: string;
    Action?: ReleaseAction;
    /** When onEvent began (ISO 8601): bounds the rollback's wait for its invalidations. */
    StartedAt?: string;
  };
}

export interface IsCompleteEvent {
  RequestType: string;
  ResourceProperties: ReleaseProps;
  Data?: { InvalidationIds?: string; Action?: string; StartedAt?: string };
}

/** Clients; tests replace them. */
export const clients: {
  s3: () => S3Client; cloudfront: () => CloudFrontClient; kvs: () => CloudFrontKeyValueStoreClient; cloudformation: () => CloudFormationClient;
} = {
  s3: () => new S3Client({}),
  cloudfront: () => new CloudFrontClient({}),
  kvs: () => kvsClient(),
  cloudformation: () => new CloudFormationClient({}),
};

/**
 * How long the rollback Update's isComplete waits for its invalidations before it reports completion anyway
 * (well inside the Provider's 30-minute total timeout: a rollback must never time out).
 */
export const ROLLBACK_INVALIDATION_WAIT_MS = 10 * 60_000;

const info = (line: string) => log('info', line);
const warn = (message: string, e: unknown) => log('warn', message, { error: String(e) });

/** The target of a release resource: an Update that changes none of these moves nothing that serves traffic. */
function sameTarget(p: ReleaseProps, old: Partial<ReleaseProps>): boolean {
  return p.ReleaseId === old.ReleaseId && p.BucketName === old.BucketName && p.KvsArn === old.KvsArn;
}

function retainOf(p: ReleaseProps): number {
  const n = Number(p.RetainReleases);
  return Number.isInteger(n) && n >= 1 ? n : 10;
}

/** Retention never fails an event: it logs and carries on. Never prunes the active or previous release. */
async function housekeeping(s3: S3Client, props: ReleaseProps, protect: (string | undefined)[] = []): Promise<void> {
  try {
    let pointer: { active?: string; previous?: string } = {};
    try {
      pointer = await readPointer(clients.kvs(), props.KvsArn);
    } catch (e) {
      warn('could not read the KeyValueStore before pruning: keeping what the history marks active and previous', e);
    }
    await pruneReleases(s3, props.BucketName, retainOf(props), info, [pointer.active, pointer.previous, ...protect]);
  } catch (e) {
    warn('retention failed: no release was lost, pruning resumes with the next release', e);
  }
}

export async function onEvent(event: CloudFormationCustomResourceEvent): Promise<OnEventResponse> {
  log('info', 'event', { ...event });
  const props = event.ResourceProperties as unknown as ReleaseProps;
  const physicalId = `${props.BucketName}/site-release`;
  const s3 = clients.s3();
  const startedAt = new Date().toISOString();

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

  if (event.RequestType === 'Update') {
    const old = event.OldResourceProperties as Partial<ReleaseProps>;
    if (sameTarget(props, old)) {
      info(`Update with the same release ${props.ReleaseId}: housekeeping only, the active release is left as it is`);
      await housekeeping(s3, props);
      const response = {
        PhysicalResourceId: physicalId,
        Data: { ReleaseId: props.ReleaseId, PreviousReleaseId: '', InvalidationIds: '', Action: 'housekeeping' as const, StartedAt: startedAt },
      };
      log('info', 'response', { ...response });
      return response;
    }
    const { phase, status } = await stackPhase(clients.cloudformation(), event.StackId, info);
    if (phase === 'rollback') {
      info(`stack ${status}: restoring what served before the failed update (leaving ${old.ReleaseId})`);
      return rollback(event, props, old, s3, physicalId, startedAt);
    }
    if (phase === 'unknown') info('stack status unknown: treating the Update as a forward release');
  }
  return release(event, props, s3, physicalId, startedAt);
}

/** Create or forward Update: upload, record what served, activate, invalidate, prune. Throws on failure. */
async function release(
  event: CloudFormationCustomResourceEvent, props: ReleaseProps, s3: S3Client, physicalId: string, startedAt: string,
): Promise<OnEventResponse> {
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
    await recordRelease(s3, props.BucketName, { id: releaseId, createdAt: upload.manifest.createdAt, sourceHash: props.SourceHash, status: 'retained' })
      .catch((err) => warn('could not record the uploaded release in the history', err));
  }

  // What actually serves, recorded before the pointer moves (a retried event keeps its first record).
  const kvs = clients.kvs();
  const records = await readDeployments(s3, props.BucketName);
  let record: DeploymentRecord | undefined = records.find((r) => r.requestId === event.RequestId);
  if (record) {
    info(`retried request ${event.RequestId}: resuming (${record.servedBefore ?? 'nothing'} served before it)`);
  } else {
    const { active } = await readPointer(kvs, props.KvsArn);
    record = {
      requestId: event.RequestId, kind: 'deploy', logicalResourceId: event.LogicalResourceId,
      templateFrom: event.RequestType === 'Update' ? (event.OldResourceProperties as Partial<ReleaseProps>).ReleaseId : undefined,
      to: releaseId, servedBefore: active, startedAt,
    };
    await saveDeployment(s3, props.BucketName, record);
  }

  // A retry of a request that completed: the pointer move is a no-op and its invalidations exist already.
  const done = record.completedAt !== undefined;
  const result = await activateRelease({
    kvsArn: props.KvsArn, bucketName: props.BucketName, distributionId: props.DistributionId, releaseId,
    waitForInvalidation: false, log: info, clients: { s3, kvs, cloudfront: clients.cloudfront() },
    reference: `cdk-rollback-${event.RequestId}`, servedBefore: done ? undefined : record.servedBefore,
  });
  if (done && result.invalidationIds.length === 0) result.invalidationIds = record.invalidationIds ?? [];
  else await complete(s3, props, record, result);
  await housekeeping(s3, props, [releaseId, record.servedBefore]);
  const response = {
    PhysicalResourceId: physicalId,
    Data: {
      ReleaseId: releaseId, PreviousReleaseId: record.servedBefore ?? result.previousReleaseId ?? '', InvalidationIds: result.invalidationIds.join(','),
      ActiveReleaseId: releaseId, Action: 'release' as const, StartedAt: startedAt,
    },
  };
  log('info', 'response', { ...response });
  return response;
}

async function complete(s3: S3Client, props: ReleaseProps, record: DeploymentRecord, result: ActivateResult): Promise<void> {
  try {
    await saveDeployment(s3, props.BucketName, { ...record, invalidationIds: result.invalidationIds, completedAt: new Date().toISOString() });
  } catch (e) {
    warn('could not complete the deployment record', e);
  }
}

/**
 * The Update CloudFormation sends while rolling the stack back: puts back the release that served before the failed
 * update began (the record of the deploy it undoes; else, when the pointer still names the release being left, the
 * KVS `previous` key). Uploads nothing, starts no new release, and never throws: what it cannot do is logged with
 * the command that finishes it.
 */
async function rollback(
  event: CloudFormationCustomResourceEvent, props: ReleaseProps, old: Partial<ReleaseProps>, s3: S3Client, physicalId: string, startedAt: string,
): Promise<OnEventResponse> {
  const kvs = clients.kvs();
  const data = { ReleaseId: props.ReleaseId, PreviousReleaseId: '', InvalidationIds: '', ActiveReleaseId: '', Action: 'rollback' as const, StartedAt: startedAt };
  let target: string | undefined;
  try {
    let records: DeploymentRecord[] = [];
    try {
      records = await readDeployments(s3, props.BucketName);
    } catch (e) {
      warn('could not read the deployment records: falling back to the KeyValueStore', e);
    }
    const mine = records.find((r) => r.requestId === event.RequestId); // a retried rollback event
    const pointer = await readPointer(kvs, props.KvsArn);
    const undo = mine ? undefined : deployToUndo(records, event.LogicalResourceId, old.ReleaseId ?? '');
    if (mine) {
      target = mine.to;
    } else if (undo) {
      target = undo.servedBefore;
      info(`the failed update's deploy (request ${undo.requestId}) moved ${undo.servedBefore ?? 'nothing'} -> ${undo.to}`);
    } else if (pointer.active === old.ReleaseId) {
      target = pointer.previous ?? props.ReleaseId;
      info(`no record of the deploy to ${old.ReleaseId}: restoring the KeyValueStore's previous release`);
    } else {
      target = pointer.active;
      info(`the failed update never activated ${old.ReleaseId}: ${pointer.active ?? 'nothing'} still serves`);
    }
    if (target === undefined) {
      info('nothing served before the failed update: the pointer is left as it is');
    } else if (!(await getManifest(s3, props.BucketName, target))) {
      log('error', `release ${target} (what served before the failed update) is no longer in the bucket: the pointer is left on ` +
        `${pointer.active ?? 'nothing'}; choose a release with \`cdk-rollback site releases\` and \`cdk-rollback site rollback --to <id>\``);
      target = pointer.active;
    } else if (target === pointer.active && (!mine || mine.completedAt)) {
      info(`release ${target} already serves: nothing to restore`);
      data.InvalidationIds = (mine?.invalidationIds ?? []).join(',');
    } else {
      const record: DeploymentRecord = mine ?? {
        requestId: event.RequestId, kind: 'rollback', logicalResourceId: event.LogicalResourceId, templateFrom: old.ReleaseId,
        to: target, servedBefore: pointer.active, startedAt,
      };
      if (!mine) await saveDeployment(s3, props.BucketName, record).catch((e) => warn('could not record the rollback', e));
      const result = await activateRelease({
        kvsArn: props.KvsArn, bucketName: props.BucketName, distributionId: props.DistributionId, releaseId: target,
        waitForInvalidation: false, log: info, clients: { s3, kvs, cloudfront: clients.cloudfront() },
        reference: `cdk-rollback-${event.RequestId}`, servedBefore: record.servedBefore, invalidationBestEffort: true,
      });
      await complete(s3, props, record, result);
      data.PreviousReleaseId = record.servedBefore ?? '';
      data.InvalidationIds = result.invalidationIds.join(',');
    }
  } catch (e) {
    // Throwing here would leave the stack in UPDATE_ROLLBACK_FAILED: the worst outcome. Say what to do instead.
    log('error', `rollback Update could not restore release ${target ?? '(unknown)'}: the stack rollback continues; ` +
      `finish it with \`cdk-rollback site rollback --to ${target ?? '<id>'}\``, { error: String(e) });
  }
  data.ActiveReleaseId = target ?? '';
  await housekeeping(s3, props, [target, old.ReleaseId]);
  const response = { PhysicalResourceId: physicalId, Data: data };
  log('info', 'response', { ...response });
  return response;
}

export async function isComplete(event: IsCompleteEvent): Promise<{ IsComplete: boolean }> {
  const props = event.ResourceProperties;
  const ids = (event.Data?.InvalidationIds ?? '').split(',').filter((s) => s.length > 0);
  if (event.RequestType === 'Delete' || props.WaitForInvalidation !== 'true' || ids.length === 0) return { IsComplete: true };
  if (event.Data?.Action === 'rollback') {
    // The rollback waits for its invalidations, bounded, and never fails on them.
    const waited = Date.now() - Date.parse(event.Data.StartedAt ?? '');
    if (!(waited < ROLLBACK_INVALIDATION_WAIT_MS)) {
      log('warn', `rollback: invalidations still in progress after ${Math.round(waited / 60_000)} min; not waiting longer`, { ids });
      return { IsComplete: true };
    }
    try {
      const done = await invalidationsComplete(clients.cloudfront(), props.DistributionId, ids);
      log('info', done ? 'invalidations complete' : 'waiting for invalidations', { ids });
      return { IsComplete: done };
    } catch (e) {
      log('warn', 'rollback: could not read the invalidations; not waiting for them', { ids, error: String(e) });
      return { IsComplete: true };
    }
  }
  const done = await invalidationsComplete(clients.cloudfront(), props.DistributionId, ids);
  log('info', done ? 'invalidations complete' : 'waiting for invalidations', { ids });
  return { IsComplete: done };
}

