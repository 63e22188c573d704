/**
 * PreMigrationSnapshot custom resource (Provider framework onEvent / isComplete).
 *
 * Create, or Update with a new fingerprint (or cluster): takes a manual cluster snapshot
 * `<prefix>-<fingerprint8>-<UTC yyyymmddhhmmss>` tagged with the stack, the construct path and the fingerprint,
 * waits until it is `available`, then prunes this construct's older snapshots of the cluster beyond the retention.
 * Delete never touches a snapshot; the Update that CloudFormation sends with the old properties during a stack
 * rollback takes none. RDS control-plane API only: the function needs no VPC.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  CreateDBClusterSnapshotCommand, DBClusterSnapshot, DeleteDBClusterSnapshotCommand, DescribeDBClustersCommand,
  DescribeDBClusterSnapshotsCommand, RDSClient,
} from '@aws-sdk/client-rds';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { createHash } from 'crypto';
import {
  MANAGED_BY_VALUE, TAG_CONSTRUCT_PATH, TAG_FINGERPRINT, TAG_MANAGED_BY, TAG_STACK,
} from '../shared/contract';

/** Tag that ties a snapshot to the CloudFormation request that created it (duplicated events reuse it). */
export const TAG_REQUEST_ID = 'cdk-rollback:request-id';

export interface SnapshotProperties {
  ClusterIdentifier: string;
  Fingerprint: string;
  SnapshotPrefix: string;
  StackName: string;
  ConstructPath: string;
  RetentionCount: string;
  RetentionMaxAgeDays: string;
  /** How long to wait for a cluster that is not `available` before failing. */
  ClusterWaitSeconds: string;
}

export type OnEventRequest = CloudFormationCustomResourceEvent & { ResourceProperties: SnapshotProperties & { ServiceToken: string } };
export interface OnEventResponse { PhysicalResourceId?: string; Data?: Record<string, string> }
export type IsCompleteRequest = OnEventRequest & OnEventResponse;
export interface IsCompleteResponse { IsComplete: boolean; Data?: Record<string, string> }

function log(level: 'info' | 'warn' | 'error', message: string, extra: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ level, message, ...extra }));
}

function redact(event: object): object {
  return { ...event, ResponseURL: '(redacted)' };
}

function errorName(e: unknown): string {
  const err = e as { name?: string; Code?: string };
  return err.name ?? err.Code ?? '';
}

function isThrottling(e: unknown): boolean {
  return /Throttl|TooManyRequests|RequestLimitExceeded/.test(errorName(e));
}

/** First 8 characters of the fingerprint when it is alphanumeric, else of its sha256. */
export function fingerprint8(fingerprint: string): string {
  return /^[A-Za-z0-9]{8}/.test(fingerprint) ? fingerprint.slice(0, 8).toLowerCase()
    : createHash('sha256').update(fingerprint).digest('hex').slice(0, 8);
}

/** `<prefix>-<fingerprint8>-<UTC yyyymmddhhmmss>` */
export function snapshotIdentifier(prefix: string, fingerprint: string, now: Date): string {
  const ts = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `${prefix}-${fingerprint8(fingerprint)}-${ts}`;
}

/** `arn:<partition>:rds:<region>:<account>:cluster-snapshot:<id>`, from the stack ARN. */
function snapshotArn(stackId: string, id: string): string {
  const [, partition, , region, account] = stackId.split(':');
  return `arn:${partition}:rds:${region}:${account}:cluster-snapshot:${id}`;
}

function tagValue(s: DBClusterSnapshot, key: string): string | undefined {
  return s.TagList?.find((t) => t.Key === key)?.Value;
}

async function listClusterSnapshots(rds: RDSClient, cluster: string): Promise<DBClusterSnapshot[]> {
  const all: DBClusterSnapshot[] = [];
  let marker: string | undefined;
  do {
    const page = await rds.send(new DescribeDBClusterSnapshotsCommand({ DBClusterIdentifier: cluster, SnapshotType: 'manual', Marker: marker }));
    all.push(...(page.DBClusterSnapshots ?? []));
    marker = page.Marker;
  } while (marker);
  return all;
}

async function describeSnapshot(rds: RDSClient, id: string): Promise<DBClusterSnapshot | undefined> {
  try {
    const out = await rds.send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: id }));
    return out.DBClusterSnapshots?.[0];
  } catch (e) {
    if (errorName(e) === 'DBClusterSnapshotNotFoundFault') return undefined;
    throw e;
  }
}

