/**
 * `db snapshots|restore|drill` and the database part of `status`: PreMigrationSnapshot's snapshots of an
 * Aurora cluster, restored into NEW clusters (the source is never touched).
 */
import {
  CreateDBClusterSnapshotCommand,
  DescribeDBClusterSnapshotsCommand,
  CreateDBInstanceCommand,
  DBCluster,
  DBClusterSnapshot,
  DeleteDBClusterCommand,
  DeleteDBInstanceCommand,
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  EnableHttpEndpointCommand,
  ListTagsForResourceCommand,
  RDSClient,
  RestoreDBClusterFromSnapshotCommand,
  Tag,
  paginateDescribeDBClusterSnapshots,
} from '@aws-sdk/client-rds';
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import { MANAGED_BY_VALUE, TAG_CONSTRUCT_PATH, TAG_FINGERPRINT, TAG_MANAGED_BY } from '../../lambda/shared/contract';
import { audit, readAudit } from './audit';
import { CliError, CommandResult, Context, EXIT, iso, reasonOf, refused, usage } from './context';
import { ConstructTarget, StackInfo, discoverStack, pickConstruct, resolveProperty } from './discovery';

/** Restores and instance creation can take long: the waits end after this. */
const WAIT_TIMEOUT_SECONDS = 2 * 3600;

export interface ManagedSnapshot {
  readonly id: string;
  readonly arn?: string;
  readonly cluster?: string;
  readonly status?: string;
  readonly createdAt?: string;
  readonly fingerprint?: string;
  readonly constructPath?: string;
  readonly engine?: string;
  readonly engineVersion?: string;
  /** `emergency` for `db snapshot`, `pre-migration` for PreMigrationSnapshot's. */
  readonly kind?: string;
}

/**
 * Tag of the snapshots `db snapshot` takes (value `emergency`). They carry the managed-by tag (so `db snapshots`,
 * `db restore` and `db drill` see them) but never the stack and construct-path tags that PreMigrationSnapshot's
 * retention (and its delete permission) require: retention never deletes them.
 */
export const TAG_SNAPSHOT_KIND = 'cdk-rollback:snapshot-kind';
export const EMERGENCY_KIND = 'emergency';

/** The cluster of a PreMigrationSnapshot or DatabaseMigrations resource (`ClusterIdentifier`, literal or `{Ref}`). */
export function clusterOf(stack: StackInfo, construct: ConstructTarget): string {
  const res = construct.roles.snapshot ?? construct.roles.migrations;
  const id = res ? resolveProperty(stack, res.properties.ClusterIdentifier) : undefined;
  if (!id) throw usage(`${construct.kind} ${construct.path} in stack ${stack.stackName} names no cluster that could be resolved: pass --cluster ID`);
  return id;
}

/**
 * `--cluster ID`, or the database of `--stack`: the clusters named by its PreMigrationSnapshot and
 * DatabaseMigrations constructs (one database usually has both), picked with `--target` when there are several.
 */
export async function resolveCluster(ctx: Context, clusterFlag: string | undefined): Promise<{ clusterId: string; path?: string }> {
  if (clusterFlag) return { clusterId: clusterFlag };
  if (!ctx.opts.stack) throw usage('no database target: pass --stack NAME or --cluster ID');
  const stack = await discoverStack(ctx, ctx.opts.stack);
  const kinds: ConstructTarget['kind'][] = ['PreMigrationSnapshot', 'DatabaseMigrations'];
  const all = stack.constructs.filter((c) => kinds.includes(c.kind));
  if (all.length === 0 || ctx.opts.target !== undefined) {
    // pickConstruct gives the errors (none found, no match) with the list of choices.
    const picked = pickConstruct(stack, kinds, ctx.opts.target);
    return { clusterId: clusterOf(stack, picked), path: picked.path };
  }
  const byCluster = new Map<string, ConstructTarget[]>();
  for (const c of all) {
    const res = c.roles.snapshot ?? c.roles.migrations;
    const id = res ? resolveProperty(stack, res.properties.ClusterIdentifier) : undefined;
    if (id) byCluster.set(id, [...(byCluster.get(id) ?? []), c]);
  }
  if (byCluster.size === 0) clusterOf(stack, all[0]); // throws: names the construct and the --cluster flag
  if (byCluster.size > 1) {
    throw usage(`stack ${stack.stackName} has ${byCluster.size} databases: pass --target with one of: ${all.map((c) => c.path).join(', ')}`);
  }
  const [[clusterId, constructs]] = [...byCluster];
  return { clusterId, path: (constructs.find((c) => c.kind === 'PreMigrationSnapshot') ?? constructs[0]).path };
}

