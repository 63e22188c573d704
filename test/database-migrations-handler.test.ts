import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { onEvent, OnEventRequest } from '../lambda/database-migrations/index';
import { migrationsFingerprint, readMigrations } from '../lambda/database-migrations/folder';
import { history } from '../lambda/database-migrations/runner';
import { usePostgres } from './fixtures/db/postgres';
import { useMotoServer } from './helpers/moto';

const moto = useMotoServer();
const pg = usePostgres();
let logs: string[] = [];
let seq = 0;

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
    RequestType: type, ServiceToken: 'token', ResponseURL: 'https://example.com/secret-url', StackId: 'arn:aws:cloudformation:us-east-1:1:stack/App/x',
    RequestId: `r${++seq}`, LogicalResourceId: 'Migrations', ResourceType: 'Custom::DatabaseMigrations', ResourceProperties: props,
    ...(type === 'Create' ? {} : { PhysicalResourceId: 'migrations:db' }),
    ...(type === 'Update' ? { OldResourceProperties: old ?? props } : {}),
  } as OnEventRequest;
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
  logs = [];
  jest.spyOn(console, 'log').mockImplementation((line: string) => { logs.push(line); });
});
afterEach(() => jest.restoreAllMocks());

describe('DatabaseMigrations handler (moto Secrets Manager + embedded PostgreSQL)', () => {
  test('Create reads the secret, applies the migrations and records the snapshot id', async () => {
    const dir = folder(V2);
    process.env.MIGRATIONS_DIR = dir;
    const res = await onEvent(event('Create', propsFor(dir)));
    expect(res).toEqual({ PhysicalResourceId: 'migrations:db', Data: { AppliedCount: '2', LatestVersion: '0002', MigrationCount: '2' } });
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
    const res = await onEvent(event('Update', propsFor(folder(V1)), propsFor(d2)));
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
    const res = await onEvent(event('Update', propsFor(d1), propsFor(d2)));
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
    await expect(onEvent(event('Create', wanted))).rejects.toThrow(/^the migrations in .* \(fingerprint [0-9a-f]{12}\) are not the ones requested \([0-9a-f]{12}\)$/);
  });
});
