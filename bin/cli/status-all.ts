/**
 * `status` with no target: every stack of the account and region that holds cdk-rollback constructs, one line
 * each. Stacks are found from their template-level metadata (GetTemplateSummary, a bounded number at a time);
 * only the marked stacks are then read in full.
 */
import {
  CloudFormationClient, GetTemplateSummaryCommand, StackStatus, StackSummary, paginateListStacks,
} from '@aws-sdk/client-cloudformation';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { getAlias } from '../../lambda/shared/aliases';
import { CLI_METADATA_KEY, LIVE_ALIAS, SITE_KVS_ACTIVE_KEY, STABLE_ALIAS } from '../../lambda/shared/contract';
import { CommandResult, Context, EXIT, iso, reasonOf } from './context';
import { ConstructTarget, StackInfo, discoverStack, resolveProperty } from './discovery';
import { stackWarning } from './status';

/** GetTemplateSummary calls in flight at once (CloudFormation throttles its describe APIs per account). */
export const SUMMARY_CONCURRENCY = 8;
/** Marked stacks read in full at once. */
const DETAIL_CONCURRENCY = 4;

/** Maps with at most `limit` calls in flight, keeping the order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Whether the template-level Metadata (a JSON document in the GetTemplateSummary answer) carries the cdk-rollback
 * marker. A rendering that is not JSON is searched for the key instead (some emulators render it otherwise).
 */
export function hasStackMarker(metadata: string | undefined): boolean {
  if (!metadata) return false;
  try {
    const parsed = JSON.parse(metadata) as Record<string, unknown>;
    return typeof parsed === 'object' && parsed !== null && typeof parsed[CLI_METADATA_KEY] === 'object';
  } catch {
    return new RegExp(`["']${CLI_METADATA_KEY}["']\\s*:\\s*\\{`).test(metadata);
  }
}

function shortPath(path: string): string {
  const i = path.indexOf('/');
  return i >= 0 ? path.slice(i + 1) : path;
}

async function part(ctx: Context, stack: StackInfo, c: ConstructTarget): Promise<{ text: string; data: Record<string, unknown> }> {
  const name = shortPath(c.path);
  try {
    switch (c.kind) {
      case 'SafeLambdaApi': {
        const fn = c.roles.function?.physicalId;
        if (!fn) return { text: `api ${name}: not deployed`, data: { kind: c.kind, path: c.path } };
        const lambda = new LambdaClient(ctx.clientConfig);
        const [live, stable] = await Promise.all([getAlias(lambda, fn, LIVE_ALIAS), getAlias(lambda, fn, STABLE_ALIAS)]);
        const weights = Object.keys(live?.RoutingConfig?.AdditionalVersionWeights ?? {});
        const liveText = live ? `${live.FunctionVersion}${weights.length > 0 ? ` (shifting to ${weights.join(',')})` : ''}` : 'none';
        return {
          text: `api ${name} live ${liveText} / stable ${stable?.FunctionVersion ?? 'none'}`,
          data: { kind: c.kind, path: c.path, function: fn, live: live?.FunctionVersion ?? null, stable: stable?.FunctionVersion ?? null },
        };
      }
      case 'VersionedSite': {
        const site = await import('./site');
        const t = await site.resolveSiteTarget(ctx, {}, c);
        const active = await site.readKey(ctx, t.kvsArn, SITE_KVS_ACTIVE_KEY);
        return { text: `site ${name} active ${active ?? 'none'}`, data: { kind: c.kind, path: c.path, bucket: t.bucketName, active: active ?? null } };
      }
      case 'PreMigrationSnapshot': {
        const db = await import('./db');
        const { RDSClient } = await import('@aws-sdk/client-rds');
        const cluster = db.clusterOf(stack, c);
        const [latest] = await db.managedSnapshots(new RDSClient(ctx.clientConfig), cluster);
        return {
          text: `db ${name} latest snapshot ${latest ? `${latest.id} (${iso(latest.createdAt)})` : 'none'}`,
          data: { kind: c.kind, path: c.path, cluster, latestSnapshot: latest ? { id: latest.id, createdAt: latest.createdAt ?? null } : null },
        };
      }
      case 'DatabaseMigrations': {
        const props = c.roles.migrations?.properties ?? {};
        const latest = resolveProperty(stack, props.LatestVersion) ?? null;
        return { text: `migrations ${name} latest ${latest ?? '-'}`, data: { kind: c.kind, path: c.path, latestVersion: latest } };
      }
      default:
        return { text: '', data: {} };
    }
  } catch (err) {
    return { text: `${c.kind} ${name}: error: ${reasonOf(err)}`, data: { kind: c.kind, path: c.path, error: reasonOf(err) } };
  }
}

export async function statusAll(ctx: Context): Promise<CommandResult> {
  const cfn = new CloudFormationClient(ctx.clientConfig);
  ctx.progress('listing stacks');
  const stacks: StackSummary[] = [];
  for await (const page of paginateListStacks({ client: cfn }, {})) {
    stacks.push(...(page.StackSummaries ?? []).filter((s) => s.StackStatus !== StackStatus.DELETE_COMPLETE && s.StackName));
  }
  let unreadable = 0;
  const marked = (await mapLimit(stacks, SUMMARY_CONCURRENCY, async (s) => {
    try {
      const summary = await cfn.send(new GetTemplateSummaryCommand({ StackName: s.StackId ?? s.StackName }));
      return hasStackMarker(summary.Metadata) ? s : undefined;
    } catch (err) {
      unreadable++;
      ctx.warn(`could not read the template summary of stack ${s.StackName} (${reasonOf(err)})`);
      return undefined;
    }
  })).filter((s): s is StackSummary => s !== undefined).sort((a, b) => a.StackName!.localeCompare(b.StackName!));
  ctx.progress(`${marked.length} of ${stacks.length} stack(s) hold cdk-rollback constructs`);

  let failed = unreadable > 0;
  const rows = await mapLimit(marked, DETAIL_CONCURRENCY, async (s) => {
    try {
      const stack = await discoverStack(ctx, s.StackName!);
      const parts = await Promise.all(stack.constructs.map((c) => part(ctx, stack, c)));
      if (parts.some((p) => 'error' in p.data)) failed = true;
      return { name: stack.stackName, status: stack.status, warning: stackWarning(stack.stackName, stack.status) ?? null, parts };
    } catch (err) {
      failed = true;
      return { name: s.StackName!, status: s.StackStatus ?? 'UNKNOWN', warning: null, parts: [{ text: `error: ${reasonOf(err)}`, data: { error: reasonOf(err) } }] };
    }
  });
  const c = ctx.color;
  const nameWidth = Math.max(5, ...rows.map((r) => r.name.length));
  const statusWidth = Math.max(6, ...rows.map((r) => r.status.length));
  const lines = rows.length === 0
    ? [`no stack with cdk-rollback constructs among the ${stacks.length} stack(s) of this account and region`]
    : rows.map((r) => `${c.bold(r.name.padEnd(nameWidth))}  ${(r.warning ? c.red : c.green)(r.status.padEnd(statusWidth))}  ${r.parts.map((p) => p.text).join('; ') || 'no construct found'}`);
  return {
    exitCode: failed ? EXIT.FAILED : EXIT.OK,
    data: {
      stacks: rows.map((r) => ({ name: r.name, status: r.status, warning: r.warning, constructs: r.parts.map((p) => p.data) })),
      scanned: stacks.length,
    },
    lines,
  };
}