function tagValue(tags: Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/** The cluster's manual snapshots that carry the managed-by tag, newest first. */
export async function managedSnapshots(rds: RDSClient, clusterId: string): Promise<ManagedSnapshot[]> {
  const found: (ManagedSnapshot & { t: number })[] = [];
  const all: DBClusterSnapshot[] = [];
  for await (const page of paginateDescribeDBClusterSnapshots({ client: rds }, { DBClusterIdentifier: clusterId, SnapshotType: 'manual' })) {
    all.push(...(page.DBClusterSnapshots ?? []));
  }
  for (const s of all) {
    let tags = s.TagList;
    if (tags === undefined && s.DBClusterSnapshotArn) {
      tags = (await rds.send(new ListTagsForResourceCommand({ ResourceName: s.DBClusterSnapshotArn }))).TagList;
    }
    if (tagValue(tags, TAG_MANAGED_BY) !== MANAGED_BY_VALUE) continue;
    found.push({
      id: s.DBClusterSnapshotIdentifier ?? '?',
      arn: s.DBClusterSnapshotArn,
      cluster: s.DBClusterIdentifier,
      status: s.Status,
      createdAt: s.SnapshotCreateTime ? iso(s.SnapshotCreateTime) : undefined,
      fingerprint: tagValue(tags, TAG_FINGERPRINT),
      constructPath: tagValue(tags, TAG_CONSTRUCT_PATH),
      engine: s.Engine,
      engineVersion: s.EngineVersion,
      kind: tagValue(tags, TAG_SNAPSHOT_KIND) ?? (tagValue(tags, TAG_CONSTRUCT_PATH) ? 'pre-migration' : undefined),
      t: s.SnapshotCreateTime ? new Date(s.SnapshotCreateTime).getTime() : 0,
    });
  }
  return found.sort((a, b) => b.t - a.t || b.id.localeCompare(a.id)).map(({ t: _t, ...rest }) => rest);
}

function formatSnapshot(s: ManagedSnapshot): string {
  return `${s.id.padEnd(48)} ${(s.status ?? '-').padEnd(10)} ${(s.createdAt ?? '-').padEnd(21)} ${(s.fingerprint ?? '-').slice(0, 16).padEnd(16)} ${s.kind ?? '-'}`;
}

export async function dbSnapshots(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const { clusterId, path } = await resolveCluster(ctx, o.cluster as string | undefined);
  const snaps = await managedSnapshots(new RDSClient(ctx.clientConfig), clusterId);
  const lines = snaps.length === 0
    ? [`No pre-migration snapshot of cluster ${clusterId} (manual snapshots tagged ${TAG_MANAGED_BY}=${MANAGED_BY_VALUE}).`]
    : [`Pre-migration snapshots of cluster ${clusterId}, newest first:`, `${'SNAPSHOT'.padEnd(48)} ${'STATUS'.padEnd(10)} ${'CREATED'.padEnd(21)} ${'FINGERPRINT'.padEnd(16)} KIND`, ...snaps.map(formatSnapshot)];
  return { data: { cluster: clusterId, path, snapshots: snaps }, lines };
}

// ---------------------------------------------------------------------------------------------
// Emergency snapshot
// ---------------------------------------------------------------------------------------------

/** The migration fingerprint the stack deployed for this cluster (DatabaseMigrations / PreMigrationSnapshot). */
async function deployedFingerprint(ctx: Context, clusterId: string): Promise<string | undefined> {
  if (!ctx.opts.stack) return undefined;
  const stack = await discoverStack(ctx, ctx.opts.stack);
  for (const c of stack.constructs) {
    const res = c.roles.migrations ?? c.roles.snapshot;
    if (!res || resolveProperty(stack, res.properties.ClusterIdentifier) !== clusterId) continue;
    const fp = resolveProperty(stack, res.properties.Fingerprint);
    if (fp) return fp;
  }
  return undefined;
}

export async function dbSnapshot(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const idFlag = o.snapshotId as string | undefined;
  if (idFlag !== undefined && !ID_PATTERN.test(idFlag)) {
    throw usage(`\`--snapshot-id\` must be 1-63 letters, digits or hyphens, start with a letter, with no double or trailing hyphen, got: ${idFlag}`);
  }
  const minutes = Number(o.timeout ?? '60');
  if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) {
    throw usage(`\`--timeout\` must be a number of minutes between 1 and 1440, got: ${String(o.timeout)}`);
  }
  const { clusterId, path } = await resolveCluster(ctx, o.cluster as string | undefined);
  const rds = new RDSClient(ctx.clientConfig);
  const cluster = await describeCluster(rds, clusterId);
  if (!cluster) throw usage(`cluster ${clusterId} does not exist (check --cluster or --stack, --region and --profile)`);
  if (cluster.Status !== 'available') {
    throw refused(`cluster ${clusterId} is ${cluster.Status}, not available: RDS snapshots only an available cluster; wait for it and run this again`);
  }
  const snapshotId = idFlag ?? derivedClusterId(clusterId, 'emergency');
  const fingerprint = await deployedFingerprint(ctx, clusterId);
  const tags: Tag[] = [
    { Key: TAG_MANAGED_BY, Value: MANAGED_BY_VALUE },
    { Key: TAG_SNAPSHOT_KIND, Value: EMERGENCY_KIND },
    ...(fingerprint ? [{ Key: TAG_FINGERPRINT, Value: fingerprint.slice(0, 256) }] : []),
  ];
  const plan = [
    `create the manual snapshot ${snapshotId} of cluster ${clusterId} now`,
    `tag it ${tags.map((t) => `${t.Key}=${t.Value}`).join(', ')}: no stack or construct-path tag, so PreMigrationSnapshot's retention never deletes it`,
    `wait until it is available (at most ${minutes} min)`,
  ];
  if (!(await ctx.confirm(`Take the snapshot ${snapshotId} of ${clusterId} now?`, plan))) {
    return { data: { dryRun: true, cluster: clusterId, snapshot: snapshotId, plan }, lines: ['dry run: nothing was changed', ...plan.map((l) => `  would ${l}`)] };
  }
  const t0 = Date.now();
  try {
    await rds.send(new CreateDBClusterSnapshotCommand({ DBClusterIdentifier: clusterId, DBClusterSnapshotIdentifier: snapshotId, Tags: tags }));
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'DBClusterSnapshotAlreadyExistsFault') throw refused(`snapshot ${snapshotId} already exists: choose another --snapshot-id`);
    if (name === 'InvalidDBClusterStateFault') throw refused(`cluster ${clusterId} cannot be snapshotted now (${reasonOf(err)}): wait and run this again`);
    if (name === 'SnapshotQuotaExceededFault') {
      throw new CliError(`the account reached its quota of manual cluster snapshots (${reasonOf(err)}): delete snapshots you no longer need, or request a quota increase`);
    }
    throw err;
  }
  ctx.step(`started the snapshot ${snapshotId} of cluster ${clusterId}`);
  let snap: DBClusterSnapshot;
  try {
    snap = await ctx.waitFor(`snapshot ${snapshotId}`, async () => {
      const cur = (await rds.send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: snapshotId }))).DBClusterSnapshots?.[0];
      if (cur?.Status === 'available') return { done: true, value: cur };
      if (cur?.Status && cur.Status !== 'creating') throw new CliError(`snapshot ${snapshotId} ended in status ${cur.Status}`);
      return { done: false, state: `${cur?.Status ?? 'not visible yet'}${cur?.PercentProgress !== undefined ? ` ${cur.PercentProgress}%` : ''}` };
    }, minutes * 60);
  } catch (err) {
    // The snapshot was started: record it, then say where it stands.
    await audit(ctx, 'db', clusterId, 'db snapshot', `cluster ${clusterId}`, `snapshot ${snapshotId} (NOT available: ${reasonOf(err)})`);
    throw new CliError(`${reasonOf(err)}; the snapshot ${snapshotId} is kept: follow it with cdk-rollback db snapshots --cluster ${clusterId}`);
  }
  const seconds = round1((Date.now() - t0) / 1000);
  ctx.step(`snapshot ${snapshotId} is available`);
  const a = await audit(ctx, 'db', clusterId, 'db snapshot', `cluster ${clusterId}`, `snapshot ${snapshotId}`);
  return {
    data: {
      action: 'snapshot', cluster: clusterId, path, snapshot: snapshotId, arn: snap.DBClusterSnapshotArn, status: snap.Status,
      fingerprint: fingerprint ?? null, kind: EMERGENCY_KIND, seconds, audit: a.entry, auditRecordedIn: a.recordedIn,
    },
    lines: [
      `Snapshot ${snapshotId} of cluster ${clusterId} is available (${seconds} s).`,
      '  It is an emergency snapshot: PreMigrationSnapshot\'s retention never deletes it; delete it yourself when it is no longer needed.',
      `  Restore it with: cdk-rollback db restore --cluster ${clusterId} --snapshot ${snapshotId}`,
      a.line,
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Restore
// ---------------------------------------------------------------------------------------------

const ID_PATTERN = /^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{0,62}(?<!-)$/;

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

function timestamp(d = new Date()): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/** `<base>-<suffix>-<yyyymmddhhmmss>` within the 63 characters of a cluster identifier. */
export function derivedClusterId(base: string, suffix: string, now = new Date()): string {
  const tail = `-${suffix}-${timestamp(now)}`;
  return `${base.slice(0, 63 - tail.length - 9).replace(/-+$/, '')}${tail}`;
}

async function describeCluster(rds: RDSClient, id: string): Promise<DBCluster | undefined> {
  try {
    return (await rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: id }))).DBClusters?.[0];
  } catch (err) {
    if ((err as Error).name === 'DBClusterNotFoundFault') return undefined;
    throw err;
  }
}

