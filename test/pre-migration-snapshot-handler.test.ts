import { CloudFormationClient, CreateStackCommand, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  AddTagsToResourceCommand, CreateDBClusterCommand, CreateDBClusterSnapshotCommand, DescribeDBClusterSnapshotsCommand, RDSClient,
} from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import { isComplete, onEvent, OnEventRequest, SnapshotProperties } from '../lambda/pre-migration-snapshot/index';
import { useMotoServer } from './helpers/moto';

const moto = useMotoServer();
const CLUSTER = 'app-db';
const PATH = 'App/Db/Migrations/Snapshot';

let stackId = '';
let seq = 0;
const rds = () => new RDSClient({});

function props(over: Partial<SnapshotProperties> = {}): SnapshotProperties & { ServiceToken: string } {
  return {
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:provider',
    ClusterIdentifier: CLUSTER,
    Fingerprint: 'a1b2c3d4e5f60718',
    SnapshotPrefix: 'app',
    StackName: 'App',
    ConstructPath: PATH,
    RetentionCount: '10',
    RetentionMaxAgeDays: '30',
    ClusterWaitSeconds: '1200',
    ...over,
  };
}

function event(type: 'Create' | 'Update' | 'Delete', p = props(), extra: Partial<{ PhysicalResourceId: string; OldResourceProperties: object; RequestId: string }> = {}): OnEventRequest {
  return {
    RequestType: type,
    ServiceToken: p.ServiceToken,
    ResponseURL: 'https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/secret-presigned',
    StackId: stackId,
    RequestId: extra.RequestId ?? `req-${++seq}`,
    LogicalResourceId: 'Snapshot',
    ResourceType: 'Custom::PreMigrationSnapshot',
    ResourceProperties: p,
    ...(type === 'Create' ? {} : { PhysicalResourceId: extra.PhysicalResourceId ?? 'app-00000000-20250101000000' }),
    ...(type === 'Update' ? { OldResourceProperties: extra.OldResourceProperties ?? props() } : {}),
  } as OnEventRequest;
}

async function snapshots(): Promise<string[]> {
  const out = await rds().send(new DescribeDBClusterSnapshotsCommand({ DBClusterIdentifier: CLUSTER, SnapshotType: 'manual' }));
  return (out.DBClusterSnapshots ?? []).map((s) => s.DBClusterSnapshotIdentifier!).sort();
}

/** Drives the handler like the Provider framework does: onEvent, then isComplete until complete. */
async function run(e: OnEventRequest) {
  const res = await onEvent(e);
  let done = await isComplete({ ...e, ...res });
  for (let i = 0; !done.IsComplete && i < 10; i++) done = await isComplete({ ...e, ...res });
  expect(done.IsComplete).toBe(true);
  return res;
}

beforeEach(async () => {
  await moto.reset();
  await rds().send(new CreateDBClusterCommand({
    DBClusterIdentifier: CLUSTER, Engine: 'aurora-postgresql', MasterUsername: 'app', MasterUserPassword: 'password123',
  }));
  const stack = await new CloudFormationClient({}).send(new CreateStackCommand({
    StackName: 'App', TemplateBody: JSON.stringify({ Resources: { T: { Type: 'AWS::SNS::Topic' } } }),
  }));
  stackId = stack.StackId!;
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
});

afterEach(() => jest.restoreAllMocks());

