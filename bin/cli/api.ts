/**
 * `api rollback|promote` and the API part of `status`: SafeLambdaApi's `live` / `stable` aliases and its
 * CodeDeploy deployment group.
 */
import {
  BatchGetDeploymentsCommand,
  CodeDeployClient,
  DeploymentInfo,
  StopDeploymentCommand,
} from '@aws-sdk/client-codedeploy';
import {
  GetFunctionCommand,
  GetFunctionConfigurationCommand,
  LambdaClient,
  UpdateAliasCommand,
} from '@aws-sdk/client-lambda';
import {
  IN_FLIGHT_STATUSES,
  describeFailure,
  getAlias,
  getDeployment,
  inFlightDeploymentIds,
  startAliasDeployment,
} from '../../lambda/alias-deployment/deployment';
import {
  LIVE_ALIAS,
  STABLE_ALIAS,
  TAG_ALARMED_VERSION,
  TAG_CODEDEPLOY_APPLICATION,
  TAG_CODEDEPLOY_GROUP,
  TAG_POST_TRAFFIC_HOOK,
  TAG_PRE_TRAFFIC_HOOK,
} from '../../lib/private/contract';
import { audit, callerIdentity, readAudit } from './audit';
import { CliError, CommandResult, Context, EXIT, iso, reasonOf, refused, usage } from './context';
import { ConstructTarget, discoverStack, optionalPhysicalId, physicalId, pickConstruct } from './discovery';

