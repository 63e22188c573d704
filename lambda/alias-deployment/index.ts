/**
 * Custom resource behind SafeLambdaApi (Provider framework: onEvent + isComplete).
 *
 * It owns the `live` and `stable` aliases instead of CloudFormation's CodeDeployLambdaAliasUpdate
 * policy, so a deployment always shifts traffic from the version `live` ACTUALLY points at (which
 * may have been changed by hand) to the new version, and a manual rollback never breaks the next
 * deploy (SAM#291).
 *
 * - Create, first deploy: creates `live` and `stable` on the new version (no traffic to shift).
 * - Create/Update: starts a CodeDeploy deployment current -> target and waits for it (isComplete).
 *   On success `stable` moves to the target; on failure or stop it throws, so the stack update fails.
 * - The rollback Update (old properties): a no-op when CodeDeploy already put `live` back; if `live`
 *   is on a newer version it is pointed straight back without a traffic shift. `stable` never moves.
 * - Delete: nothing (deleting the function removes its aliases; versions are kept for rollback).
 */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import {
  CodeDeployClient,
  DeploymentStatus,
  StopDeploymentCommand,
} from '@aws-sdk/client-codedeploy';
import {
  CreateAliasCommand,
  DeleteFunctionCommand,
  GetFunctionCommand,
  LambdaClient,
  ListAliasesCommand,
  type ListAliasesCommandOutput,
  ListVersionsByFunctionCommand,
  TagResourceCommand,
  UpdateAliasCommand,
} from '@aws-sdk/client-lambda';
import {
  LIVE_ALIAS,
  STABLE_ALIAS,
  TAG_CODEDEPLOY_APPLICATION,
  TAG_CODEDEPLOY_GROUP,
  TAG_CONSTRUCT_PATH,
  TAG_MANAGED_BY,
  MANAGED_BY_VALUE,
  TAG_POST_TRAFFIC_HOOK,
  TAG_PRE_TRAFFIC_HOOK,
} from '../../lib/private/contract';
import {
  FAILED_STATUSES,
  IN_FLIGHT_STATUSES,
  describeFailure,
  getAlias,
  getDeployment,
  inFlightDeploymentIds,
  startAliasDeployment,
} from './deployment';
import { log } from './log';

/** ResourceProperties of the custom resource (all strings: CloudFormation stringifies them). */
export interface AliasDeploymentProperties {
  readonly FunctionName: string;
  readonly TargetVersion: string;
  readonly ApplicationName: string;
  readonly DeploymentGroupName: string;
  readonly BeforeAllowTrafficHook?: string;
  readonly AfterAllowTrafficHook?: string;
  /** How many published versions to keep (never counting the ones an alias points at). */
  readonly RetainVersions: string;
  /** Deadline of one deployment, in seconds; past it the deployment is stopped (with auto rollback). */
  readonly MaxDeploymentSeconds: string;
  readonly ConstructPath: string;
}

type Action = 'initialized' | 'none' | 'direct' | 'deploy' | 'delete';

export interface OnEventResult {
  PhysicalResourceId: string;
  Data: {
    Action: Action;
    TargetVersion: string;
    PreviousVersion: string;
    DeploymentId: string;
    /** Epoch milliseconds after which isComplete stops the deployment. */
    Deadline: string;
  };
}

export type IsCompleteEvent = CloudFormationCustomResourceEvent & Partial<OnEventResult>;

export interface IsCompleteResult {
  IsComplete: boolean;
  Data?: Record<string, string>;
}

const lambda = () => new LambdaClient({});
const codedeploy = () => new CodeDeployClient({});

function props(event: { ResourceProperties: unknown }): AliasDeploymentProperties {
  const p = event.ResourceProperties as Partial<AliasDeploymentProperties>;
  for (const k of ['FunctionName', 'TargetVersion', 'ApplicationName', 'DeploymentGroupName', 'RetainVersions', 'MaxDeploymentSeconds'] as const) {
    if (!p[k]) throw new Error(`custom resource property ${k} is missing`);
  }
  return p as AliasDeploymentProperties;
}