async function findSnapshot(rds: RDSClient, snapshotId: string): Promise<DBClusterSnapshot> {
  try {
    for await (const page of paginateDescribeDBClusterSnapshots({ client: rds }, { DBClusterSnapshotIdentifier: snapshotId })) {
      const s = page.DBClusterSnapshots?.[0];
      if (s) return s;
    }
  } catch (err) {
    if ((err as Error).name !== 'DBClusterSnapshotNotFoundFault') throw err;
  }
  throw usage(`snapshot ${snapshotId} does not exist (check --snapshot, --region and --profile)`);
}

/** Whose snapshot it is: its cluster, its creation time and its tags (fingerprint, kind). */
interface SnapshotOrigin { readonly cluster?: string; readonly createdAt?: string; readonly fingerprint?: string; readonly kind?: string }

async function originOf(rds: RDSClient, s: DBClusterSnapshot): Promise<SnapshotOrigin> {
  let tags = s.TagList;
  if ((tags === undefined || tags.length === 0) && s.DBClusterSnapshotArn) {
    tags = (await rds.send(new ListTagsForResourceCommand({ ResourceName: s.DBClusterSnapshotArn }))).TagList;
  }
  return {
    cluster: s.DBClusterIdentifier,
    createdAt: s.SnapshotCreateTime ? iso(s.SnapshotCreateTime) : undefined,
    fingerprint: tagValue(tags, TAG_FINGERPRINT),
    kind: tagValue(tags, TAG_SNAPSHOT_KIND) ?? (tagValue(tags, TAG_CONSTRUCT_PATH) ? 'pre-migration' : undefined),
  };
}

