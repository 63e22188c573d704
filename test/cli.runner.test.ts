/**
 * `db history|migrate|down --stack` through the deployed DatabaseMigrations runner, and the migrations part of
 * `status`: the CLI in-process, its real LambdaClient pointed at a loopback Lambda Invoke endpoint that calls the
 * runner's Lambda entry (`handler`) in this process; the runner reads its secret from moto Secrets Manager and
 * migrates an embedded PostgreSQL. The stack is the template of a real DatabaseMigrations (CloudFormation mocked).
 */
import * as path from 'path';
import {
  CloudFormationClient, DescribeStacksCommand, GetTemplateCommand, ListStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { handler } from '../lambda/database-migrations/index';
import { DatabaseMigrations } from '../lib/database-migrations';
import { columnsOf, usePostgres } from './fixtures/db/postgres';
import { json, runInProcess } from './fixtures/cli/harness';
import { LambdaInvokeServer, startLambdaInvokeServer } from './fixtures/cli/lambda-invoke-server';
import { clusterStack } from './helpers/fixtures';
import { useMotoServer } from './helpers/moto';

const moto = useMotoServer();
const pg = usePostgres();
const FULL = path.join(__dirname, 'fixtures', 'cli', 'migrations', 'full');
const MISSING_DOWN = path.join(__dirname, 'fixtures', 'cli', 'migrations', 'missing-down');
const RUNNER = 'orders-runner';

let lambdaEndpoint: LambdaInvokeServer;
let cfn: AwsClientStub<CloudFormationClient>;
let url = '';
let secretArn = '';

/** The template of a real DatabaseMigrations construct, deployed as stack `App` (runner `orders-runner`, cluster `orders-db`). */
function deployedStack(): void {
  const { stack, vpc, cluster } = clusterStack();
  new DatabaseMigrations(stack, 'Migrations', { cluster, vpc, migrationsDir: FULL });
  type Res = { Type: string; Metadata?: Record<string, { role?: string }> };
  const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, Res> };
  const physical = (id: string, r: Res) => (r.Metadata?.['cdk-rollback']?.role === 'runner' ? RUNNER
    : r.Type === 'AWS::RDS::DBCluster' ? 'orders-db' : `${id}-physical`);
  cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'App', StackStatus: 'UPDATE_COMPLETE', CreationTime: new Date(0) }] });
  cfn.on(GetTemplateCommand).resolves({ TemplateBody: JSON.stringify(template) });
  cfn.on(ListStackResourcesCommand).resolves({ StackResourceSummaries: Object.entries(template.Resources).map(([id, r]) => ({
    LogicalResourceId: id, PhysicalResourceId: physical(id, r), ResourceType: r.Type, ResourceStatus: 'UPDATE_COMPLETE', LastUpdatedTimestamp: new Date(0),
  })) });
}

function register(dir: string, env: Record<string, string> = {}): void {
  lambdaEndpoint.functions.set(RUNNER, {
    handler: handler as (e: never) => Promise<unknown>,
    env: { SECRET_ARN: secretArn, MIGRATIONS_DIR: dir, DATABASE_TLS: 'off', ...env },
  });
}

const columns = () => columnsOf(url, 'orders');

async function auditTrail(target: string): Promise<{ action: string; from: string; to: string }[]> {
  const out = await new SSMClient({}).send(new GetParameterCommand({ Name: `/cdk-rollback/audit/db/${target}` }));
  return JSON.parse(out.Parameter!.Value!);
}

