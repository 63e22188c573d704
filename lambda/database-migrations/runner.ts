/**
 * The migration engine, shared by the DatabaseMigrations Lambda and the `cdk-rollback db migrate|down|history` CLI.
 * It imports no CDK code.
 *
 * - One session-level Postgres advisory lock serializes runners (bounded wait, then an error naming the holder).
 * - History in `cdk_rollback.schema_migrations` (version, name, sha256 checksum, applied_at, duration_ms, snapshot id).
 * - Each migration runs in its own transaction together with its history row, unless the file carries
 *   `-- cdk-rollback:no-transaction`; `lock_timeout` and `statement_timeout` default to safe values.
 * - A migration is one round trip; when it fails, the error names the file, the statement (index, line, column
 *   when Postgres gives a position) and the Postgres message.
 */
import { Client, ClientBase, DatabaseError } from 'pg';
import { MIGRATIONS_SCHEMA, MIGRATIONS_TABLE } from '../shared/contract';
import { compareVersions, MigrationFile, readMigrations } from '../shared/migrations-folder';
import { directive, lineAt, NO_TRANSACTION_DIRECTIVE, splitStatements, SqlStatement } from '../shared/sql';

export type PgTarget = { client: ClientBase } | { connectionString: string };
export interface AppliedMigration { version: string; name: string; checksum: string; durationMs: number }
/** In a dry run, `applied` lists what WOULD be applied (durationMs 0) and nothing changes. */
export interface MigrateResult { dryRun: boolean; applied: AppliedMigration[]; alreadyApplied: number }
export interface DownResult { dryRun: boolean; reverted: { version: string; name: string }[] }
export interface HistoryRow {
  version: string; name: string; checksum: string; appliedAt: string; durationMs: number; snapshotIdentifier: string | null;
}

export interface MigrateOptions {
  /** Folder of `NNNN_name.sql` / `NNNN_name.down.sql` files. */
  dir: string;
  /** Plan only: report what would be applied, change nothing. */
  dryRun?: boolean;
  /** Recorded in the history row of every migration applied by this run. */
  snapshotIdentifier?: string;
  /** How long to wait for another runner's advisory lock. @default 60000 */
  lockWaitMs?: number;
  /** `lock_timeout` of each migration. @default '5s' */
  lockTimeout?: string;
  /** `statement_timeout` of each migration. @default '10min' */
  statementTimeout?: string;
  log?: (line: string) => void;
}

export interface DownOptions {
  dir: string;
  /** Revert every applied migration above this version (`0` reverts all). */
  toVersion: string;
  dryRun?: boolean;
  lockWaitMs?: number;
  lockTimeout?: string;
  statementTimeout?: string;
  log?: (line: string) => void;
}

/** The full name of the history table. */
export const HISTORY_TABLE = `${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`;
/** Key of the advisory lock that serializes runners (both halves of `pg_advisory_lock(int, int)`). */
export const ADVISORY_LOCK_KEY: readonly [number, number] = [0x63646b72, 0x6d696772]; // 'cdkr', 'migr'

const DEFAULT_LOCK_WAIT_MS = 60_000;
const DEFAULT_LOCK_TIMEOUT = '5s';
const DEFAULT_STATEMENT_TIMEOUT = '10min';

async function withClient<T>(target: PgTarget, fn: (c: ClientBase) => Promise<T>): Promise<T> {
  if ('client' in target) return fn(target.client);
  const client = new Client({ connectionString: target.connectionString });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function historyExists(c: ClientBase): Promise<boolean> {
  const r = await c.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [HISTORY_TABLE]);
  return r.rows[0].t !== null;
}

async function ensureHistory(c: ClientBase): Promise<void> {
  await c.query(`CREATE SCHEMA IF NOT EXISTS ${MIGRATIONS_SCHEMA}`);
  await c.query(`CREATE TABLE IF NOT EXISTS ${HISTORY_TABLE} (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL,
    snapshot_identifier text
  )`);
}

async function readHistory(c: ClientBase): Promise<HistoryRow[]> {
  if (!(await historyExists(c))) return [];
  const r = await c.query<{ version: string; name: string; checksum: string; applied_at: Date; duration_ms: number; snapshot_identifier: string | null }>(
    `SELECT version, name, checksum, applied_at, duration_ms, snapshot_identifier FROM ${HISTORY_TABLE}`);
  return r.rows
    .map((row) => ({
      version: row.version,
      name: row.name,
      checksum: row.checksum,
      appliedAt: row.applied_at.toISOString(),
      durationMs: row.duration_ms,
      snapshotIdentifier: row.snapshot_identifier,
    }))
    .sort((a, b) => compareVersions(a.version, b.version));
}

