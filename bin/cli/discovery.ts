/**
 * Target discovery: reads a deployed stack (DescribeStacks, GetTemplate, ListStackResources) and
 * finds the resources each construct marked with the `cdk-rollback` metadata entry.
 */
// The CloudFormation client is loaded when a stack is read: explicit targets do without it, or load it later.
const cloudFormation = () => import('@aws-sdk/client-cloudformation');
import { CLI_METADATA_KEY, CliMetadata, ConstructKind } from '../../lambda/shared/contract';
import { Context, refused, usage } from './context';

/** One marked resource of the deployed template. */
export interface MarkedResource {
  readonly logicalId: string;
  readonly type: string;
  readonly physicalId?: string;
  readonly meta: CliMetadata;
  readonly properties: Record<string, unknown>;
}

/** The resources of one construct (grouped by its path). */
export interface ConstructTarget {
  readonly kind: ConstructKind;
  readonly path: string;
  /** role -> resource */
  readonly roles: Record<string, MarkedResource>;
}

export interface StackInfo {
  readonly stackName: string;
  readonly status: string;
  readonly statusReason?: string;
  readonly lastUpdated?: Date;
  readonly constructs: ConstructTarget[];
  /** logical id -> physical id */
  readonly physicalIds: Record<string, string>;
}

function isMetadata(v: unknown): v is CliMetadata {
  if (!v || typeof v !== 'object') return false;
  const m = v as Record<string, unknown>;
  return m.version === 1 && typeof m.kind === 'string' && typeof m.role === 'string' && typeof m.path === 'string';
}

function isMissingStack(err: unknown): boolean {
  return (err as Error)?.name === 'ValidationError' && /does not exist/.test((err as Error).message);
}

/**
 * Mutating commands refuse while CloudFormation is changing the stack (`*_IN_PROGRESS`): a change by hand then
 * races the deploy (CloudFormation may overwrite it, or fail on it and roll back). `--force` overrides, with a
 * warning.
 */
export function assertStackIdle(ctx: Context, stackName: string, status: string): void {
  if (!ctx.mutating || !status.endsWith('_IN_PROGRESS')) return;
  const why = `stack ${stackName} is ${status}: CloudFormation is changing it now, and a change by hand would race it ` +
    '(CloudFormation may overwrite it, or fail on it and roll back)';
  if (ctx.opts.force) {
    ctx.warn(`${why}; going ahead because of --force`);
    return;
  }
  throw refused(`${why}. Wait until it finishes (aws cloudformation describe-stack-events --stack-name ${stackName}), ` +
    'or pass --force to change it anyway. Nothing was changed');
}

/** The status of a stack (DescribeStacks), or undefined when it does not exist. */
export async function stackStatus(ctx: Context, stackName: string): Promise<string | undefined> {
  try {
    const { CloudFormationClient, DescribeStacksCommand } = await cloudFormation();
    const out = await new CloudFormationClient(ctx.clientConfig).send(new DescribeStacksCommand({ StackName: stackName }));
    return out.Stacks?.[0]?.StackStatus;
  } catch (err) {
    if (isMissingStack(err)) return undefined;
    throw err;
  }
}

/**
 * Reads the stack and groups its marked resources by construct path. DescribeStacks, GetTemplate and
 * ListStackResources go out together (one round trip). For a mutating command the stack must not be
 * `*_IN_PROGRESS` (see assertStackIdle).
 */