describe('PreMigrationSnapshot handler against moto RDS', () => {
  test('Create takes a tagged snapshot named <prefix>-<fingerprint8>-<yyyymmddhhmmss> and returns its id and ARN', async () => {
    const res = await run(event('Create'));
    const id = res.PhysicalResourceId!;
    expect(id).toMatch(/^app-a1b2c3d4-\d{14}$/);
    expect(res.Data).toMatchObject({ SnapshotIdentifier: id, SnapshotArn: `arn:aws:rds:us-east-1:123456789012:cluster-snapshot:${id}` });
    expect(await snapshots()).toEqual([id]);
    const snap = (await rds().send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: id }))).DBClusterSnapshots![0];
    expect(snap.Status).toBe('available');
    expect(Object.fromEntries((snap.TagList ?? []).map((t) => [t.Key, t.Value]))).toMatchObject({
      'cdk-rollback:managed-by': 'cdk-rollback',
      'cdk-rollback:stack': 'App',
      'cdk-rollback:construct-path': PATH,
      'cdk-rollback:fingerprint': 'a1b2c3d4e5f60718',
    });
  });

  test('a duplicated Create event (same request) creates no second snapshot', async () => {
    const e = event('Create');
    const first = await run(e);
    // an hour later: a name derived from the clock alone would differ
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'clearImmediate', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'queueMicrotask', 'hrtime', 'performance'] });
    jest.setSystemTime(Date.now() + 3_600_000);
    const again = await run(e);
    jest.useRealTimers();
    expect(again.PhysicalResourceId).toBe(first.PhysicalResourceId);
    expect(await snapshots()).toEqual([first.PhysicalResourceId]);
  });

  test('Update with the same fingerprint takes no snapshot and keeps the previous one as its result', async () => {
    const created = await run(event('Create'));
    const res = await run(event('Update', props({ RetentionCount: '5' }), { PhysicalResourceId: created.PhysicalResourceId }));
    expect(res.PhysicalResourceId).toBe(created.PhysicalResourceId);
    expect(res.Data?.SnapshotIdentifier).toBe(created.PhysicalResourceId);
    expect(await snapshots()).toEqual([created.PhysicalResourceId]);
  });

  test('Update with a new fingerprint takes a new snapshot', async () => {
    const created = await run(event('Create'));
    const res = await run(event('Update', props({ Fingerprint: 'ffff0000eeee' }), { PhysicalResourceId: created.PhysicalResourceId }));
    expect(res.PhysicalResourceId).toMatch(/^app-ffff0000-\d{14}$/);
    expect(await snapshots()).toEqual([created.PhysicalResourceId, res.PhysicalResourceId].sort());
  });

  test('the rollback Update (old properties, stack UPDATE_ROLLBACK_IN_PROGRESS) takes no snapshot', async () => {
    const created = await run(event('Update', props({ Fingerprint: 'bbbbbbbbbbbb' })));
    const cfn = mockClient(CloudFormationClient);
    cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'App', StackStatus: 'UPDATE_ROLLBACK_IN_PROGRESS', CreationTime: new Date() }] });
    try {
      const res = await run(event('Update', props(), {
        PhysicalResourceId: created.PhysicalResourceId, OldResourceProperties: props({ Fingerprint: 'bbbbbbbbbbbb' }),
      }));
      expect(res.PhysicalResourceId).toBe(created.PhysicalResourceId);
      expect(cfn.commandCalls(DescribeStacksCommand)[0].args[0].input).toEqual({ StackName: stackId });
    } finally {
      cfn.restore();
    }
    expect(await snapshots()).toEqual([created.PhysicalResourceId]);
  });

  test('Delete leaves every snapshot in place', async () => {
    const created = await run(event('Create'));
    const res = await run(event('Delete', props(), { PhysicalResourceId: created.PhysicalResourceId }));
    expect(res).toEqual({ PhysicalResourceId: created.PhysicalResourceId });
    expect(await snapshots()).toEqual([created.PhysicalResourceId]);
  });

  test('retention deletes only this construct\'s snapshots beyond the count and spares foreign ones', async () => {
    const tags = (path: string, stack = 'App') => [
      { Key: 'cdk-rollback:managed-by', Value: 'cdk-rollback' },
      { Key: 'cdk-rollback:stack', Value: stack },
      { Key: 'cdk-rollback:construct-path', Value: path },
    ];
    const make = (id: string, Tags?: { Key: string; Value: string }[]) =>
      rds().send(new CreateDBClusterSnapshotCommand({ DBClusterIdentifier: CLUSTER, DBClusterSnapshotIdentifier: id, Tags }));
    // oldest first, so creation time and the timestamp in the name agree
    await make('app-11111111-20240101000000', tags(PATH));
    await make('app-22222222-20240201000000', tags(PATH));
    await make('app-33333333-20240301000000', tags(PATH));
    await make('older-prefix-66666666-20230101000000', tags(PATH));
    await make('manual-by-a-human');
    await make('app-44444444-20240101000000', tags('App/Other/Snapshot'));
    await make('app-55555555-20240101000000', tags(PATH, 'OtherStack'));
    await make('untagged-but-prefixed-app-1');
    await rds().send(new AddTagsToResourceCommand({
      ResourceName: 'arn:aws:rds:us-east-1:123456789012:cluster-snapshot:untagged-but-prefixed-app-1', Tags: [{ Key: 'team', Value: 'x' }],
    }));
    const res = await run(event('Create', props({ RetentionCount: '2', RetentionMaxAgeDays: '0' })));
    expect(await snapshots()).toEqual([
      res.PhysicalResourceId!,
      'app-33333333-20240301000000',
      'app-44444444-20240101000000',
      'app-55555555-20240101000000',
      'manual-by-a-human',
      'older-prefix-66666666-20230101000000',
      'untagged-but-prefixed-app-1',
    ].sort());
  });
});