async function clusterStatus(rds: RDSClient, cluster: string): Promise<string> {
  const out = await rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: cluster }));
  const status = out.DBClusters?.[0]?.Status;
  if (!status) throw new Error(`cluster ${cluster} not found`);
  return status;
}

/** Delays between DescribeStacks attempts on throttling and other transient errors; tests replace `sleep`. */
export const statusRetry = {
  delaysMs: [500, 2_000, 5_000],
  sleep: (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms)),
};

type StackPhase = 'rollback' | 'forward' | 'unknown';

/** `rollback` while CloudFormation rolls the stack back (the Update then carries the old properties). */
async function stackPhase(stackId: string): Promise<StackPhase> {
  const cfn = new CloudFormationClient({});
  for (let attempt = 0; ; attempt++) {
    try {
      const out = await cfn.send(new DescribeStacksCommand({ StackName: stackId }));
      const status = out.Stacks?.[0]?.StackStatus ?? '';
      return status.endsWith('ROLLBACK_IN_PROGRESS') ? 'rollback' : 'forward';
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0;
      if (attempt < statusRetry.delaysMs.length && (isThrottling(e) || status >= 500)) {
        await statusRetry.sleep(statusRetry.delaysMs[attempt]);
        continue;
      }
      log('warn', 'could not read the stack status', { error: String(e) });
      return 'unknown';
    }
  }
}

/** Created by this construct of this stack for the cluster, under its prefix (the snapshots retention may delete). */
function isOwn(s: DBClusterSnapshot, p: SnapshotProperties): boolean {
  return (s.DBClusterSnapshotIdentifier ?? '').startsWith(`${p.SnapshotPrefix}-`)
    && tagValue(s, TAG_MANAGED_BY) === MANAGED_BY_VALUE
    && tagValue(s, TAG_STACK) === p.StackName
    && tagValue(s, TAG_CONSTRUCT_PATH) === p.ConstructPath.slice(0, 256);
}

async function snapshotOfRequest(rds: RDSClient, cluster: string, requestId: string): Promise<DBClusterSnapshot | undefined> {
  return (await listClusterSnapshots(rds, cluster)).find((s) => tagValue(s, TAG_REQUEST_ID) === requestId);
}

type Creation = 'created' | 'cluster-busy';

/** Creates the snapshot; "already exists" means a duplicated request created it: keep waiting. */
async function createSnapshot(rds: RDSClient, id: string, p: SnapshotProperties, requestId: string): Promise<Creation> {
  try {
    await rds.send(new CreateDBClusterSnapshotCommand({
      DBClusterIdentifier: p.ClusterIdentifier,
      DBClusterSnapshotIdentifier: id,
      Tags: [
        { Key: TAG_MANAGED_BY, Value: MANAGED_BY_VALUE },
        { Key: TAG_STACK, Value: p.StackName },
        { Key: TAG_CONSTRUCT_PATH, Value: p.ConstructPath.slice(0, 256) },
        { Key: TAG_FINGERPRINT, Value: p.Fingerprint.slice(0, 256) },
        { Key: TAG_REQUEST_ID, Value: requestId },
      ],
    }));
    log('info', 'creating cluster snapshot', { snapshot: id, cluster: p.ClusterIdentifier });
    return 'created';
  } catch (e) {
    const name = errorName(e);
    if (name === 'DBClusterSnapshotAlreadyExistsFault') {
      log('info', 'snapshot already exists (duplicated request): waiting for it', { snapshot: id });
      return 'created';
    }
    if (name === 'SnapshotQuotaExceededFault') {
      throw new Error(
        `cannot create snapshot ${id} of cluster ${p.ClusterIdentifier}: the account reached its RDS quota of manual DB cluster ` +
        'snapshots (100 per region by default, shared by every cluster of the account). Lower the `retention` (count / maxAge) of ' +
        'PreMigrationSnapshot (`snapshotRetention` of DatabaseMigrations), delete manual cluster snapshots you no longer need, ' +
        'or request a quota increase in Service Quotas');
    }
    if (name === 'InvalidDBClusterStateFault') {
      log('info', 'cluster is busy; waiting', { cluster: p.ClusterIdentifier, error: String(e) });
      return 'cluster-busy';
    }
    if (isThrottling(e)) {
      log('warn', 'throttled while creating the snapshot; retrying on the next poll', { snapshot: id });
      return 'cluster-busy';
    }
    throw new Error(`cannot create snapshot ${id} of cluster ${p.ClusterIdentifier}: ${String((e as Error).message ?? e)}`);
  }
}

