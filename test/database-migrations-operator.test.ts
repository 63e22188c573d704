/**
 * The runner's operator requests (`cdkRollbackAction`), through `handler`, the entry the Lambda uses, against
 * moto Secrets Manager and embedded PostgreSQL; and the runner's fast, named failure when Secrets Manager cannot
 * be reached.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { handler, OnEventRequest } from '../lambda/database-migrations/index';
import { migrationsFingerprint, readMigrations } from '../lambda/shared/migrations-folder';
import { history } from '../lambda/database-migrations/runner';
import { query, usePostgres } from './fixtures/db/postgres';
import { startBlackhole, startSilentServer } from './fixtures/net/blackhole';
import { useMotoServer } from './helpers/moto';

const moto = useMotoServer();
const pg = usePostgres();
let url = '';
let seq = 0;

function folder(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mig-op-'));
  for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
  return dir;
}

const FILES = {
  '0001_a.sql': 'CREATE TABLE a (id int);',
  '0001_a.down.sql': 'DROP TABLE a;',
  '0002_b.sql': 'CREATE TABLE b (id int);',
  '0002_b.down.sql': 'DROP TABLE b;',
  '0003_c.sql': 'CREATE TABLE c (id int);',
};

async function tables(): Promise<string[]> {
  const rows = await query<{ t: string }>(url, "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
  return rows.map((x) => x.t);
}

/** What Lambda does with a thrown error: the FunctionError payload's errorType and errorMessage. */
async function failure(p: Promise<unknown>): Promise<{ errorType: string; errorMessage: string }> {
  try {
    await p;
  } catch (e) {
    return { errorType: (e as Error).name, errorMessage: (e as Error).message };
  }
  throw new Error('expected the request to fail');
}

