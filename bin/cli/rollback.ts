/**
 * `rollback --stack X`: the whole release back in one command, one plan and one confirmation, in the reverse order
 * of a deploy: the site first (its previous release), then the API (`live` -> `stable`). Databases are not rolled
 * back: the restore and `db down` options are printed (schema changes stay an explicit decision).
 * A failing step stops the run; the output says what was done and what was not.
 */
import { CliError, CommandResult, Context, EXIT, iso, reasonOf, refused, usage } from './context';
import { ConstructTarget, StackInfo, discoverStack, resolveProperty } from './discovery';
import { StepPlan } from './plan';

type StepStatus = 'planned' | 'skipped' | 'done' | 'failed' | 'not done';

interface Step {
  readonly kind: 'site' | 'api';
  readonly path: string;
  status: StepStatus;
  readonly plan?: StepPlan;
  reason?: string;
  result?: Record<string, unknown>;
  lines?: string[];
}

interface DatabaseOptions {
  readonly paths: string[];
  readonly cluster: string | null;
  readonly latestSnapshot: { id: string; createdAt?: string } | null;
  readonly deployedMigrations: { count: unknown; latestVersion: unknown } | null;
  readonly options: string[];
}

const ORDER: Record<Step['kind'], number> = { site: 0, api: 1 };

async function planStep(ctx: Context, c: ConstructTarget): Promise<Step> {
  const kind = c.kind === 'VersionedSite' ? 'site' : 'api';
  try {
    const plan = kind === 'site'
      ? await (await import('./site')).planSiteRollback(ctx, {}, c)
      : await (await import('./api')).planApiRollback(ctx, {}, c);
    return { kind, path: c.path, status: 'planned', plan };
  } catch (err) {
    // A safety check that says "nothing to do here" skips this step; the others still run.
    if (err instanceof CliError && err.exitCode === EXIT.REFUSED) return { kind, path: c.path, status: 'skipped', reason: err.message };
    throw err;
  }
}

async function databaseOptions(ctx: Context, stack: StackInfo, dbs: ConstructTarget[]): Promise<DatabaseOptions[]> {
  if (dbs.length === 0) return [];
  const db = await import('./db');
  const byCluster = new Map<string, ConstructTarget[]>();
  for (const c of dbs) {
    const res = c.roles.snapshot ?? c.roles.migrations;
    const id = (res ? resolveProperty(stack, res.properties.ClusterIdentifier) : undefined) ?? '';
    byCluster.set(id, [...(byCluster.get(id) ?? []), c]);
  }
  const { RDSClient } = await import('@aws-sdk/client-rds');
  const rds = new RDSClient(ctx.clientConfig);
  return Promise.all([...byCluster].map(async ([cluster, constructs]) => {
    const migrations = constructs.find((c) => c.kind === 'DatabaseMigrations')?.roles.migrations?.properties;
    const target = constructs.length === 1 && dbs.length > 1 ? ` --target ${constructs[0].path}` : '';
    let latest: { id: string; createdAt?: string } | null = null;
    const options: string[] = [];
    if (cluster) {
      try {
        const snaps = await db.managedSnapshots(rds, cluster);
        if (snaps[0]) latest = { id: snaps[0].id, createdAt: snaps[0].createdAt ? iso(snaps[0].createdAt) : undefined };
      } catch (err) {
        ctx.warn(`could not list the pre-migration snapshots of cluster ${cluster} (${reasonOf(err)})`);
      }
    }
    if (latest) {
      options.push(`restore the pre-migration snapshot into a new cluster: cdk-rollback db restore --stack ${stack.stackName}${target} --snapshot ${latest.id}`);
    } else {
      options.push(`no pre-migration snapshot found${cluster ? ` for cluster ${cluster}` : ''}: list them with cdk-rollback db snapshots --stack ${stack.stackName}${target}`);
    }
    if (migrations) {
      options.push(`revert the schema with the down files: cdk-rollback db down --dir MIGRATIONS_DIR --database-url URL --to VERSION ` +
        `(VERSION: the latest migration the previous release needs; deployed now: ${String(migrations.MigrationCount ?? '?')} migration(s), latest ${String(migrations.LatestVersion ?? '-')})`);
    }
    return {
      paths: constructs.map((c) => c.path),
      cluster: cluster || null,
      latestSnapshot: latest,
      deployedMigrations: migrations ? { count: migrations.MigrationCount ?? null, latestVersion: migrations.LatestVersion ?? null } : null,
      options,
    };
  }));
}

function stepJson(s: Step, i: number): Record<string, unknown> {
  return {
    order: i + 1, kind: s.kind, path: s.path, status: s.status,
    ...(s.plan ? { plan: s.plan.lines } : {}),
    ...(s.reason ? { reason: s.reason } : {}),
    ...(s.result ? { result: s.result } : {}),
  };
}

