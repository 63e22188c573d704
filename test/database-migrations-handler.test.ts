import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CloudFormationClient, CreateStackCommand, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { Client } from 'pg';
import { onEvent, OnEventRequest } from '../lambda/database-migrations/index';
import { migrationsFingerprint, readMigrations } from '../lambda/database-migrations/folder';
import { down, history } from '../lambda/database-migrations/runner';
import { usePostgres } from './fixtures/db/postgres';
import { useMotoServer } from './helpers/moto';

const moto = useMotoServer();
const pg = usePostgres();
let logs: string[] = [];
let seq = 0;
/** The stack in moto (CREATE_COMPLETE: a forward deploy); rollback tests mock DescribeStacks instead. */
let stackId = 'arn:aws:cloudformation:us-east-1:1:stack/App/x';

function folder(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mig-h-'));
  for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
  return dir;
}

function propsFor(dir: string, snapshot = 'pre-migration-abc-20250101000000') {
  const files = readMigrations(dir);
  return {
    ServiceToken: 'token', ClusterIdentifier: 'db', Fingerprint: migrationsFingerprint(files),
    MigrationCount: String(files.length), LatestVersion: files[files.length - 1].version, SnapshotIdentifier: snapshot,
  };
}

function event(type: 'Create' | 'Update' | 'Delete', props: ReturnType<typeof propsFor>, old?: ReturnType<typeof propsFor>): OnEventRequest {
  return {
    RequestType: type, ServiceToken: 'token', ResponseURL: 'https://example.com/secret-url', StackId: stackId,
    RequestId: `r${++seq}`, LogicalResourceId: 'Migrations', ResourceType: 'Custom::DatabaseMigrations', ResourceProperties: props,
    ...(type === 'Create' ? {} : { PhysicalResourceId: 'migrations:db' }),
    ...(type === 'Update' ? { OldResourceProperties: old ?? props } : {}),
  } as OnEventRequest;
}

/** Runs `fn` while DescribeStacks answers UPDATE_ROLLBACK_IN_PROGRESS (aws-sdk-client-mock: moto cannot roll back on demand). */
async function whileRollingBack<T>(fn: () => Promise<T>, calls: { stackNames?: (string | undefined)[] } = {}): Promise<T> {
  const cfn = mockClient(CloudFormationClient);
  cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'App', StackStatus: 'UPDATE_ROLLBACK_IN_PROGRESS', CreationTime: new Date() }] });
  try {
    return await fn();
  } finally {
    calls.stackNames = cfn.commandCalls(DescribeStacksCommand).map((c) => c.args[0].input.StackName);
    cfn.restore();
  }
}

const V1 = { '0001_a.sql': 'CREATE TABLE a (id int);' };
const V2 = { ...V1, '0002_b.sql': 'CREATE TABLE b (id int);' };
let url = '';

beforeEach(async () => {
  await moto.reset();
  url = await pg.freshDatabase();
  const u = new URL(url);
  const secret = await new SecretsManagerClient({}).send(new CreateSecretCommand({
    Name: `db-${seq}`,
    SecretString: JSON.stringify({ host: u.hostname, port: Number(u.port), username: u.username, password: u.password, dbname: u.pathname.slice(1), engine: 'postgres' }),
  }));
  process.env.SECRET_ARN = secret.ARN;
  process.env.DATABASE_TLS = 'off';
  stackId = (await new CloudFormationClient({}).send(new CreateStackCommand({
    StackName: 'App', TemplateBody: JSON.stringify({ Resources: { T: { Type: 'AWS::SNS::Topic' } } }),
  }))).StackId!;
  logs = [];
  jest.spyOn(console, 'log').mockImplementation((line: string) => { logs.push(line); });
});
afterEach(() => jest.restoreAllMocks());

