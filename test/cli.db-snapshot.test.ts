/**
 * `db snapshot` (an emergency snapshot that PreMigrationSnapshot's retention spares), `db restore`'s refusal of
 * another cluster's snapshot, and `db drill`'s report of its checks and its audit of every drill. The CLI runs
 * in-process against moto RDS and SSM; RDS is mocked (aws-sdk-client-mock) only for states moto cannot produce.
 */
import {
  CreateDBClusterSnapshotCommand, DescribeDBClusterSnapshotsCommand, DescribeDBClustersCommand, DescribeDBInstancesCommand,
  ListTagsForResourceCommand, RDSClient, RestoreDBClusterFromSnapshotCommand,
} from '@aws-sdk/client-rds';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { isComplete, IsCompleteRequest } from '../lambda/pre-migration-snapshot/index';
import { createCluster } from './fixtures/cli/aws';
import { json, runInProcess } from './fixtures/cli/harness';
import { useMotoServer } from './helpers/moto';

const moto = useMotoServer();
beforeEach(() => moto.reset());

const rdsClient = () => new RDSClient({});

async function auditTrail(target: string): Promise<{ action: string; from: string; to: string }[]> {
  const out = await new SSMClient({}).send(new GetParameterCommand({ Name: `/cdk-rollback/audit/db/${target}` }));
  return JSON.parse(out.Parameter!.Value!);
}

async function snapshotIds(cluster: string): Promise<string[]> {
  const out = await rdsClient().send(new DescribeDBClusterSnapshotsCommand({ DBClusterIdentifier: cluster, SnapshotType: 'manual' }));
  return (out.DBClusterSnapshots ?? []).map((s) => s.DBClusterSnapshotIdentifier!).sort();
}

async function clusterIds(): Promise<string[]> {
  return ((await rdsClient().send(new DescribeDBClustersCommand({}))).DBClusters ?? []).map((c) => c.DBClusterIdentifier!).sort();
}

describe('db snapshot (moto RDS)', () => {
  test('takes a tagged emergency snapshot now, waits until available, records the audit', async () => {
    await createCluster('orders-db', ['orders-aaaaaaaa-20260101000000']);
    const r = await runInProcess(['db', 'snapshot', '--cluster', 'orders-db', '--yes', '--json']);
    expect(r.code).toBe(0);
    const doc = json(r);
    expect(doc).toMatchObject({ action: 'snapshot', cluster: 'orders-db', status: 'available', kind: 'emergency', auditRecordedIn: '/cdk-rollback/audit/db/orders-db' });
    expect(doc.snapshot).toMatch(/^orders-db-emergency-\d{14}$/);
    expect(r.stderr).toContain(`snapshot ${doc.snapshot} is available`);
    const [snap] = (await rdsClient().send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: doc.snapshot }))).DBClusterSnapshots!;
    const tags = (await rdsClient().send(new ListTagsForResourceCommand({ ResourceName: snap.DBClusterSnapshotArn }))).TagList!;
    expect(Object.fromEntries(tags.map((t) => [t.Key, t.Value]))).toEqual({ 'cdk-rollback:managed-by': 'cdk-rollback', 'cdk-rollback:snapshot-kind': 'emergency' });
    expect((await auditTrail('orders-db'))[0]).toMatchObject({ action: 'db snapshot', from: 'cluster orders-db', to: `snapshot ${doc.snapshot}` });
    // listed with the pre-migration snapshots, marked as emergency
    const list = json(await runInProcess(['db', 'snapshots', '--cluster', 'orders-db', '--json']));
    expect(list.snapshots.find((s: { id: string }) => s.id === doc.snapshot)).toMatchObject({ kind: 'emergency' });
  });

  test('PreMigrationSnapshot\'s retention spares it, even named under the construct\'s prefix, and deletes its own old ones', async () => {
    await createCluster('orders-db', ['orders-aaaaaaaa-20260101000000', 'orders-bbbbbbbb-20260102000000']);
    const r = await runInProcess(['db', 'snapshot', '--cluster', 'orders-db', '--snapshot-id', 'orders-cccccccc-20200101000000', '--yes']);
    expect(r.code).toBe(0);
    // A deploy's snapshot completes: retention keeps only the newest one (count 1, max age 0 days).
    const props = {
      ServiceToken: 't', ClusterIdentifier: 'orders-db', Fingerprint: 'dddddddd', SnapshotPrefix: 'orders', StackName: 'AppStack',
      ConstructPath: 'AppStack/Snapshot', RetentionCount: '1', RetentionMaxAgeDays: '0', ClusterWaitSeconds: '600',
    };
    await rdsClient().send(new CreateDBClusterSnapshotCommand({
      DBClusterIdentifier: 'orders-db', DBClusterSnapshotIdentifier: 'orders-dddddddd-20260103000000',
      Tags: [{ Key: 'cdk-rollback:managed-by', Value: 'cdk-rollback' }, { Key: 'cdk-rollback:stack', Value: 'AppStack' }, { Key: 'cdk-rollback:construct-path', Value: 'AppStack/Snapshot' }],
    }));
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    const done = await isComplete({
      RequestType: 'Update', StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/AppStack/x', RequestId: 'r', ResponseURL: 'https://x',
      ServiceToken: 't', LogicalResourceId: 'S', ResourceType: 'Custom::PreMigrationSnapshot', PhysicalResourceId: 'orders-dddddddd-20260103000000',
      ResourceProperties: props, OldResourceProperties: { ...props, Fingerprint: 'cccccccc' },
      Data: { Action: 'snapshot', SnapshotIdentifier: 'orders-dddddddd-20260103000000', Created: 'true' },
    } as unknown as IsCompleteRequest);
    jest.restoreAllMocks();
    expect(done.IsComplete).toBe(true);
    expect(await snapshotIds('orders-db')).toEqual(['orders-cccccccc-20200101000000', 'orders-dddddddd-20260103000000']);
  });

  test('--dry-run shows the plan and takes nothing; bad flags are usage errors; an unknown cluster too', async () => {
    await createCluster('orders-db', []);
    const dry = await runInProcess(['db', 'snapshot', '--cluster', 'orders-db', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/would create the manual snapshot orders-db-emergency-\d{14} of cluster orders-db now/);
    expect(dry.stdout).toContain('no stack or construct-path tag, so PreMigrationSnapshot\'s retention never deletes it');
    expect(await snapshotIds('orders-db')).toEqual([]);
    const badId = await runInProcess(['db', 'snapshot', '--cluster', 'orders-db', '--snapshot-id', 'bad--id', '--yes']);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('`--snapshot-id` must be 1-63 letters, digits or hyphens, start with a letter, with no double or trailing hyphen, got: bad--id');
    const badTimeout = await runInProcess(['db', 'snapshot', '--cluster', 'orders-db', '--timeout', 'soon', '--yes']);
    expect(badTimeout.code).toBe(2);
    expect(badTimeout.stderr).toContain('`--timeout` must be a number of minutes between 1 and 1440, got: soon');
    const missing = await runInProcess(['db', 'snapshot', '--cluster', 'nope-db', '--yes']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cluster nope-db does not exist');
  });
});