export async function rollbackStack(ctx: Context): Promise<CommandResult> {
  if (!ctx.opts.stack) throw usage('`rollback` needs --stack NAME: it rolls back the whole release of one deployed stack');
  const stack = await discoverStack(ctx, ctx.opts.stack); // refuses while the stack is *_IN_PROGRESS (unless --force)
  const t = ctx.opts.target;
  const chosen = t ? stack.constructs.filter((c) => c.path === t || c.path.endsWith(`/${t}`)) : stack.constructs;
  if (t && chosen.length === 0) {
    throw usage(`\`--target\` ${t} matches nothing in stack ${stack.stackName}; choices: ${stack.constructs.map((c) => c.path).join(', ') || 'none'}`);
  }
  if (chosen.length === 0) throw usage(`no cdk-rollback construct in stack ${stack.stackName}: nothing to roll back`);

  const reversible = chosen.filter((c) => c.kind === 'VersionedSite' || c.kind === 'SafeLambdaApi');
  const dbs = chosen.filter((c) => c.kind === 'PreMigrationSnapshot' || c.kind === 'DatabaseMigrations');
  // All reads of every step at once; the plan is shown whole before anything changes.
  const [planned, databases] = await Promise.all([
    Promise.all(reversible.map((c) => planStep(ctx, c))),
    databaseOptions(ctx, stack, dbs),
  ]);
  const steps = planned.sort((a, b) => ORDER[a.kind] - ORDER[b.kind] || a.path.localeCompare(b.path));

  const planLines: string[] = [];
  steps.forEach((s, i) => {
    if (s.plan) for (const l of s.plan.lines) planLines.push(`${i + 1}. ${s.kind} ${l}`);
    else planLines.push(`${i + 1}. ${s.kind} ${s.path}: skipped: ${s.reason}`);
  });
  const dbLines: string[] = [];
  for (const d of databases) {
    dbLines.push(`database ${d.paths.join(', ')}${d.cluster ? ` (cluster ${d.cluster})` : ''}: not rolled back by this command (schema changes stay explicit). Options:`);
    for (const o of d.options) dbLines.push(`  - ${o}`);
  }
  const data = (extra: Record<string, unknown>) => ({
    action: 'rollback', stack: { name: stack.stackName, status: stack.status }, steps: steps.map(stepJson), databases, ...extra,
  });

  const runnable = steps.filter((s) => s.plan);
  if (runnable.length === 0) {
    const reasons = steps.map((s) => `${s.kind} ${s.path}: ${s.reason}`).join('; ');
    throw refused(`nothing to roll back in stack ${stack.stackName}${reasons ? `: ${reasons}` : ' (it has no VersionedSite or SafeLambdaApi)'}` +
      (dbLines.length > 0 ? `. ${dbLines.join(' ')}` : ''));
  }

  if (!(await ctx.confirm(`Roll back ${runnable.length} step(s) of stack ${stack.stackName}, in this order?`, [...planLines, ...dbLines]))) {
    return { data: data({ dryRun: true }), lines: ['dry run: nothing was changed', ...planLines.map((l) => `  would ${l}`), ...dbLines] };
  }

  const lines: string[] = [];
  let failure: CliError | undefined;
  for (const s of steps) {
    if (!s.plan) continue;
    if (failure) {
      s.status = 'not done';
      continue;
    }
    try {
      const r = await s.plan.execute();
      s.status = 'done';
      s.result = r.data;
      lines.push(...r.lines);
    } catch (err) {
      s.status = 'failed';
      s.reason = reasonOf(err);
      failure = err instanceof CliError ? err : new CliError(reasonOf(err));
    }
  }
  const summary = (st: StepStatus) => steps.filter((s) => s.status === st).map((s) => `${s.kind} ${s.path}`);
  if (failure) {
    const failed = steps.find((s) => s.status === 'failed')!;
    lines.push(
      `Stopped: ${failed.kind} ${failed.path} failed: ${failed.reason}`,
      `  done: ${summary('done').join(', ') || 'nothing'}`,
      `  not done: ${summary('not done').join(', ') || 'nothing'}`,
    );
    ctx.io.stderr.write(`${ctx.color.red('cdk-rollback: error:')} ${failed.kind} ${failed.path} failed: ${failed.reason}\n`);
  } else {
    lines.push(`Rolled back stack ${stack.stackName}: ${summary('done').join(', ')}${summary('skipped').length > 0 ? ` (skipped: ${summary('skipped').join(', ')})` : ''}.`);
  }
  if (dbLines.length > 0) lines.push(...dbLines);
  return {
    exitCode: failure ? failure.exitCode : EXIT.OK,
    data: data(failure ? { error: `${steps.find((s) => s.status === 'failed')!.kind} ${steps.find((s) => s.status === 'failed')!.path} failed: ${failure.message}` } : {}),
    lines,
  };
}
