/**
 * The CLI in an incident (issue 11), `main()` in-process against moto_server and the KeyValueStore stand-in:
 * bad input refused before any call, function targets normalized (one audit trail per function), writes guarded
 * against a change between plan and flip (RevisionId, ETag), the in-flight and stack-state checks, the audit that
 * never overwrites what it could not read, deadlines on waits, `rollback --stack` and `status` of every stack.
 * aws-sdk-client-mock only for what moto cannot do (RevisionId checks, stack states, invalidations that never end).
 */
import {
  CloudFormationClient, CreateStackCommand, DescribeStackResourcesCommand, DescribeStacksCommand, GetTemplateCommand,
  ListStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import { CloudFrontClient, CreateInvalidationCommand, GetInvalidationCommand } from '@aws-sdk/client-cloudfront';
import { CodeDeployClient, ListDeploymentsCommand } from '@aws-sdk/client-codedeploy';
import {
  CreateAliasCommand, DeleteAliasCommand, GetAliasCommand, GetFunctionCommand, LambdaClient, PublishVersionCommand,
  UpdateAliasCommand, UpdateFunctionCodeCommand,
} from '@aws-sdk/client-lambda';
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { parseFunctionRef } from '../bin/cli/api';
import { hasStackMarker, mapLimit } from '../bin/cli/status-all';
import { buildExampleApp } from '../bin/example-app';
import { TAG_CODEDEPLOY_APPLICATION, TAG_CODEDEPLOY_GROUP } from '../lambda/shared/contract';
import { apiSiteAndClusterResources, constructMeta, liveVersion, mockDeployedStack, useInProcessCli } from './helpers/cli-inprocess';
import { ACCOUNT, KVS_ARN, createApi, createCluster, createDistribution, createRole, createSiteBucket, zip } from './fixtures/cli/aws';
import { json, runInProcess } from './fixtures/cli/harness';
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('./fixtures/cli/loopback-dns.js');

const { kvs } = useInProcessCli();
const ARN = `arn:aws:lambda:us-east-1:${ACCOUNT}:function:orders`;

describe('bad input is refused before any call, and nothing changes', () => {
  beforeEach(() => createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true }));

  test('a bogus --region is a usage error naming --region (not a DNS error)', async () => {
    const r = await runInProcess(['api', 'rollback', '--function', 'orders', '--region', 'moon-base-9x', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('`--region` must be an AWS region name such as us-east-1 or eu-west-2, got: moon-base-9x');
    expect(await liveVersion('orders')).toBe('3');
    const s = await runInProcess(['status', '--function', 'orders', '--region', 'us_east_1', '--json']);
    expect(s.code).toBe(2);
    expect(json(s)).toMatchObject({ ok: false, exitCode: 2, error: '`--region` must be an AWS region name such as us-east-1 or eu-west-2, got: us_east_1' });
  });

  test.each(['abc', '0', '-5', ' '])('CDK_ROLLBACK_POLL_SECONDS=%j is a usage error naming it', async (value) => {
    const r = await runInProcess(['api', 'rollback', '--function', 'orders', '--yes'], { env: { CDK_ROLLBACK_POLL_SECONDS: value } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`CDK_ROLLBACK_POLL_SECONDS must be a positive number of seconds (such as 15 or 0.5), got: ${value}`);
    expect(await liveVersion('orders')).toBe('3');
  });

  test('CDK_ROLLBACK_WAIT_SECONDS must be a positive number too', async () => {
    const r = await runInProcess(['status', '--function', 'orders'], { env: { CDK_ROLLBACK_WAIT_SECONDS: 'soon' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('CDK_ROLLBACK_WAIT_SECONDS must be a positive number of seconds (such as 600), got: soon');
  });

  test('a function qualified with anything but live is a usage error', async () => {
    const version = await runInProcess(['api', 'rollback', '--function', `${ARN}:3`, '--yes']);
    expect(version.code).toBe(2);
    expect(version.stderr).toContain(`\`--function\` ${ARN}:3 names version 3 of orders: the CLI works on the \`live\` alias`);
    const alias = await runInProcess(['api', 'rollback', '--function', 'orders:stable', '--yes']);
    expect(alias.code).toBe(2);
    expect(alias.stderr).toContain('names alias stable of orders');
    const junk = await runInProcess(['api', 'rollback', '--function', 'arn:aws:s3:::bucket', '--yes']);
    expect(junk.code).toBe(2);
    expect(junk.stderr).toContain('`--function` must be a function name, a full or partial ARN');
    expect(await liveVersion('orders')).toBe('3');
  });

  test('an ARN in another region than --region is a usage error naming --region', async () => {
    const r = await runInProcess(['api', 'rollback', '--function', `arn:aws:lambda:eu-west-1:${ACCOUNT}:function:orders`, '--region', 'us-east-1', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is in region eu-west-1 but `--region` is us-east-1');
    expect(await liveVersion('orders')).toBe('3');
  });
});

describe('one function, one audit trail', () => {
  test('parseFunctionRef: name, full, partial and :live-qualified ARNs name the same function', () => {
    expect(parseFunctionRef('orders')).toEqual({ name: 'orders', region: undefined });
    expect(parseFunctionRef('orders:live')).toEqual({ name: 'orders', region: undefined });
    expect(parseFunctionRef(`${ACCOUNT}:function:orders`)).toEqual({ name: 'orders', region: undefined });
    expect(parseFunctionRef(`${ARN}:live`)).toEqual({ name: 'orders', region: 'us-east-1' });
    expect(parseFunctionRef(`arn:aws-cn:lambda:cn-north-1:${ACCOUNT}:function:orders`)).toEqual({ name: 'orders', region: 'cn-north-1' });
  });

  test('a rollback by ARN is audited under the function name: status --function orders shows it', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const r = await runInProcess(['api', 'rollback', '--function', `${ARN}:live`, '--yes', '--json']);
    expect(r.code).toBe(0);
    expect(json(r)).toMatchObject({ function: 'orders', auditRecordedIn: '/cdk-rollback/audit/api/orders', audit: { target: 'orders' } });
    expect(await liveVersion('orders')).toBe('2');
    const s = await runInProcess(['status', '--function', 'orders']);
    expect(s.stdout).toMatch(/last: \S+ api rollback live=3 -> live=2/);
    const partial = await runInProcess(['status', '--function', `${ACCOUNT}:function:orders`, '--json']);
    expect(json(partial).apis[0]).toMatchObject({ function: 'orders', audit: [expect.objectContaining({ action: 'api rollback' })] });
  });
});

describe('writes guarded against a change between plan and flip (RevisionId; Lambda mocked: moto ignores RevisionId)', () => {
  let lambda: AwsClientStub<LambdaClient>;
  let cd: AwsClientStub<CodeDeployClient>;
  let live: { version: string; revision: string };
  beforeAll(() => { lambda = mockClient(LambdaClient); cd = mockClient(CodeDeployClient); });
  afterAll(() => { lambda.restore(); cd.restore(); });
  beforeEach(() => {
    live = { version: '3', revision: 'rev-1' };
    lambda.reset();
    cd.reset();
    lambda.on(GetFunctionCommand).resolves({ Configuration: { FunctionName: 'orders' }, Tags: { [TAG_CODEDEPLOY_APPLICATION]: 'orders-app', [TAG_CODEDEPLOY_GROUP]: 'orders-group' } });
    lambda.on(GetAliasCommand, { Name: 'live' }).callsFake(async () => ({ Name: 'live', FunctionVersion: live.version, RevisionId: live.revision }));
    lambda.on(GetAliasCommand, { Name: 'stable' }).resolves({ Name: 'stable', FunctionVersion: '2', RevisionId: 'rev-s' });
    lambda.on(UpdateAliasCommand).callsFake(async (input: { RevisionId?: string; FunctionVersion?: string }) => {
      if (input.RevisionId !== live.revision) {
        throw Object.assign(new Error('The Revision Id provided does not match the latest Revision Id.'), { name: 'PreconditionFailedException' });
      }
      live = { version: input.FunctionVersion!, revision: 'rev-after' };
      return { Name: 'live', FunctionVersion: live.version, RevisionId: live.revision };
    });
    cd.on(ListDeploymentsCommand).resolves({ deployments: [] });
  });

  test('UpdateAlias carries the RevisionId read in the plan', async () => {
    const r = await runInProcess(['api', 'rollback', '--function', 'orders', '--yes']);
    expect(r.code).toBe(0);
    expect(lambda.commandCalls(UpdateAliasCommand)[0].args[0].input).toMatchObject({ FunctionName: 'orders', Name: 'live', FunctionVersion: '2', RevisionId: 'rev-1' });
    expect(live.version).toBe('2');
  });

  test('a deploy that moves live while the operator reads the plan: refused (exit 3), its change kept', async () => {
    const r = await runInProcess(['api', 'rollback', '--function', 'orders'], {
      isTTY: true,
      confirm: async () => { live = { version: '4', revision: 'rev-2' }; return true; },
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('live of orders changed between the plan and the flip (it was version 3 when read; a deployment or another rollback moved it since): nothing was changed by this command');
    expect(live.version).toBe('4');
  });
});

describe('the in-flight deployment check', () => {
  test('no CodeDeploy tags and no stack: refused without --force (exit 3), a warning with it', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2 });
    const r = await runInProcess(['api', 'rollback', '--function', 'orders', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('cannot check for an in-flight CodeDeploy deployment of orders: the function has no CodeDeploy tags');
    expect(r.stderr).toContain('pass --force to roll back without the check');
    expect(await liveVersion('orders')).toBe('3');
    const forced = await runInProcess(['api', 'rollback', '--function', 'orders', '--yes', '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toContain('going ahead because of --force');
    expect(await liveVersion('orders')).toBe('2');
  });

  describe('no tags, but the function is in a stack with SafeLambdaApi metadata (CloudFormation and CodeDeploy mocked)', () => {
    let cfn: AwsClientStub<CloudFormationClient>;
    let cd: AwsClientStub<CodeDeployClient>;
    beforeAll(() => { cfn = mockClient(CloudFormationClient); cd = mockClient(CodeDeployClient); });
    afterAll(() => { cfn.restore(); cd.restore(); });

    test('the group comes from the stack, and the in-flight deployment is found', async () => {
      await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2 });
      const meta = (role: string) => ({ 'cdk-rollback': { version: 1, kind: 'SafeLambdaApi', role, path: 'App/Api' } });
      cfn.on(DescribeStackResourcesCommand, { PhysicalResourceId: 'orders' }).resolves({ StackResources: [{ StackName: 'App', LogicalResourceId: 'ApiFn', ResourceType: 'AWS::Lambda::Function', ResourceStatus: 'UPDATE_COMPLETE', Timestamp: new Date(0) }] });
      cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'App', StackStatus: 'UPDATE_COMPLETE', CreationTime: new Date(0) }] });
      cfn.on(GetTemplateCommand).resolves({ TemplateBody: JSON.stringify({ Resources: {
        ApiFn: { Type: 'AWS::Lambda::Function', Metadata: meta('function') },
        ApiApp: { Type: 'AWS::CodeDeploy::Application', Metadata: meta('application') },
        ApiGroup: { Type: 'AWS::CodeDeploy::DeploymentGroup', Metadata: meta('deployment-group') },
      } }) });
      cfn.on(ListStackResourcesCommand).resolves({ StackResourceSummaries: [['ApiFn', 'orders'], ['ApiApp', 'orders-app'], ['ApiGroup', 'orders-group']].map(([l, p]) => ({
        LogicalResourceId: l, PhysicalResourceId: p, ResourceType: 'x', ResourceStatus: 'UPDATE_COMPLETE', LastUpdatedTimestamp: new Date(0),
      })) });
      cd.on(ListDeploymentsCommand).resolves({ deployments: ['d-INFLIGHT'] });
      const r = await runInProcess(['api', 'rollback', '--function', 'orders', '--dry-run']);
      expect(r.code).toBe(0);
      expect(cd.commandCalls(ListDeploymentsCommand)[0].args[0].input).toMatchObject({ applicationName: 'orders-app', deploymentGroupName: 'orders-group' });
      expect(r.stdout).toContain('would stop CodeDeploy deployment d-INFLIGHT of orders-app/orders-group with auto rollback');
    });
  });
});

describe('the audit never overwrites what it could not read', () => {
  test('a failed SSM read: the change stands, a warning, no PutParameter (SSM mocked)', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const ssm = mockClient(SSMClient);
    try {
      ssm.on(GetParameterCommand).rejects(Object.assign(new Error('User is not authorized to perform ssm:GetParameter'), { name: 'AccessDeniedException' }));
      const r = await runInProcess(['api', 'rollback', '--function', 'orders', '--yes', '--json']);
      expect(r.code).toBe(0);
      expect(await liveVersion('orders')).toBe('2');
      expect(ssm.commandCalls(PutParameterCommand)).toHaveLength(0);
      expect(r.stderr).toContain('the change was made, but the audit record /cdk-rollback/audit/api/orders could not be read (AccessDeniedException: User is not authorized to perform ssm:GetParameter): it was not rewritten, so its earlier entries are kept');
      expect(json(r)).toMatchObject({ action: 'rollback', audit: { action: 'api rollback' } });
      expect(json(r).auditRecordedIn).toBeUndefined();
    } finally {
      ssm.restore();
    }
  });

  test('a trail that is not JSON is kept as it is (moto)', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const ssm = new SSMClient({});
    await ssm.send(new PutParameterCommand({ Name: '/cdk-rollback/audit/api/orders', Type: 'String', Value: 'written by hand' }));
    const r = await runInProcess(['api', 'rollback', '--function', 'orders', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('could not be read (its value is not JSON): it was not rewritten');
    expect((await ssm.send(new GetParameterCommand({ Name: '/cdk-rollback/audit/api/orders' }))).Parameter?.Value).toBe('written by hand');
  });
});

/** A deployed stack (CloudFormation mocked) with a site, an API and a database, on resources in moto. */
function mockStack(cfn: AwsClientStub<CloudFormationClient>, status: string, dist: string): void {
  const resources: Record<string, unknown> = {
    ...apiSiteAndClusterResources(),
    Snap: { Type: 'Custom::PreMigrationSnapshot', Metadata: constructMeta('PreMigrationSnapshot', 'snapshot', 'App/Db/Snapshot'), Properties: { ClusterIdentifier: { Ref: 'Cluster' } } },
    Migr: { Type: 'Custom::DatabaseMigrations', Metadata: constructMeta('DatabaseMigrations', 'migrations', 'App/Db'), Properties: { ClusterIdentifier: { Ref: 'Cluster' }, MigrationCount: '3', LatestVersion: '0003' } },
  };
  const physical: Record<string, string> = {
    ApiFn: 'orders', ApiApp: 'orders-app', ApiGroup: 'orders-group', WebBucket: 'web-bucket', WebDist: dist, WebKvs: KVS_ARN, Cluster: 'orders-db', Snap: 'snap', Migr: 'migr',
  };
  mockDeployedStack(cfn, { status, resources, physical });
}

describe('a stack with a site, an API and a database (CloudFormation mocked; Lambda, S3, CloudFront, RDS in moto; KVS stand-in)', () => {
  let cfn: AwsClientStub<CloudFormationClient>;
  let dist: string;
  beforeAll(() => { cfn = mockClient(CloudFormationClient); });
  afterAll(() => cfn.restore());
  beforeEach(async () => {
    await createApi({ functionName: 'orders', versions: 2, live: 2, stable: 1, codeDeploy: true });
    await createSiteBucket('web-bucket', [{ id: 'r2', createdAt: '2026-01-02T00:00:00Z', status: 'active' }, { id: 'r1', createdAt: '2026-01-01T00:00:00Z', status: 'previous' }]);
    dist = await createDistribution('web-bucket');
    await createCluster('orders-db', ['orders-aaaaaaaa-20260101000000']);
    kvs.stores.set(KVS_ARN, new Map([['active', 'r2'], ['previous', 'r1']]));
  });

  test('rollback --stack: one plan, one confirmation, site then API; database options printed, not run', async () => {
    mockStack(cfn, 'UPDATE_COMPLETE', dist);
    const asked: string[] = [];
    const r = await runInProcess(['rollback', '--stack', 'App', '--json'], { isTTY: true, confirm: async (q) => { asked.push(q); return true; } });
    expect(r.code).toBe(0);
    expect(asked).toEqual(['Roll back 2 step(s) of stack App, in this order?']);
    // the plan, shown once before the question, in reverse deploy order
    expect(r.stderr).toMatch(/1\. site active release of App\/Web \(bucket web-bucket, distribution \S+\): r2 -> r1[\s\S]*2\. api live of App\/Api \(orders\): version 2 -> version 1/);
    expect(r.stderr).toContain('database App/Db, App/Db/Snapshot (cluster orders-db): not rolled back by this command (schema changes stay explicit)');
    const doc = json(r);
    expect(doc.steps).toEqual([
      expect.objectContaining({ order: 1, kind: 'site', path: 'App/Web', status: 'done', result: expect.objectContaining({ from: 'r2', to: 'r1' }) }),
      expect.objectContaining({ order: 2, kind: 'api', path: 'App/Api', status: 'done', result: expect.objectContaining({ to: '1' }) }),
    ]);
    expect(doc.databases).toEqual([expect.objectContaining({
      cluster: 'orders-db',
      latestSnapshot: expect.objectContaining({ id: 'orders-aaaaaaaa-20260101000000' }),
      options: [
        'restore the pre-migration snapshot into a new cluster: cdk-rollback db restore --stack App --snapshot orders-aaaaaaaa-20260101000000',
        expect.stringContaining('cdk-rollback db down --dir MIGRATIONS_DIR --database-url URL --to VERSION (VERSION: the latest migration the previous release needs; deployed now: 3 migration(s), latest 0003)'),
      ],
    })]);
    expect(kvs.stores.get(KVS_ARN)).toEqual(new Map([['active', 'r1'], ['previous', 'r2']]));
    expect(await liveVersion('orders')).toBe('1');
    // site first, then the API
    expect(r.stderr.indexOf('release r1 is active')).toBeLessThan(r.stderr.indexOf('live of orders now points at version 1'));
  });

  test('a failing step stops the run and says what was done and what was not', async () => {
    mockStack(cfn, 'UPDATE_COMPLETE', dist);
    // a deploy writes the site's store while the operator reads the plan: the site step is refused at its flip
    const r = await runInProcess(['rollback', '--stack', 'App', '--json'], {
      isTTY: true,
      confirm: async () => { kvs.stores.get(KVS_ARN)!.set('active', 'r3'); await fetch(`${kvs.endpoint}/key-value-stores/${encodeURIComponent(KVS_ARN)}/keys/bump`, { method: 'PUT', headers: { 'if-match': kvs.etag(KVS_ARN) }, body: JSON.stringify({ Value: 'x' }) }); return true; },
    });
    expect(r.code).toBe(3);
    const doc = json(r);
    expect(doc.ok).toBe(false);
    expect(doc.steps.map((s: { kind: string; status: string }) => `${s.kind}:${s.status}`)).toEqual(['site:failed', 'api:not done']);
    expect(doc.error).toContain("site App/Web failed: the site's KeyValueStore changed between the plan and the flip");
    expect(r.stderr).toContain("cdk-rollback: error: site App/Web failed: the site's KeyValueStore changed between the plan and the flip");
    expect(kvs.stores.get(KVS_ARN)?.get('active')).toBe('r3');
    expect(await liveVersion('orders')).toBe('2');
    const text = await runInProcess(['rollback', '--stack', 'App', '--dry-run']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('would 2. api live of App/Api (orders): version 2 -> version 1');
  });

  test('mutating commands refuse while the stack is *_IN_PROGRESS, and say why; --force overrides; status still reads', async () => {
    mockStack(cfn, 'UPDATE_IN_PROGRESS', dist);
    const why = 'stack App is UPDATE_IN_PROGRESS: CloudFormation is changing it now, and a change by hand would race it';
    for (const args of [['api', 'rollback'], ['site', 'rollback'], ['rollback'], ['db', 'restore', '--snapshot', 'orders-aaaaaaaa-20260101000000']]) {
      const r = await runInProcess([...args, '--stack', 'App', '--yes']);
      expect({ args, code: r.code }).toEqual({ args, code: 3 });
      expect(r.stderr).toContain(why);
      expect(r.stderr).toContain('or pass --force to change it anyway. Nothing was changed');
    }
    expect(await liveVersion('orders')).toBe('2');
    expect(kvs.stores.get(KVS_ARN)?.get('active')).toBe('r2');
    expect((await runInProcess(['status', '--stack', 'App'])).code).toBe(0);
    const forced = await runInProcess(['api', 'rollback', '--stack', 'App', '--yes', '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toContain(`${why} (CloudFormation may overwrite it, or fail on it and roll back); going ahead because of --force`);
    expect(await liveVersion('orders')).toBe('1');
  });

  test('site rollback --wait gives up at its deadline (the rollback itself done) instead of waiting forever', async () => {
    mockStack(cfn, 'UPDATE_COMPLETE', dist);
    const cf = mockClient(CloudFrontClient);
    try {
      cf.on(CreateInvalidationCommand).resolves({ Invalidation: { Id: 'I-SLOW', Status: 'InProgress', CreateTime: new Date(0), InvalidationBatch: { CallerReference: 'x', Paths: { Quantity: 0 } } } });
      cf.on(GetInvalidationCommand).resolves({ Invalidation: { Id: 'I-SLOW', Status: 'InProgress', CreateTime: new Date(0), InvalidationBatch: { CallerReference: 'x', Paths: { Quantity: 0 } } } });
      const r = await runInProcess(['site', 'rollback', '--stack', 'App', '--wait', '--yes', '--json'], { env: { CDK_ROLLBACK_POLL_SECONDS: '0.05', CDK_ROLLBACK_WAIT_SECONDS: '0.3' } });
      expect(r.code).toBe(1);
      expect(json(r).error).toMatch(/timed out after \d+ s waiting for invalidation I-SLOW \(last state: InProgress\)/);
      expect(json(r).done).toEqual(['release r1 is active (was r2)', 'invalidation I-SLOW of 2 path(s) started']);
      expect(cf.commandCalls(GetInvalidationCommand).length).toBeGreaterThan(1);
      expect(kvs.stores.get(KVS_ARN)?.get('active')).toBe('r1');
    } finally {
      cf.restore();
    }
  });
});

/** A stack created in moto; `marker` adds the template-level cdk-rollback metadata the constructs write. */
async function createMotoStack(name: string, apiPath: string | undefined, marker: boolean): Promise<void> {
  const role = await createRole('stack-role');
  const fn = `${name.toLowerCase()}-fn`;
  const resources: Record<string, unknown> = apiPath
    ? { Fn: {
      Type: 'AWS::Lambda::Function',
      Metadata: { 'cdk-rollback': { version: 1, kind: 'SafeLambdaApi', role: 'function', path: apiPath } },
      Properties: { FunctionName: fn, Runtime: 'nodejs22.x', Handler: 'index.handler', Role: role, Code: { ZipFile: 'exports.handler = async () => 0;' } },
    } }
    : { Topic: { Type: 'AWS::SNS::Topic' } };
  // moto's GetTemplateSummary needs AWSTemplateFormatVersion (real CloudFormation does not).
  const template = {
    AWSTemplateFormatVersion: '2010-09-09',
    ...(marker && apiPath ? { Metadata: { 'cdk-rollback': { version: 1, constructs: [{ kind: 'SafeLambdaApi', path: apiPath }] } } } : {}),
    Resources: resources,
  };
  await new CloudFormationClient({}).send(new CreateStackCommand({ StackName: name, TemplateBody: JSON.stringify(template) }));
  if (!apiPath) return;
  const lambda = new LambdaClient({});
  await lambda.send(new PublishVersionCommand({ FunctionName: fn }));
  await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: fn, ZipFile: await zip('exports.handler = async () => 2;') }));
  await lambda.send(new PublishVersionCommand({ FunctionName: fn }));
  await lambda.send(new CreateAliasCommand({ FunctionName: fn, Name: 'stable', FunctionVersion: '1' }));
  await lambda.send(new CreateAliasCommand({ FunctionName: fn, Name: 'live', FunctionVersion: '2' }));
}

describe('status with no target: every stack with cdk-rollback constructs (moto)', () => {
  test('one line per marked stack; unmarked stacks are not read in full', async () => {
    await createMotoStack('Orders', 'Orders/Api', true);
    await createMotoStack('Billing', 'Billing/Api', true);
    await createMotoStack('Network', undefined, false);
    await new LambdaClient({}).send(new DeleteAliasCommand({ FunctionName: 'billing-fn', Name: 'stable' }));
    const r = await runInProcess(['status']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^Billing +CREATE_COMPLETE +api Api live 2 \/ stable none$/);
    expect(lines[1]).toMatch(/^Orders +CREATE_COMPLETE +api Api live 2 \/ stable 1$/);
    const doc = json(await runInProcess(['status', '--json']));
    expect(doc.scanned).toBe(3);
    expect(doc.stacks.map((s: { name: string }) => s.name)).toEqual(['Billing', 'Orders']);
    expect(doc.stacks[1].constructs).toEqual([{ kind: 'SafeLambdaApi', path: 'Orders/Api', function: 'orders-fn', live: '2', stable: '1' }]);
  });

  test('hasStackMarker and mapLimit', async () => {
    expect(hasStackMarker(JSON.stringify({ 'cdk-rollback': { version: 1, constructs: [] } }))).toBe(true);
    expect(hasStackMarker(JSON.stringify({ other: 'cdk-rollback' }))).toBe(false);
    expect(hasStackMarker(undefined)).toBe(false);
    let inFlight = 0;
    let peak = 0;
    const out = await mapLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((res) => setTimeout(res, 5));
      inFlight--;
      return n * 2;
    });
    expect(out).toEqual([2, 4, 6, 8, 10, 12, 14]);
    expect(peak).toBe(3);
  });
});

describe('the constructs mark their stack (template-level Metadata)', () => {
  test('the example app lists its constructs, sorted by path (no timestamp, no absolute path)', () => {
    const stack = buildExampleApp(new App()).node.findChild('CdkRollbackExample') as Stack;
    const metadata = Template.fromStack(stack).toJSON().Metadata;
    expect(metadata['cdk-rollback'].version).toBe(1);
    const constructs = metadata['cdk-rollback'].constructs as { kind: string; path: string }[];
    expect(constructs.map((c) => c.kind).sort()).toEqual(['DatabaseMigrations', 'PreMigrationSnapshot', 'SafeLambdaApi', 'VersionedSite']);
    expect(constructs.map((c) => c.path)).toEqual([...constructs.map((c) => c.path)].sort());
    for (const c of constructs) expect(c.path).toMatch(/^CdkRollbackExample\//);
  });
});