function result(event: OnEventRequest, id: string, action: 'snapshot' | 'none', created: boolean): OnEventResponse {
  return {
    PhysicalResourceId: id,
    Data: {
      SnapshotIdentifier: id,
      SnapshotArn: snapshotArn(event.StackId, id),
      Action: action,
      Created: String(created),
      WaitStartedAt: new Date().toISOString(),
    },
  };
}

export async function onEvent(event: OnEventRequest): Promise<OnEventResponse> {
  log('info', 'event', { event: redact(event) });
  const p = event.ResourceProperties;
  if (event.RequestType === 'Delete') {
    log('info', 'delete: snapshots are kept, nothing to do', { physicalResourceId: event.PhysicalResourceId });
    return { PhysicalResourceId: event.PhysicalResourceId };
  }
  if (event.RequestType === 'Update') {
    const old = event.OldResourceProperties as Partial<SnapshotProperties>;
    if (old.Fingerprint === p.Fingerprint && old.ClusterIdentifier === p.ClusterIdentifier) {
      log('info', 'same fingerprint: no new snapshot', { snapshot: event.PhysicalResourceId });
      return result(event, event.PhysicalResourceId, 'none', false);
    }
    const phase = await stackPhase(event.StackId);
    if (phase === 'rollback') {
      log('info', 'stack rollback (Update with the old properties): no new snapshot', { snapshot: event.PhysicalResourceId });
      return result(event, event.PhysicalResourceId, 'none', false);
    }
    if (phase === 'unknown') {
      // A rollback carries a fingerprint this construct already snapshotted (and migrated) before. Taking no new
      // snapshot for it is safe either way: no migration of those files is pending. Otherwise the safe side is a snapshot.
      const earlier = (await listClusterSnapshots(new RDSClient({}), p.ClusterIdentifier))
        .find((s) => isOwn(s, p) && tagValue(s, TAG_FINGERPRINT) === p.Fingerprint.slice(0, 256) && s.Status === 'available');
      if (earlier?.DBClusterSnapshotIdentifier) {
        log('info', 'stack status unknown; a snapshot of this fingerprint exists already (a rollback carries an earlier fingerprint): no new snapshot',
          { existing: earlier.DBClusterSnapshotIdentifier });
        return result(event, event.PhysicalResourceId, 'none', false);
      }
      log('info', 'stack status unknown and no snapshot of this fingerprint exists: taking one (the safe side)');
    }
  }
  const rds = new RDSClient({});
  // A duplicated or retried request finds the snapshot it already created.
  const mine = await snapshotOfRequest(rds, p.ClusterIdentifier, event.RequestId);
  if (mine?.DBClusterSnapshotIdentifier) {
    log('info', 'snapshot of this request exists: waiting for it', { snapshot: mine.DBClusterSnapshotIdentifier });
    return result(event, mine.DBClusterSnapshotIdentifier, 'snapshot', true);
  }
  const id = snapshotIdentifier(p.SnapshotPrefix, p.Fingerprint, new Date());
  const status = await clusterStatus(rds, p.ClusterIdentifier);
  if (status !== 'available') {
    log('info', 'cluster not available: waiting before taking the snapshot', { cluster: p.ClusterIdentifier, status });
    return result(event, id, 'snapshot', false);
  }
  const creation = await createSnapshot(rds, id, p, event.RequestId);
  return result(event, id, 'snapshot', creation === 'created');
}

export async function isComplete(event: IsCompleteRequest): Promise<IsCompleteResponse> {
  if (event.RequestType === 'Delete' || event.Data?.Action !== 'snapshot') return { IsComplete: true };
  const p = event.ResourceProperties;
  const id = event.Data.SnapshotIdentifier;
  const rds = new RDSClient({});
  try {
    const snap = await describeSnapshot(rds, id);
    if (!snap) {
      if (event.Data.Created === 'true') {
        throw new Error(`snapshot ${id} of cluster ${p.ClusterIdentifier} vanished while it was being created (deleted outside this stack?)`);
      }
      return await waitForCluster(rds, event, id);
    }
    const status = snap.Status ?? 'unknown';
    if (status === 'available') {
      log('info', 'snapshot available', { snapshot: id });
      await retention(rds, p, id);
      return { IsComplete: true };
    }
    if (status === 'creating') {
      log('info', 'snapshot creating', { snapshot: id, percent: snap.PercentProgress });
      return { IsComplete: false };
    }
    throw new Error(`snapshot ${id} of cluster ${p.ClusterIdentifier} ended in status '${status}'`);
  } catch (e) {
    if (isThrottling(e)) {
      log('warn', 'throttled; polling again', { snapshot: id, error: errorName(e) });
      return { IsComplete: false };
    }
    throw e;
  }
}