function describeOrigin(id: string, o: SnapshotOrigin): string {
  return `snapshot ${id}: of cluster ${o.cluster ?? 'unknown'}, taken ${o.createdAt ?? 'at an unknown time'}, ` +
    `fingerprint ${o.fingerprint ?? 'none (not taken by cdk-rollback)'}${o.kind ? ` (${o.kind})` : ''}`;
}

interface RestorePlan {
  readonly snapshot: DBClusterSnapshot;
  readonly source?: DBCluster;
  readonly newClusterId: string;
  readonly instanceId: string;
  readonly instanceClass: string;
  readonly instanceParameterGroup?: string;
  readonly purpose: string;
}

async function planRestore(ctx: Context, rds: RDSClient, snapshot: DBClusterSnapshot, sourceId: string | undefined,
  newClusterId: string, instanceClassFlag: string | undefined, purpose: string): Promise<RestorePlan> {
  const source = sourceId ? await describeCluster(rds, sourceId) : undefined;
  if (sourceId && !source) ctx.warn(`source cluster ${sourceId} no longer exists: the new cluster gets the snapshot's engine and KMS key and the default subnet group, security group and parameter group`);
  let instanceClass = instanceClassFlag;
  let instanceParameterGroup: string | undefined;
  const writer = source?.DBClusterMembers?.find((m) => m.IsClusterWriter) ?? source?.DBClusterMembers?.[0];
  if (writer?.DBInstanceIdentifier) {
    const inst = (await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: writer.DBInstanceIdentifier }))).DBInstances?.[0];
    instanceClass ??= inst?.DBInstanceClass;
    instanceParameterGroup = inst?.DBParameterGroups?.[0]?.DBParameterGroupName;
  }
  if (!instanceClass && source?.ServerlessV2ScalingConfiguration) instanceClass = 'db.serverless';
  if (!instanceClass) throw usage('the writer instance class is unknown (the source cluster has no instance): pass --instance-class');
  const instanceId = `${newClusterId.slice(0, 63 - '-writer'.length)}-writer`;
  return { snapshot, source, newClusterId, instanceId, instanceClass, instanceParameterGroup, purpose };
}