export interface ApiTarget {
  readonly path?: string;
  readonly functionName: string;
  readonly applicationName?: string;
  readonly deploymentGroupName?: string;
  readonly preTrafficHook?: string;
  readonly postTrafficHook?: string;
  /** The version the deployment group's version alarms watch (the stack's version), when the function is tagged with it. */
  readonly alarmedVersion?: string;
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

function isNotFound(err: unknown): boolean {
  return (err as Error)?.name === 'ResourceNotFoundException';
}

/** `--function NAME` or the SafeLambdaApi of `--stack` (picked with `--target`). */
export async function resolveApiTarget(ctx: Context, functionFlag: string | undefined, fromStack?: ConstructTarget): Promise<ApiTarget> {
  let functionName = functionFlag;
  let applicationName: string | undefined;
  let deploymentGroupName: string | undefined;
  let path: string | undefined;
  if (!functionName) {
    let construct = fromStack;
    if (!construct) {
      if (!ctx.opts.stack) throw usage('no API target: pass --stack NAME or --function NAME');
      construct = pickConstruct(await discoverStack(ctx, ctx.opts.stack), ['SafeLambdaApi'], ctx.opts.target);
    }
    path = construct.path;
    functionName = physicalId(construct, 'function');
    applicationName = optionalPhysicalId(construct, 'application');
    deploymentGroupName = optionalPhysicalId(construct, 'deployment-group');
  }
  const lambda = new LambdaClient(ctx.clientConfig);
  let tags: Record<string, string>;
  try {
    const fn = await lambda.send(new GetFunctionCommand({ FunctionName: functionName }));
    tags = fn.Tags ?? {};
  } catch (err) {
    if (isNotFound(err)) throw usage(`function ${functionName} does not exist (check --function, --region and --profile)`);
    throw err;
  }
  return {
    path,
    functionName,
    applicationName: applicationName ?? tags[TAG_CODEDEPLOY_APPLICATION],
    deploymentGroupName: deploymentGroupName ?? tags[TAG_CODEDEPLOY_GROUP],
    preTrafficHook: tags[TAG_PRE_TRAFFIC_HOOK],
    postTrafficHook: tags[TAG_POST_TRAFFIC_HOOK],
    alarmedVersion: tags[TAG_ALARMED_VERSION],
  };
}

async function readAlias(lambda: LambdaClient, functionName: string, alias: string): Promise<AliasState | undefined> {
  const out = await getAlias(lambda, functionName, alias);
  return out && { version: out.FunctionVersion ?? '', weights: out.RoutingConfig?.AdditionalVersionWeights ?? {} };
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
  return { live, stable: stable?.version, inFlight };
}

async function listInFlight(ctx: Context, t: ApiTarget, details: boolean): Promise<DeploymentInfo[]> {
  if (!t.applicationName || !t.deploymentGroupName) return [];
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

async function assertVersionExists(ctx: Context, functionName: string, version: string): Promise<void> {
  try {
    await new LambdaClient(ctx.clientConfig).send(new GetFunctionConfigurationCommand({ FunctionName: functionName, Qualifier: version }));
  } catch (err) {
    if (isNotFound(err)) throw usage(`version ${version} of function ${functionName} does not exist`);
    throw err;
  }
}

function targetLabel(t: ApiTarget): string {
  return t.path ? `${t.path} (${t.functionName})` : t.functionName;
}

export interface RollbackOptions { readonly function?: string; readonly to?: string; readonly force?: boolean }

/** `api rollback [--to VERSION] [--force]`. */
export async function apiRollback(ctx: Context, o: RollbackOptions): Promise<CommandResult> {
  const requested = o.to !== undefined ? String(parseVersion('--to', o.to)) : undefined;
  const t = await resolveApiTarget(ctx, o.function);
  const state = await readApiState(ctx, t, false);
  const from = formatAlias(state.live);

  if (state.inFlight.length > 0) {
    const ids = state.inFlight.map((d) => d.deploymentId ?? '?');
    if (requested !== undefined) {
      throw usage(`\`--to\` cannot be used while CodeDeploy deployment ${ids.join(', ')} is in flight: run \`api rollback\` without --to to stop it (CodeDeploy shifts \`${LIVE_ALIAS}\` back), then roll back to a version`);
    }
    const plan = ids.map((id) => `stop CodeDeploy deployment ${id} of ${t.applicationName}/${t.deploymentGroupName} with auto rollback (${LIVE_ALIAS}: ${from} -> back to the version before the deployment)`);
    if (!(await ctx.confirm(`Stop ${ids.length === 1 ? 'this deployment' : 'these deployments'}?`, plan))) {
      return { data: { dryRun: true, function: t.functionName, plan }, lines: ['dry run: nothing was changed', ...plan.map((p) => `  would ${p}`)] };
    }
    const cd = new CodeDeployClient(ctx.clientConfig);
    const stopped: { deploymentId: string; status?: string; message?: string }[] = [];
    for (const id of ids) {
      const out = await cd.send(new StopDeploymentCommand({ deploymentId: id, autoRollbackEnabled: true }));
      ctx.step(`stopped CodeDeploy deployment ${id} (${out.status ?? 'Pending'}${out.statusMessage ? `: ${out.statusMessage}` : ''})`);
      stopped.push({ deploymentId: id, status: out.status, message: out.statusMessage });
    }
    const a = await audit(ctx, 'api', t.functionName, 'api rollback (stop deployment)', `${LIVE_ALIAS}=${state.live.version}`, `stop ${ids.join(',')} with auto rollback`);
    return {
      data: { action: 'stop-deployment', function: t.functionName, path: t.path, live: state.live, stopped, audit: a.entry, auditRecordedIn: a.recordedIn },
      lines: [
        `Stopped ${ids.join(', ')} with auto rollback: CodeDeploy shifts ${LIVE_ALIAS} of ${targetLabel(t)} back (was ${from}).`,
        a.line,
      ],
    };
  }

  let to: string;
  if (requested !== undefined) {
    to = requested;
    if (to === state.live.version && Object.keys(state.live.weights).length === 0) {
      throw refused(`${LIVE_ALIAS} of ${t.functionName} already points at version ${to}: nothing to roll back`);
    }
    if (!o.force) {
      if (state.stable === undefined) {
        throw refused(`function ${t.functionName} has no \`${STABLE_ALIAS}\` alias to compare with: pass --force to roll back to version ${to} anyway`);
      }
      if (Number(to) > Number(state.stable)) {
        throw refused(`version ${to} is newer than ${STABLE_ALIAS} (version ${state.stable}): a rollback goes to ${STABLE_ALIAS} or older; pass --force to override`);
      }
    }
    await assertVersionExists(ctx, t.functionName, to);
  } else {
    if (state.stable === undefined) {
      throw refused(`function ${t.functionName} has no \`${STABLE_ALIAS}\` alias: no version is known to be good; pick one with --to VERSION --force`);
    }
    to = state.stable;
    if (Number(state.live.version) < Number(to)) {
      throw refused(`${LIVE_ALIAS} of ${t.functionName} (version ${state.live.version}) is already older than ${STABLE_ALIAS} (version ${to}): nothing to roll back; to return to ${STABLE_ALIAS}, run \`api rollback --to ${to}\``);
    }
    if (to === state.live.version && Object.keys(state.live.weights).length === 0) {
      throw refused(`${LIVE_ALIAS} of ${t.functionName} already points at ${STABLE_ALIAS} (version ${to}): if it is failing, the stable version itself is failing and nothing newer is known-good; roll back further only after checking an older version, with --to VERSION --force`);
    }
  }

  const plan = [`${LIVE_ALIAS} of ${targetLabel(t)}: ${from} -> version ${to}`];
  if (!(await ctx.confirm(`Point ${LIVE_ALIAS} at version ${to}?`, plan))) {
    return { data: { dryRun: true, function: t.functionName, from: state.live, to, plan }, lines: ['dry run: nothing was changed', ...plan.map((p) => `  would set ${p}`)] };
  }
  await new LambdaClient(ctx.clientConfig).send(new UpdateAliasCommand({
    FunctionName: t.functionName,
    Name: LIVE_ALIAS,
    FunctionVersion: to,
    RoutingConfig: { AdditionalVersionWeights: {} },
  }));
  ctx.step(`${LIVE_ALIAS} of ${t.functionName} now points at version ${to}`);
  const a = await audit(ctx, 'api', t.functionName, 'api rollback', `${LIVE_ALIAS}=${state.live.version}`, `${LIVE_ALIAS}=${to}`);
  return {
    data: { action: 'rollback', function: t.functionName, path: t.path, from: state.live, to, stable: state.stable, audit: a.entry, auditRecordedIn: a.recordedIn },
    lines: [`Rolled back ${LIVE_ALIAS} of ${targetLabel(t)}: ${from} -> version ${to}.`, a.line],
  };
}

export interface PromoteOptions { readonly function?: string; readonly to: string; readonly wait?: boolean; readonly force?: boolean }

/** `api promote --to VERSION [--wait]`: a CodeDeploy deployment (hooks and alarms) to a chosen version. */
export async function apiPromote(ctx: Context, o: PromoteOptions): Promise<CommandResult> {
  const to = String(parseVersion('--to', o.to));
  const t = await resolveApiTarget(ctx, o.function);
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