export async function onEvent(event: CloudFormationCustomResourceEvent): Promise<OnEventResult> {
  log('info', 'onEvent', { event });
  const p = props(event);
  const physicalId = `${p.FunctionName}:${LIVE_ALIAS}`;
  const result = (action: Action, previous: string, deploymentId = ''): OnEventResult => ({
    PhysicalResourceId: physicalId,
    Data: {
      Action: action,
      TargetVersion: p.TargetVersion,
      PreviousVersion: previous,
      DeploymentId: deploymentId,
      Deadline: String(Date.now() + Number(p.MaxDeploymentSeconds) * 1000),
    },
  });

  if (event.RequestType === 'Delete') {
    log('info', 'Delete: the aliases and versions are left in place (they go with the function)');
    return { ...result('delete', ''), PhysicalResourceId: event.PhysicalResourceId };
  }

  const client = lambda();
  await tagFunction(client, p);

  const live = await getAlias(client, p.FunctionName, LIVE_ALIAS);
  if (!live) {
    // First deploy: nothing serves traffic yet, so there is nothing to shift.
    await client.send(new CreateAliasCommand({ FunctionName: p.FunctionName, Name: LIVE_ALIAS, FunctionVersion: p.TargetVersion }));
    await putAlias(client, p.FunctionName, STABLE_ALIAS, p.TargetVersion);
    log('info', 'initialized aliases', { live: p.TargetVersion, stable: p.TargetVersion });
    return result('initialized', '');
  }
  const current = live.FunctionVersion!;
  const weights = live.RoutingConfig?.AdditionalVersionWeights ?? {};

  const cd = codedeploy();
  const inFlight = await inFlightDeployments(cd, p);
  const ours = inFlight.find((d) => d.description === deploymentDescription(event.RequestId));
  if (ours) {
    // A retried event: keep waiting for the deployment this request already started.
    log('info', 'resuming the deployment this request started', { deploymentId: ours.deploymentId });
    return result('deploy', current, ours.deploymentId);
  }
  if (inFlight.length > 0) {
    throw new Error(
      `CodeDeploy deployment ${inFlight.map((d) => d.deploymentId).join(', ')} is in progress on ${p.FunctionName}:${LIVE_ALIAS}; ` +
      'wait for it to finish or stop it (`cdk-rollback api rollback`), then deploy again',
    );
  }

  if (Object.keys(weights).length > 0) {
    // A shift that ended without a deployment (should not happen): serve from the primary version only.
    log('warn', 'live had weighted routing with no deployment in flight; clearing it', { current, weights });
    await client.send(new UpdateAliasCommand({
      FunctionName: p.FunctionName, Name: LIVE_ALIAS, FunctionVersion: current, RoutingConfig: { AdditionalVersionWeights: {} },
    }));
  }

  if (current === p.TargetVersion) {
    await ensureStable(client, p.FunctionName, current);
    log('info', `live already serves version ${current}: nothing to shift` +
      (event.RequestType === 'Update' ? ' (this is also the stack rollback case after CodeDeploy restored live)' : ''));
    return result('none', current);
  }

  if (event.RequestType === 'Update' && Number(p.TargetVersion) < Number(current)) {
    // Versions only grow, so an older target comes from a stack rollback (old properties):
    // restore it at once, without a traffic shift; `stable` does not move.
    await client.send(new UpdateAliasCommand({
      FunctionName: p.FunctionName, Name: LIVE_ALIAS, FunctionVersion: p.TargetVersion, RoutingConfig: { AdditionalVersionWeights: {} },
    }));
    log('info', `stack rollback: live pointed straight back from version ${current} to ${p.TargetVersion}`);
    return result('direct', current);
  }

  const deploymentId = await startAliasDeployment(cd, {
    applicationName: p.ApplicationName,
    deploymentGroupName: p.DeploymentGroupName,
    functionName: p.FunctionName,
    aliasName: LIVE_ALIAS,
    currentVersion: current,
    targetVersion: p.TargetVersion,
    beforeAllowTrafficHook: p.BeforeAllowTrafficHook || undefined,
    afterAllowTrafficHook: p.AfterAllowTrafficHook || undefined,
    description: deploymentDescription(event.RequestId),
  });
  log('info', 'started deployment', { deploymentId, from: current, to: p.TargetVersion });
  return result('deploy', current, deploymentId);
}

