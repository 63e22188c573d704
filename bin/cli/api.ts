/**
 * `api rollback|promote` and the API part of `status`: SafeLambdaApi's `live` / `stable` aliases and its
 * CodeDeploy deployment group.
 */
import type { DeploymentInfo } from '@aws-sdk/client-codedeploy';
import {
  GetFunctionCommand,
  GetFunctionConfigurationCommand,
  LambdaClient,
  UpdateAliasCommand,
} from '@aws-sdk/client-lambda';
import {
  LIVE_ALIAS,
  STABLE_ALIAS,
  TAG_ALARMED_VERSION,
  TAG_CODEDEPLOY_APPLICATION,
  TAG_CODEDEPLOY_GROUP,
  TAG_POST_TRAFFIC_HOOK,
  TAG_PRE_TRAFFIC_HOOK,
} from '../../lambda/shared/contract';
import { getAlias } from '../../lambda/shared/aliases';
import { PendingAudit, audit, callerIdentity, readAudit, startAudit } from './audit';
import { StepPlan, runPlan } from './plan';
import { CliError, CommandResult, Context, EXIT, afterIo, iso, reasonOf, refused, usage } from './context';
import {
  ConstructTarget, assertStackIdle, discoverStack, optionalPhysicalId, physicalId, pickConstruct, stackStatus,
} from './discovery';

// Loaded when first needed, or while the first requests are in flight (see afterIo): the Lambda client is the only
// AWS client the first round trip of `api rollback --function` needs.
const codeDeploy = () => import('@aws-sdk/client-codedeploy');
const deployments = () => import('../../lambda/alias-deployment/deployment');
const cloudFormation = () => import('@aws-sdk/client-cloudformation');


export interface ApiTarget {
  readonly path?: string;
  readonly functionName: string;
  readonly applicationName?: string;
  readonly deploymentGroupName?: string;
  readonly preTrafficHook?: string;
  readonly postTrafficHook?: string;
  /** The version the deployment group's version alarms watch (the stack's version), when the function is tagged with it. */
  readonly alarmedVersion?: string;
  /** The stack the function belongs to: from `--stack`, or the `aws:cloudformation:stack-name` tag. */
  readonly stackName?: string;
  /** true when the target came from `--stack` (the stack was read, and checked, already). */
  readonly fromStack?: boolean;
}

export interface AliasState {
  readonly version: string;
  /** Additional version -> weight (0..1) while traffic is shifting. */
  readonly weights: Record<string, number>;
}

export interface ApiState {
  readonly live: AliasState;
  readonly stable?: string;
  readonly inFlight: DeploymentInfo[];
}

/** Tag CloudFormation puts on the resources it creates. */
const CFN_STACK_NAME_TAG = 'aws:cloudformation:stack-name';

function isNotFound(err: unknown): boolean {
  return (err as Error)?.name === 'ResourceNotFoundException';
}

/** A function named by `--function`: its name, and the region when an ARN names one. */
export interface FunctionRef {
  readonly name: string;
  readonly region?: string;
}

const FUNCTION_NAME = '[a-zA-Z0-9_-]{1,64}';
const FULL_ARN = new RegExp(`^arn:aws[a-z-]*:lambda:([^:]+):\\d{12}:function:(${FUNCTION_NAME})(?::([^:]*))?$`);
const PARTIAL_ARN = new RegExp(`^\\d{12}:function:(${FUNCTION_NAME})(?::([^:]*))?$`);
const BARE_NAME = new RegExp(`^(${FUNCTION_NAME})(?::([^:]*))?$`);

/**
 * `--function`: a name (`orders`), a full ARN (`arn:aws:lambda:REGION:ACCOUNT:function:orders`), a partial ARN
 * (`ACCOUNT:function:orders`), each optionally qualified with `:live`, all name the one function `orders`. Any
 * other qualifier (a version, another alias) is a usage error: the CLI works on the `live` alias.
 */