/** Takes the runners' advisory lock, waiting at most `waitMs`; on timeout the error names the holder. */
async function lock(c: ClientBase, waitMs: number, log: (l: string) => void): Promise<void> {
  const [k1, k2] = ADVISORY_LOCK_KEY;
  const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [k1, k2]);
  if (got.rows[0].ok) return;
  log(`another migration runner holds the advisory lock; waiting up to ${waitMs} ms`);
  await c.query(`SET lock_timeout = ${Math.max(1, Math.round(waitMs))}`);
  try {
    await c.query('SELECT pg_advisory_lock($1, $2)', [k1, k2]);
  } catch (e) {
    if ((e as DatabaseError).code !== '55P03') throw e;
    const holder = await c.query<{ pid: number; usename: string; application_name: string; client_addr: string | null; backend_start: Date }>(
      `SELECT a.pid, a.usename, a.application_name, a.client_addr::text AS client_addr, a.backend_start
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2`,
      [k1 >>> 0, k2 >>> 0]).catch(() => ({ rows: [] as never[] }));
    const h = holder.rows[0];
    const who = h
      ? `held by pid ${h.pid} (user ${h.usename}, application '${h.application_name}', client ${h.client_addr ?? 'local'}, connected ${h.backend_start.toISOString()})`
      : 'held by another session';
    throw new Error(
      `could not acquire the migration advisory lock within ${waitMs} ms: ${who}. Another migration is running; ` +
      `find the holder with: SELECT a.* FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' ` +
      `AND l.classid = ${k1 >>> 0} AND l.objid = ${k2 >>> 0}; wait for it, or end it with SELECT pg_terminate_backend(<pid>)`);
  } finally {
    await c.query('RESET lock_timeout');
  }
}

async function unlock(c: ClientBase): Promise<void> {
  const [k1, k2] = ADVISORY_LOCK_KEY;
  await c.query('SELECT pg_advisory_unlock($1, $2)', [k1, k2]);
}

function pgMessage(e: unknown): string {
  const err = e as DatabaseError;
  const parts = [err.message];
  if (err.code) parts.push(`(SQLSTATE ${err.code})`);
  if (err.detail) parts.push(`detail: ${err.detail}`);
  if (err.hint) parts.push(`hint: ${err.hint}`);
  return parts.join(' ').replace(/\s+/g, ' ');
}

/** Where in `file` the error happened: statement index, its line, and Postgres' character position when given. */
function position(sql: string, stmt: SqlStatement, e: unknown): string {
  const pos = Number((e as DatabaseError).position);
  if (Number.isFinite(pos) && pos > 0) {
    const abs = stmt.offset + pos - 1;
    const line = lineAt(sql, abs);
    const col = abs - (sql.lastIndexOf('\n', abs - 1) + 1) + 1;
    return `statement ${stmt.index} at line ${line}, column ${col}`;
  }
  return `statement ${stmt.index} at line ${stmt.line}`;
}

/**
 * Runs `sql` (one migration file). In a transaction unless the file says `-- cdk-rollback:no-transaction`;
 * `record` is the history change (one SQL statement with literal values), committed with the migration.
 * `durable: false` commits with `synchronous_commit = off` (the runner makes the last commit of a run durable, which
 * flushes the earlier ones too, as the WAL is written in order).
 */