function describePlan(p: RestorePlan): string[] {
  const s = p.source;
  return [
    `restore snapshot ${p.snapshot.DBClusterSnapshotIdentifier} -> NEW cluster ${p.newClusterId} (${p.purpose})`,
    `  engine ${p.snapshot.Engine} ${s?.EngineVersion ?? p.snapshot.EngineVersion}, subnet group ${s?.DBSubnetGroup ?? 'default'}, ` +
      `security groups ${(s?.VpcSecurityGroups ?? []).map((g) => g.VpcSecurityGroupId).join(',') || 'default'}, ` +
      `parameter group ${s?.DBClusterParameterGroup ?? 'default'}, KMS key ${s?.KmsKeyId ?? p.snapshot.KmsKeyId ?? 'none'}`,
    `create writer instance ${p.instanceId} (${p.instanceClass})`,
  ];
}

/** Runs a restore plan: the cluster, then its writer, waiting for each. Returns the available cluster. */
async function executeRestore(ctx: Context, rds: RDSClient, p: RestorePlan): Promise<{ cluster: DBCluster; clusterSeconds: number; totalSeconds: number }> {
  const s = p.source;
  const t0 = Date.now();
  const tags: Tag[] = [
    { Key: TAG_MANAGED_BY, Value: MANAGED_BY_VALUE },
    { Key: 'cdk-rollback:restored-from', Value: p.snapshot.DBClusterSnapshotIdentifier ?? '' },
    { Key: 'cdk-rollback:purpose', Value: p.purpose },
  ];
  await rds.send(new RestoreDBClusterFromSnapshotCommand({
    DBClusterIdentifier: p.newClusterId,
    SnapshotIdentifier: p.snapshot.DBClusterSnapshotIdentifier ?? p.snapshot.DBClusterSnapshotArn,
    Engine: p.snapshot.Engine,
    EngineVersion: s?.EngineVersion ?? p.snapshot.EngineVersion,
    DBSubnetGroupName: s?.DBSubnetGroup,
    VpcSecurityGroupIds: s?.VpcSecurityGroups?.map((g) => g.VpcSecurityGroupId ?? '').filter(Boolean),
    DBClusterParameterGroupName: s?.DBClusterParameterGroup,
    KmsKeyId: s?.KmsKeyId ?? p.snapshot.KmsKeyId,
    Port: s?.Port,
    ServerlessV2ScalingConfiguration: s?.ServerlessV2ScalingConfiguration,
    EnableIAMDatabaseAuthentication: s?.IAMDatabaseAuthenticationEnabled,
    DeletionProtection: false,
    Tags: tags,
  }));
  ctx.step(`started the restore of cluster ${p.newClusterId}`);
  const cluster = await ctx.waitFor(`cluster ${p.newClusterId}`, async () => {
    const c = await describeCluster(rds, p.newClusterId);
    if (c?.Status === 'available') return { done: true, value: c };
    return { done: false, state: c?.Status ?? 'not visible yet' };
  }, WAIT_TIMEOUT_SECONDS);
  const clusterSeconds = (Date.now() - t0) / 1000;
  ctx.step(`cluster ${p.newClusterId} is available`);
  await rds.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: p.instanceId,
    DBClusterIdentifier: p.newClusterId,
    Engine: p.snapshot.Engine,
    DBInstanceClass: p.instanceClass,
    DBParameterGroupName: p.instanceParameterGroup,
    Tags: tags,
  }));
  ctx.step(`started writer instance ${p.instanceId}`);
  await ctx.waitFor(`instance ${p.instanceId}`, async () => {
    const i = (await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: p.instanceId }))).DBInstances?.[0];
    if (i?.DBInstanceStatus === 'available') return { done: true, value: i };
    return { done: false, state: i?.DBInstanceStatus ?? 'not visible yet' };
  }, WAIT_TIMEOUT_SECONDS);
  ctx.step(`writer instance ${p.instanceId} is available`);
  const final = (await describeCluster(rds, p.newClusterId)) ?? cluster;
  return { cluster: final, clusterSeconds, totalSeconds: (Date.now() - t0) / 1000 };
}

