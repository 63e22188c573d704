/**
 * `db migrate|down|history` and the migrations part of `status`.
 *
 * Two ways to a database, one flow (plan -> confirmation -> change -> audit) and the same exit codes:
 * - `--stack NAME [--target PATH]` or `--function NAME`: the deployed DatabaseMigrations runner Lambda (in the VPC,
 *   with the deployed migration files) is invoked synchronously (lambda:InvokeFunction, RequestResponse) with an
 *   operator request (lambda/database-migrations/operator.ts). The audit entry is recorded in SSM like the other
 *   commands'.
 * - `--database-url URL --dir DIR`: the same runner code (lambda/database-migrations/runner.ts) against a developer's
 *   own PostgreSQL database; the audit line is printed, the history table is the record.
 */
import * as os from 'os';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { OperatorRequest, PlanResult } from '../../lambda/database-migrations/operator';
import type { DownResult, HistoryRow, MigrateResult } from '../../lambda/database-migrations/runner';
import { audit, formatAudit } from './audit';
import { CliError, CommandResult, Context, EXIT, iso, reasonOf, refused, usage } from './context';
import { ConstructTarget, StackInfo, discoverStack, pickConstruct, resolveProperty } from './discovery';

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

/** Where the migrations run: a local database URL or the deployed runner. */
interface Backend {
  /** For output: the redacted URL, or `runner <function> (cluster <id>)`. */
  readonly label: string;
  readonly json: Record<string, unknown>;
  planMigrate(): Promise<MigrateResult>;
  migrate(): Promise<MigrateResult>;
  planDown(to: string): Promise<DownResult>;
  down(to: string): Promise<DownResult>;
  history(): Promise<HistoryRow[]>;
  audit(action: string, from: string, to: string): Promise<{ entry: unknown; line: string; recordedIn?: string }>;
}

// ---------------------------------------------------------------------------------------------
// The runner Lambda
// ---------------------------------------------------------------------------------------------

/** The error types the runner throws on purpose (lambda/database-migrations/operator.ts). */
const RUNNER_EXIT: Record<string, number> = { InvalidRequest: EXIT.USAGE, Refused: EXIT.REFUSED };

/**
 * Invokes the runner synchronously with an operator request; prints a progress line while it runs and its log
 * lines once it answers. A FunctionError becomes a CliError naming the function, the error type and message.
 */