async function runFile(
  c: ClientBase, file: string, sql: string, timeouts: { lockTimeout: string; statementTimeout: string },
  record: (durationMs: string) => string, durable: boolean,
): Promise<void> {
  const started = process.hrtime.bigint();
  const statements = splitStatements(sql);
  const noTx = directive(sql, NO_TRANSACTION_DIRECTIVE) !== undefined;
  const settings = (scope: 'LOCAL' | 'SESSION') =>
    `SET ${scope} lock_timeout = ${quoteLiteral(timeouts.lockTimeout)}; SET ${scope} statement_timeout = ${quoteLiteral(timeouts.statementTimeout)}`;
  if (noTx) {
    let done = 0;
    try {
      await c.query(settings('SESSION'));
      for (const stmt of statements) {
        try {
          await c.query(stmt.text);
        } catch (e) {
          throw new Error(`${file}: ${position(sql, stmt, e)}: ${pgMessage(e)} ` +
            `(ran without a transaction: statements 1-${done} stayed applied; the history is unchanged)`);
        }
        done++;
      }
      await c.query(record(String(Number((process.hrtime.bigint() - started) / 1_000_000n))));
    } finally {
      await c.query('RESET lock_timeout; RESET statement_timeout').catch(() => undefined);
    }
    return;
  }
  // The whole migration is one round trip: open, settings, the file's statements, its history row, commit.
  // now() is the transaction's start, so the database measures the migration's duration itself.
  const head = `BEGIN; ${settings('LOCAL')}${durable ? '' : '; SET LOCAL synchronous_commit = off'};\n`;
  const parts = [...statements.map((st) => st.text), record('(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer'), 'COMMIT'];
  try {
    await c.query(head + parts.join(SEPARATOR));
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    const where = await locate(c, sql, statements, head.length, e, settings('LOCAL'));
    throw new Error(`${file}: ${where}: ${pgMessage(e)} (rolled back; the history is unchanged)`);
  }
}

/** Between statements sent together: the newline first ends a trailing `--` comment. */
const SEPARATOR = '\n;\n';

/**
 * Where a failed migration failed. Postgres' character position (parse and analysis errors) maps back to the
 * statement; for other errors the statements run again one by one in a transaction that is always rolled back.
 */
async function locate(c: ClientBase, sql: string, statements: SqlStatement[], headLength: number, e: unknown, settings: string): Promise<string> {
  const pos = Number((e as DatabaseError).position);
  if (Number.isFinite(pos) && pos > headLength) {
    // offset in the joined body -> statement -> offset in the file
    let offset = pos - 1 - headLength;
    for (const st of statements) {
      if (offset < st.text.length + SEPARATOR.length) {
        const abs = st.offset + Math.min(offset, st.text.length);
        const line = lineAt(sql, abs);
        const col = abs - (sql.lastIndexOf('\n', abs - 1) + 1) + 1;
        return `statement ${st.index} at line ${line}, column ${col}`;
      }
      offset -= st.text.length + SEPARATOR.length;
    }
  }
  try {
    await c.query(`BEGIN; ${settings}`);
    for (const st of statements) {
      try {
        await c.query(st.text);
      } catch (again) {
        return position(sql, st, again);
      }
    }
    return 'statement unknown (it did not fail again when run alone)';
  } finally {
    await c.query('ROLLBACK').catch(() => undefined);
  }
}

function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, '\'\'')}'`;
}

/** Checks applied files for drift and returns the pending ones, in order. */
function plan(files: MigrationFile[], applied: HistoryRow[]): MigrationFile[] {
  const byVersion = new Map(applied.map((r) => [BigInt(r.version).toString(), r]));
  for (const f of files) {
    const row = byVersion.get(BigInt(f.version).toString());
    if (row && row.checksum !== f.checksum) {
      throw new Error(
        `checksum of applied migration ${f.file} changed (applied ${row.checksum.slice(0, 12)}, file now ${f.checksum.slice(0, 12)}): ` +
        'never edit an applied migration; restore the file and add a new migration instead');
    }
  }
  const pending = files.filter((f) => !byVersion.has(BigInt(f.version).toString()));
  const latest = applied.length > 0 ? applied[applied.length - 1] : undefined;
  const early = latest ? pending.find((f) => compareVersions(f.version, latest.version) < 0) : undefined;
  if (early && latest) {
    throw new Error(
      `${early.file} is pending but the newer migration ${latest.version}_${latest.name} is already applied: ` +
      `give it a version above ${latest.version}`);
  }
  return pending;
}