describe('db snapshot while RDS is still creating it (mocked RDS)', () => {
  let rds: AwsClientStub<RDSClient>;
  beforeAll(() => { rds = mockClient(RDSClient); });
  afterAll(() => rds.restore());
  beforeEach(() => {
    rds.reset();
    rds.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ DBClusterIdentifier: 'db', Status: 'available' }] });
    rds.on(CreateDBClusterSnapshotCommand).resolves({});
  });

  test('shows progress until available', async () => {
    rds.on(DescribeDBClusterSnapshotsCommand)
      .resolvesOnce({ DBClusterSnapshots: [{ Status: 'creating', PercentProgress: 10 }] })
      .resolvesOnce({ DBClusterSnapshots: [{ Status: 'creating', PercentProgress: 60 }] })
      .resolves({ DBClusterSnapshots: [{ Status: 'available', DBClusterSnapshotArn: 'arn:snap' }] });
    const r = await runInProcess(['db', 'snapshot', '--cluster', 'db', '--snapshot-id', 'db-now', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/waiting for snapshot db-now: creating 10%[\s\S]*waiting for snapshot db-now: creating 60%/);
    expect(r.stdout).toContain('Snapshot db-now of cluster db is available');
  });

  test('stops at the deadline (exit 1), keeps the snapshot, says how to follow it, and records the audit', async () => {
    rds.on(DescribeDBClusterSnapshotsCommand).resolves({ DBClusterSnapshots: [{ Status: 'creating', PercentProgress: 5 }] });
    const r = await runInProcess(['db', 'snapshot', '--cluster', 'db', '--snapshot-id', 'db-slow', '--timeout', '0.001', '--yes'],
      { env: { CDK_ROLLBACK_POLL_SECONDS: '0.05' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/timed out after \d+ s waiting for snapshot db-slow \(last state: creating 5%\); the snapshot db-slow is kept: follow it with cdk-rollback db snapshots --cluster db/);
    expect((await auditTrail('db'))[0]).toMatchObject({ action: 'db snapshot', to: expect.stringMatching(/^snapshot db-slow \(NOT available: timed out/) });
  });

  test('a cluster that is not available is refused (exit 3) before any snapshot', async () => {
    rds.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ DBClusterIdentifier: 'db', Status: 'backing-up' }] });
    const r = await runInProcess(['db', 'snapshot', '--cluster', 'db', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('cluster db is backing-up, not available');
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand)).toHaveLength(0);
  });
});