describe('DatabaseMigrations handler (moto Secrets Manager + embedded PostgreSQL)', () => {
  test('Create reads the secret, applies the migrations and records the snapshot id', async () => {
    const dir = folder(V2);
    process.env.MIGRATIONS_DIR = dir;
    const res = await onEvent(event('Create', propsFor(dir)));
    expect(res).toEqual({ PhysicalResourceId: 'migrations:db', Data: { AppliedCount: '2', LatestVersion: '0002', MigrationCount: '2', Action: 'migrate' } });
    expect((await history({ connectionString: url })).map((r) => [r.version, r.snapshotIdentifier])).toEqual([
      ['0001', 'pre-migration-abc-20250101000000'], ['0002', 'pre-migration-abc-20250101000000'],
    ]);
    expect(logs.join('\n')).not.toContain('example.com/secret-url');
  });

  test('Update with new files applies only the new migration', async () => {
    const d1 = folder(V1);
    process.env.MIGRATIONS_DIR = d1;
    await onEvent(event('Create', propsFor(d1)));
    const d2 = folder(V2);
    process.env.MIGRATIONS_DIR = d2;
    const res = await onEvent(event('Update', propsFor(d2), propsFor(d1)));
    expect(res.Data?.AppliedCount).toBe('1');
    expect((await history({ connectionString: url })).map((r) => r.version)).toEqual(['0001', '0002']);
  });

  test('the rollback Update (old properties) re-runs nothing, runs no down migration and says so', async () => {
    const d2 = folder({ ...V2, '0002_b.down.sql': 'DROP TABLE b;' });
    process.env.MIGRATIONS_DIR = d2;
    await onEvent(event('Create', propsFor(d2)));
    // CloudFormation rolls back: the function still has the new files, the properties are the old ones
    const res = await whileRollingBack(() => onEvent(event('Update', propsFor(folder(V1)), propsFor(d2))));
    expect(res.Data?.AppliedCount).toBe('0');
    expect((await history({ connectionString: url })).map((r) => r.version)).toEqual(['0001', '0002']);
    expect(logs.some((l) => JSON.parse(l).message.startsWith('stack rollback: the Update carries the previous migrations; re-running nothing and running no down migration'))).toBe(true);
  });

  test('the rollback Update applies nothing even when a migration of the failed deploy is still pending', async () => {
    const d1 = folder(V1);
    process.env.MIGRATIONS_DIR = d1;
    await onEvent(event('Create', propsFor(d1)));
    const d2 = folder(V2);
    process.env.MIGRATIONS_DIR = d2;
    const res = await whileRollingBack(() => onEvent(event('Update', propsFor(d1), propsFor(d2))));
    expect(res.Data?.AppliedCount).toBe('0');
    expect((await history({ connectionString: url })).map((r) => r.version)).toEqual(['0001']);
  });

  test('a failing migration fails the request with file, statement and Postgres message', async () => {
    const dir = folder({ ...V1, '0002_bad.sql': 'CREATE TABLE c (id int);\nINSERT INTO nope VALUES (1);' });
    process.env.MIGRATIONS_DIR = dir;
    await expect(onEvent(event('Create', propsFor(dir)))).rejects.toThrow(
      '0002_bad.sql: statement 2 at line 2, column 13: relation "nope" does not exist (SQLSTATE 42P01) (rolled back; the history is unchanged)');
    expect((await history({ connectionString: url })).map((r) => r.version)).toEqual(['0001']);
  });

  test('Delete leaves the database and its history alone', async () => {
    const dir = folder(V1);
    process.env.MIGRATIONS_DIR = dir;
    await onEvent(event('Create', propsFor(dir)));
    expect(await onEvent(event('Delete', propsFor(dir)))).toEqual({ PhysicalResourceId: 'migrations:db' });
    expect((await history({ connectionString: url })).map((r) => r.version)).toEqual(['0001']);
  });

  test('Create refuses files that are not the requested ones', async () => {
    process.env.MIGRATIONS_DIR = folder(V2);
    const wanted = propsFor(folder(V1));
    await expect(onEvent(event('Create', wanted))).rejects.toThrow(/^the migrations in .* \(fingerprint [0-9a-f]{12}\) are not the ones requested \(Fingerprint [0-9a-f]{12}\): the runner holds other migration files than the template asks for, so nothing was applied/);
  });
});

