/**
 * `status`: what is live. The stack status (with a loud warning and the next step when CloudFormation is
 * mid-operation or stuck), then one section per API, site and database.
 */
import { CommandResult, Context, EXIT, reasonOf, usage } from './context';
import { ConstructTarget, StackInfo, discoverStack } from './discovery';

/** A warning and the next step for stack states an operator must act on (undefined when healthy). */
export function stackWarning(stackName: string, status: string): string | undefined {
  if (status === 'UPDATE_ROLLBACK_FAILED') {
    return `stack ${stackName} is UPDATE_ROLLBACK_FAILED: no deploy works until it is fixed. Read the failed resources in the stack events, fix them, then run: aws cloudformation continue-update-rollback --stack-name ${stackName} (add --resources-to-skip for resources that cannot roll back)`;
  }
  if (status === 'ROLLBACK_COMPLETE' || status === 'ROLLBACK_FAILED') {
    return `stack ${stackName} is ${status}: its creation failed. Read the stack events for the cause, delete the stack, then deploy again`;
  }
  if (status.endsWith('_IN_PROGRESS')) {
    return `stack ${stackName} is ${status}: CloudFormation is changing it now. Wait for it to finish before rolling back by hand (a manual change now races CloudFormation); follow it with: aws cloudformation describe-stack-events --stack-name ${stackName}`;
  }
  if (status.includes('ROLLBACK')) {
    return `stack ${stackName} is ${status}: the last deployment failed and CloudFormation rolled it back. Read the stack events for the cause, fix it and deploy again; check below that the API, site and database are where you expect`;
  }
  if (status.endsWith('_FAILED')) {
    return `stack ${stackName} is ${status}: read the stack events for the cause before any other change`;
  }
  return undefined;
}

interface Section { readonly kind: string; readonly data: Record<string, unknown>; readonly lines: string[] }

async function section(ctx: Context, kind: string, what: string, fn: () => Promise<{ data: Record<string, unknown>; lines: string[]; failed?: boolean }>): Promise<Section & { failed: boolean }> {
  try {
    const r = await fn();
    return { kind, data: r.data, lines: r.lines, failed: r.failed ?? false };
  } catch (err) {
    const reason = reasonOf(err);
    return { kind, data: { target: what, error: reason }, lines: [`${ctx.color.bold(kind)} ${what}`, ctx.color.red(`  error: ${reason}`)], failed: true };
  }
}

async function constructSection(ctx: Context, stack: StackInfo, c: ConstructTarget): Promise<Section & { failed: boolean }> {
  switch (c.kind) {
    case 'SafeLambdaApi':
      return section(ctx, 'API', c.path, async () => {
        const api = await import('./api');
        return api.apiStatus(ctx, await api.resolveApiTarget(ctx, undefined, c));
      });
    case 'VersionedSite':
      return section(ctx, 'Site', c.path, async () => {
        const site = await import('./site');
        return site.siteStatus(ctx, await site.resolveSiteTarget(ctx, {}, c));
      });
    case 'PreMigrationSnapshot':
      return section(ctx, 'Database', c.path, async () => {
        const db = await import('./db');
        return db.dbStatus(ctx, db.clusterOf(stack, c), c.path);
      });
    case 'DatabaseMigrations':
      // What the database has applied, read through the runner; the template's values labelled as such.
      return section(ctx, 'Migrations', c.path, async () => (await import('./migrate')).migrationsStatus(ctx, stack, c));
    default:
      return { kind: 'unknown', data: { path: (c as ConstructTarget).path }, lines: [], failed: false };
  }
}

export async function status(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  if (!ctx.opts.stack && !o.function && !o.kvs && !o.bucket && !o.distribution && !o.cluster) {
    return (await import('./status-all')).statusAll(ctx);
  }
  const sections: (Section & { failed: boolean })[] = [];
  let stackData: Record<string, unknown> | undefined;
  const lines: string[] = [];
  if (ctx.opts.stack) {
    const stack = await discoverStack(ctx, ctx.opts.stack);
    const warning = stackWarning(stack.stackName, stack.status);
    stackData = { name: stack.stackName, status: stack.status, statusReason: stack.statusReason, warning: warning ?? null };
    lines.push(`${ctx.color.bold('Stack')} ${stack.stackName}: ${warning ? ctx.color.red(ctx.color.bold(stack.status)) : ctx.color.green(stack.status)}`);
    if (stack.statusReason) lines.push(`  reason: ${stack.statusReason}`);
    if (warning) {
      lines.push(ctx.color.red(ctx.color.bold(`  !!! ${warning}`)));
      ctx.warn(warning);
    }
    const chosen = ctx.opts.target ? stack.constructs.filter((c) => c.path === ctx.opts.target || c.path.endsWith(`/${ctx.opts.target}`)) : stack.constructs;
    if (ctx.opts.target && chosen.length === 0) {
      throw usage(`\`--target\` ${ctx.opts.target} matches nothing in stack ${stack.stackName}; choices: ${stack.constructs.map((c) => c.path).join(', ') || 'none'}`);
    }
    if (stack.constructs.length === 0) lines.push(`  no cdk-rollback construct in stack ${stack.stackName}`);
    for (const c of chosen) sections.push(await constructSection(ctx, stack, c));
  }
  if (o.function) {
    sections.push(await section(ctx, 'API', o.function as string, async () => {
      const api = await import('./api');
      return api.apiStatus(ctx, await api.resolveApiTarget(ctx, o.function as string));
    }));
  }
  if (o.kvs || o.bucket || o.distribution) {
    sections.push(await section(ctx, 'Site', (o.bucket as string) ?? '', async () => {
      const site = await import('./site');
      return site.siteStatus(ctx, await site.resolveSiteTarget(ctx, o));
    }));
  }
  if (o.cluster) {
    sections.push(await section(ctx, 'Database', o.cluster as string, async () => (await import('./db')).dbStatus(ctx, o.cluster as string, undefined)));
  }
  if (!ctx.opts.stack && sections.length === 0) {
    throw usage('no target: pass --stack NAME, or --function NAME, --kvs ARN --bucket NAME --distribution ID, --cluster ID');
  }
  for (const s of sections) lines.push('', ...s.lines);
  const pick = (kind: string) => sections.filter((s) => s.kind === kind).map((s) => s.data);
  const failed = sections.some((s) => s.failed);
  return {
    exitCode: failed ? EXIT.FAILED : EXIT.OK,
    data: { stack: stackData ?? null, apis: pick('API'), sites: pick('Site'), databases: pick('Database'), migrations: pick('Migrations') },
    lines,
  };
}
