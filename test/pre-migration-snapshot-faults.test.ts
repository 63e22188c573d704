import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  CreateDBClusterSnapshotCommand, DeleteDBClusterSnapshotCommand, DescribeDBClustersCommand, DescribeDBClusterSnapshotsCommand,
  RDSClient, RDSServiceException,
} from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import { isComplete, onEvent, OnEventRequest, statusRetry } from '../lambda/pre-migration-snapshot/index';

const rds = mockClient(RDSClient);
const cfn = mockClient(CloudFormationClient);
const STACK_ID = 'arn:aws:cloudformation:eu-west-1:111122223333:stack/App/guid';

function fault(name: string, message = name): RDSServiceException {
  return new RDSServiceException({ name, message, $fault: 'client', $metadata: {} });
}

function createEvent(over: Record<string, string> = {}): OnEventRequest {
  return {
    RequestType: 'Create',
    ServiceToken: 'token',
    ResponseURL: 'https://example.com/presigned',
    StackId: STACK_ID,
    RequestId: 'req-1',
    LogicalResourceId: 'Snapshot',
    ResourceType: 'Custom::PreMigrationSnapshot',
    ResourceProperties: {
      ServiceToken: 'token', ClusterIdentifier: 'db', Fingerprint: 'abcdef0123456789', SnapshotPrefix: 'app', StackName: 'App',
      ConstructPath: 'App/Snap', RetentionCount: '10', RetentionMaxAgeDays: '30', ClusterWaitSeconds: '1200', ...over,
    },
  } as OnEventRequest;
}

const DAY = 86_400_000;

beforeEach(() => {
  rds.reset();
  cfn.reset();
  rds.on(DescribeDBClusterSnapshotsCommand, { DBClusterIdentifier: 'db', SnapshotType: 'manual' }).resolves({ DBClusterSnapshots: [] });
  rds.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ DBClusterIdentifier: 'db', Status: 'available' }] });
  rds.on(CreateDBClusterSnapshotCommand).resolves({});
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
});
afterEach(() => jest.restoreAllMocks());

function snapshotStatus(status: string | undefined, id?: string) {
  const cmd = rds.on(DescribeDBClusterSnapshotsCommand, id ? { DBClusterSnapshotIdentifier: id } : {});
  if (status === undefined) cmd.rejects(fault('DBClusterSnapshotNotFoundFault'));
  else cmd.resolves({ DBClusterSnapshots: [{ DBClusterSnapshotIdentifier: id, Status: status }] });
}

