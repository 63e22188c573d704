/**
 * `main()` in-process, for what moto_server cannot do: CodeDeploy deployment states and StopDeployment,
 * CloudFront KeyValueStore (a loopback stand-in that checks the SigV4A signature), a stack with every
 * construct kind and a broken status, the RDS Data API, and the terminal prompt and colours.
 * AWS calls that moto supports still go to moto_server through the real SDK.
 */
import {
  CloudFormationClient,
  DescribeStacksCommand,
  GetTemplateCommand,
  ListStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import { CloudFrontClient, DescribeKeyValueStoreCommand, ListInvalidationsCommand } from '@aws-sdk/client-cloudfront';
import {
  BatchGetDeploymentsCommand,
  CodeDeployClient,
  CreateDeploymentCommand,
  GetDeploymentCommand,
  ListDeploymentsCommand,
  StopDeploymentCommand,
} from '@aws-sdk/client-codedeploy';
import {
  CreateDBInstanceCommand,
  DeleteDBClusterCommand,
  DeleteDBInstanceCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  EnableHttpEndpointCommand,
  RDSClient,
  RestoreDBClusterFromSnapshotCommand,
} from '@aws-sdk/client-rds';
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import * as path from 'path';
import { buildExampleApp } from '../bin/example-app';
import { VersionedSite } from '../lib/versioned-site';
import { stackWarning } from '../bin/cli/status';
import { SITE_HISTORY_KEY } from '../lambda/shared/contract';
import { apiSiteAndClusterResources, constructMeta, liveVersion, mockDeployedStack, useInProcessCli } from './helpers/cli-inprocess';
import { KVS_ARN, createApi, createCluster, createDistribution, createSiteBucket } from './fixtures/cli/aws';
import { runInProcess, json } from './fixtures/cli/harness';
import { startLambdaInvokeServer } from './fixtures/cli/lambda-invoke-server';
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('./fixtures/cli/loopback-dns.js');

const { moto, kvs } = useInProcessCli();

describe('api with CodeDeploy deployment states (mocked CodeDeploy)', () => {
  let cd: AwsClientStub<CodeDeployClient>;
  beforeAll(() => { cd = mockClient(CodeDeployClient); });
  beforeEach(() => cd.reset());
  afterAll(() => cd.restore());

  test('api rollback stops an in-flight deployment with auto rollback instead of moving the alias', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 2, stable: 2, codeDeploy: true, liveWeights: { 3: 0.1 } });
    cd.on(ListDeploymentsCommand).resolves({ deployments: ['d-INFLIGHT1'] });
    cd.on(StopDeploymentCommand).resolves({ status: 'Pending', statusMessage: 'Stop requested' });
    const r = await runInProcess(['api', 'rollback', '--function', 'orders', '--yes']);
    expect(r.code).toBe(0);
    expect(cd.commandCalls(ListDeploymentsCommand)[0].args[0].input).toMatchObject({
      applicationName: 'orders-app', deploymentGroupName: 'orders-group',
      includeOnlyStatuses: ['Created', 'Queued', 'InProgress', 'Baking', 'Ready'],
    });
    expect(cd.commandCalls(StopDeploymentCommand).map((c) => c.args[0].input)).toEqual([{ deploymentId: 'd-INFLIGHT1', autoRollbackEnabled: true }]);
    expect(r.stdout).toContain('Stopped d-INFLIGHT1 with auto rollback: CodeDeploy shifts live of orders back (was version 2, version 3 at 10%).');
    expect(r.stdout).toContain('action="api rollback (stop deployment)" target=orders from=live=2 to=stop d-INFLIGHT1 with auto rollback');
    // CodeDeploy owns the alias during its deployment: the CLI did not touch it
    expect(await liveVersion('orders')).toBe('2');
  });

  test('api rollback --to is refused while a deployment is in flight, before any change', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    cd.on(ListDeploymentsCommand).resolves({ deployments: ['d-INFLIGHT1'] });
    const r = await runInProcess(['api', 'rollback', '--function', 'orders', '--to', '1', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('`--to` cannot be used while CodeDeploy deployment d-INFLIGHT1 is in flight');
    expect(cd.commandCalls(StopDeploymentCommand)).toHaveLength(0);
    expect(await liveVersion('orders')).toBe('3');
  });

  test('status shows the in-flight deployment with its state and the weights of live', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 2, stable: 2, codeDeploy: true, liveWeights: { 3: 0.1 } });
    cd.on(ListDeploymentsCommand).resolves({ deployments: ['d-INFLIGHT1'] });
    cd.on(BatchGetDeploymentsCommand).resolves({ deploymentsInfo: [{ deploymentId: 'd-INFLIGHT1', status: 'InProgress', createTime: new Date('2026-03-01T10:00:00Z') }] });
    const r = await runInProcess(['status', '--function', 'orders']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('live:   version 2, version 3 at 10%  (traffic is shifting)');
    expect(r.stdout).toContain('deployment in flight: d-INFLIGHT1 InProgress since 2026-03-01T10:00:00Z');
  });

  test('api promote --wait deploys with the hooks from the function tags and waits until it succeeds', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 2, stable: 2, codeDeploy: true, hooks: { pre: 'orders-pre', post: 'orders-post' } });
    cd.on(ListDeploymentsCommand).resolves({ deployments: [] });
    cd.on(CreateDeploymentCommand).resolves({ deploymentId: 'd-NEW' });
    cd.on(GetDeploymentCommand)
      .resolvesOnce({ deploymentInfo: { deploymentId: 'd-NEW', status: 'InProgress', deploymentOverview: { InProgress: 1 } } })
      .resolves({ deploymentInfo: { deploymentId: 'd-NEW', status: 'Succeeded' } });
    const r = await runInProcess(['api', 'promote', '--function', 'orders', '--to', '3', '--wait', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Started CodeDeploy deployment d-NEW: live of orders version 2 -> version 3 (Succeeded).');
    expect(r.stderr).toContain('waiting for deployment d-NEW: InProgress (succeeded 0, in progress 1)');
    const input = cd.commandCalls(CreateDeploymentCommand)[0].args[0].input;
    expect(input).toMatchObject({ applicationName: 'orders-app', deploymentGroupName: 'orders-group' });
    expect(JSON.parse(input.revision!.appSpecContent!.content!)).toEqual({
      version: 0,
      Resources: [{ orders: { Type: 'AWS::Lambda::Function', Properties: { Name: 'orders', Alias: 'live', CurrentVersion: '2', TargetVersion: '3' } } }],
      Hooks: [{ BeforeAllowTraffic: 'orders-pre' }, { AfterAllowTraffic: 'orders-post' }],
    });
  });

  test('api promote --wait exits 1 with the reason when the deployment fails', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 2, stable: 2, codeDeploy: true });
    cd.on(ListDeploymentsCommand).resolves({ deployments: [] });
    cd.on(CreateDeploymentCommand).resolves({ deploymentId: 'd-BAD' });
    cd.on(GetDeploymentCommand).resolves({ deploymentInfo: {
      deploymentId: 'd-BAD', status: 'Failed', errorInformation: { code: 'ALARM_ACTIVE', message: 'alarm orders-errors fired' },
    } });
    const r = await runInProcess(['api', 'promote', '--function', 'orders', '--to', '3', '--wait', '--yes', '--json']);
    expect(r.code).toBe(1);
    expect(json(r).error).toContain('CodeDeploy deployment d-BAD Failed: ALARM_ACTIVE alarm orders-errors fired');
    expect(json(r).done).toEqual(['started CodeDeploy deployment d-BAD']);
  });
});

