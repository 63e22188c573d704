/**
 * `db migrate|down|history`: the DatabaseMigrations runner (lambda/database-migrations/runner.ts) against a
 * developer's own PostgreSQL database. Same engine, same history table, same advisory lock as the Lambda.
 */
import * as os from 'os';
import { down, history, migrate } from '../../lambda/database-migrations/runner';
import { formatAudit } from './audit';
import { CommandResult, Context, iso, refused, usage } from './context';

function databaseUrl(ctx: Context, o: Record<string, unknown>): string {
  const url = (o.databaseUrl as string | undefined) ?? ctx.io.env.DATABASE_URL;
  if (!url) throw usage('no database: pass --database-url URL (or set DATABASE_URL)');
  if (!/^postgres(ql)?:\/\//.test(url)) throw usage('`--database-url` must be a postgres:// or postgresql:// URL, got: ' + redact(url));
  return url;
}

/** The URL without its password, for output. */
export function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

function localIdentity(): string {
  try {
    return `${os.userInfo().username}@${os.hostname()}`;
  } catch {
    return 'unknown';
  }
}

/** Local databases have no AWS audit record: the audit line is printed, the history table is the record. */
function localAudit(action: string, target: string, from: string, to: string) {
  const entry = { at: iso(new Date()), who: localIdentity(), action, target, from, to };
  return { entry, line: formatAudit(entry) };
}

export async function dbMigrate(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const url = databaseUrl(ctx, o);
  const dir = o.dir as string;
  const log = (line: string) => ctx.progress(line);
  const planned = await migrate({ connectionString: url }, { dir, dryRun: true });
  const before = planned.alreadyApplied;
  const plan = planned.applied.map((m) => `apply ${m.version}_${m.name}`);
  if (plan.length === 0) {
    return {
      data: { action: 'migrate', database: redact(url), dryRun: Boolean(ctx.opts.dryRun), applied: [], alreadyApplied: before },
      lines: [`Nothing to apply: ${before} migration(s) already applied to ${redact(url)}.`],
    };
  }
  if (!(await ctx.confirm(`Apply ${plan.length} migration(s) to ${redact(url)}?`, plan))) {
    return {
      data: { action: 'migrate', database: redact(url), dryRun: true, pending: planned.applied, alreadyApplied: before },
      lines: ['dry run: nothing was changed', ...plan.map((p) => `  would ${p}`)],
    };
  }
  const result = await migrate({ connectionString: url }, { dir, log });
  const last = result.applied[result.applied.length - 1];
  const a = localAudit('db migrate', redact(url), `${before} applied`, last ? `${last.version}_${last.name}` : 'unchanged');
  return {
    data: { action: 'migrate', database: redact(url), dryRun: false, applied: result.applied, alreadyApplied: result.alreadyApplied, audit: a.entry },
    lines: [
      ...result.applied.map((m) => `applied ${m.version}_${m.name} (${m.durationMs} ms)`),
      `Applied ${result.applied.length} migration(s) to ${redact(url)}.`,
      a.line,
    ],
  };
}

export async function dbDown(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const url = databaseUrl(ctx, o);
  const dir = o.dir as string;
  const toVersion = o.to as string;
  if (!/^\d+$/.test(toVersion)) throw usage(`\`--to\` must be a migration version (digits), got: ${toVersion}`);
  let planned;
  try {
    planned = await down({ connectionString: url }, { dir, toVersion, dryRun: true });
  } catch (err) {
    if (/no down file/.test((err as Error).message)) throw refused((err as Error).message);
    throw err;
  }
  const plan = planned.reverted.map((m) => `revert ${m.version}_${m.name}`);
  if (plan.length === 0) {
    return {
      data: { action: 'down', database: redact(url), dryRun: Boolean(ctx.opts.dryRun), reverted: [] },
      lines: [`Nothing to revert above ${toVersion} in ${redact(url)}.`],
    };
  }
  if (!(await ctx.confirm(`Revert ${plan.length} migration(s) in ${redact(url)}?`, plan))) {
    return {
      data: { action: 'down', database: redact(url), dryRun: true, toRevert: planned.reverted },
      lines: ['dry run: nothing was changed', ...plan.map((p) => `  would ${p}`)],
    };
  }
  let result;
  try {
    result = await down({ connectionString: url }, { dir, toVersion, log: (line) => ctx.progress(line) });
  } catch (err) {
    if (/no down file/.test((err as Error).message)) throw refused((err as Error).message);
    throw err;
  }
  const newest = planned.reverted[0];
  const a = localAudit('db down', redact(url), newest ? `${newest.version}_${newest.name}` : '-', toVersion);
  return {
    data: { action: 'down', database: redact(url), dryRun: false, reverted: result.reverted, audit: a.entry },
    lines: [
      ...result.reverted.map((m) => `reverted ${m.version}_${m.name}`),
      `Reverted ${result.reverted.length} migration(s) in ${redact(url)}: now at ${toVersion}.`,
      a.line,
    ],
  };
}

export async function dbHistory(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const url = databaseUrl(ctx, o);
  const rows = await history({ connectionString: url });
  const lines = rows.length === 0
    ? [`No migration applied to ${redact(url)}.`]
    : [
      'VERSION  NAME                            APPLIED AT            DURATION  SNAPSHOT',
      ...rows.map((r) => `${r.version.padEnd(8)} ${r.name.padEnd(31)} ${iso(r.appliedAt).padEnd(21)} ${`${r.durationMs} ms`.padEnd(9)} ${r.snapshotIdentifier ?? '-'}`),
    ];
  return { data: { database: redact(url), migrations: rows }, lines };
}