describe('DatabaseMigrations lifecycle: decides from intent (OldResourceProperties, stack status)', () => {
  const V2DOWN = { ...V2, '0002_b.down.sql': 'DROP TABLE b;' };
  const versions = async () => (await history({ connectionString: url })).map((r) => r.version);

  test('a forward Update whose files on disk are not the requested ones fails the deploy and applies nothing', async () => {
    const d1 = folder(V1);
    process.env.MIGRATIONS_DIR = d1;
    await onEvent(event('Create', propsFor(d1)));
    // the template asks for V2, the runner still holds V1 (stack UPDATE_IN_PROGRESS... here CREATE_COMPLETE in moto: not a rollback)
    await expect(onEvent(event('Update', propsFor(folder(V2)), propsFor(d1)))).rejects.toThrow(
      /^the migrations in .* \(fingerprint [0-9a-f]{12}\) are not the ones requested \(Fingerprint [0-9a-f]{12}\): the runner holds other migration files than the template asks for, so nothing was applied; deploy again/);
    expect(await versions()).toEqual(['0001']);
  });

  test('the rollback Update is read from the stack status (DescribeStacks on the event\'s StackId)', async () => {
    const d2 = folder(V2);
    process.env.MIGRATIONS_DIR = d2;
    await onEvent(event('Create', propsFor(d2)));
    const calls: { stackNames?: (string | undefined)[] } = {};
    const res = await whileRollingBack(() => onEvent(event('Update', propsFor(folder(V1)), propsFor(d2))), calls);
    expect(res.Data).toMatchObject({ AppliedCount: '0', Action: 'rollback' });
    expect(calls.stackNames).toEqual([stackId]);
  });

  test('the rollback Update applies nothing even when the runner holds exactly the requested files', async () => {
    const d2 = folder(V2DOWN);
    process.env.MIGRATIONS_DIR = d2;
    await onEvent(event('Create', propsFor(d2)));
    await down({ connectionString: url }, { dir: d2, toVersion: '0001' }); // an operator reverted 0002
    const res = await whileRollingBack(() => onEvent(event('Update', propsFor(d2), propsFor(folder(V1)))));
    expect(res.Data).toMatchObject({ AppliedCount: '0', Action: 'rollback' });
    expect(await versions()).toEqual(['0001']);
  });

  test('an Update with an unchanged Fingerprint only verifies: an operator\'s `db down` stands', async () => {
    const d2 = folder(V2DOWN);
    process.env.MIGRATIONS_DIR = d2;
    await onEvent(event('Create', propsFor(d2)));
    await down({ connectionString: url }, { dir: d2, toVersion: '0001' });
    const res = await onEvent(event('Update', propsFor(d2, 'another-snapshot-id'), propsFor(d2)));
    expect(res.Data).toMatchObject({ AppliedCount: '0', Action: 'verify', PendingCount: '1' });
    expect(await versions()).toEqual(['0001']);
    expect(logs.some((l) => (JSON.parse(l) as { message: string }).message.startsWith('1 migration(s) are not applied'))).toBe(true);
  });

  test('a retried event (same RequestId) applies nothing twice', async () => {
    const d2 = folder(V2);
    process.env.MIGRATIONS_DIR = d2;
    const e = event('Create', propsFor(d2));
    expect((await onEvent(e)).Data?.AppliedCount).toBe('2');
    expect((await onEvent(e)).Data?.AppliedCount).toBe('0');
    expect(await versions()).toEqual(['0001', '0002']);
  });

  test('an Update with an unchanged Fingerprint takes no lock and creates nothing (verification is a dry run)', async () => {
    const d1 = folder(V1);
    process.env.MIGRATIONS_DIR = d1;
    await onEvent(event('Create', propsFor(d1)));
    // another session holds the runners' advisory lock: a migration would wait for it, a verification does not
    const holder = new Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock(1667525490, 1835624306)');
      process.env.LOCK_WAIT_MS = '200';
      const res = await onEvent(event('Update', propsFor(d1), propsFor(d1)));
      expect(res.Data).toMatchObject({ Action: 'verify', PendingCount: '0' });
    } finally {
      delete process.env.LOCK_WAIT_MS;
      await holder.end();
    }
  });

  test('an Update with an unchanged Fingerprint fails the deploy when an applied migration was edited, but not during a rollback', async () => {
    const d1 = folder(V1);
    process.env.MIGRATIONS_DIR = d1;
    await onEvent(event('Create', propsFor(d1)));
    fs.writeFileSync(path.join(d1, '0001_a.sql'), 'CREATE TABLE a (id bigint);');
    const same = propsFor(d1);
    await expect(onEvent(event('Update', same, same))).rejects.toThrow(/checksum of applied migration 0001_a.sql changed/);
    await expect(whileRollingBack(() => onEvent(event('Update', same, same)))).resolves.toMatchObject({ Data: { AppliedCount: '0' } });
  });

  test('without the stack status, a runner holding the old properties\' files is taken for a rollback; other files fail the deploy', async () => {
    const d2 = folder(V2);
    process.env.MIGRATIONS_DIR = d2;
    await onEvent(event('Create', propsFor(d2)));
    const cfn = mockClient(CloudFormationClient);
    cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error('connect ETIMEDOUT'), { name: 'TimeoutError' }));
    try {
      const res = await onEvent(event('Update', propsFor(folder(V1)), propsFor(d2)));
      expect(res.Data).toMatchObject({ AppliedCount: '0', Action: 'rollback' });
      const d3 = folder({ ...V2, '0003_c.sql': 'CREATE TABLE c (id int);' });
      await expect(onEvent(event('Update', propsFor(folder(V1)), propsFor(d3)))).rejects.toThrow(/are not the ones requested/);
    } finally {
      cfn.restore();
    }
    expect(await versions()).toEqual(['0001', '0002']);
  });
});