const saved = { ...process.env };
beforeEach(async () => {
  await moto.reset();
  url = await pg.freshDatabase();
  const u = new URL(url);
  const secret = await new SecretsManagerClient({}).send(new CreateSecretCommand({
    Name: `op-${++seq}`,
    SecretString: JSON.stringify({ host: u.hostname, port: Number(u.port), username: u.username, password: u.password, dbname: u.pathname.slice(1) }),
  }));
  process.env.SECRET_ARN = secret.ARN;
  process.env.DATABASE_TLS = 'off';
  process.env.MIGRATIONS_DIR = folder(FILES);
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
});
afterEach(() => {
  jest.restoreAllMocks();
  for (const k of ['SECRET_ARN', 'DATABASE_TLS', 'MIGRATIONS_DIR', 'AWS_ENDPOINT_URL_SECRETS_MANAGER', 'SDK_CONNECT_TIMEOUT_MS', 'SDK_REQUEST_TIMEOUT_MS']) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

describe('operator requests', () => {
  test('migrate (dry run, then for real), history and plan report from the database', async () => {
    const dry = await handler({ cdkRollbackAction: 'migrate', dryRun: true });
    expect(dry).toMatchObject({ action: 'migrate', dryRun: true, alreadyApplied: 0, deployed: { migrationCount: 3, latestVersion: '0003' } });
    expect((dry as { applied: { version: string }[] }).applied.map((m) => m.version)).toEqual(['0001', '0002', '0003']);
    expect(await tables()).toEqual([]);

    const done = await handler({ cdkRollbackAction: 'migrate' }) as { applied: unknown[]; log: string[] };
    expect(done.applied).toHaveLength(3);
    expect(done.log).toEqual(expect.arrayContaining([expect.stringMatching(/^applied 0003_c\.sql in \d+ ms$/)]));
    expect(await tables()).toEqual(['a', 'b', 'c']);

    const h = await handler({ cdkRollbackAction: 'history' }) as { migrations: { version: string; name: string }[] };
    expect(h.migrations.map((m) => `${m.version}_${m.name}`)).toEqual(['0001_a', '0002_b', '0003_c']);
    const plan = await handler({ cdkRollbackAction: 'plan' });
    expect(plan).toMatchObject({ action: 'plan', pending: [], drift: [], unknown: [] });
  });

  test('plan shows pending migrations and checksum drift without failing', async () => {
    const first = folder({ '0001_a.sql': 'CREATE TABLE a (id int);' });
    process.env.MIGRATIONS_DIR = first;
    await handler({ cdkRollbackAction: 'migrate' });
    process.env.MIGRATIONS_DIR = folder({ ...FILES, '0001_a.sql': 'CREATE TABLE a (id bigint);' });
    const plan = await handler({ cdkRollbackAction: 'plan' }) as Record<string, unknown>;
    expect(plan.pending).toEqual([{ version: '0002', name: 'b' }, { version: '0003', name: 'c' }]);
    expect(plan.drift).toEqual([expect.objectContaining({ version: '0001', name: 'a' })]);
    // migrate refuses on drift (errorType Refused) and applies nothing
    const f = await failure(handler({ cdkRollbackAction: 'migrate' }));
    expect(f.errorType).toBe('Refused');
    expect(f.errorMessage).toMatch(/^checksum of applied migration 0001_a\.sql changed/);
    expect(await tables()).toEqual(['a']);
  });

  test('down --to reverts above the version; a dry run changes nothing', async () => {
    await handler({ cdkRollbackAction: 'migrate' });
    process.env.MIGRATIONS_DIR = folder({ ...FILES, '0003_c.down.sql': 'DROP TABLE c;' });
    // the fingerprint changed only by a down file: the runner's files are what it runs
    const dry = await handler({ cdkRollbackAction: 'down', to: '0001', dryRun: true });
    expect(dry).toMatchObject({ action: 'down', dryRun: true, reverted: [{ version: '0003', name: 'c' }, { version: '0002', name: 'b' }] });
    expect(await tables()).toEqual(['a', 'b', 'c']);
    const done = await handler({ cdkRollbackAction: 'down', to: 1 });
    expect(done).toMatchObject({ dryRun: false, reverted: [{ version: '0003' }, { version: '0002' }] });
    expect(await tables()).toEqual(['a']);
    expect((await history({ connectionString: url })).map((r) => r.version)).toEqual(['0001']);
  });

  test('down refuses (errorType Refused) when a migration above --to has no down file, and changes nothing', async () => {
    await handler({ cdkRollbackAction: 'migrate' });
    const f = await failure(handler({ cdkRollbackAction: 'down', to: '0001' }));
    expect(f).toEqual({ errorType: 'Refused', errorMessage: expect.stringMatching(/^cannot revert to 0001: no down file for 0003_c\.down\.sql/) });
    expect(await tables()).toEqual(['a', 'b', 'c']);
  });

  test.each([
    [{ cdkRollbackAction: 'exec' }, '`cdkRollbackAction` must be one of history, plan, migrate, down, got: "exec"'],
    [{ cdkRollbackAction: 'migrate', sql: 'DROP TABLE a' }, '`migrate` accepts only `cdkRollbackAction`, `dryRun`, got: `sql` (the runner runs only the migration files deployed with it, never SQL from a request)'],
    [{ cdkRollbackAction: 'down', to: '0001; DROP TABLE a' }, '`to` must be a migration version (digits), got: "0001; DROP TABLE a"'],
    [{ cdkRollbackAction: 'down' }, '`to` must be a migration version (digits), got: undefined'],
    [{ cdkRollbackAction: 'down', to: -1 }, '`to` must be a migration version (digits), got: -1'],
    [{ cdkRollbackAction: 'history', to: '1' }, '`history` accepts only `cdkRollbackAction`, got: `to` (the runner runs only the migration files deployed with it, never SQL from a request)'],
    [{ cdkRollbackAction: 'migrate', dryRun: 'yes' }, '`dryRun` must be true or false, got: "yes"'],
  ])('rejects %j (errorType InvalidRequest) and changes nothing', async (request, message) => {
    await handler({ cdkRollbackAction: 'migrate' });
    expect(await failure(handler(request))).toEqual({ errorType: 'InvalidRequest', errorMessage: message });
    expect(await tables()).toEqual(['a', 'b', 'c']);
  });

  test('CloudFormation events still go to the custom resource logic through the same entry', async () => {
    const files = readMigrations(process.env.MIGRATIONS_DIR!);
    const res = await handler({
      RequestType: 'Create', ServiceToken: 't', ResponseURL: 'https://example.com', StackId: 'arn:aws:cloudformation:us-east-1:1:stack/A/x',
      RequestId: 'r1', LogicalResourceId: 'M', ResourceType: 'Custom::DatabaseMigrations',
      ResourceProperties: { ServiceToken: 't', ClusterIdentifier: 'db', Fingerprint: migrationsFingerprint(files), MigrationCount: '3', LatestVersion: '0003' },
    } as OnEventRequest);
    expect(res).toEqual({ PhysicalResourceId: 'migrations:db', Data: { AppliedCount: '3', LatestVersion: '0003', MigrationCount: '3', Action: 'migrate' } });
  });
});

describe('no route to Secrets Manager', () => {
  test('with the default timeouts, a connect that never completes fails in seconds, naming the endpoint, NAT and VPC endpoint', async () => {
    const hole = await startBlackhole();
    try {
      process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = hole.endpoint;
      const f = await failure(handler({ cdkRollbackAction: 'history' }));
      expect(f.errorMessage).toContain(`could not reach Secrets Manager at ${hole.endpoint} (connect timeout 3000 ms, request timeout 10000 ms, 2 attempts`);
      expect(f.errorMessage).toContain('a NAT gateway (PRIVATE_WITH_EGRESS subnets) or a Secrets Manager interface VPC endpoint with private DNS');
    } finally {
      await hole.close();
    }
  }, 30_000); // the Lambda would wait 14 minutes without the SDK timeouts

  test('a server that accepts but never answers hits the request timeout, with the same message', async () => {
    const silent = await startSilentServer();
    try {
      process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = silent.endpoint;
      process.env.SDK_REQUEST_TIMEOUT_MS = '300';
      const f = await failure(handler({ cdkRollbackAction: 'migrate', dryRun: true }));
      expect(f.errorMessage).toMatch(new RegExp(`^could not reach Secrets Manager at ${silent.endpoint} \\(connect timeout 3000 ms, request timeout 300 ms, 2 attempts: \\w+`));
      expect(f.errorMessage).toContain('whose security group allows TCP 443 from the runner');
    } finally {
      await silent.close();
    }
  }, 30_000);
});