export async function invokeRunner<T>(ctx: Context, functionName: string, request: OperatorRequest): Promise<T> {
  // One attempt: a retried synchronous invoke could run a migration twice.
  const lambda = new LambdaClient({ ...ctx.clientConfig, maxAttempts: 1 });
  const what = `${request.cdkRollbackAction}${request.to !== undefined ? ` --to ${request.to}` : ''}${request.dryRun ? ' (dry run)' : ''}`;
  ctx.progress(`invoking the migrations runner ${functionName}: ${what}`);
  const every = Number(ctx.io.env.CDK_ROLLBACK_POLL_SECONDS ?? '15') * 1000;
  const t0 = Date.now();
  const timer = setInterval(() => ctx.progress(`waiting for the runner ${functionName} (${Math.round((Date.now() - t0) / 1000)} s)`), every);
  let out;
  try {
    out = await lambda.send(new InvokeCommand({
      FunctionName: functionName,
      InvocationType: 'RequestResponse',
      Payload: new TextEncoder().encode(JSON.stringify(request)),
    }));
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'ResourceNotFoundException') {
      throw usage(`the migrations runner ${functionName} does not exist (check --function or --stack, --region and --profile)`);
    }
    if (name === 'AccessDeniedException' || name === 'AccessDenied') {
      throw new CliError(`not allowed to invoke the migrations runner ${functionName}: the operator needs lambda:InvokeFunction on it (${reasonOf(err)})`);
    }
    throw err;
  } finally {
    clearInterval(timer);
  }
  const text = out.Payload ? new TextDecoder().decode(out.Payload) : '';
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  if (out.FunctionError) {
    const e = (body ?? {}) as { errorType?: string; errorMessage?: string };
    const type = e.errorType ?? out.FunctionError;
    const message = e.errorMessage ?? (typeof body === 'string' ? body : JSON.stringify(body));
    throw new CliError(`the migrations runner ${functionName} failed (${type}): ${message}`, RUNNER_EXIT[type] ?? EXIT.FAILED);
  }
  const logLines = (body as { log?: unknown })?.log;
  if (Array.isArray(logLines)) for (const l of logLines) ctx.progress(`runner: ${String(l)}`);
  ctx.progress(`the runner answered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return body as T;
}

interface RunnerTarget { readonly functionName: string; readonly cluster?: string; readonly path?: string }

/** The runner of a DatabaseMigrations construct of a stack (role `runner`), and its cluster. */
function runnerOf(stack: StackInfo, c: ConstructTarget): RunnerTarget | undefined {
  const fn = c.roles.runner?.physicalId;
  if (!fn) return undefined;
  const cluster = resolveProperty(stack, c.roles.migrations?.properties.ClusterIdentifier);
  return { functionName: fn, cluster, path: c.path };
}

async function resolveRunner(ctx: Context, o: Record<string, unknown>): Promise<RunnerTarget> {
  if (o.function) return { functionName: o.function as string };
  const stack = await discoverStack(ctx, ctx.opts.stack!);
  const c = pickConstruct(stack, ['DatabaseMigrations'], ctx.opts.target);
  const r = runnerOf(stack, c);
  if (!r) {
    throw usage(`DatabaseMigrations ${c.path} in stack ${stack.stackName} has no runner marked for the CLI (deployed with an older cdk-rollback): ` +
      'deploy again, or pass --function with the runner\'s name');
  }
  return r;
}

function runnerBackend(ctx: Context, t: RunnerTarget): Backend {
  const label = `runner ${t.functionName}${t.cluster ? ` (cluster ${t.cluster})` : ''}`;
  const call = <T>(request: OperatorRequest) => invokeRunner<T>(ctx, t.functionName, request);
  return {
    label,
    json: { function: t.functionName, cluster: t.cluster ?? null, path: t.path ?? null },
    planMigrate: () => call<MigrateResult>({ cdkRollbackAction: 'migrate', dryRun: true }),
    migrate: () => call<MigrateResult>({ cdkRollbackAction: 'migrate', dryRun: false }),
    planDown: (to) => call<DownResult>({ cdkRollbackAction: 'down', to, dryRun: true }),
    down: (to) => call<DownResult>({ cdkRollbackAction: 'down', to, dryRun: false }),
    history: async () => (await call<{ migrations: HistoryRow[] }>({ cdkRollbackAction: 'history' })).migrations,
    audit: (action, from, to) => audit(ctx, 'db', t.cluster ?? t.functionName, action, from, to),
  };
}

// ---------------------------------------------------------------------------------------------
// A database URL
// ---------------------------------------------------------------------------------------------

async function urlBackend(ctx: Context, url: string, dir: string | undefined, needsDir: boolean): Promise<Backend> {
  if (!/^postgres(ql)?:\/\//.test(url)) throw usage('`--database-url` must be a postgres:// or postgresql:// URL, got: ' + redact(url));
  if (needsDir && !dir) throw usage('`--dir` is required with --database-url: the folder of NNNN_name.sql migrations');
  const runner = await import('../../lambda/database-migrations/runner');
  const target = { connectionString: url };
  const log = (line: string) => ctx.progress(line);
  return {
    label: redact(url),
    json: { database: redact(url) },
    planMigrate: () => runner.migrate(target, { dir: dir!, dryRun: true }),
    migrate: () => runner.migrate(target, { dir: dir!, log }),
    planDown: (to) => runner.down(target, { dir: dir!, toVersion: to, dryRun: true }),
    down: (to) => runner.down(target, { dir: dir!, toVersion: to, log }),
    history: () => runner.history(target),
    // Local databases have no AWS audit record: the audit line is printed, the history table is the record.
    audit: async (action, from, to) => {
      const entry = { at: iso(new Date()), who: localIdentity(), action, target: redact(url), from, to };
      return { entry, line: formatAudit(entry) };
    },
  };
}

/** `--stack`/`--function` (the runner) or `--database-url` (a local database), never both. */
async function backend(ctx: Context, o: Record<string, unknown>, needsDir: boolean): Promise<Backend> {
  const remote = Boolean(ctx.opts.stack || o.function);
  if (remote) {
    if (o.databaseUrl) throw usage('pass either --stack/--function (the deployed runner) or --database-url, not both');
    if (o.dir) throw usage('`--dir` is for --database-url: the runner runs the migrations deployed with it');
    return runnerBackend(ctx, await resolveRunner(ctx, o));
  }
  const url = (o.databaseUrl as string | undefined) ?? ctx.io.env.DATABASE_URL;
  if (!url) throw usage('no database: pass --stack NAME (or --function NAME) for the deployed runner, or --database-url URL (or set DATABASE_URL)');
  return urlBackend(ctx, url, o.dir as string | undefined, needsDir);
}

/** The runner's "no down file" is a refusal: nothing was changed. */
function asRefusal(err: unknown): never {
  if (!(err instanceof CliError) && /no down file/.test((err as Error).message)) throw refused((err as Error).message);
  throw err;
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

export async function dbMigrate(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const b = await backend(ctx, o, true);
  const planned = await b.planMigrate();
  const before = planned.alreadyApplied;
  const plan = planned.applied.map((m) => `apply ${m.version}_${m.name}`);
  if (plan.length === 0) {
    return {
      data: { action: 'migrate', ...b.json, dryRun: Boolean(ctx.opts.dryRun), applied: [], alreadyApplied: before },
      lines: [`Nothing to apply: ${before} migration(s) already applied to ${b.label}.`],
    };
  }
  if (!(await ctx.confirm(`Apply ${plan.length} migration(s) to ${b.label}?`, plan))) {
    return {
      data: { action: 'migrate', ...b.json, dryRun: true, pending: planned.applied, alreadyApplied: before },
      lines: ['dry run: nothing was changed', ...plan.map((p) => `  would ${p}`)],
    };
  }
  const result = await b.migrate();
  ctx.step(`applied ${result.applied.length} migration(s) to ${b.label}`);
  const last = result.applied[result.applied.length - 1];
  const a = await b.audit('db migrate', `${before} applied`, last ? `${last.version}_${last.name}` : 'unchanged');
  return {
    data: { action: 'migrate', ...b.json, dryRun: false, applied: result.applied, alreadyApplied: result.alreadyApplied, audit: a.entry, auditRecordedIn: a.recordedIn },
    lines: [
      ...result.applied.map((m) => `applied ${m.version}_${m.name} (${m.durationMs} ms)`),
      `Applied ${result.applied.length} migration(s) to ${b.label}.`,
      a.line,
    ],
  };
}

export async function dbDown(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const toVersion = o.to as string;
  if (!/^\d+$/.test(toVersion)) throw usage(`\`--to\` must be a migration version (digits), got: ${toVersion}`);
  const b = await backend(ctx, o, true);
  const planned = await b.planDown(toVersion).catch(asRefusal);
  const plan = planned.reverted.map((m) => `revert ${m.version}_${m.name}`);
  if (plan.length === 0) {
    return {
      data: { action: 'down', ...b.json, dryRun: Boolean(ctx.opts.dryRun), reverted: [] },
      lines: [`Nothing to revert above ${toVersion} in ${b.label}.`],
    };
  }
  if (!(await ctx.confirm(`Revert ${plan.length} migration(s) in ${b.label}?`, plan))) {
    return {
      data: { action: 'down', ...b.json, dryRun: true, toRevert: planned.reverted },
      lines: ['dry run: nothing was changed', ...plan.map((p) => `  would ${p}`)],
    };
  }
  const result = await b.down(toVersion).catch(asRefusal);
  ctx.step(`reverted ${result.reverted.length} migration(s) in ${b.label}`);
  const newest = planned.reverted[0];
  const a = await b.audit('db down', newest ? `${newest.version}_${newest.name}` : '-', toVersion);
  return {
    data: { action: 'down', ...b.json, dryRun: false, reverted: result.reverted, audit: a.entry, auditRecordedIn: a.recordedIn },
    lines: [
      ...result.reverted.map((m) => `reverted ${m.version}_${m.name}`),
      `Reverted ${result.reverted.length} migration(s) in ${b.label}: now at ${toVersion}.`,
      a.line,
    ],
  };
}