export function parseFunctionRef(value: string): FunctionRef {
  const v = value.trim();
  let name: string;
  let region: string | undefined;
  let qualifier: string | undefined;
  let m: RegExpExecArray | null;
  if ((m = FULL_ARN.exec(v))) [, region, name, qualifier] = m;
  else if ((m = PARTIAL_ARN.exec(v)) || (m = BARE_NAME.exec(v))) [, name, qualifier] = m;
  else {
    throw usage('`--function` must be a function name, a full or partial ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME, ' +
      `ACCOUNT:function:NAME), optionally with :${LIVE_ALIAS}, got: ${value}`);
  }
  if (qualifier !== undefined && qualifier !== LIVE_ALIAS) {
    const what = /^(\d+|\$LATEST)$/.test(qualifier) ? 'version' : 'alias';
    throw usage(`\`--function\` ${value} names ${what} ${qualifier || '(empty)'} of ${name}: the CLI works on the \`${LIVE_ALIAS}\` alias; ` +
      `pass the function name or ARN unqualified or with :${LIVE_ALIAS}`);
  }
  return { name, region };
}

/** Parses `--function` and adopts the region of its ARN; the function's name is the target from then on. */
function functionNameOf(ctx: Context, flag: string): string {
  const ref = parseFunctionRef(flag);
  if (ref.region) ctx.useTargetRegion(ref.region, `\`--function\` ${flag}`);
  return ref.name;
}

async function getFunctionTags(ctx: Context, functionName: string): Promise<Record<string, string>> {
  try {
    const fn = await new LambdaClient(ctx.clientConfig).send(new GetFunctionCommand({ FunctionName: functionName }));
    return fn.Tags ?? {};
  } catch (err) {
    if (isNotFound(err)) throw usage(`function ${functionName} does not exist (check --function, --region and --profile)`);
    throw err;
  }
}

function targetFrom(functionName: string, tags: Record<string, string> | undefined, construct?: ConstructTarget, stackName?: string): ApiTarget {
  return {
    path: construct?.path,
    functionName,
    applicationName: (construct && optionalPhysicalId(construct, 'application')) ?? tags?.[TAG_CODEDEPLOY_APPLICATION],
    deploymentGroupName: (construct && optionalPhysicalId(construct, 'deployment-group')) ?? tags?.[TAG_CODEDEPLOY_GROUP],
    preTrafficHook: tags?.[TAG_PRE_TRAFFIC_HOOK],
    postTrafficHook: tags?.[TAG_POST_TRAFFIC_HOOK],
    alarmedVersion: tags?.[TAG_ALARMED_VERSION],
    stackName: stackName ?? tags?.[CFN_STACK_NAME_TAG],
    fromStack: construct !== undefined && stackName !== undefined,
  };
}

/** `--function NAME|ARN` or the SafeLambdaApi of `--stack` (picked with `--target`), with the function's tags. */
export async function resolveApiTarget(ctx: Context, functionFlag: string | undefined, fromStack?: ConstructTarget): Promise<ApiTarget> {
  if (!functionFlag) {
    let construct = fromStack;
    let stackName: string | undefined;
    if (!construct) {
      if (!ctx.opts.stack) throw usage('no API target: pass --stack NAME or --function NAME');
      construct = pickConstruct(await discoverStack(ctx, ctx.opts.stack), ['SafeLambdaApi'], ctx.opts.target);
      stackName = ctx.opts.stack;
    }
    const functionName = physicalId(construct, 'function');
    return targetFrom(functionName, await getFunctionTags(ctx, functionName), construct, stackName);
  }
  const functionName = functionNameOf(ctx, functionFlag);
  return targetFrom(functionName, await getFunctionTags(ctx, functionName));
}

interface AliasRead extends AliasState { readonly revisionId?: string }

async function readAlias(lambda: LambdaClient, functionName: string, alias: string): Promise<AliasRead | undefined> {
  const out = await getAlias(lambda, functionName, alias);
  return out && { version: out.FunctionVersion ?? '', weights: out.RoutingConfig?.AdditionalVersionWeights ?? {}, revisionId: out.RevisionId };
}