export async function dbRestore(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const snapshotId = o.snapshot as string;
  const newIdFlag = o.newClusterId as string | undefined;
  if (newIdFlag !== undefined && !ID_PATTERN.test(newIdFlag)) {
    throw usage(`\`--new-cluster-id\` must be 1-63 letters, digits or hyphens, start with a letter, with no double or trailing hyphen, got: ${newIdFlag}`);
  }
  const rds = new RDSClient(ctx.clientConfig);
  const snapshot = await findSnapshot(rds, snapshotId);
  if (snapshot.Status !== 'available') throw refused(`snapshot ${snapshotId} is ${snapshot.Status}, not available: wait for it`);
  const sourceId = (o.cluster as string | undefined)
    ?? (ctx.opts.stack ? (await resolveCluster(ctx, undefined)).clusterId : snapshot.DBClusterIdentifier);
  const origin = await originOf(rds, snapshot);
  const foreign = sourceId !== undefined && origin.cluster !== undefined && origin.cluster !== sourceId;
  if (foreign && !o.force) {
    throw refused(`snapshot ${snapshotId} is a snapshot of cluster ${origin.cluster}, not of the target cluster ${sourceId}: ` +
      `restoring it would give ${sourceId}'s application the data of ${origin.cluster}. Check --snapshot ` +
      `(cdk-rollback db snapshots --cluster ${sourceId} lists the target's), or pass --force if this is intended`);
  }
  if (foreign) ctx.warn(`snapshot ${snapshotId} is a snapshot of ${origin.cluster}, not of the target ${sourceId}: restoring it anyway (--force)`);
  const newClusterId = newIdFlag ?? derivedClusterId(sourceId ?? snapshotId, 'restored');
  if (await describeCluster(rds, newClusterId)) throw refused(`cluster ${newClusterId} already exists: choose another --new-cluster-id`);
  const plan = await planRestore(ctx, rds, snapshot, sourceId, newClusterId, o.instanceClass as string | undefined, 'restore');
  const lines = [
    describeOrigin(snapshotId, origin),
    ...(foreign ? [`WARNING: a snapshot of ${origin.cluster}, not of the target ${sourceId} (--force)`] : []),
    ...describePlan(plan),
  ];
  if (!(await ctx.confirm(`Restore ${snapshotId} into the new cluster ${newClusterId}?`, lines))) {
    return {
      data: { dryRun: true, snapshot: snapshotId, snapshotOrigin: origin, forced: foreign, newClusterId, plan: lines },
      lines: ['dry run: nothing was changed', ...lines.map((l) => `  ${l}`)],
    };
  }
  const r = await executeRestore(ctx, rds, plan);
  const a = await audit(ctx, 'db', sourceId ?? snapshotId, 'db restore',
    `snapshot ${snapshotId} of cluster ${origin.cluster ?? 'unknown'} (${origin.createdAt ?? 'time unknown'}, fingerprint ${origin.fingerprint ?? 'none'})${foreign ? ' FORCED' : ''}`,
    `new cluster ${newClusterId}`);
  const endpoint = r.cluster.Endpoint ?? '-';
  return {
    data: {
      action: 'restore', snapshot: snapshotId, snapshotOrigin: origin, forced: foreign, sourceCluster: sourceId, newClusterId, writerInstance: plan.instanceId,
      endpoint, readerEndpoint: r.cluster.ReaderEndpoint, port: r.cluster.Port, seconds: round1(r.totalSeconds),
      audit: a.entry, auditRecordedIn: a.recordedIn,
    },
    lines: [
      `Restored ${snapshotId} into cluster ${newClusterId} in ${round1(r.totalSeconds)} s.`,
      `  endpoint: ${endpoint}${r.cluster.Port ? `:${r.cluster.Port}` : ''}`,
      'Switch steps:',
      `  1. check the data on ${endpoint} (same master credentials as the snapshot's cluster)`,
      `  2. point the application at it: update its secret/parameter or DNS name (a CNAME to ${endpoint}), or pass the new cluster to your stack`,
      `  3. keep ${sourceId ?? 'the old cluster'} until the switch is verified, then snapshot and delete it`,
      a.line,
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Drill
// ---------------------------------------------------------------------------------------------

export async function dbDrill(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const { clusterId } = await resolveCluster(ctx, o.cluster as string | undefined);
  const rds = new RDSClient(ctx.clientConfig);
  const snaps = (await managedSnapshots(rds, clusterId)).filter((s) => s.status === 'available');
  if (snaps.length === 0) throw refused(`cluster ${clusterId} has no available pre-migration snapshot to drill with`);
  const newest = snaps[0];
  const snapshot = await findSnapshot(rds, newest.id);
  const checkSql = o.checkSql as string | undefined;
  const source = await describeCluster(rds, clusterId);
  const secretArn = (o.secretArn as string | undefined) ?? source?.MasterUserSecret?.SecretArn;
  if (checkSql && !secretArn) {
    throw usage(`\`--check-sql\` needs credentials for the Data API: cluster ${clusterId} has no managed master secret, pass --secret-arn`);
  }
  const tempId = derivedClusterId(clusterId, 'drill');
  const plan = await planRestore(ctx, rds, snapshot, clusterId, tempId, o.instanceClass as string | undefined, 'drill');
  const checks = checkSql ? 'checks: restore, data check (--check-sql), cleanup' : 'checks: restore only, no data check: pass --check-sql';
  const lines = [
    ...describePlan(plan),
    ...(checkSql ? [`run through the RDS Data API: ${checkSql}`] : []),
    `delete the temporary cluster ${tempId} and its instance (no final snapshot)`,
    checks,
  ];
  if (!(await ctx.confirm(`Run a restore drill of ${newest.id}?`, lines))) {
    return { data: { dryRun: true, snapshot: newest.id, temporaryCluster: tempId, plan: lines }, lines: ['dry run: nothing was changed', ...lines.map((l) => `  would ${l}`)] };
  }
  let restored: Awaited<ReturnType<typeof executeRestore>> | undefined;
  let check: { sql: string; ok: boolean; records?: unknown; error?: string } | undefined;
  let failure: unknown;
  try {
    restored = await executeRestore(ctx, rds, plan);
    if (checkSql) {
      const arn = restored.cluster.DBClusterArn ?? '';
      await rds.send(new EnableHttpEndpointCommand({ ResourceArn: arn }));
      ctx.step(`enabled the Data API on ${tempId}`);
      try {
        const out = await new RDSDataClient(ctx.clientConfig).send(new ExecuteStatementCommand({
          resourceArn: arn,
          secretArn,
          database: o.database as string | undefined,
          sql: checkSql,
          formatRecordsAs: 'JSON',
        }));
        const records: unknown = out.formattedRecords ? JSON.parse(out.formattedRecords) : out.records ?? [];
        check = { sql: checkSql, ok: true, records };
        ctx.progress(`check query returned ${Array.isArray(records) ? records.length : 0} row(s)`);
      } catch (err) {
        check = { sql: checkSql, ok: false, error: reasonOf(err) };
      }
    }
  } catch (err) {
    failure = err;
  }
  // Always clean up what was created, even after a failure.
  const cleanup: string[] = [];
  let cleanupError: string | undefined;
  if (ctx.done.some((d) => d.startsWith('started the restore'))) {
    try {
      if (ctx.done.some((d) => d.startsWith('started writer instance'))) {
        await rds.send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: plan.instanceId, SkipFinalSnapshot: true }));
        cleanup.push(`deleting instance ${plan.instanceId}`);
      }
      await rds.send(new DeleteDBClusterCommand({ DBClusterIdentifier: tempId, SkipFinalSnapshot: true }));
      cleanup.push(`deleting cluster ${tempId}`);
      ctx.step(`started the deletion of the temporary cluster ${tempId}`);
    } catch (err) {
      cleanupError = `the temporary cluster ${tempId} could not be deleted (${reasonOf(err)}): delete it by hand`;
    }
  }
  const checksRan = ['restore', ...(check ? ['data check'] : []), 'cleanup'];
  if (failure) {
    // Every drill is recorded, the ones that fail on the way too.
    const reason = `${reasonOf(failure)}${cleanupError ? `; ${cleanupError}` : ''}`;
    await audit(ctx, 'db', clusterId, 'db drill', `snapshot ${newest.id}`, `temporary cluster ${tempId} (FAILED: ${reason.slice(0, 300)})`);
    throw new CliError(reason, failure instanceof CliError ? failure.exitCode : EXIT.FAILED);
  }
  const ok = !cleanupError && (check?.ok ?? true);
  const a = await audit(ctx, 'db', clusterId, 'db drill', `snapshot ${newest.id}`,
    `temporary cluster ${tempId} (${ok ? 'passed' : 'FAILED'}; ${check ? 'restore and data check' : 'restore only, no data check'})`);
  const seconds = round1(restored!.totalSeconds);
  return {
    exitCode: ok ? EXIT.OK : EXIT.FAILED,
    data: {
      action: 'drill', cluster: clusterId, snapshot: newest.id, temporaryCluster: tempId,
      restoreSeconds: round1(restored!.clusterSeconds), totalSeconds: seconds, check, checksRan, dataChecked: Boolean(check), cleanup, cleanupError,
      passed: ok, audit: a.entry, auditRecordedIn: a.recordedIn,
    },
    lines: [
      `Drill ${ok ? 'PASSED' : 'FAILED'}${check ? '' : ' (restore only, no data check)'}: snapshot ${newest.id} restored into ${tempId} in ${seconds} s (cluster available after ${round1(restored!.clusterSeconds)} s).`,
      ...(check ? [check.ok ? `  check query OK: ${JSON.stringify(check.records)}` : `  check query FAILED: ${check.error}`] : []),
      `  ${checks}`,
      ...(cleanupError ? [`  ${cleanupError}`] : [`  cleanup: ${cleanup.join(', ')}`]),
      a.line,
    ],
  };
}

/** The database section of `status`. */
export async function dbStatus(ctx: Context, clusterId: string, path: string | undefined): Promise<{ data: Record<string, unknown>; lines: string[] }> {
  const [snaps, trail] = await Promise.all([
    managedSnapshots(new RDSClient(ctx.clientConfig), clusterId),
    readAudit(ctx, 'db', clusterId),
  ]);
  const lines = [`${ctx.color.bold('Database')} ${path ? `${path} (cluster ${clusterId})` : `cluster ${clusterId}`}`];
  if (snaps.length === 0) lines.push(ctx.color.yellow('  no pre-migration snapshot yet'));
  for (const s of snaps.slice(0, 3)) lines.push(`  snapshot: ${s.id} ${s.status ?? ''} ${s.createdAt ?? ''}`);
  for (const e of trail.slice(0, 3)) lines.push(`  last: ${e.at} ${e.action} ${e.from} -> ${e.to} by ${e.who}`);
  return { data: { path, cluster: clusterId, snapshots: snaps.slice(0, 5), audit: trail }, lines };
}