/** Retention is housekeeping: its failure is logged and never fails the event (the snapshot is there). */
async function retention(rds: RDSClient, p: SnapshotProperties, current: string): Promise<void> {
  try {
    await applyRetention(rds, p, current);
  } catch (e) {
    log('warn', 'retention failed: no snapshot was lost, the next snapshot applies it again', { error: String(e), snapshot: current });
  }
}

/** The cluster was busy when the request came in: create the snapshot once it is available, within the bound. */
async function waitForCluster(rds: RDSClient, event: IsCompleteRequest, id: string): Promise<IsCompleteResponse> {
  const p = event.ResourceProperties;
  // A duplicated execution of the same request (the same RequestId) may have created it under another name.
  const mine = await snapshotOfRequest(rds, p.ClusterIdentifier, event.RequestId);
  if (mine?.DBClusterSnapshotIdentifier && mine.DBClusterSnapshotIdentifier !== id) {
    const other = mine.DBClusterSnapshotIdentifier;
    log('info', 'this request already created a snapshot under another name: waiting for it instead of taking a second one', { snapshot: other });
    if (mine.Status === 'creating') return { IsComplete: false };
    if (mine.Status !== 'available') throw new Error(`snapshot ${other} of cluster ${p.ClusterIdentifier} ended in status '${mine.Status}'`);
    await retention(rds, p, other);
    return { IsComplete: true, Data: { SnapshotIdentifier: other, SnapshotArn: snapshotArn(event.StackId, other) } };
  }
  const status = await clusterStatus(rds, p.ClusterIdentifier);
  if (status === 'available' && (await createSnapshot(rds, id, p, event.RequestId)) === 'created') {
    return { IsComplete: false };
  }
  const waited = (Date.now() - Date.parse(event.Data?.WaitStartedAt ?? '')) / 1000;
  const bound = Number(p.ClusterWaitSeconds);
  if (waited > bound) {
    throw new Error(
      `cluster ${p.ClusterIdentifier} is still '${status}' after ${Math.round(waited / 60)} min (limit ${Math.round(bound / 60)} min): ` +
      `snapshot ${id} was not taken and no migration ran. Retry the deploy once the cluster is available`);
  }
  log('info', 'waiting for the cluster', { cluster: p.ClusterIdentifier, status, waitedSeconds: Math.round(waited) });
  return { IsComplete: false };
}

/** The `yyyymmddhhmmss` suffix of our identifiers (orders snapshots created within the same second). */
function idTime(s: DBClusterSnapshot): string {
  return /(\d{14})$/.exec(s.DBClusterSnapshotIdentifier ?? '')?.[1] ?? '';
}

/**
 * Keeps the newest `RetentionCount` snapshots AND every snapshot younger than `RetentionMaxAgeDays`; deletes the
 * rest. Only snapshots of this cluster under the prefix, tagged as created by this construct of this stack, count.
 */
async function applyRetention(rds: RDSClient, p: SnapshotProperties, current: string): Promise<void> {
  const count = Number(p.RetentionCount);
  const maxAgeMs = Number(p.RetentionMaxAgeDays) * 86_400_000;
  const now = Date.now();
  const mine = (await listClusterSnapshots(rds, p.ClusterIdentifier))
    // the prefix too: the delete permission is scoped to it (snapshots of an earlier prefix are left alone)
    .filter((s) => isOwn(s, p))
    .sort((a, b) => (b.SnapshotCreateTime?.getTime() ?? 0) - (a.SnapshotCreateTime?.getTime() ?? 0)
      || idTime(b).localeCompare(idTime(a)));
  const doomed = mine.filter((s, i) =>
    i >= count
    && s.DBClusterSnapshotIdentifier !== current
    && s.Status === 'available'
    && now - (s.SnapshotCreateTime?.getTime() ?? now) > maxAgeMs);
  for (const s of doomed) {
    await rds.send(new DeleteDBClusterSnapshotCommand({ DBClusterSnapshotIdentifier: s.DBClusterSnapshotIdentifier }));
    log('info', 'retention: deleted snapshot', { snapshot: s.DBClusterSnapshotIdentifier, created: s.SnapshotCreateTime?.toISOString() });
  }
  log('info', 'retention applied', { kept: mine.length - doomed.length, deleted: doomed.length, count, maxAgeDays: Number(p.RetentionMaxAgeDays) });
}