/** The aliases and the in-flight deployments (ids only unless `details`). */
export async function readApiState(ctx: Context, t: ApiTarget, details: boolean): Promise<ApiState> {
  const lambda = new LambdaClient(ctx.clientConfig);
  const [live, stable, inFlight] = await Promise.all([
    readAlias(lambda, t.functionName, LIVE_ALIAS),
    readAlias(lambda, t.functionName, STABLE_ALIAS),
    listInFlight(ctx, t, details),
  ]);
  if (!live) {
    throw usage(`function ${t.functionName} has no \`${LIVE_ALIAS}\` alias: it is not deployed by SafeLambdaApi`);
  }
  return { live: { version: live.version, weights: live.weights }, stable: stable?.version, inFlight };
}

async function listInFlight(ctx: Context, t: ApiTarget, details: boolean): Promise<DeploymentInfo[]> {
  if (!t.applicationName || !t.deploymentGroupName) return [];
  const [{ BatchGetDeploymentsCommand, CodeDeployClient }, { inFlightDeploymentIds }] = await Promise.all([codeDeploy(), deployments()]);
  const cd = new CodeDeployClient(ctx.clientConfig);
  const ids = await inFlightDeploymentIds(cd, t.applicationName, t.deploymentGroupName);
  if (ids.length === 0) return [];
  if (!details) return ids.map((deploymentId) => ({ deploymentId }));
  try {
    const batch = await cd.send(new BatchGetDeploymentsCommand({ deploymentIds: ids }));
    return batch.deploymentsInfo ?? ids.map((deploymentId) => ({ deploymentId }));
  } catch (err) {
    ctx.warn(`could not read the details of deployment ${ids.join(', ')} (${reasonOf(err)})`);
    return ids.map((deploymentId) => ({ deploymentId }));
  }
}

export function formatAlias(a: AliasState): string {
  const extra = Object.entries(a.weights).map(([v, w]) => `, version ${v} at ${Math.round(w * 1000) / 10}%`).join('');
  return extra ? `version ${a.version}${extra}` : `version ${a.version}`;
}

function parseVersion(flag: string, value: string): number {
  if (!/^[1-9][0-9]*$/.test(value)) throw usage(`\`${flag}\` must be a published version number, got: ${value}`);
  return Number(value);
}