describe('PreMigrationSnapshot handler faults (aws-sdk-client-mock)', () => {
  test('returns IsComplete false while the snapshot is creating, then true once available', async () => {
    const res = await onEvent(createEvent());
    const id = res.PhysicalResourceId!;
    snapshotStatus('creating', id);
    expect(await isComplete({ ...createEvent(), ...res })).toEqual({ IsComplete: false });
    snapshotStatus('available', id);
    expect(await isComplete({ ...createEvent(), ...res })).toEqual({ IsComplete: true });
    expect(res.Data?.SnapshotArn).toBe(`arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:${id}`);
  });

  test('throws with the snapshot id when the snapshot fails', async () => {
    const res = await onEvent(createEvent());
    snapshotStatus('failed', res.PhysicalResourceId);
    await expect(isComplete({ ...createEvent(), ...res })).rejects.toThrow(
      `snapshot ${res.PhysicalResourceId} of cluster db ended in status 'failed'`);
  });

  test('throws with the snapshot id when the snapshot vanishes', async () => {
    const res = await onEvent(createEvent());
    snapshotStatus(undefined, res.PhysicalResourceId);
    await expect(isComplete({ ...createEvent(), ...res })).rejects.toThrow(
      `snapshot ${res.PhysicalResourceId} of cluster db vanished while it was being created`);
  });

  test('names the quota and the retention prop when the account has too many manual snapshots', async () => {
    rds.on(CreateDBClusterSnapshotCommand).rejects(fault('SnapshotQuotaExceededFault', 'Cannot create more than 100 manual snapshots'));
    await expect(onEvent(createEvent())).rejects.toThrow(
      /^cannot create snapshot app-abcdef01-\d{14} of cluster db: the account reached its RDS quota of manual DB cluster snapshots \(100 per region by default, shared by every cluster of the account\)\. Lower the `retention` \(count \/ maxAge\) of PreMigrationSnapshot \(`snapshotRetention` of DatabaseMigrations\)/);
  });

  test('treats "already exists" as a duplicated request and keeps waiting', async () => {
    rds.on(CreateDBClusterSnapshotCommand).rejects(fault('DBClusterSnapshotAlreadyExistsFault'));
    const res = await onEvent(createEvent());
    expect(res.Data).toMatchObject({ Action: 'snapshot', Created: 'true' });
    snapshotStatus('creating', res.PhysicalResourceId);
    expect(await isComplete({ ...createEvent(), ...res })).toEqual({ IsComplete: false });
  });

  test('keeps polling when RDS throttles', async () => {
    const res = await onEvent(createEvent());
    rds.on(DescribeDBClusterSnapshotsCommand, { DBClusterSnapshotIdentifier: res.PhysicalResourceId })
      .rejectsOnce(fault('Throttling', 'Rate exceeded'))
      .resolves({ DBClusterSnapshots: [{ Status: 'available' }] });
    expect(await isComplete({ ...createEvent(), ...res })).toEqual({ IsComplete: false });
    expect(await isComplete({ ...createEvent(), ...res })).toEqual({ IsComplete: true });
  });

  test('waits for a busy cluster, then takes the snapshot once it is available', async () => {
    rds.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ Status: 'backing-up' }] });
    const res = await onEvent(createEvent());
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand)).toHaveLength(0);
    snapshotStatus(undefined, res.PhysicalResourceId);
    expect(await isComplete({ ...createEvent(), ...res })).toEqual({ IsComplete: false });
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand)).toHaveLength(0);
    rds.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ Status: 'available' }] });
    expect(await isComplete({ ...createEvent(), ...res })).toEqual({ IsComplete: false });
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand).map((c) => c.args[0].input.DBClusterSnapshotIdentifier)).toEqual([res.PhysicalResourceId]);
  });

  test('waits when the cluster refuses the snapshot as busy (InvalidDBClusterStateFault)', async () => {
    rds.on(CreateDBClusterSnapshotCommand).rejectsOnce(fault('InvalidDBClusterStateFault', 'cluster is scaling')).resolves({});
    const res = await onEvent(createEvent());
    expect(res.Data).toMatchObject({ Action: 'snapshot', Created: 'false' });
    snapshotStatus(undefined, res.PhysicalResourceId);
    expect(await isComplete({ ...createEvent(), ...res })).toEqual({ IsComplete: false });
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand)).toHaveLength(2);
  });

  test('fails with a clear error when the cluster stays busy beyond the bound', async () => {
    rds.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ Status: 'backing-up' }] });
    const res = await onEvent(createEvent({ ClusterWaitSeconds: '600' }));
    snapshotStatus(undefined, res.PhysicalResourceId);
    const started = new Date(Date.now() - 11 * 60_000).toISOString();
    await expect(isComplete({ ...createEvent({ ClusterWaitSeconds: '600' }), ...res, Data: { ...res.Data!, WaitStartedAt: started } })).rejects.toThrow(
      `cluster db is still 'backing-up' after 11 min (limit 10 min): snapshot ${res.PhysicalResourceId} was not taken and no migration ran`);
  });

  test('retention keeps the newest `count` and everything younger than `maxAge`, deletes the rest of its own', async () => {
    const tags = [
      { Key: 'cdk-rollback:managed-by', Value: 'cdk-rollback' }, { Key: 'cdk-rollback:stack', Value: 'App' },
      { Key: 'cdk-rollback:construct-path', Value: 'App/Snap' },
    ];
    const snap = (id: string, ageDays: number, t = tags) => ({
      DBClusterSnapshotIdentifier: id, Status: 'available', SnapshotCreateTime: new Date(Date.now() - ageDays * DAY), TagList: t,
    });
    const res = await onEvent(createEvent({ RetentionCount: '2', RetentionMaxAgeDays: '30' }));
    rds.on(DescribeDBClusterSnapshotsCommand, { DBClusterIdentifier: 'db', SnapshotType: 'manual' }).resolves({
      DBClusterSnapshots: [
        snap(res.PhysicalResourceId!, 0), snap('app-1-young', 5), snap('app-2-young', 20), snap('app-3-old', 40), snap('app-4-old', 90),
        snap('app-5-foreign-old', 400, []), snap('other-prefix-old', 400),
      ],
    });
    snapshotStatus('available', res.PhysicalResourceId);
    rds.on(DeleteDBClusterSnapshotCommand).resolves({});
    expect(await isComplete({ ...createEvent({ RetentionCount: '2', RetentionMaxAgeDays: '30' }), ...res })).toEqual({ IsComplete: true });
    expect(rds.commandCalls(DeleteDBClusterSnapshotCommand).map((c) => c.args[0].input.DBClusterSnapshotIdentifier)).toEqual(['app-3-old', 'app-4-old']);
  });

  test('takes the snapshot when the stack status cannot be read (the safe side)', async () => {
    cfn.on(DescribeStacksCommand).rejects(new Error('AccessDenied'));
    const res = await onEvent({
      ...createEvent(), RequestType: 'Update', PhysicalResourceId: 'app-00000000-20240101000000',
      OldResourceProperties: { ...createEvent().ResourceProperties, Fingerprint: 'old' },
    } as OnEventRequest);
    expect(res.Data).toMatchObject({ Action: 'snapshot', Created: 'true' });
  });

  test('logs the event as JSON with the ResponseURL redacted', async () => {
    const spy = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    await onEvent(createEvent());
    const first = JSON.parse(spy.mock.calls[0][0] as string);
    expect(first.event.ResponseURL).toBe('(redacted)');
    expect(JSON.stringify(spy.mock.calls)).not.toContain('example.com/presigned');
  });

  const OWN_TAGS = [
    { Key: 'cdk-rollback:managed-by', Value: 'cdk-rollback' }, { Key: 'cdk-rollback:stack', Value: 'App' },
    { Key: 'cdk-rollback:construct-path', Value: 'App/Snap' },
  ];

  function rollbackUpdate(): OnEventRequest {
    // CloudFormation sends the old properties (fingerprint abcdef...) while leaving 'newer'
    return {
      ...createEvent(), RequestType: 'Update', RequestId: 'req-rb', PhysicalResourceId: 'app-newer000-20250101000000',
      OldResourceProperties: { ...createEvent().ResourceProperties, Fingerprint: 'newer0000000' },
    } as OnEventRequest;
  }

  test('retention that fails is logged and never fails the event: the snapshot is there', async () => {
    const res = await onEvent(createEvent({ RetentionCount: '1', RetentionMaxAgeDays: '0' }));
    rds.on(DescribeDBClusterSnapshotsCommand, { DBClusterIdentifier: 'db', SnapshotType: 'manual' }).resolves({
      DBClusterSnapshots: [
        { DBClusterSnapshotIdentifier: res.PhysicalResourceId, Status: 'available', SnapshotCreateTime: new Date(), TagList: OWN_TAGS },
        { DBClusterSnapshotIdentifier: 'app-old', Status: 'available', SnapshotCreateTime: new Date(Date.now() - 40 * DAY), TagList: OWN_TAGS },
      ],
    });
    snapshotStatus('available', res.PhysicalResourceId);
    rds.on(DeleteDBClusterSnapshotCommand).rejects(fault('AccessDenied', 'not authorized to perform rds:DeleteDBClusterSnapshot'));
    const lines: string[] = [];
    jest.spyOn(console, 'log').mockImplementation((l: string) => { lines.push(l); });
    expect(await isComplete({ ...createEvent({ RetentionCount: '1', RetentionMaxAgeDays: '0' }), ...res })).toEqual({ IsComplete: true });
    expect(lines.some((l) => (JSON.parse(l) as { message: string }).message.startsWith('retention failed'))).toBe(true);
  });

  test('the rollback Update retries a throttled DescribeStacks and takes no snapshot', async () => {
    const sleeps: number[] = [];
    statusRetry.sleep = async (ms) => { sleeps.push(ms); };
    cfn.on(DescribeStacksCommand)
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $metadata: { httpStatusCode: 400 } }))
      .resolves({ Stacks: [{ StackName: 'App', StackStatus: 'UPDATE_ROLLBACK_IN_PROGRESS', CreationTime: new Date() }] });
    const res = await onEvent(rollbackUpdate());
    expect(res.Data).toMatchObject({ Action: 'none', Created: 'false' });
    expect(sleeps).toHaveLength(1);
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand)).toHaveLength(0);
    expect(await isComplete({ ...rollbackUpdate(), ...res })).toEqual({ IsComplete: true });
  });

  test('without the stack status, an Update whose fingerprint this construct snapshotted before takes no new snapshot', async () => {
    cfn.on(DescribeStacksCommand).rejects(new Error('AccessDenied'));
    rds.on(DescribeDBClusterSnapshotsCommand, { DBClusterIdentifier: 'db', SnapshotType: 'manual' }).resolves({
      DBClusterSnapshots: [{
        DBClusterSnapshotIdentifier: 'app-abcdef01-20240101000000', Status: 'available', SnapshotCreateTime: new Date(),
        TagList: [...OWN_TAGS, { Key: 'cdk-rollback:fingerprint', Value: 'abcdef0123456789' }],
      }],
    });
    const res = await onEvent(rollbackUpdate());
    expect(res.Data).toMatchObject({ Action: 'none' });
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand)).toHaveLength(0);
  });

  test('a duplicated execution of a request that waited for a busy cluster takes no second snapshot', async () => {
    rds.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ Status: 'backing-up' }] });
    const res = await onEvent(createEvent());
    expect(res.Data).toMatchObject({ Created: 'false' });
    // the other execution of the same request (req-1) created its snapshot under another timestamp
    const other = (status: string) => ({
      DBClusterSnapshots: [{
        DBClusterSnapshotIdentifier: 'app-abcdef01-20250101000001', Status: status, SnapshotCreateTime: new Date(),
        TagList: [...OWN_TAGS, { Key: 'cdk-rollback:request-id', Value: 'req-1' }],
      }],
    });
    rds.on(DescribeDBClusterSnapshotsCommand, { DBClusterIdentifier: 'db', SnapshotType: 'manual' }).resolves(other('creating'));
    snapshotStatus(undefined, res.PhysicalResourceId);
    rds.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ Status: 'available' }] });
    expect(await isComplete({ ...createEvent(), ...res })).toEqual({ IsComplete: false });
    rds.on(DescribeDBClusterSnapshotsCommand, { DBClusterIdentifier: 'db', SnapshotType: 'manual' }).resolves(other('available'));
    expect(await isComplete({ ...createEvent(), ...res })).toEqual({
      IsComplete: true,
      Data: { SnapshotIdentifier: 'app-abcdef01-20250101000001', SnapshotArn: 'arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:app-abcdef01-20250101000001' },
    });
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand)).toHaveLength(0);
  });
});