beforeAll(async () => {
  lambdaEndpoint = await startLambdaInvokeServer(() => moto.endpoint);
  process.env.AWS_ENDPOINT_URL_LAMBDA = lambdaEndpoint.endpoint;
  cfn = mockClient(CloudFormationClient);
  deployedStack();
}, 120_000);
afterAll(async () => {
  delete process.env.AWS_ENDPOINT_URL_LAMBDA;
  cfn.restore();
  await lambdaEndpoint.close();
});
beforeEach(async () => {
  await moto.reset();
  url = await pg.freshDatabase();
  const u = new URL(url);
  secretArn = (await new SecretsManagerClient({}).send(new CreateSecretCommand({
    Name: 'orders-db-secret',
    SecretString: JSON.stringify({ host: u.hostname, port: Number(u.port), username: u.username, password: u.password, dbname: u.pathname.slice(1) }),
  }))).ARN!;
  register(FULL);
  lambdaEndpoint.invocations.length = 0;
  jest.spyOn(console, 'log').mockImplementation(() => undefined); // the runner's structured log lines
});
afterEach(() => jest.restoreAllMocks());

describe('db migrate|history|down --stack (the runner, invoked synchronously)', () => {
  test('migrate plans, applies through the runner with progress, records the audit; history lists what the database applied', async () => {
    const r = await runInProcess(['db', 'migrate', '--stack', 'App', '--yes', '--json']);
    expect(r.code).toBe(0);
    const doc = json(r);
    expect(doc).toMatchObject({ action: 'migrate', function: RUNNER, cluster: 'orders-db', path: 'App/Migrations', dryRun: false, auditRecordedIn: '/cdk-rollback/audit/db/orders-db' });
    expect(doc.applied.map((m: { version: string }) => m.version)).toEqual(['0001', '0002', '0003']);
    expect(lambdaEndpoint.invocations).toEqual([
      { functionName: RUNNER, invocationType: 'RequestResponse', payload: { cdkRollbackAction: 'migrate', dryRun: true } },
      { functionName: RUNNER, invocationType: 'RequestResponse', payload: { cdkRollbackAction: 'migrate', dryRun: false } },
    ]);
    expect(r.stderr).toContain('invoking the migrations runner orders-runner: migrate (dry run)');
    expect(r.stderr).toMatch(/runner: applied 0003_add_index\.sql in \d+ ms/);
    expect(await columns()).toEqual(['id', 'total', 'status']);
    expect((await auditTrail('orders-db'))[0]).toMatchObject({ action: 'db migrate', from: '0 applied', to: '0003_add_index' });

    const h = await runInProcess(['db', 'history', '--stack', 'App']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('Migrations applied to runner orders-runner (cluster orders-db):');
    expect(h.stdout).toMatch(/0001 +create_orders[\s\S]*0002 +add_status[\s\S]*0003 +add_index/);
  });

  test('down --to N --yes reverts in the database through the runner and records the audit', async () => {
    expect((await runInProcess(['db', 'migrate', '--stack', 'App', '--yes'])).code).toBe(0);
    const r = await runInProcess(['db', 'down', '--stack', 'App', '--to', '0001', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('reverted 0003_add_index');
    expect(r.stdout).toContain('reverted 0002_add_status');
    expect(r.stdout).toContain('Reverted 2 migration(s) in runner orders-runner (cluster orders-db): now at 0001.');
    expect(await columns()).toEqual(['id', 'total']);
    expect((await auditTrail('orders-db'))[0]).toMatchObject({ action: 'db down', from: '0003_add_index', to: '0001' });
    const h = json(await runInProcess(['db', 'history', '--function', RUNNER, '--json']));
    expect(h.migrations.map((m: { version: string }) => m.version)).toEqual(['0001']);
  });

  test('down --dry-run shows the plan from the database and changes nothing', async () => {
    await runInProcess(['db', 'migrate', '--stack', 'App', '--yes']);
    const r = await runInProcess(['db', 'down', '--stack', 'App', '--to', '0001', '--dry-run', '--json']);
    expect(r.code).toBe(0);
    expect(json(r)).toMatchObject({ dryRun: true, toRevert: [{ version: '0003' }, { version: '0002' }] });
    expect(await columns()).toEqual(['id', 'total', 'status']);
  });

  test('refusals change nothing: no --yes without a TTY (2), no down file (3), a bad --to (2), --dir with --stack (2)', async () => {
    register(MISSING_DOWN);
    await runInProcess(['db', 'migrate', '--stack', 'App', '--yes']);
    lambdaEndpoint.invocations.length = 0;
    const noYes = await runInProcess(['db', 'down', '--stack', 'App', '--to', '0002']);
    expect(noYes.code).toBe(2);
    expect(noYes.stderr).toContain('pass --yes');
    const noDown = await runInProcess(['db', 'down', '--stack', 'App', '--to', '0001', '--yes']);
    expect(noDown.code).toBe(3);
    expect(noDown.stderr).toContain('the migrations runner orders-runner failed (Refused): cannot revert to 0001: no down file for 0002_add_status.down.sql');
    const badTo = await runInProcess(['db', 'down', '--stack', 'App', '--to', '1;DROP TABLE orders', '--yes']);
    expect(badTo.code).toBe(2);
    expect(badTo.stderr).toContain('`--to` must be a migration version (digits), got: 1;DROP TABLE orders');
    const withDir = await runInProcess(['db', 'down', '--stack', 'App', '--to', '0001', '--dir', FULL, '--yes']);
    expect(withDir.code).toBe(2);
    expect(withDir.stderr).toContain('`--dir` is for --database-url: the runner runs the migrations deployed with it');
    // only plans reached the runner, and the schema is unchanged
    expect(lambdaEndpoint.invocations.map((i) => i.payload)).toEqual([
      { cdkRollbackAction: 'down', to: '0002', dryRun: true }, { cdkRollbackAction: 'down', to: '0001', dryRun: true },
    ]);
    expect(await columns()).toEqual(['id', 'total', 'status']);
  });

  test('a runner failure is shown with its FunctionError type and message (exit 1)', async () => {
    register(FULL, { SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf' });
    const r = await runInProcess(['db', 'history', '--stack', 'App', '--json']);
    expect(r.code).toBe(1);
    expect(json(r).error).toMatch(/^the migrations runner orders-runner failed \(ResourceNotFoundException\): /);
  });

  test('a runner that does not exist is a usage error naming the flag', async () => {
    const r = await runInProcess(['db', 'history', '--function', 'nope-runner']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('the migrations runner nope-runner does not exist (check --function or --stack, --region and --profile)');
  });

  test('--stack and --database-url together, or no target at all, are usage errors', async () => {
    const both = await runInProcess(['db', 'history', '--stack', 'App', '--database-url', url]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('pass either --stack/--function (the deployed runner) or --database-url, not both');
    const none = await runInProcess(['db', 'history'], { env: { DATABASE_URL: '' } });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no database: pass --stack NAME (or --function NAME) for the deployed runner, or --database-url URL');
  });
});

describe('status --stack', () => {
  test('shows the migrations the database applied (through the runner), pending ones, and labels the template values', async () => {
    await runInProcess(['db', 'migrate', '--stack', 'App', '--yes']);
    await runInProcess(['db', 'down', '--stack', 'App', '--to', '0002', '--yes']);
    const text = await runInProcess(['status', '--stack', 'App', '--target', 'Migrations']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/database: 2 applied, latest 0002_add_status at \S+ \(read through the runner orders-runner\)/);
    expect(text.stdout).toContain('pending: 0003_add_index');
    expect(text.stdout).toContain('template: 3 migration(s), latest version 0003 (from the deployed template, not read from the database)');
    const doc = json(await runInProcess(['status', '--stack', 'App', '--target', 'Migrations', '--json']));
    expect(doc.migrations).toEqual([expect.objectContaining({
      path: 'App/Migrations', function: RUNNER, template: { migrationCount: 3, latestVersion: '0003' },
      database: expect.objectContaining({ latestVersion: '0002', pending: [{ version: '0003', name: 'add_index' }], drift: [] }),
    })]);
  });

  test('a runner that fails makes the section (and the exit code) say so, with the template values still shown', async () => {
    register(FULL, { SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf' });
    const r = await runInProcess(['status', '--stack', 'App', '--target', 'Migrations']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/database: error: the migrations runner orders-runner failed \(ResourceNotFoundException\)/);
    expect(r.stdout).toContain('template: 3 migration(s)');
  });
});