describe('db restore of another cluster\'s snapshot (moto RDS)', () => {
  beforeEach(async () => {
    await createCluster('orders-db', ['orders-aaaaaaaa-20260101000000']);
    await createCluster('billing-db', ['billing-bbbbbbbb-20260102000000']);
  });

  test('is refused (exit 3) and nothing is created', async () => {
    const r = await runInProcess(['db', 'restore', '--cluster', 'orders-db', '--snapshot', 'billing-bbbbbbbb-20260102000000', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('snapshot billing-bbbbbbbb-20260102000000 is a snapshot of cluster billing-db, not of the target cluster orders-db');
    expect(r.stderr).toContain('or pass --force if this is intended');
    expect(await clusterIds()).toEqual(['billing-db', 'orders-db']);
  });

  test('the plan names the snapshot\'s cluster, time and fingerprint; --force warns and restores', async () => {
    const dry = await runInProcess(['db', 'restore', '--cluster', 'orders-db', '--snapshot', 'orders-aaaaaaaa-20260101000000', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/snapshot orders-aaaaaaaa-20260101000000: of cluster orders-db, taken \d{4}-\d\d-\d\dT\S+, fingerprint aaaaaaaa \(pre-migration\)/);
    const forced = await runInProcess(['db', 'restore', '--cluster', 'orders-db', '--snapshot', 'billing-bbbbbbbb-20260102000000',
      '--new-cluster-id', 'orders-db-from-billing', '--force', '--yes', '--json']);
    expect(forced.code).toBe(0);
    expect(json(forced)).toMatchObject({ forced: true, snapshotOrigin: { cluster: 'billing-db', fingerprint: 'bbbbbbbb' }, newClusterId: 'orders-db-from-billing' });
    expect(forced.stderr).toContain('warning: snapshot billing-bbbbbbbb-20260102000000 is a snapshot of billing-db, not of the target orders-db: restoring it anyway (--force)');
    const forcedDry = await runInProcess(['db', 'restore', '--cluster', 'orders-db', '--snapshot', 'billing-bbbbbbbb-20260102000000', '--force', '--dry-run']);
    expect(forcedDry.stdout).toContain('WARNING: a snapshot of billing-db, not of the target orders-db (--force)');
    expect((await auditTrail('orders-db'))[0].from).toMatch(/^snapshot billing-bbbbbbbb-20260102000000 of cluster billing-db \(.*fingerprint bbbbbbbb\) FORCED$/);
  });
});

describe('db drill reports its checks and audits every drill', () => {
  test('without --check-sql: "restore only, no data check: pass --check-sql", in the output and the audit (moto)', async () => {
    await createCluster('orders-db', ['orders-aaaaaaaa-20260101000000']);
    const r = await runInProcess(['db', 'drill', '--cluster', 'orders-db', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Drill PASSED \(restore only, no data check\): snapshot orders-aaaaaaaa-20260101000000/m);
    expect(r.stdout).toContain('checks: restore only, no data check: pass --check-sql');
    expect((await auditTrail('orders-db'))[0]).toMatchObject({ action: 'db drill', to: expect.stringMatching(/\(passed; restore only, no data check\)$/) });
  });

  describe('a drill that throws (mocked RDS)', () => {
    let rds: AwsClientStub<RDSClient>;
    beforeAll(() => { rds = mockClient(RDSClient); });
    afterAll(() => rds.restore());
    test('is recorded as FAILED with the reason, and exits 1', async () => {
      rds.reset();
      rds.on(DescribeDBClusterSnapshotsCommand).resolves({ DBClusterSnapshots: [{
        DBClusterSnapshotIdentifier: 'db-aaaaaaaa-20260101000000', DBClusterIdentifier: 'db', Status: 'available', Engine: 'aurora-postgresql',
        SnapshotCreateTime: new Date('2026-01-01T00:00:00Z'), TagList: [{ Key: 'cdk-rollback:managed-by', Value: 'cdk-rollback' }],
      }] });
      rds.on(DescribeDBClustersCommand).callsFake((input: { DBClusterIdentifier?: string }) => (input.DBClusterIdentifier === 'db'
        ? { DBClusters: [{ DBClusterIdentifier: 'db', DBClusterMembers: [{ DBInstanceIdentifier: 'w', IsClusterWriter: true }] }] }
        : Promise.reject(Object.assign(new Error('not found'), { name: 'DBClusterNotFoundFault' }))));
      rds.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceClass: 'db.r6g.large' }] });
      rds.on(RestoreDBClusterFromSnapshotCommand).rejects(Object.assign(new Error('The quota for DB clusters is exceeded'), { name: 'DBClusterQuotaExceededFault' }));
      const r = await runInProcess(['db', 'drill', '--cluster', 'db', '--yes']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('DBClusterQuotaExceededFault: The quota for DB clusters is exceeded');
      expect((await auditTrail('db'))[0]).toMatchObject({
        action: 'db drill', from: 'snapshot db-aaaaaaaa-20260101000000', to: expect.stringMatching(/\(FAILED: DBClusterQuotaExceededFault: The quota for DB clusters is exceeded\)$/),
      });
    });
  });
});