async function versionExists(ctx: Context, functionName: string, version: string): Promise<boolean> {
  try {
    await new LambdaClient(ctx.clientConfig).send(new GetFunctionConfigurationCommand({ FunctionName: functionName, Qualifier: version }));
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

async function assertVersionExists(ctx: Context, functionName: string, version: string): Promise<void> {
  if (!(await versionExists(ctx, functionName, version))) throw usage(`version ${version} of function ${functionName} does not exist`);
}

function targetLabel(t: ApiTarget): string {
  return t.path ? `${t.path} (${t.functionName})` : t.functionName;
}

/** The stack a function belongs to: its `aws:cloudformation:stack-name` tag, else DescribeStackResources. */
async function stackOfFunction(ctx: Context, t: ApiTarget): Promise<string | undefined> {
  if (t.stackName) return t.stackName;
  try {
    const { CloudFormationClient, DescribeStackResourcesCommand } = await cloudFormation();
    const out = await new CloudFormationClient(ctx.clientConfig).send(new DescribeStackResourcesCommand({ PhysicalResourceId: t.functionName }));
    return out.StackResources?.[0]?.StackName;
  } catch (err) {
    if ((err as Error).name === 'ValidationError') return undefined; // not created by CloudFormation
    ctx.warn(`could not look up the stack of function ${t.functionName} (${reasonOf(err)})`);
    return undefined;
  }
}

/** For a mutating command on an explicit target: refuses while the function's stack is `*_IN_PROGRESS`. */
async function checkStackOfFunction(ctx: Context, t: ApiTarget): Promise<void> {
  if (!ctx.mutating || t.fromStack) return;
  const stackName = await stackOfFunction(ctx, t);
  if (!stackName) return;
  const status = await stackStatus(ctx, stackName);
  if (status) assertStackIdle(ctx, stackName, status);
}

/**
 * The deployments in flight on the function's CodeDeploy group, with the stack check, in one round trip when the
 * group is known (from `--stack` or the function's tags). Without tags, the group comes from the SafeLambdaApi
 * metadata of the function's stack. `undefined`: the check could not be made.
 */
async function inFlightCheck(ctx: Context, t: ApiTarget): Promise<{ ids: string[]; target: ApiTarget } | undefined> {
  const [{ CodeDeployClient }, { inFlightDeploymentIds }] = await Promise.all([codeDeploy(), deployments()]);
  const cd = new CodeDeployClient(ctx.clientConfig);
  if (t.applicationName && t.deploymentGroupName) {
    const [ids] = await Promise.all([inFlightDeploymentIds(cd, t.applicationName, t.deploymentGroupName), checkStackOfFunction(ctx, t)]);
    return { ids, target: t };
  }
  if (t.fromStack) return undefined;
  const stackName = await stackOfFunction(ctx, t);
  if (!stackName) return undefined;
  const stack = await discoverStack(ctx, stackName); // refuses a mutating command while the stack is busy
  const construct = stack.constructs.find((c) => c.kind === 'SafeLambdaApi' && c.roles.function?.physicalId === t.functionName);
  if (!construct) return undefined;
  const target: ApiTarget = { ...t, path: construct.path, ...targetFrom(t.functionName, undefined, construct, stackName), preTrafficHook: t.preTrafficHook, postTrafficHook: t.postTrafficHook };
  if (!target.applicationName || !target.deploymentGroupName) return undefined;
  return { ids: await inFlightDeploymentIds(cd, target.applicationName, target.deploymentGroupName), target };
}

export interface RollbackOptions { readonly function?: string; readonly to?: string }

/**
 * Reads and checks everything `api rollback` needs, in as few round trips as the checks allow:
 * 1. (with `--stack`: the stack) GetFunction (tags), GetAlias live and stable, the `--to` version, and the audit
 *    reads (STS, SSM), all at once;
 * 2. the in-flight deployments (ListDeployments) with the stack's status;
 * then the flip (UpdateAlias guarded by the RevisionId read in 1) is the third round trip.
 */
export async function planApiRollback(ctx: Context, o: RollbackOptions, construct?: ConstructTarget): Promise<StepPlan> {
  const requested = o.to !== undefined ? String(parseVersion('--to', o.to)) : undefined;
  const fn = await rollbackFunction(ctx, o, construct);
  const lambda = new LambdaClient(ctx.clientConfig);
  const pendingAudit = startAudit(ctx, 'api', fn.functionName);
  const read = await readForRollback(ctx, lambda, fn, requested);
  if (requested !== undefined) checkRequestedVersion(ctx, read, requested);
  const { target, inFlight } = await checkInFlight(ctx, read.target);
  if (inFlight.length > 0) {
    if (requested !== undefined) {
      throw usage(`\`--to\` cannot be used while CodeDeploy deployment ${inFlight.join(', ')} is in flight: run \`api rollback\` without --to to stop it (CodeDeploy shifts \`${LIVE_ALIAS}\` back), then roll back to a version`);
    }
    return stopDeploymentsPlan(ctx, target, read.live, inFlight, pendingAudit);
  }
  const version = requested ?? stableVersion(read);
  return flipPlan(ctx, lambda, target, read, version, pendingAudit);
}

/** The function `api rollback` works on, with the SafeLambdaApi and the stack it comes from when it comes from one. */
interface RollbackFunction {
  readonly functionName: string;
  readonly construct?: ConstructTarget;
  readonly stackName?: string;
}

/**
 * Resolves the target: `--function NAME|ARN` (adopting the region of an ARN), the SafeLambdaApi passed in by
 * `rollback --stack`, or the one of `--stack` (picked with `--target`). Reads the stack only in the last case.
 */
async function rollbackFunction(ctx: Context, o: RollbackOptions, construct?: ConstructTarget): Promise<RollbackFunction> {
  if (!o.function && !construct) {
    if (!ctx.opts.stack) throw usage('no API target: pass --stack NAME or --function NAME');
    construct = pickConstruct(await discoverStack(ctx, ctx.opts.stack), ['SafeLambdaApi'], ctx.opts.target);
  }
  const stackName = construct ? ctx.opts.stack : undefined;
  const functionName = construct ? physicalId(construct, 'function') : functionNameOf(ctx, o.function!);
  return { functionName, construct, stackName };
}

/** What the first round trip read: the target (with the function's tags), the aliases, and whether `--to` exists. */
interface RollbackRead {
  readonly target: ApiTarget;
  /** `live`, with the RevisionId that guards the flip. */
  readonly live: AliasRead;
  readonly stable?: AliasRead;
  /** Whether the `--to` version exists (true without `--to`). */
  readonly toExists: boolean;
}

/**
 * The first round trip: the function's tags (not needed with `--stack`), `live`, `stable` and the `--to` version, all
 * at once (the audit reads started by the caller go with them). Refuses a function without a `live` alias.
 */
async function readForRollback(ctx: Context, lambda: LambdaClient, fn: RollbackFunction, requested: string | undefined): Promise<RollbackRead> {
  const { functionName, construct, stackName } = fn;
  const [tags, live, stable, toExists] = await Promise.all([
    // With --stack the group comes from the stack: the tags (hooks) are not needed to roll back.
    construct ? Promise.resolve(undefined) : getFunctionTags(ctx, functionName),
    readAlias(lambda, functionName, LIVE_ALIAS),
    readAlias(lambda, functionName, STABLE_ALIAS),
    requested !== undefined ? versionExists(ctx, functionName, requested) : Promise.resolve(true),
    // What the second round trip needs is loaded while the first one is in flight.
    afterIo().then(() => Promise.all([codeDeploy(), deployments(), cloudFormation()])).then(() => undefined, () => undefined),
  ]);
  const target = targetFrom(functionName, tags, construct, stackName);
  if (!live) throw usage(`function ${functionName} has no \`${LIVE_ALIAS}\` alias: it is not deployed by SafeLambdaApi`);
  return { target, live, stable, toExists };
}

/** true while `live` shifts traffic (it has additional version weights). */
function isWeighted(live: AliasState): boolean {
  return Object.keys(live.weights).length > 0;
}

/**
 * Safety checks on a requested `--to` version, on what the first round trip read (before the second): it must differ
 * from `live`, exist, and (without `--force`) be `stable` or older.
 */
function checkRequestedVersion(ctx: Context, read: RollbackRead, requested: string): void {
  const { functionName } = read.target;
  const { live, stable } = read;
  if (requested === live.version && !isWeighted(live)) {
    throw refused(`${LIVE_ALIAS} of ${functionName} already points at version ${requested}: nothing to roll back`);
  }
  if (!ctx.opts.force) {
    if (stable === undefined) {
      throw refused(`function ${functionName} has no \`${STABLE_ALIAS}\` alias to compare with: pass --force to roll back to version ${requested} anyway`);
    }
    if (Number(requested) > Number(stable.version)) {
      throw refused(`version ${requested} is newer than ${STABLE_ALIAS} (version ${stable.version}): a rollback goes to ${STABLE_ALIAS} or older; pass --force to override`);
    }
  }
  if (!read.toExists) throw usage(`version ${requested} of function ${functionName} does not exist`);
}

/**
 * The second round trip (see inFlightCheck): the deployments in flight and the target completed with its deployment
 * group. When the check cannot be made it refuses, or with `--force` warns and returns no deployment.
 */
async function checkInFlight(ctx: Context, t: ApiTarget): Promise<{ target: ApiTarget; inFlight: string[] }> {
  const check = await inFlightCheck(ctx, t);
  if (!check) {
    const why = `cannot check for an in-flight CodeDeploy deployment of ${targetLabel(t)}: the function has no CodeDeploy tags ` +
      `(${TAG_CODEDEPLOY_APPLICATION}, ${TAG_CODEDEPLOY_GROUP}) and no SafeLambdaApi with a deployment group was found for it in a stack`;
    if (!ctx.opts.force) {
      throw refused(`${why}; moving \`${LIVE_ALIAS}\` now could race a deployment. Name its stack with --stack, or pass --force to roll back without the check`);
    }
    ctx.warn(`${why}; going ahead because of --force`);
  }
  return { target: check?.target ?? t, inFlight: check?.ids ?? [] };
}

/** The plan while deployments are in flight: stop each with auto rollback (CodeDeploy shifts `live` back). */
function stopDeploymentsPlan(ctx: Context, target: ApiTarget, live: AliasRead, inFlight: string[], pendingAudit: PendingAudit): StepPlan {
  const { functionName } = target;
  const from = formatAlias(live);
  const lines = inFlight.map((id) => `stop CodeDeploy deployment ${id} of ${target.applicationName}/${target.deploymentGroupName} with auto rollback (${LIVE_ALIAS}: ${from} -> back to the version before the deployment)`);
  return {
    kind: 'api',
    label: targetLabel(target),
    question: `Stop ${inFlight.length === 1 ? 'this deployment' : 'these deployments'}?`,
    lines,
    data: { function: functionName, path: target.path, action: 'stop-deployment', deployments: inFlight },
    dryRunVerb: '',
    async execute() {
      const { CodeDeployClient, StopDeploymentCommand } = await codeDeploy();
      const cd = new CodeDeployClient(ctx.clientConfig);
      const stopped: { deploymentId: string; status?: string; message?: string }[] = [];
      for (const id of inFlight) {
        const out = await cd.send(new StopDeploymentCommand({ deploymentId: id, autoRollbackEnabled: true }));
        ctx.step(`stopped CodeDeploy deployment ${id} (${out.status ?? 'Pending'}${out.statusMessage ? `: ${out.statusMessage}` : ''})`);
        stopped.push({ deploymentId: id, status: out.status, message: out.statusMessage });
      }
      const a = await pendingAudit.record('api rollback (stop deployment)', `${LIVE_ALIAS}=${live.version}`, `stop ${inFlight.join(',')} with auto rollback`);
      return {
        data: { action: 'stop-deployment', function: functionName, path: target.path, live: { version: live.version, weights: live.weights }, stopped, audit: a.entry, auditRecordedIn: a.recordedIn },
        lines: [
          `Stopped ${inFlight.join(', ')} with auto rollback: CodeDeploy shifts ${LIVE_ALIAS} of ${targetLabel(target)} back (was ${from}).`,
          a.line,
        ],
      };
    },
  };
}

/**
 * The default target, `stable`: refuses when there is none, when `live` is already older than it, or when `live`
 * already points at it (then `stable` itself is failing).
 */
function stableVersion(read: RollbackRead): string {
  const { functionName } = read.target;
  const { live, stable } = read;
  if (stable === undefined) {
    throw refused(`function ${functionName} has no \`${STABLE_ALIAS}\` alias: no version is known to be good; pick one with --to VERSION --force`);
  }
  const to = stable.version;
  if (Number(live.version) < Number(to)) {
    throw refused(`${LIVE_ALIAS} of ${functionName} (version ${live.version}) is already older than ${STABLE_ALIAS} (version ${to}): nothing to roll back; to return to ${STABLE_ALIAS}, run \`api rollback --to ${to}\``);
  }
  if (to === live.version && !isWeighted(live)) {
    throw refused(`${LIVE_ALIAS} of ${functionName} already points at ${STABLE_ALIAS} (version ${to}): if it is failing, the stable version itself is failing and nothing newer is known-good; roll back further only after checking an older version, with --to VERSION --force`);
  }
  return to;
}

/**
 * The plan that points `live` at `version` (UpdateAlias, all traffic), guarded by the RevisionId read in the first
 * round trip: if the alias moved since, Lambda refuses and so does the command, having changed nothing.
 */
function flipPlan(ctx: Context, lambda: LambdaClient, target: ApiTarget, read: RollbackRead, version: string, pendingAudit: PendingAudit): StepPlan {
  const { functionName } = target;
  const { live, stable } = read;
  const from = formatAlias(live);
  const liveState: AliasState = { version: live.version, weights: live.weights };
  return {
    kind: 'api',
    label: targetLabel(target),
    question: `Point ${LIVE_ALIAS} at version ${version}?`,
    lines: [`${LIVE_ALIAS} of ${targetLabel(target)}: ${from} -> version ${version}`],
    data: { function: functionName, path: target.path, action: 'rollback', from: liveState, to: version },
    dryRunVerb: 'set ',
    async execute() {
      try {
        await lambda.send(new UpdateAliasCommand({
          FunctionName: functionName,
          Name: LIVE_ALIAS,
          FunctionVersion: version,
          RoutingConfig: { AdditionalVersionWeights: {} },
          // Refused by Lambda if the alias changed since it was read for the plan (a deployment, another rollback).
          RevisionId: live.revisionId,
        }));
      } catch (err) {
        if ((err as Error).name === 'PreconditionFailedException') {
          throw refused(`${LIVE_ALIAS} of ${functionName} changed between the plan and the flip (it was ${from} when read; ` +
            'a deployment or another rollback moved it since): nothing was changed by this command. Run it again to plan from the new state');
        }
        throw err;
      }
      ctx.step(`${LIVE_ALIAS} of ${functionName} now points at version ${version}`);
      const a = await pendingAudit.record('api rollback', `${LIVE_ALIAS}=${live.version}`, `${LIVE_ALIAS}=${version}`);
      return {
        data: { action: 'rollback', function: functionName, path: target.path, from: liveState, to: version, stable: stable?.version, audit: a.entry, auditRecordedIn: a.recordedIn },
        lines: [`Rolled back ${LIVE_ALIAS} of ${targetLabel(target)}: ${from} -> version ${version}.`, a.line],
      };
    },
  };
}

/** `api rollback [--to VERSION] [--force]`. */
export async function apiRollback(ctx: Context, o: RollbackOptions): Promise<CommandResult> {
  return runPlan(ctx, await planApiRollback(ctx, o));
}

export interface PromoteOptions { readonly function?: string; readonly to: string; readonly wait?: boolean; readonly force?: boolean }

/** `api promote --to VERSION [--wait]`: a CodeDeploy deployment (hooks and alarms) to a chosen version. */
export async function apiPromote(ctx: Context, o: PromoteOptions): Promise<CommandResult> {
  const to = String(parseVersion('--to', o.to));
  const t = await resolveApiTarget(ctx, o.function);
  await checkStackOfFunction(ctx, t);
  if (!t.applicationName || !t.deploymentGroupName) {
    throw usage(`function ${t.functionName} has no CodeDeploy deployment group (tags ${TAG_CODEDEPLOY_APPLICATION} / ${TAG_CODEDEPLOY_GROUP}, or --stack): it is not deployed by SafeLambdaApi`);
  }
  const state = await readApiState(ctx, t, false);
  if (state.inFlight.length > 0) {
    throw refused(`CodeDeploy deployment ${state.inFlight.map((d) => d.deploymentId).join(', ')} is in flight: wait for it or stop it with \`api rollback\``);
  }
  if (to === state.live.version && Object.keys(state.live.weights).length === 0) {
    throw refused(`${LIVE_ALIAS} of ${t.functionName} already points at version ${to}: nothing to promote`);
  }
  if (t.alarmedVersion && to !== t.alarmedVersion && !o.force) {
    // The error-rate, latency and throttle alarms are scoped to the stack's version (ExecutedVersion).
    throw refused(`the deployment group's version alarms (error rate, p99 latency, throttles) watch version ${t.alarmedVersion}, ` +
      `the version the stack deployed; a promote to version ${to} would be guarded by the hooks and the API 5XX alarm only. ` +
      `Promote to version ${t.alarmedVersion}, or pass --force to accept that`);
  }
  await assertVersionExists(ctx, t.functionName, to);
  const hooks = [t.preTrafficHook && `BeforeAllowTraffic ${t.preTrafficHook}`, t.postTrafficHook && `AfterAllowTraffic ${t.postTrafficHook}`].filter(Boolean);
  const plan = [
    `CodeDeploy deployment on ${t.applicationName}/${t.deploymentGroupName}: ${LIVE_ALIAS} of ${targetLabel(t)} ${from(state)} -> version ${to}`,
    `hooks: ${hooks.length > 0 ? hooks.join(', ') : 'none'}; the group's deployment config and alarms apply` +
      (t.alarmedVersion && to !== t.alarmedVersion ? ` (its version alarms watch version ${t.alarmedVersion}, not ${to})` : ''),
  ];
  if (!(await ctx.confirm(`Start the deployment to version ${to}?`, plan))) {
    return { data: { dryRun: true, function: t.functionName, from: state.live, to, plan }, lines: ['dry run: nothing was changed', ...plan.map((p) => `  would start ${p}`)] };
  }
  const [{ CodeDeployClient }, { IN_FLIGHT_STATUSES, describeFailure, getDeployment, startAliasDeployment }] = await Promise.all([codeDeploy(), deployments()]);
  const cd = new CodeDeployClient(ctx.clientConfig);
  const who = await callerIdentity(ctx);
  const deploymentId = await startAliasDeployment(cd, {
    applicationName: t.applicationName,
    deploymentGroupName: t.deploymentGroupName,
    functionName: t.functionName,
    aliasName: LIVE_ALIAS,
    currentVersion: state.live.version,
    targetVersion: to,
    beforeAllowTrafficHook: t.preTrafficHook,
    afterAllowTrafficHook: t.postTrafficHook,
    description: `cdk-rollback api promote to version ${to} by ${who}`,
  });
  ctx.step(`started CodeDeploy deployment ${deploymentId}`);
  const a = await audit(ctx, 'api', t.functionName, 'api promote', `${LIVE_ALIAS}=${state.live.version}`, `${LIVE_ALIAS}=${to} (${deploymentId})`);
  let finalStatus: string | undefined;
  if (o.wait) {
    const info = await ctx.waitFor(`deployment ${deploymentId}`, async () => {
      const d = await getDeployment(cd, deploymentId);
      if (d.status && (IN_FLIGHT_STATUSES as string[]).includes(d.status)) {
        const o2 = d.deploymentOverview;
        return { done: false, state: `${d.status}${o2 ? ` (succeeded ${o2.Succeeded ?? 0}, in progress ${o2.InProgress ?? 0})` : ''}` };
      }
      return { done: true, value: d };
    }, 3600);
    finalStatus = info.status;
    if (info.status !== 'Succeeded') {
      throw new CliError(`${describeFailure(info)} (${a.line})`, EXIT.FAILED);
    }
  }
  return {
    data: { action: 'promote', function: t.functionName, path: t.path, from: state.live, to, deploymentId, status: finalStatus, audit: a.entry, auditRecordedIn: a.recordedIn },
    lines: [
      `Started CodeDeploy deployment ${deploymentId}: ${LIVE_ALIAS} of ${targetLabel(t)} ${from(state)} -> version ${to}${finalStatus ? ` (${finalStatus})` : ' (use --wait to follow it)'}.`,
      a.line,
    ],
  };
}

function from(state: ApiState): string {
  return formatAlias(state.live);
}

/** The API section of `status`. */
export async function apiStatus(ctx: Context, t: ApiTarget): Promise<{ data: Record<string, unknown>; lines: string[] }> {
  const [state, trail] = await Promise.all([readApiState(ctx, t, true), readAudit(ctx, 'api', t.functionName)]);
  const c = ctx.color;
  const lines = [
    `${c.bold('API')} ${targetLabel(t)}`,
    `  ${LIVE_ALIAS}:   ${formatAlias(state.live)}${Object.keys(state.live.weights).length > 0 ? c.yellow('  (traffic is shifting)') : ''}`,
    `  ${STABLE_ALIAS}: ${state.stable !== undefined ? `version ${state.stable}` : c.yellow('none (no deployment has passed yet)')}`,
  ];
  if (t.applicationName) lines.push(`  CodeDeploy: ${t.applicationName}/${t.deploymentGroupName ?? '?'}`);
  for (const d of state.inFlight) {
    lines.push(c.yellow(`  deployment in flight: ${d.deploymentId}${d.status ? ` ${d.status}` : ''}${d.createTime ? ` since ${iso(d.createTime)}` : ''}`));
  }
  if (state.inFlight.length === 0) lines.push('  deployment in flight: none');
  for (const e of trail.slice(0, 3)) lines.push(`  last: ${e.at} ${e.action} ${e.from} -> ${e.to} by ${e.who}`);
  return {
    data: {
      path: t.path,
      function: t.functionName,
      codedeploy: t.applicationName ? { application: t.applicationName, deploymentGroup: t.deploymentGroupName } : undefined,
      live: state.live,
      stable: state.stable ?? null,
      inFlight: state.inFlight.map((d) => ({ deploymentId: d.deploymentId, status: d.status, createTime: d.createTime ? iso(d.createTime) : undefined })),
      audit: trail,
    },
    lines,
  };
}