describe('confirmation and output on a terminal', () => {
  test('asks on a TTY and changes nothing when the answer is no (exit 4)', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const asked: string[] = [];
    const r = await runInProcess(['api', 'rollback', '--function', 'orders'], { isTTY: true, confirm: async (q) => { asked.push(q); return false; } });
    expect(r.code).toBe(4);
    expect(asked).toEqual(['Point live at version 2?']);
    expect(r.stderr).toContain('live of orders: version 3 -> version 2');
    expect(r.stderr).toContain('aborted at the prompt: nothing was changed');
    expect(await liveVersion('orders')).toBe('3');
  });

  test('Ctrl-C at the prompt aborts (exit 4) and changes nothing', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const r = await runInProcess(['api', 'rollback', '--function', 'orders'], {
      isTTY: true, confirm: async () => { throw Object.assign(new Error('User force closed the prompt with SIGINT'), { name: 'ExitPromptError' }); },
    });
    expect(r.code).toBe(4);
    expect(await liveVersion('orders')).toBe('3');
  });

  test('changes the alias when the answer is yes', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const r = await runInProcess(['api', 'rollback', '--function', 'orders'], { isTTY: true, confirm: async () => true });
    expect(r.code).toBe(0);
    expect(await liveVersion('orders')).toBe('2');
  });

  test('colours on a TTY, none with NO_COLOR', async () => {
    await createApi({ functionName: 'orders', versions: 2, live: 2 });
    const coloured = await runInProcess(['status', '--function', 'orders'], { isTTY: true, env: { NO_COLOR: '' } });
    expect(coloured.stdout).toMatch(/\u001b\[1mAPI\u001b\[22m orders/);
    const plain = await runInProcess(['status', '--function', 'orders'], { isTTY: true, env: { NO_COLOR: '1' } });
    expect(plain.stdout).toContain('API orders');
    expect(plain.stdout).not.toMatch(/\u001b\[/);
  });
});

describe('site (KeyValueStore stand-in, S3 and CloudFront in moto)', () => {
  let dist: string;
  beforeEach(async () => {
    await createSiteBucket('web-bucket', [
      { id: 'r4', createdAt: '2026-01-04T00:00:00Z', status: 'failed' },
      { id: 'r3', createdAt: '2026-01-03T00:00:00Z', status: 'active' },
      { id: 'r2', createdAt: '2026-01-02T00:00:00Z', status: 'previous' },
      { id: 'r1', createdAt: '2026-01-01T00:00:00Z', status: 'retained' },
      { id: 'r0', createdAt: '2025-12-31T00:00:00Z', status: 'pruned' },
    ]);
    dist = await createDistribution('web-bucket');
    kvs.stores.set(KVS_ARN, new Map([['active', 'r3'], ['previous', 'r2']]));
  });
  const site = () => ['--kvs', KVS_ARN, '--bucket', 'web-bucket', '--distribution', dist];

  test('site releases lists the history with the active release marked', async () => {
    const r = await runInProcess(['site', 'releases', ...site()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\* r3 +active +created 2026-01-03T00:00:00Z/);
    expect(r.stdout).toMatch(/ {2}r2 +previous/);
    expect(r.stdout).toMatch(/ {2}r1 +retained/);
  });

  test('site rollback flips the pointer to the previous release with the ETag, invalidates, records the audit', async () => {
    const r = await runInProcess(['site', 'rollback', ...site(), '--yes', '--wait', '--json']);
    expect(r.code).toBe(0);
    const doc = json(r);
    expect(doc).toMatchObject({ action: 'rollback', from: 'r3', to: 'r2', waited: true, paths: ['/', '/index.html'] });
    expect(kvs.stores.get(KVS_ARN)).toEqual(new Map([['active', 'r2'], ['previous', 'r3']]));
    const update = kvs.requests.find((q) => q.operation === 'UpdateKeys')!;
    expect(update.headers['if-match']).toBe('etag-0');
    // the real client signed every KeyValueStore request with SigV4A
    for (const q of kvs.requests) {
      expect(q.headers.authorization).toMatch(/^AWS4-ECDSA-P256-SHA256 Credential=/);
      expect(q.headers['x-amz-region-set']).toBe('*');
    }
    const inv = await new CloudFrontClient({}).send(new ListInvalidationsCommand({ DistributionId: dist }));
    expect(inv.InvalidationList?.Items?.map((i) => i.Id)).toEqual(doc.invalidationIds);
    const history = JSON.parse(await (await new S3Client({}).send(new GetObjectCommand({ Bucket: 'web-bucket', Key: SITE_HISTORY_KEY }))).Body!.transformToString());
    expect(history.releases.find((x: { id: string }) => x.id === 'r2').status).toBe('active');
    expect(doc.audit).toMatchObject({ action: 'site rollback', target: 'web-bucket', from: 'release r3', to: 'release r2' });
    const s = await runInProcess(['status', ...site()]);
    expect(s.stdout).toContain('active:   r2 (created 2026-01-02T00:00:00Z)');
    expect(s.stdout).toContain('previous: r3 (created 2026-01-03T00:00:00Z)');
    expect(s.stdout).toContain('retained: r1 (created 2026-01-01T00:00:00Z)');
    expect(s.stdout).toMatch(/last: \S+ site rollback release r3 -> release r2/);
  });

  test('site rollback --to a retained release', async () => {
    const r = await runInProcess(['site', 'rollback', ...site(), '--to', 'r1', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('release r3 -> r1');
    expect(kvs.stores.get(KVS_ARN)?.get('active')).toBe('r1');
  });

  test('site rollback refuses the active release, a pruned or failed one, and names unknown ones', async () => {
    const active = await runInProcess(['site', 'rollback', ...site(), '--to', 'r3', '--yes']);
    expect(active.code).toBe(3);
    expect(active.stderr).toContain('release r3 is already active: nothing to roll back');
    const pruned = await runInProcess(['site', 'rollback', ...site(), '--to', 'r0', '--yes']);
    expect(pruned.code).toBe(3);
    expect(pruned.stderr).toContain('release r0 is pruned: its files are not servable; retained releases: r2, r1');
    const failed = await runInProcess(['site', 'rollback', ...site(), '--to', 'r4', '--yes']);
    expect(failed.code).toBe(3);
    const unknown = await runInProcess(['site', 'rollback', ...site(), '--to', 'r9', '--yes']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('release r9 is not in the release history of web-bucket; retained releases: r2, r1');
    expect(kvs.requests.filter((q) => q.operation === 'UpdateKeys')).toHaveLength(0);
  });

  test('site rollback without a previous release says so', async () => {
    kvs.stores.set(KVS_ARN, new Map([['active', 'r3']]));
    const r = await runInProcess(['site', 'rollback', ...site(), '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('has no previous release to roll back to: pass --to RELEASE');
  });

  test('an incomplete explicit site target names the missing flags', async () => {
    const r = await runInProcess(['site', 'rollback', '--bucket', 'web-bucket', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('an explicit site target needs --kvs, --bucket and --distribution: missing --kvs ARN, --distribution ID');
  });

  test('a malformed KeyValueStore ARN is a usage error', async () => {
    const r = await runInProcess(['site', 'releases', '--kvs', 'my-store', '--bucket', 'b', '--distribution', 'D']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('`--kvs` must be a CloudFront KeyValueStore ARN (arn:aws:cloudfront::ACCOUNT:key-value-store/ID), got: my-store');
  });
});

describe('a stack with every construct kind (mocked CloudFormation)', () => {
  let cfn: AwsClientStub<CloudFormationClient>;
  let cf: AwsClientStub<CloudFrontClient>;
  beforeAll(() => { cfn = mockClient(CloudFormationClient); cf = mockClient(CloudFrontClient); });
  afterAll(() => { cfn.restore(); cf.restore(); });

  function deployedStack(status: string, extraSite = false, extraDb = false) {
    const resources: Record<string, unknown> = {
      ...apiSiteAndClusterResources(),
      Snap: { Type: 'Custom::PreMigrationSnapshot', Metadata: constructMeta('PreMigrationSnapshot', 'snapshot', 'App/Snapshot'), Properties: { ClusterIdentifier: { Ref: 'Cluster' } } },
      Migr: { Type: 'Custom::DatabaseMigrations', Metadata: constructMeta('DatabaseMigrations', 'migrations', 'App/Migrations'), Properties: { MigrationCount: '3', LatestVersion: '0003' } },
    };
    const physical: Record<string, string> = {
      ApiFn: 'orders', ApiApp: 'orders-app', ApiGroup: 'orders-group', WebBucket: 'web-bucket', WebDist: 'DIST', WebKvs: 'web-kvs', Cluster: 'orders-db', Snap: 'snap-resource', Migr: 'migr-resource',
    };
    if (extraDb) {
      resources.OtherSnap = { Type: 'Custom::PreMigrationSnapshot', Metadata: constructMeta('PreMigrationSnapshot', 'snapshot', 'App/Other/Snapshot'), Properties: { ClusterIdentifier: 'other-db' } };
      physical.OtherSnap = 'other-snap-resource';
    }
    if (extraSite) {
      resources.AdminBucket = { Type: 'AWS::S3::Bucket', Metadata: constructMeta('VersionedSite', 'bucket', 'App/Admin') };
      physical.AdminBucket = 'admin-bucket';
    }
    mockDeployedStack(cfn, { status, reason: status === 'UPDATE_ROLLBACK_FAILED' ? 'Resource ApiFn failed to roll back' : undefined, resources, physical });
    cf.reset();
    cf.on(DescribeKeyValueStoreCommand, { Name: 'web-kvs' }).resolves({ KeyValueStore: { Name: 'web-kvs', Id: 'x', ARN: KVS_ARN, LastModifiedTime: new Date(0), Comment: '' } });
  }

  beforeEach(async () => {
    await createApi({ functionName: 'orders', versions: 2, live: 2, stable: 1 });
    await createSiteBucket('web-bucket', [{ id: 'r2', createdAt: '2026-01-02T00:00:00Z', status: 'active' }, { id: 'r1', createdAt: '2026-01-01T00:00:00Z', status: 'previous' }]);
    await createCluster('orders-db', ['app-cccccccc-20260101000000']);
    kvs.stores.set(KVS_ARN, new Map([['active', 'r2'], ['previous', 'r1']]));
  });

  test('status --json has one section per construct, the {Ref} cluster resolved, and the deployed migration count', async () => {
    deployedStack('UPDATE_COMPLETE');
    const r = await runInProcess(['status', '--stack', 'App', '--json']);
    expect(r.code).toBe(0);
    const doc = json(r);
    expect(doc.stack).toEqual({ name: 'App', status: 'UPDATE_COMPLETE', warning: null });
    expect(doc.apis).toEqual([expect.objectContaining({ path: 'App/Api', function: 'orders', codedeploy: { application: 'orders-app', deploymentGroup: 'orders-group' }, stable: '1' })]);
    expect(doc.sites).toEqual([expect.objectContaining({ path: 'App/Web', bucket: 'web-bucket', distribution: 'DIST', kvs: KVS_ARN, active: 'r2', previous: 'r1' })]);
    expect(doc.databases).toEqual([expect.objectContaining({ path: 'App/Snapshot', cluster: 'orders-db', snapshots: [expect.objectContaining({ id: 'app-cccccccc-20260101000000' })] })]);
    expect(doc.migrations).toEqual([{ path: 'App/Migrations', cluster: null, function: null, database: null, template: { migrationCount: '3', latestVersion: '0003' } }]);
  });

  test('status warns loudly about UPDATE_ROLLBACK_FAILED with the next step', async () => {
    deployedStack('UPDATE_ROLLBACK_FAILED');
    const r = await runInProcess(['status', '--stack', 'App']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Stack App: UPDATE_ROLLBACK_FAILED');
    expect(r.stdout).toContain('reason: Resource ApiFn failed to roll back');
    expect(r.stdout).toContain('!!! stack App is UPDATE_ROLLBACK_FAILED: no deploy works until it is fixed');
    expect(r.stdout).toContain('aws cloudformation continue-update-rollback --stack-name App');
    expect(r.stderr).toContain('warning: stack App is UPDATE_ROLLBACK_FAILED');
  });

  test('db snapshots --stack finds the cluster through the snapshot resource', async () => {
    deployedStack('UPDATE_COMPLETE');
    const r = await runInProcess(['db', 'snapshots', '--stack', 'App', '--json']);
    expect(r.code).toBe(0);
    expect(json(r)).toMatchObject({ cluster: 'orders-db', path: 'App/Snapshot' });
  });

  test('db snapshots --stack with two databases is ambiguous; --target picks one', async () => {
    deployedStack('UPDATE_COMPLETE', false, true);
    const r = await runInProcess(['db', 'snapshots', '--stack', 'App']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stack App has 2 databases: pass --target with one of: App/Migrations, App/Other/Snapshot, App/Snapshot');
    const picked = await runInProcess(['db', 'snapshots', '--stack', 'App', '--target', 'App/Snapshot', '--json']);
    expect(picked.code).toBe(0);
    expect(json(picked)).toMatchObject({ cluster: 'orders-db', path: 'App/Snapshot' });
  });

  test('site releases --stack with two sites is ambiguous; --target picks one', async () => {
    deployedStack('UPDATE_COMPLETE', true);
    const r = await runInProcess(['site', 'releases', '--stack', 'App']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stack App has 2 VersionedSite targets: pass --target with one of: App/Admin, App/Web');
    const picked = await runInProcess(['site', 'releases', '--stack', 'App', '--target', 'App/Web', '--json']);
    expect(picked.code).toBe(0);
    expect(json(picked)).toMatchObject({ path: 'App/Web', active: 'r2' });
  });

  test('api rollback --stack uses the CodeDeploy group of the stack', async () => {
    deployedStack('UPDATE_COMPLETE');
    const r = await runInProcess(['api', 'rollback', '--stack', 'App', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Rolled back live of App/Api (orders): version 2 -> version 1.');
  });
});

describe('the example app\'s real template (contract with the constructs)', () => {
  let cfn: AwsClientStub<CloudFormationClient>;
  let cf: AwsClientStub<CloudFrontClient>;
  beforeAll(() => { cfn = mockClient(CloudFormationClient); cf = mockClient(CloudFrontClient); });
  afterAll(() => { cfn.restore(); cf.restore(); });

  test('status --stack finds the API, the site, the database through the snapshot\'s {Ref} and the deployed migration count', async () => {
    const app = buildExampleApp(new App());
    const stack = app.node.findChild('CdkRollbackExample') as Stack;
    type Res = { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, { role?: string }> };
    const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, Res> };
    const byRole: Record<string, string> = {
      'function': 'example-fn', 'application': 'example-app', 'deployment-group': 'example-group',
      'bucket': 'example-site-bucket', 'distribution': 'EXAMPLEDIST', 'key-value-store': 'example-kvs',
    };
    const physicalOf = (id: string, r: Res) => byRole[r.Metadata?.['cdk-rollback']?.role ?? '']
      ?? (r.Type === 'AWS::RDS::DBCluster' ? 'example-db' : `${id}-physical`);
    cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'CdkRollbackExample', StackStatus: 'UPDATE_COMPLETE', CreationTime: new Date(0) }] });
    cfn.on(GetTemplateCommand).resolves({ TemplateBody: JSON.stringify(template) });
    cfn.on(ListStackResourcesCommand).resolves({ StackResourceSummaries: Object.entries(template.Resources).map(([id, r]) => ({
      LogicalResourceId: id, PhysicalResourceId: physicalOf(id, r), ResourceType: r.Type, ResourceStatus: 'UPDATE_COMPLETE', LastUpdatedTimestamp: new Date(0),
    })) });
    cf.on(DescribeKeyValueStoreCommand, { Name: 'example-kvs' }).resolves({ KeyValueStore: { Name: 'example-kvs', Id: 'x', ARN: KVS_ARN, LastModifiedTime: new Date(0), Comment: '' } });
    await createApi({ functionName: 'example-fn', versions: 2, live: 2, stable: 1 });
    await createCluster('example-db', ['example-dddddddd-20260101000000']);
    await createSiteBucket('example-site-bucket', [{ id: 'r1', createdAt: '2026-01-01T00:00:00Z', status: 'active' }]);
    kvs.stores.set(KVS_ARN, new Map([['active', 'r1']]));
    const migrations = Object.values(template.Resources).find((r) => r.Type === 'Custom::DatabaseMigrations')!.Properties!;
    // The migrations runner (moto cannot invoke Lambda): a loopback Invoke endpoint answers its `plan`.
    const [runnerId] = Object.entries(template.Resources).find(([, r]) => r.Metadata?.['cdk-rollback']?.role === 'runner')!;
    const invoke = await startLambdaInvokeServer(() => moto.endpoint);
    invoke.functions.set(`${runnerId}-physical`, { handler: async () => ({
      action: 'plan', applied: [{ version: '0001', name: 'create_orders', checksum: 'x', appliedAt: '2026-01-01T00:00:00.000Z', durationMs: 5, snapshotIdentifier: null }],
      pending: [], drift: [], unknown: [], log: [],
    }) });
    process.env.AWS_ENDPOINT_URL_LAMBDA = invoke.endpoint;

    const r = await runInProcess(['status', '--stack', 'CdkRollbackExample', '--json']).finally(() => {
      delete process.env.AWS_ENDPOINT_URL_LAMBDA;
      return invoke.close();
    });
    expect(r.code).toBe(0);
    const doc = json(r);
    expect(doc.apis).toEqual([expect.objectContaining({
      path: 'CdkRollbackExample/Api', function: 'example-fn', codedeploy: { application: 'example-app', deploymentGroup: 'example-group' },
      live: { version: '2', weights: {} }, stable: '1',
    })]);
    expect(doc.sites).toEqual([expect.objectContaining({ path: 'CdkRollbackExample/Site', bucket: 'example-site-bucket', distribution: 'EXAMPLEDIST', kvs: KVS_ARN, active: 'r1' })]);
    expect(doc.databases).toEqual([expect.objectContaining({ cluster: 'example-db', snapshots: [expect.objectContaining({ id: 'example-dddddddd-20260101000000' })] })]);
    expect(doc.migrations).toEqual([expect.objectContaining({
      path: 'CdkRollbackExample/Migrations', cluster: 'example-db', function: `${runnerId}-physical`,
      template: { migrationCount: migrations.MigrationCount, latestVersion: migrations.LatestVersion },
      database: expect.objectContaining({ latestVersion: '0001', pending: [] }),
    })]);

    // one database, two constructs (snapshot and migrations): the db commands need no --target
    const snaps = await runInProcess(['db', 'snapshots', '--stack', 'CdkRollbackExample', '--json']);
    expect(snaps.code).toBe(0);
    expect(json(snaps)).toMatchObject({ cluster: 'example-db', path: 'CdkRollbackExample/Migrations/Snapshot' });
  }, 120_000);
});

describe('a real VersionedSite template (contract with the construct)', () => {
  let cfn: AwsClientStub<CloudFormationClient>;
  let cf: AwsClientStub<CloudFrontClient>;
  beforeAll(() => { cfn = mockClient(CloudFormationClient); cf = mockClient(CloudFrontClient); });
  afterAll(() => { cfn.restore(); cf.restore(); });

  test('site releases --stack finds the bucket, the distribution and the KeyValueStore (name -> ARN)', async () => {
    const stack = new Stack(new App(), 'Web');
    new VersionedSite(stack, 'Site', { source: path.join(__dirname, 'fixtures', 'site', 'build') });
    const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, { Type: string }> };
    const byType: Record<string, string> = {
      'AWS::S3::Bucket': 'web-bucket', 'AWS::CloudFront::Distribution': 'DISTID', 'AWS::CloudFront::KeyValueStore': 'web-kvs-name',
    };
    cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'Web', StackStatus: 'CREATE_COMPLETE', CreationTime: new Date(0) }] });
    cfn.on(GetTemplateCommand).resolves({ TemplateBody: JSON.stringify(template) });
    cfn.on(ListStackResourcesCommand).resolves({ StackResourceSummaries: Object.keys(template.Resources).map((id) => ({
      LogicalResourceId: id, PhysicalResourceId: byType[template.Resources[id].Type] ?? `${id}-physical`, ResourceType: template.Resources[id].Type,
      ResourceStatus: 'CREATE_COMPLETE', LastUpdatedTimestamp: new Date(0),
    })) });
    cf.on(DescribeKeyValueStoreCommand, { Name: 'web-kvs-name' }).resolves({ KeyValueStore: { Name: 'web-kvs-name', Id: 'x', ARN: KVS_ARN, LastModifiedTime: new Date(0), Comment: '' } });
    await createSiteBucket('web-bucket', [{ id: 'r1', createdAt: '2026-01-01T00:00:00Z', status: 'active' }]);
    kvs.stores.set(KVS_ARN, new Map([['active', 'r1']]));
    const r = await runInProcess(['site', 'releases', '--stack', 'Web', '--json']);
    expect(r.code).toBe(0);
    expect(json(r)).toMatchObject({ path: 'Web/Site', bucket: 'web-bucket', distribution: 'DISTID', kvs: KVS_ARN, active: 'r1' });
  }, 120_000);
});

describe('stack warnings', () => {
  test.each([
    ['UPDATE_ROLLBACK_COMPLETE', 'the last deployment failed and CloudFormation rolled it back'],
    ['UPDATE_ROLLBACK_IN_PROGRESS', 'CloudFormation is changing it now'],
    ['UPDATE_IN_PROGRESS', 'Wait for it to finish before rolling back by hand'],
    ['ROLLBACK_COMPLETE', 'its creation failed. Read the stack events for the cause, delete the stack'],
    ['UPDATE_ROLLBACK_FAILED', 'continue-update-rollback'],
    ['DELETE_FAILED', 'read the stack events for the cause'],
  ])('%s gets a warning with the next step', (status, text) => {
    expect(stackWarning('App', status)).toContain(text);
  });

  test('a settled stack gets none', () => {
    expect(stackWarning('App', 'UPDATE_COMPLETE')).toBeUndefined();
    expect(stackWarning('App', 'CREATE_COMPLETE')).toBeUndefined();
  });
});

describe('db drill --check-sql (mocked RDS and RDS Data API)', () => {
  let rds: AwsClientStub<RDSClient>;
  let data: AwsClientStub<RDSDataClient>;
  beforeAll(() => { rds = mockClient(RDSClient); data = mockClient(RDSDataClient); });
  afterAll(() => { rds.restore(); data.restore(); });

  const SOURCE = {
    DBClusterIdentifier: 'db', EngineVersion: '16.4', DBSubnetGroup: 'db-subnets', VpcSecurityGroups: [{ VpcSecurityGroupId: 'sg-1' }],
    DBClusterParameterGroup: 'db-params', KmsKeyId: 'key-1', MasterUserSecret: { SecretArn: 'arn:secret' },
    DBClusterMembers: [{ DBInstanceIdentifier: 'db-writer', IsClusterWriter: true }],
  };

  /** The source cluster `db` with one managed snapshot; `restored` answers DescribeDBClusters for the new cluster. */
  function cluster(source: Record<string, unknown>, restored: (id: string) => unknown) {
    rds.on(DescribeDBClusterSnapshotsCommand).resolves({ DBClusterSnapshots: [
      { DBClusterSnapshotIdentifier: 'db-aaaaaaaa-20260101000000', DBClusterIdentifier: 'db', Status: 'available', Engine: 'aurora-postgresql', EngineVersion: '16.4',
        SnapshotCreateTime: new Date('2026-01-01T00:00:00Z'), TagList: [{ Key: 'cdk-rollback:managed-by', Value: 'cdk-rollback' }] },
    ] });
    rds.on(DescribeDBClustersCommand).callsFake((input: { DBClusterIdentifier?: string }) =>
      (input.DBClusterIdentifier === 'db' ? { DBClusters: [source] } : restored(input.DBClusterIdentifier ?? '')));
    rds.on(DescribeDBInstancesCommand).callsFake((input: { DBInstanceIdentifier?: string }) => (input.DBInstanceIdentifier === 'db-writer'
      ? { DBInstances: [{ DBInstanceClass: 'db.r6g.large' }] }
      : { DBInstances: [{ DBInstanceStatus: 'available' }] }));
  }
  const available = (id: string) => ({ DBClusters: [{ DBClusterIdentifier: id, Status: 'available', DBClusterArn: 'arn:tmp', Endpoint: 'tmp.endpoint' }] });

  beforeEach(() => {
    rds.reset();
    data.reset();
  });

  test('runs the check query on the restored cluster, then deletes it; waits with progress', async () => {
    // The restored cluster is first not there yet, then creating, then available.
    let calls = 0;
    cluster(SOURCE, (id) => {
      calls++;
      if (calls === 1) return Promise.reject(Object.assign(new Error('not found'), { name: 'DBClusterNotFoundFault' }));
      return calls === 2 ? { DBClusters: [{ DBClusterIdentifier: id, Status: 'creating' }] } : available(id);
    });
    rds.on(RestoreDBClusterFromSnapshotCommand).resolves({});
    rds.on(CreateDBInstanceCommand).resolves({});
    rds.on(EnableHttpEndpointCommand).resolves({ HttpEndpointEnabled: true });
    rds.on(DeleteDBInstanceCommand).resolves({});
    rds.on(DeleteDBClusterCommand).resolves({});
    data.on(ExecuteStatementCommand).resolves({ formattedRecords: '[{"count":42}]' });
    const r = await runInProcess(['db', 'drill', '--cluster', 'db', '--check-sql', 'select count(*) from orders', '--database', 'app', '--yes', '--json']);
    expect(r.code).toBe(0);
    const doc = json(r);
    expect(doc).toMatchObject({ passed: true, check: { ok: true, records: [{ count: 42 }], sql: 'select count(*) from orders' } });
    expect(r.stderr).toMatch(/waiting for cluster db-drill-\d{14}: not visible yet/);
    expect(r.stderr).toMatch(/waiting for cluster db-drill-\d{14}: creating/);
    const restore = rds.commandCalls(RestoreDBClusterFromSnapshotCommand)[0].args[0].input;
    expect(restore).toMatchObject({
      SnapshotIdentifier: 'db-aaaaaaaa-20260101000000', Engine: 'aurora-postgresql', EngineVersion: '16.4', DBSubnetGroupName: 'db-subnets',
      VpcSecurityGroupIds: ['sg-1'], DBClusterParameterGroupName: 'db-params', KmsKeyId: 'key-1',
    });
    expect(rds.commandCalls(CreateDBInstanceCommand)[0].args[0].input).toMatchObject({ DBInstanceClass: 'db.r6g.large', Engine: 'aurora-postgresql' });
    expect(data.commandCalls(ExecuteStatementCommand)[0].args[0].input).toMatchObject({ resourceArn: 'arn:tmp', secretArn: 'arn:secret', database: 'app', sql: 'select count(*) from orders' });
    expect(rds.commandCalls(DeleteDBInstanceCommand)[0].args[0].input).toMatchObject({ SkipFinalSnapshot: true });
    expect(rds.commandCalls(DeleteDBClusterCommand)[0].args[0].input).toMatchObject({ DBClusterIdentifier: doc.temporaryCluster, SkipFinalSnapshot: true });
  });

  test('a failing check query fails the drill (exit 1) and still deletes the temporary cluster', async () => {
    cluster(SOURCE, available);
    rds.on(EnableHttpEndpointCommand).resolves({ HttpEndpointEnabled: true });
    data.on(ExecuteStatementCommand).rejects(Object.assign(new Error('relation "orders" does not exist'), { name: 'DatabaseErrorException' }));
    const r = await runInProcess(['db', 'drill', '--cluster', 'db', '--check-sql', 'select 1 from orders', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('Drill FAILED');
    expect(r.stdout).toContain('check query FAILED: DatabaseErrorException: relation "orders" does not exist');
    expect(rds.commandCalls(DeleteDBClusterCommand)).toHaveLength(1);
  });

  test('--check-sql without a secret is refused before anything is created', async () => {
    cluster({ ...SOURCE, MasterUserSecret: undefined }, available);
    const r = await runInProcess(['db', 'drill', '--cluster', 'db', '--check-sql', 'select 1', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('`--check-sql` needs credentials for the Data API: cluster db has no managed master secret, pass --secret-arn');
    expect(rds.commandCalls(RestoreDBClusterFromSnapshotCommand)).toHaveLength(0);
  });
});