/** Applies the pending migrations of `opts.dir` in version order. */
export async function migrate(target: PgTarget, opts: MigrateOptions): Promise<MigrateResult> {
  const log = opts.log ?? (() => undefined);
  const files = readMigrations(opts.dir);
  const timeouts = {
    lockTimeout: opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT,
    statementTimeout: opts.statementTimeout ?? DEFAULT_STATEMENT_TIMEOUT,
  };
  return withClient(target, async (c) => {
    if (opts.dryRun) {
      const history = await readHistory(c);
      const pending = plan(files, history);
      for (const f of pending) log(`dry run: would apply ${f.file}`);
      if (pending.length === 0) log(`dry run: nothing to apply (${history.length} applied)`);
      return {
        dryRun: true,
        applied: pending.map((f) => ({ version: f.version, name: f.name, checksum: f.checksum, durationMs: 0 })),
        alreadyApplied: history.length,
      };
    }
    await lock(c, opts.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS, log);
    try {
      await ensureHistory(c);
      const history = await readHistory(c);
      const pending = plan(files, history);
      if (pending.length === 0) log(`nothing to apply (${history.length} applied)`);
      const applied: AppliedMigration[] = [];
      for (const [i, f] of pending.entries()) {
        const started = process.hrtime.bigint();
        const record = (durationMs: string) =>
          `INSERT INTO ${HISTORY_TABLE} (version, name, checksum, duration_ms, snapshot_identifier) VALUES (` +
          `${quoteLiteral(f.version)}, ${quoteLiteral(f.name)}, ${quoteLiteral(f.checksum)}, ${durationMs}, ` +
          `${opts.snapshotIdentifier === undefined ? 'NULL' : quoteLiteral(opts.snapshotIdentifier)})`;
        await runFile(c, f.file, f.sql, timeouts, record, i === pending.length - 1);
        const durationMs = Number((process.hrtime.bigint() - started) / 1_000_000n);
        log(`applied ${f.file} in ${durationMs} ms`);
        applied.push({ version: f.version, name: f.name, checksum: f.checksum, durationMs });
      }
      return { dryRun: false, applied, alreadyApplied: history.length };
    } finally {
      await unlock(c);
    }
  });
}

/**
 * Reverts applied migrations above `opts.toVersion`, newest first, each with its `.down.sql` file in its own
 * transaction (unless the down file says `-- cdk-rollback:no-transaction`), deleting its history row.
 * Throws, changing nothing, when one of them has no down file.
 */
export async function down(target: PgTarget, opts: DownOptions): Promise<DownResult> {
  const log = opts.log ?? (() => undefined);
  if (!/^\d+$/.test(opts.toVersion)) {
    throw new Error(`toVersion must be a migration version (digits), got: '${opts.toVersion}'`);
  }
  const files = readMigrations(opts.dir);
  const byVersion = new Map(files.map((f) => [BigInt(f.version).toString(), f]));
  const timeouts = {
    lockTimeout: opts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT,
    statementTimeout: opts.statementTimeout ?? DEFAULT_STATEMENT_TIMEOUT,
  };
  const planDown = (history: HistoryRow[]) => {
    const targets = history.filter((r) => compareVersions(r.version, opts.toVersion) > 0).reverse();
    const missing = targets.filter((r) => byVersion.get(BigInt(r.version).toString())?.downSql === undefined);
    if (missing.length > 0) {
      throw new Error(
        `cannot revert to ${opts.toVersion}: no down file for ${missing.map((r) => `${r.version}_${r.name}.down.sql`).join(', ')} ` +
        `in ${opts.dir}; nothing was reverted (restore the pre-migration snapshot instead, or add the down files)`);
    }
    return targets;
  };
  return withClient(target, async (c) => {
    if (opts.dryRun) {
      const targets = planDown(await readHistory(c));
      for (const r of targets) log(`dry run: would revert ${r.version}_${r.name}`);
      return { dryRun: true, reverted: targets.map((r) => ({ version: r.version, name: r.name })) };
    }
    await lock(c, opts.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS, log);
    try {
      const targets = planDown(await readHistory(c));
      const reverted: { version: string; name: string }[] = [];
      for (const r of targets) {
        const f = byVersion.get(BigInt(r.version).toString())!;
        await runFile(c, f.downFile!, f.downSql!, timeouts, () => `DELETE FROM ${HISTORY_TABLE} WHERE version = ${quoteLiteral(r.version)}`, true);
        log(`reverted ${f.file} with ${f.downFile}`);
        reverted.push({ version: r.version, name: r.name });
      }
      if (reverted.length === 0) log(`nothing to revert above ${opts.toVersion}`);
      return { dryRun: false, reverted };
    } finally {
      await unlock(c);
    }
  });
}

/** The applied migrations, oldest first ([] when the history table does not exist yet). */
export async function history(target: PgTarget): Promise<HistoryRow[]> {
  return withClient(target, readHistory);
}
