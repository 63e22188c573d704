import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client } from 'pg';
import { down, history, migrate } from '../lambda/database-migrations/runner';
import { query, usePostgres } from './fixtures/db/postgres';

const pg = usePostgres();

/** Writes a migrations folder into a temp dir. */
function folder(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'migrations-'));
  for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
  return dir;
}

async function tables(url: string): Promise<string[]> {
  const rows = await query<{ t: string }>(url,
    "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1");
  return rows.map((r) => r.t);
}

const BASE = {
  '0001_users.sql': 'CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);\n',
  '0001_users.down.sql': 'DROP TABLE users;\n',
  '0002_orders.sql': "-- orders\nCREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users(id), note text DEFAULT 'a;b');\nINSERT INTO users (email) VALUES ('x@example.com');\n",
  '0002_orders.down.sql': 'DROP TABLE orders;\nDELETE FROM users;\n',
};

describe('migrate', () => {
  test('applies pending migrations in order and records version, name, checksum, duration and snapshot id', async () => {
    const url = await pg.freshDatabase();
    const lines: string[] = [];
    const res = await migrate({ connectionString: url }, { dir: folder(BASE), snapshotIdentifier: 'snap-1', log: (l) => lines.push(l) });
    expect(res.dryRun).toBe(false);
    expect(res.alreadyApplied).toBe(0);
    expect(res.applied.map((a) => `${a.version}_${a.name}`)).toEqual(['0001_users', '0002_orders']);
    expect(res.applied[0].checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(await tables(url)).toEqual(['cdk_rollback.schema_migrations', 'public.orders', 'public.users']);
    const h = await history({ connectionString: url });
    expect(h.map((r) => [r.version, r.name, r.snapshotIdentifier])).toEqual([['0001', 'users', 'snap-1'], ['0002', 'orders', 'snap-1']]);
    expect(h[0].checksum).toBe(res.applied[0].checksum);
    expect(new Date(h[0].appliedAt).toISOString()).toBe(h[0].appliedAt);
    expect(h[0].durationMs).toBeGreaterThanOrEqual(0);
    expect(lines).toEqual([expect.stringMatching(/^applied 0001_users\.sql in \d+ ms$/), expect.stringMatching(/^applied 0002_orders\.sql/)]);
  });

  test('a re-run is a no-op and applies only what was added since', async () => {
    const url = await pg.freshDatabase();
    const dir = folder(BASE);
    await migrate({ connectionString: url }, { dir });
    const again = await migrate({ connectionString: url }, { dir });
    expect(again).toEqual({ dryRun: false, applied: [], alreadyApplied: 2 });
    fs.writeFileSync(path.join(dir, '0003_more.sql'), 'ALTER TABLE users ADD COLUMN name text;');
    const third = await migrate({ connectionString: url }, { dir });
    expect(third.applied.map((a) => a.version)).toEqual(['0003']);
    expect(third.alreadyApplied).toBe(2);
    expect((await history({ connectionString: url })).length).toBe(3);
  });

  test('fails naming the file when an applied migration was edited', async () => {
    const url = await pg.freshDatabase();
    const dir = folder(BASE);
    await migrate({ connectionString: url }, { dir });
    fs.writeFileSync(path.join(dir, '0002_orders.sql'), 'CREATE TABLE orders (id int);');
    fs.writeFileSync(path.join(dir, '0003_more.sql'), 'CREATE TABLE more (id int);');
    await expect(migrate({ connectionString: url }, { dir })).rejects.toThrow(
      /^checksum of applied migration 0002_orders\.sql changed \(applied [0-9a-f]{12}, file now [0-9a-f]{12}\)/);
    expect(await tables(url)).not.toContain('public.more');
  });

  test('a failing migration leaves no partial schema and no history row, and names file, statement and Postgres message', async () => {
    const url = await pg.freshDatabase();
    const dir = folder({
      ...BASE,
      '0003_broken.sql': 'CREATE TABLE half (id int);\nALTER TABLE users ADD COLUMN age int;\n\nSELECT no_such_column\n  FROM users;\n',
    });
    await expect(migrate({ connectionString: url }, { dir })).rejects.toThrow(
      '0003_broken.sql: statement 3 at line 4, column 8: column "no_such_column" does not exist (SQLSTATE 42703) (rolled back; the history is unchanged)');
    expect(await tables(url)).not.toContain('public.half');
    const cols = await query<{ column_name: string }>(url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY 1");
    expect(cols.map((c) => c.column_name)).toEqual(['email', 'id']);
    expect((await history({ connectionString: url })).map((r) => r.version)).toEqual(['0001', '0002']);
  });

  test('refuses a pending migration older than the newest applied one', async () => {
    const url = await pg.freshDatabase();
    const dir = folder({ '0001_a.sql': 'SELECT 1;', '0003_c.sql': 'SELECT 1;' });
    await migrate({ connectionString: url }, { dir });
    fs.writeFileSync(path.join(dir, '0002_b.sql'), 'SELECT 1;');
    await expect(migrate({ connectionString: url }, { dir })).rejects.toThrow(
      '0002_b.sql is pending but the newer migration 0003_c is already applied: give it a version above 0003');
  });

  test('two runners at once: one waits for the advisory lock, one applies, nothing is applied twice', async () => {
    const url = await pg.freshDatabase();
    const dir = folder({
      '0001_slow.sql': 'CREATE TABLE counter (n int);\nSELECT pg_sleep(0.5);\nINSERT INTO counter VALUES (1);\n',
      '0002_next.sql': 'INSERT INTO counter VALUES (2);\n',
    });
    const logs: string[][] = [[], []];
    const [a, b] = await Promise.all([0, 1].map((i) => migrate({ connectionString: url }, { dir, log: (l) => logs[i].push(l) })));
    const applied = [a.applied.length, b.applied.length].sort();
    expect(applied).toEqual([0, 2]);
    const waiter = a.applied.length === 0 ? 0 : 1;
    expect(logs[waiter][0]).toMatch(/^another migration runner holds the advisory lock; waiting up to 60000 ms$/);
    expect(logs[waiter][1]).toBe('nothing to apply (2 applied)');
    expect(await query<{ n: number }>(url, 'SELECT n FROM counter ORDER BY n')).toEqual([{ n: 1 }, { n: 2 }]);
  });

  test('gives up after the bounded lock wait and says who holds the lock', async () => {
    const url = await pg.freshDatabase();
    const holder = new Client({ connectionString: url, application_name: 'other-runner' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock(1667525490, 1835624306)');
      const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await expect(migrate({ connectionString: url }, { dir: folder(BASE), lockWaitMs: 200 })).rejects.toThrow(
        new RegExp(`^could not acquire the migration advisory lock within 200 ms: held by pid ${pid} \\(user postgres, application 'other-runner'.*find the holder with: SELECT`));
      expect(await tables(url)).toEqual([]);
    } finally {
      await holder.end();
    }
  });

  test('runs a file marked no-transaction outside a transaction block (CREATE INDEX CONCURRENTLY)', async () => {
    const url = await pg.freshDatabase();
    const concurrently = 'CREATE INDEX CONCURRENTLY users_email ON users (email);\n';
    const without = folder({ ...BASE, '0003_index.sql': concurrently });
    await expect(migrate({ connectionString: url }, { dir: without })).rejects.toThrow(
      /0003_index\.sql: statement 1 at line 1: CREATE INDEX CONCURRENTLY cannot run inside a transaction block/);
    const withDirective = folder({ ...BASE, '0003_index.sql': `-- cdk-rollback:no-transaction\n${concurrently}` });
    const res = await migrate({ connectionString: url }, { dir: withDirective });
    expect(res.applied.map((a) => a.version)).toEqual(['0003']);
    expect(await query(url, "SELECT indexname FROM pg_indexes WHERE indexname = 'users_email'")).toEqual([{ indexname: 'users_email' }]);
  });

  test('sets a default lock_timeout and statement_timeout for each migration', async () => {
    const url = await pg.freshDatabase();
    const dir = folder({ '0001_settings.sql': "CREATE TABLE s AS SELECT current_setting('lock_timeout') AS lt, current_setting('statement_timeout') AS st;" });
    await migrate({ connectionString: url }, { dir });
    expect(await query(url, 'SELECT lt, st FROM s')).toEqual([{ lt: '5s', st: '10min' }]);
  });

  test('fails fast on a lock held by the application instead of queueing behind it', async () => {
    const url = await pg.freshDatabase();
    await migrate({ connectionString: url }, { dir: folder(BASE) });
    const app = new Client({ connectionString: url });
    await app.connect();
    try {
      await app.query('BEGIN; LOCK TABLE users IN ACCESS SHARE MODE');
      const dir = folder({ ...BASE, '0003_alter.sql': 'ALTER TABLE users ADD COLUMN x int;' });
      await expect(migrate({ connectionString: url }, { dir, lockTimeout: '100ms' })).rejects.toThrow(
        /0003_alter\.sql: statement 1 at line 1: canceling statement due to lock timeout \(SQLSTATE 55P03\)/);
    } finally {
      await app.end();
    }
  });

  test('a dry run lists what would be applied and changes nothing', async () => {
    const url = await pg.freshDatabase();
    const res = await migrate({ connectionString: url }, { dir: folder(BASE), dryRun: true });
    expect(res).toEqual({
      dryRun: true,
      alreadyApplied: 0,
      applied: [
        { version: '0001', name: 'users', checksum: expect.stringMatching(/^[0-9a-f]{64}$/), durationMs: 0 },
        { version: '0002', name: 'orders', checksum: expect.stringMatching(/^[0-9a-f]{64}$/), durationMs: 0 },
      ],
    });
    expect(await tables(url)).toEqual([]);
  });

  test('works on a caller-owned pg client and leaves it open', async () => {
    const url = await pg.freshDatabase();
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      const res = await migrate({ client }, { dir: folder(BASE) });
      expect(res.applied.length).toBe(2);
      expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
  });
});

describe('down', () => {
  test('reverts newest first down to a version, each in a transaction, updating the history', async () => {
    const url = await pg.freshDatabase();
    const dir = folder({ ...BASE, '0003_more.sql': 'ALTER TABLE users ADD COLUMN name text;', '0003_more.down.sql': 'ALTER TABLE users DROP COLUMN name;' });
    await migrate({ connectionString: url }, { dir });
    const dry = await down({ connectionString: url }, { dir, toVersion: '0001', dryRun: true });
    expect(dry).toEqual({ dryRun: true, reverted: [{ version: '0003', name: 'more' }, { version: '0002', name: 'orders' }] });
    expect((await history({ connectionString: url })).length).toBe(3);
    const res = await down({ connectionString: url }, { dir, toVersion: '0001' });
    expect(res).toEqual({ dryRun: false, reverted: [{ version: '0003', name: 'more' }, { version: '0002', name: 'orders' }] });
    expect(await tables(url)).toEqual(['cdk_rollback.schema_migrations', 'public.users']);
    expect((await history({ connectionString: url })).map((r) => r.version)).toEqual(['0001']);
    // applying again re-applies what was reverted
    expect((await migrate({ connectionString: url }, { dir })).applied.map((a) => a.version)).toEqual(['0002', '0003']);
  });

  test('throws, changing nothing, when a migration above the target has no down file', async () => {
    const url = await pg.freshDatabase();
    const dir = folder({ ...BASE, '0003_more.sql': 'ALTER TABLE users ADD COLUMN name text;' });
    await migrate({ connectionString: url }, { dir });
    await expect(down({ connectionString: url }, { dir, toVersion: '0' })).rejects.toThrow(
      `cannot revert to 0: no down file for 0003_more.down.sql in ${dir}; nothing was reverted`);
    expect((await history({ connectionString: url })).length).toBe(3);
    expect(await tables(url)).toContain('public.orders');
  });

  test('a failing down migration rolls back and keeps its history row', async () => {
    const url = await pg.freshDatabase();
    const dir = folder({ ...BASE, '0002_orders.down.sql': 'DROP TABLE orders;\nDROP TABLE nope;\n' });
    await migrate({ connectionString: url }, { dir });
    await expect(down({ connectionString: url }, { dir, toVersion: '1' })).rejects.toThrow(
      '0002_orders.down.sql: statement 2 at line 2: table "nope" does not exist (SQLSTATE 42P01) (rolled back; the history is unchanged)');
    expect(await tables(url)).toContain('public.orders');
    expect((await history({ connectionString: url })).map((r) => r.version)).toEqual(['0001', '0002']);
  });

  test('rejects a target that is not a version', async () => {
    await expect(down({ connectionString: pg.url('postgres') }, { dir: folder(BASE), toVersion: 'latest' })).rejects.toThrow(
      "toVersion must be a migration version (digits), got: 'latest'");
  });
});

describe('history', () => {
  test('is empty before the first migration', async () => {
    expect(await history({ connectionString: await pg.freshDatabase() })).toEqual([]);
  });
});

describe('statement handling', () => {
  test('a statement ending in a line comment, and a file of comments only, apply', async () => {
    const url = await pg.freshDatabase();
    const dir = folder({
      '0001_a.sql': 'CREATE TABLE a (id int) -- trailing comment\n;\nINSERT INTO a VALUES (1) -- no newline at the end',
      '0002_empty.sql': '-- nothing to do yet\n',
    });
    const res = await migrate({ connectionString: url }, { dir });
    expect(res.applied.map((a) => a.version)).toEqual(['0001', '0002']);
    expect(await query(url, 'SELECT id FROM a')).toEqual([{ id: 1 }]);
  });

  test('a failure without a Postgres position is located by replaying the statements in a rolled-back transaction', async () => {
    const url = await pg.freshDatabase();
    const dir = folder({ '0001_a.sql': 'CREATE TABLE a (id int PRIMARY KEY);\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES (1);\n' });
    await expect(migrate({ connectionString: url }, { dir })).rejects.toThrow(
      '0001_a.sql: statement 3 at line 3: duplicate key value violates unique constraint "a_pkey" (SQLSTATE 23505) detail: Key (id)=(1) already exists. (rolled back; the history is unchanged)');
    expect(await tables(url)).toEqual(['cdk_rollback.schema_migrations']);
  });
});