export async function discoverStack(ctx: Context, stackName: string): Promise<StackInfo> {
  const { CloudFormationClient, DescribeStacksCommand, GetTemplateCommand, paginateListStackResources } = await cloudFormation();
  const cfn = new CloudFormationClient(ctx.clientConfig);
  ctx.progress(`reading stack ${stackName}`);
  const [described, tplResult, idsResult] = await Promise.allSettled([
    cfn.send(new DescribeStacksCommand({ StackName: stackName })),
    cfn.send(new GetTemplateCommand({ StackName: stackName })),
    (async () => {
      const ids: Record<string, string> = {};
      for await (const page of paginateListStackResources({ client: cfn }, { StackName: stackName })) {
        for (const r of page.StackResourceSummaries ?? []) {
          if (r.LogicalResourceId && r.PhysicalResourceId) ids[r.LogicalResourceId] = r.PhysicalResourceId;
        }
      }
      return ids;
    })(),
  ]);
  const missing = () => usage(`stack ${stackName} does not exist (check --stack, --region and --profile)`);
  if (described.status === 'rejected') {
    if (isMissingStack(described.reason)) throw missing();
    throw described.reason;
  }
  const stack = described.value.Stacks?.[0];
  if (!stack) throw missing();
  assertStackIdle(ctx, stackName, stack.StackStatus ?? 'UNKNOWN');
  if (tplResult.status === 'rejected') throw tplResult.reason;
  if (idsResult.status === 'rejected') throw idsResult.reason;
  const tpl = tplResult.value;
  const physicalIds = idsResult.value;
  let template: { Resources?: Record<string, { Type?: string; Metadata?: Record<string, unknown>; Properties?: Record<string, unknown> }> };
  try {
    template = JSON.parse(tpl.TemplateBody ?? '{}');
  } catch {
    throw usage(`the template of stack ${stackName} is not JSON, so it was not deployed from a CDK app`);
  }
  const byPath = new Map<string, ConstructTarget>();
  for (const [logicalId, res] of Object.entries(template.Resources ?? {})) {
    const meta = res.Metadata?.[CLI_METADATA_KEY];
    if (!isMetadata(meta)) continue;
    const key = `${meta.kind}\u0000${meta.path}`;
    let group = byPath.get(key);
    if (!group) {
      group = { kind: meta.kind, path: meta.path, roles: {} };
      byPath.set(key, group);
    }
    group.roles[meta.role] = {
      logicalId,
      type: res.Type ?? '',
      physicalId: physicalIds[logicalId],
      meta,
      properties: res.Properties ?? {},
    };
  }
  return {
    stackName,
    status: stack.StackStatus ?? 'UNKNOWN',
    statusReason: stack.StackStatusReason,
    lastUpdated: stack.LastUpdatedTime ?? stack.CreationTime,
    constructs: [...byPath.values()].sort((a, b) => a.path.localeCompare(b.path)),
    physicalIds,
  };
}

/** Explains how to name a target explicitly, per kind. */
const EXPLICIT_FLAGS: Record<ConstructKind, string> = {
  SafeLambdaApi: '--function NAME',
  VersionedSite: '--kvs ARN --bucket NAME --distribution ID',
  PreMigrationSnapshot: '--cluster ID',
  DatabaseMigrations: '--database-url URL',
};

/**
 * Picks the one construct of `kinds` the command works on: the one named by --target, or the only one.
 * Errors list the choices.
 */
export function pickConstruct(stack: StackInfo, kinds: ConstructKind[], target: string | undefined): ConstructTarget {
  const candidates = stack.constructs.filter((c) => kinds.includes(c.kind));
  const label = kinds.join(' or ');
  if (candidates.length === 0) {
    throw usage(`no ${label} found in stack ${stack.stackName}: deploy one, or name the target with ${EXPLICIT_FLAGS[kinds[0]]}`);
  }
  if (target !== undefined) {
    const exact = candidates.filter((c) => c.path === target);
    const matches = exact.length > 0 ? exact : candidates.filter((c) => c.path.endsWith(`/${target}`));
    if (matches.length >= 1 && new Set(matches.map((m) => m.path)).size === 1) return matches[0];
    const choices = candidates.map((c) => c.path).join(', ');
    if (matches.length === 0) throw usage(`\`--target\` ${target} matches no ${label} in stack ${stack.stackName}; choices: ${choices}`);
    throw usage(`\`--target\` ${target} matches several ${label} in stack ${stack.stackName}; choices: ${choices}`);
  }
  if (candidates.length > 1) {
    throw usage(`stack ${stack.stackName} has ${candidates.length} ${label} targets: pass --target with one of: ${candidates.map((c) => c.path).join(', ')}`);
  }
  return candidates[0];
}

/** The physical id of a role, or a clear error. */
export function physicalId(target: ConstructTarget, role: string): string {
  const r = target.roles[role];
  if (!r?.physicalId) {
    throw usage(`${target.kind} ${target.path} has no deployed resource with role \`${role}\``);
  }
  return r.physicalId;
}

export function optionalPhysicalId(target: ConstructTarget, role: string): string | undefined {
  return target.roles[role]?.physicalId;
}

/** Resolves a template property value: a literal string, or `{Ref: LogicalId}` through the stack's resources. */
export function resolveProperty(stack: StackInfo, value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (value && typeof value === 'object' && 'Ref' in value) {
    const ref = (value as { Ref: unknown }).Ref;
    if (typeof ref === 'string') return stack.physicalIds[ref];
  }
  return undefined;
}