function historyTable(rows: HistoryRow[]): string[] {
  return [
    'VERSION  NAME                            APPLIED AT            DURATION  SNAPSHOT',
    ...rows.map((r) => `${r.version.padEnd(8)} ${r.name.padEnd(31)} ${iso(r.appliedAt).padEnd(21)} ${`${r.durationMs} ms`.padEnd(9)} ${r.snapshotIdentifier ?? '-'}`),
  ];
}

export async function dbHistory(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const b = await backend(ctx, o, false);
  const rows = await b.history();
  const lines = rows.length === 0 ? [`No migration applied to ${b.label}.`] : [`Migrations applied to ${b.label}:`, ...historyTable(rows)];
  return { data: { ...b.json, migrations: rows }, lines };
}

// ---------------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------------

/**
 * The migrations section of `status`: what the DATABASE has applied (read through the runner: `plan`), with
 * pending and drifted migrations; the template's values are labelled as such.
 */
export async function migrationsStatus(ctx: Context, stack: StackInfo, c: ConstructTarget):
Promise<{ data: Record<string, unknown>; lines: string[]; failed?: boolean }> {
  const props = c.roles.migrations?.properties ?? {};
  const template = { migrationCount: props.MigrationCount ?? null, latestVersion: props.LatestVersion ?? null };
  const cluster = resolveProperty(stack, props.ClusterIdentifier) ?? null;
  const runner = runnerOf(stack, c);
  const lines = [`${ctx.color.bold('Migrations')} ${c.path}${cluster ? ` (cluster ${cluster})` : ''}`];
  const templateLine = `  template: ${template.migrationCount ?? '?'} migration(s), latest version ${template.latestVersion ?? '-'} (from the deployed template, not read from the database)`;
  if (!runner) {
    lines.push(ctx.color.yellow('  database: not read (no runner marked in the template: deploy with this cdk-rollback version)'), templateLine);
    return { data: { path: c.path, cluster, function: null, database: null, template }, lines };
  }
  try {
    const plan = await invokeRunner<PlanResult>(ctx, runner.functionName, { cdkRollbackAction: 'plan' });
    const latest = plan.applied[plan.applied.length - 1];
    lines.push(`  database: ${plan.applied.length} applied, latest ${latest ? `${latest.version}_${latest.name} at ${iso(latest.appliedAt)}` : '-'} (read through the runner ${runner.functionName})`);
    lines.push(`  pending: ${plan.pending.length === 0 ? 'none' : plan.pending.map((p) => `${p.version}_${p.name}`).join(', ')}`);
    if (plan.drift.length > 0) lines.push(ctx.color.red(`  checksum drift (file changed after it was applied): ${plan.drift.map((d) => `${d.version}_${d.name}`).join(', ')}`));
    if (plan.unknown.length > 0) lines.push(ctx.color.yellow(`  applied but not deployed: ${plan.unknown.map((d) => `${d.version}_${d.name}`).join(', ')}`));
    lines.push(templateLine);
    return {
      data: {
        path: c.path, cluster, function: runner.functionName, template,
        database: { applied: plan.applied, latestVersion: latest?.version ?? null, pending: plan.pending, drift: plan.drift, unknown: plan.unknown },
      },
      lines,
    };
  } catch (err) {
    lines.push(ctx.color.red(`  database: error: ${reasonOf(err)}`), templateLine);
    return { data: { path: c.path, cluster, function: runner.functionName, template, database: null, error: reasonOf(err) }, lines, failed: true };
  }
}