export async function isComplete(event: IsCompleteEvent): Promise<IsCompleteResult> {
  const data = event.Data;
  if (!data) throw new Error('isComplete: the onEvent result (Data) is missing');
  if (data.Action === 'delete') return { IsComplete: true };
  const p = props(event);

  if (data.Action === 'deploy') {
    const cd = codedeploy();
    let info;
    try {
      info = await getDeployment(cd, data.DeploymentId);
    } catch (e) {
      // A throttled or timed-out poll is not a failed deployment: poll again at the next interval.
      if (isTransient(e) && Date.now() <= Number(data.Deadline)) {
        log('warn', 'polling the deployment failed; trying again at the next interval', { error: (e as Error).name });
        return { IsComplete: false };
      }
      throw e;
    }
    const status = info.status as DeploymentStatus;
    if (IN_FLIGHT_STATUSES.includes(status)) {
      if (Date.now() > Number(data.Deadline)) {
        await cd.send(new StopDeploymentCommand({ deploymentId: data.DeploymentId, autoRollbackEnabled: true }));
        throw new Error(
          `CodeDeploy deployment ${data.DeploymentId} did not finish within ${p.MaxDeploymentSeconds} s; ` +
          'it was stopped and CodeDeploy rolls live back',
        );
      }
      log('info', 'deployment in flight', { deploymentId: data.DeploymentId, status });
      return { IsComplete: false };
    }
    if (FAILED_STATUSES.includes(status)) {
      // CodeDeploy restores `live` in a rollback deployment: wait for it, so the stack rollback
      // that follows finds `live` where it was.
      const rollbackId = info.rollbackInfo?.rollbackDeploymentId;
      if (rollbackId) {
        const rb = await getDeployment(cd, rollbackId);
        if (IN_FLIGHT_STATUSES.includes(rb.status as DeploymentStatus)) {
          log('info', 'waiting for the CodeDeploy rollback deployment', { rollbackId, status: rb.status });
          return { IsComplete: false };
        }
      }
      const live = await getAlias(lambda(), p.FunctionName, LIVE_ALIAS);
      throw new Error(`${describeFailure(info)}; live serves version ${live?.FunctionVersion ?? 'unknown'}, stable was not moved`);
    }
    if (status !== DeploymentStatus.SUCCEEDED) {
      throw new Error(`CodeDeploy deployment ${data.DeploymentId} is in an unexpected state: ${status}`);
    }
    await putAlias(lambda(), p.FunctionName, STABLE_ALIAS, p.TargetVersion);
    log('info', 'deployment succeeded; stable moved', { deploymentId: data.DeploymentId, stable: p.TargetVersion });
  }

  const pruned = await pruneVersions(lambda(), codedeploy(), p);
  return { IsComplete: true, Data: { Version: p.TargetVersion, PrunedVersions: pruned.join(',') } };
}

const TRANSIENT_ERRORS = ['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded', 'TimeoutError', 'ServiceUnavailable', 'InternalFailure'];

function isTransient(e: unknown): boolean {
  const err = e as { name?: string; $retryable?: unknown };
  return TRANSIENT_ERRORS.includes(err?.name ?? '') || Boolean(err?.$retryable);
}

function deploymentDescription(requestId: string): string {
  return `cdk-rollback ${requestId}`;
}

async function tagFunction(client: LambdaClient, p: AliasDeploymentProperties): Promise<void> {
  const fn = await client.send(new GetFunctionCommand({ FunctionName: p.FunctionName }));
  const arn = fn.Configuration?.FunctionArn;
  if (!arn) throw new Error(`function ${p.FunctionName} not found`);
  const tags: Record<string, string> = {
    [TAG_MANAGED_BY]: MANAGED_BY_VALUE,
    [TAG_CONSTRUCT_PATH]: p.ConstructPath,
    [TAG_CODEDEPLOY_APPLICATION]: p.ApplicationName,
    [TAG_CODEDEPLOY_GROUP]: p.DeploymentGroupName,
  };
  if (p.BeforeAllowTrafficHook) tags[TAG_PRE_TRAFFIC_HOOK] = p.BeforeAllowTrafficHook;
  if (p.AfterAllowTrafficHook) tags[TAG_POST_TRAFFIC_HOOK] = p.AfterAllowTrafficHook;
  await client.send(new TagResourceCommand({ Resource: arn, Tags: tags }));
}

async function putAlias(client: LambdaClient, functionName: string, name: string, version: string): Promise<void> {
  if (await getAlias(client, functionName, name)) {
    await client.send(new UpdateAliasCommand({ FunctionName: functionName, Name: name, FunctionVersion: version }));
  } else {
    await client.send(new CreateAliasCommand({ FunctionName: functionName, Name: name, FunctionVersion: version }));
  }
}

async function ensureStable(client: LambdaClient, functionName: string, version: string): Promise<void> {
  if (!(await getAlias(client, functionName, STABLE_ALIAS))) await putAlias(client, functionName, STABLE_ALIAS, version);
}

async function inFlightDeployments(cd: CodeDeployClient, p: AliasDeploymentProperties) {
  const ids = await inFlightDeploymentIds(cd, p.ApplicationName, p.DeploymentGroupName);
  // A deployment group runs one deployment at a time, so this is one or two calls.
  const infos = await Promise.all(ids.map((id) => getDeployment(cd, id)));
  return infos
    .filter((d) => IN_FLIGHT_STATUSES.includes(d.status as DeploymentStatus))
    .map((d) => ({ deploymentId: d.deploymentId!, description: d.description ?? '' }));
}

/**
 * Deletes published versions beyond the newest `RetainVersions`, never one that any alias points at
 * (live, stable, weighted routing, the user's own aliases), and not at all while a deployment is in
 * flight (its versions may not be on an alias yet). Pruning is housekeeping: a version that cannot be
 * deleted is logged and kept; it never fails a deployment that succeeded.
 */
export async function pruneVersions(client: LambdaClient, cd: CodeDeployClient, p: AliasDeploymentProperties): Promise<string[]> {
  const retain = Number(p.RetainVersions);
  if ((await inFlightDeployments(cd, p)).length > 0) {
    log('info', 'a deployment is in flight: versions are not pruned this time');
    return [];
  }
  const versions: number[] = [];
  let marker: string | undefined;
  do {
    const out = await client.send(new ListVersionsByFunctionCommand({ FunctionName: p.FunctionName, Marker: marker }));
    for (const v of out.Versions ?? []) if (v.Version && v.Version !== '$LATEST') versions.push(Number(v.Version));
    marker = out.NextMarker;
  } while (marker);

  const protectedVersions = new Set<string>();
  marker = undefined;
  do {
    const aliases: ListAliasesCommandOutput = await client.send(new ListAliasesCommand({ FunctionName: p.FunctionName, Marker: marker }));
    for (const a of aliases.Aliases ?? []) {
      if (a.FunctionVersion) protectedVersions.add(a.FunctionVersion);
      for (const v of Object.keys(a.RoutingConfig?.AdditionalVersionWeights ?? {})) protectedVersions.add(v);
    }
    marker = aliases.NextMarker;
  } while (marker);
  protectedVersions.add(p.TargetVersion);

  const sorted = [...new Set(versions)].sort((a, b) => b - a);
  const doomed = sorted.slice(retain).map(String).filter((v) => !protectedVersions.has(v));
  const pruned: string[] = [];
  for (const v of doomed) {
    try {
      await client.send(new DeleteFunctionCommand({ FunctionName: p.FunctionName, Qualifier: v }));
      pruned.push(v);
    } catch (e) {
      log('warn', `version ${v} was not pruned`, { error: (e as Error).message });
    }
  }
  log('info', 'pruned versions', { retain, pruned, kept: sorted.length - pruned.length });
  return pruned;
}
