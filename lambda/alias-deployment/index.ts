/**
 * Custom resource behind SafeLambdaApi (Provider framework: onEvent + isComplete).
 *
 * It owns the `live` and `stable` aliases instead of CloudFormation's CodeDeployLambdaAliasUpdate
 * policy, so a deployment always shifts traffic from the version `live` ACTUALLY points at (which
 * may have been changed by hand) to the new version, and a manual rollback never breaks the next
 * deploy (SAM#291).
 *
 * It decides from intent: the old and new TargetVersion and the stack status (DescribeStacks on the
 * event's StackId; when it cannot be read, an older target than the old properties' means a rollback,
 * because published versions only grow).
 *
 * | case | what it does |
 * |---|---|
 * | Create, function has no `live` | creates `live` and `stable` on the new version (nothing to shift) |
 * | Update, TargetVersion unchanged (a hook, the config, `retainVersions`... changed) | housekeeping only (tags, pruning); never starts a deployment, never moves `live` or `stable`: an operator's manual rollback stands |
 * | forward Update (new TargetVersion, stack not rolling back), or Create with `live` present | records on the function (tag `cdk-rollback:update-record`) what `live` and `stable` served, then starts a CodeDeploy deployment from the version `live` ACTUALLY serves and waits for it; success moves `stable`; failure waits for CodeDeploy's rollback deployment, then fails the update |
 * | the deadline passes | StopDeployment with auto rollback, then waits for CodeDeploy's rollback deployment before failing the update |
 * | rollback Update (stack `*ROLLBACK_IN_PROGRESS`, properties reversed) | starts no deployment; waits (bounded) for any deployment in flight; then, only if `live` still serves the failed version, points it straight back at what served before the failed update began (the record), else leaves it (CodeDeploy or the operator already chose); `stable` leaves the failed version the same way; housekeeping never throws |
 * | retried event (same RequestId) | resumes the deployment its request started (found in the record or by its description); never starts a second one |
 * | Delete | nothing (deleting the function removes its aliases; versions are kept for rollback) |
 *
 * Housekeeping (the CLI's discovery tags, version pruning) is logged when it fails and never fails an event.
 */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  CodeDeployClient,
  DeploymentCreator,
  DeploymentStatus,
  GetDeploymentConfigCommand,
  ListDeploymentsCommand,
  StopDeploymentCommand,
  type DeploymentInfo,
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
  TAG_ALARMED_VERSION,
  TAG_CODEDEPLOY_APPLICATION,
  TAG_CODEDEPLOY_GROUP,
  TAG_CONSTRUCT_PATH,
  TAG_MANAGED_BY,
  MANAGED_BY_VALUE,
  TAG_POST_TRAFFIC_HOOK,
  TAG_PRE_TRAFFIC_HOOK,
} from '../shared/contract';
import {
  FAILED_STATUSES,
  IN_FLIGHT_STATUSES,
  describeFailure,
  getAlias,
  getDeployment,
  inFlightDeploymentIds,
  shiftSeconds,
  startAliasDeployment,
} from './deployment';
import { log } from './log';
import { TAG_UPDATE_RECORD, formatRecord, parseRecord, requestTag, type UpdateRecord } from './record';

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
  /**
   * Deadline of one deployment, in seconds; past it the deployment is stopped (with auto rollback).
   * When `DeploymentConfigName` is set, the config's traffic shifting time is added at run time.
   */
  readonly MaxDeploymentSeconds: string;
  readonly ConstructPath: string;
  /**
   * Set when the deployment config's length is unknown at synth (an imported config): the handler reads
   * it with GetDeploymentConfig and adds its shifting time to `MaxDeploymentSeconds`.
   */
  readonly DeploymentConfigName?: string;
  /** How long the Provider framework waits for this resource (its totalTimeout), in seconds. */
  readonly WaitLimitSeconds?: string;
}

/**
 * - initialized: first deploy, aliases created;
 * - none: nothing served traffic differently (housekeeping only);
 * - direct: a rollback Update pointed `live` straight back;
 * - deploy: a CodeDeploy deployment to wait for;
 * - wait: a rollback Update waits for a deployment in flight, then restores;
 * - delete.
 */
type Action = 'initialized' | 'none' | 'direct' | 'deploy' | 'wait' | 'delete';
type Intent = 'create' | 'forward' | 'unchanged' | 'rollback' | 'delete';

export interface OnEventResult {
  PhysicalResourceId: string;
  Data: {
    Action: Action;
    /** Why: create, forward, unchanged (housekeeping only), rollback, delete. */
    Intent?: Intent;
    TargetVersion: string;
    PreviousVersion: string;
    DeploymentId: string;
    /** Epoch milliseconds after which isComplete stops the deployment (with auto rollback). */
    Deadline: string;
    /** Rollback Update: the version of the failed update (the old properties' TargetVersion). */
    FailedVersion?: string;
    /** Rollback Update: epoch milliseconds after which isComplete stops waiting for a deployment in flight. */
    GiveUpAt?: string;
  };
}

export type IsCompleteEvent = CloudFormationCustomResourceEvent & Partial<OnEventResult>;

export interface IsCompleteResult {
  IsComplete: boolean;
  Data?: Record<string, string>;
}

/** The Provider framework's totalTimeout when the property is absent (resources deployed before it existed). */
const DEFAULT_WAIT_LIMIT_SECONDS = 55 * 60;
/** A rollback Update stops deployments still in flight this long before its wait limit... */
const ROLLBACK_STOP_BEFORE_LIMIT_MS = 10 * 60_000;
/** ...and stops waiting for them this long before it. */
const ROLLBACK_GIVE_UP_BEFORE_LIMIT_MS = 3 * 60_000;
/** A forward deployment's deadline leaves at least this long for CodeDeploy's rollback deployment. */
export const ROLLBACK_ROOM_SECONDS = 5 * 60;

const lambda = () => new LambdaClient({});
const codedeploy = () => new CodeDeployClient({});

function props(event: { ResourceProperties: unknown }): AliasDeploymentProperties {
  const p = event.ResourceProperties as Partial<AliasDeploymentProperties>;
  for (const k of ['FunctionName', 'TargetVersion', 'ApplicationName', 'DeploymentGroupName', 'RetainVersions', 'MaxDeploymentSeconds'] as const) {
    if (!p[k]) throw new Error(`custom resource property ${k} is missing`);
  }
  return p as AliasDeploymentProperties;
}

function waitLimitMs(p: AliasDeploymentProperties): number {
  return Number(p.WaitLimitSeconds || DEFAULT_WAIT_LIMIT_SECONDS) * 1000;
}

/** A failure a rollback Update cannot get past by waiting: it throws at once, with the reason. */
class ImpossibleRestore extends Error {}

/** Builds an onEvent result for one event: the physical id, and the Data isComplete reads. */
type ResultOf = (action: Action, intent: Intent, previous: string, extra?: Partial<OnEventResult['Data']>) => OnEventResult;

function resultOf(p: AliasDeploymentProperties): ResultOf {
  return (action, intent, previous, extra = {}) => ({
    PhysicalResourceId: `${p.FunctionName}:${LIVE_ALIAS}`,
    Data: {
      Action: action,
      Intent: intent,
      TargetVersion: p.TargetVersion,
      PreviousVersion: previous,
      DeploymentId: '',
      Deadline: String(Date.now() + Number(p.MaxDeploymentSeconds) * 1000),
      ...extra,
    },
  });
}

/**
 * Decides from intent (the event, its old properties and the stack's status), not from the current state alone:
 * an unchanged target is housekeeping only, a stack rollback restores what served before the failed update, and
 * a create or forward update shifts `live` from what actually serves to the target.
 */
export async function onEvent(event: CloudFormationCustomResourceEvent): Promise<OnEventResult> {
  log('info', 'onEvent', { event });
  const p = props(event);
  const result = resultOf(p);
  if (event.RequestType === 'Delete') {
    log('info', 'Delete: the aliases and versions are left in place (they go with the function)');
    return { ...result('delete', 'delete', ''), PhysicalResourceId: event.PhysicalResourceId };
  }
  const intent = await classify(event, p);
  log('info', 'intent', { intent, target: p.TargetVersion, old: oldTarget(event) });
  const client = lambda();
  await housekeepingTags(client, p);
  if (intent === 'unchanged') return housekeepingOnly(client, p, result);
  if (intent === 'rollback') return restoreOnStackRollback(client, p, oldTarget(event)!, result);
  return shiftForward(event, client, p, intent, result);
}

/** An Update whose target is unchanged: live and stable stay where they are (an operator's rollback included). */
async function housekeepingOnly(client: LambdaClient, p: AliasDeploymentProperties, result: ResultOf): Promise<OnEventResult> {
  const live = await getAlias(client, p.FunctionName, LIVE_ALIAS).catch((e: Error) => {
    log('warn', 'could not read live (housekeeping only, nothing depends on it)', { error: e.message });
    return undefined;
  });
  log('info', `TargetVersion ${p.TargetVersion} is unchanged: housekeeping only, live and stable stay where they are`,
    { live: live?.FunctionVersion });
  return result('none', 'unchanged', live?.FunctionVersion ?? '');
}

/**
 * CloudFormation's rollback Update: restores what served before the failed update began. Never starts a shift and
 * never fails on work in flight or a transient error: it hands isComplete a bounded wait instead.
 */
async function restoreOnStackRollback(client: LambdaClient, p: AliasDeploymentProperties, failed: string, result: ResultOf): Promise<OnEventResult> {
  const waitResult = () => result('wait', 'rollback', '', {
    FailedVersion: failed,
    Deadline: String(Date.now() + waitLimitMs(p) - ROLLBACK_STOP_BEFORE_LIMIT_MS),
    GiveUpAt: String(Date.now() + waitLimitMs(p) - ROLLBACK_GIVE_UP_BEFORE_LIMIT_MS),
  });
  try {
    const inFlight = await inFlightDeployments(codedeploy(), p);
    if (inFlight.length > 0) {
      log('info', 'stack rollback: a deployment is in flight; waiting for it before restoring', { inFlight: inFlight.map((d) => d.deploymentId) });
      return waitResult();
    }
    const restored = await restoreAfterFailedUpdate(client, p, failed);
    return result(restored.action, 'rollback', restored.previous, { FailedVersion: failed });
  } catch (e) {
    if (e instanceof ImpossibleRestore) throw e;
    // Never fail a rollback on a transient error: isComplete tries again (bounded).
    log('warn', 'stack rollback: could not restore yet; isComplete tries again', { error: (e as Error).message, name: (e as Error).name });
    return waitResult();
  }
}

/**
 * Create or forward Update: the first deploy initializes the aliases; otherwise a retried event resumes its own
 * deployment, and a new one records what serves, then starts a CodeDeploy deployment from it to the target.
 */
async function shiftForward(
  event: CloudFormationCustomResourceEvent, client: LambdaClient, p: AliasDeploymentProperties, intent: Intent, result: ResultOf,
): Promise<OnEventResult> {
  const fn = await client.send(new GetFunctionCommand({ FunctionName: p.FunctionName }));
  const arn = fn.Configuration?.FunctionArn;
  if (!arn) throw new Error(`function ${p.FunctionName} not found`);
  const live = await getAlias(client, p.FunctionName, LIVE_ALIAS);
  if (!live) {
    // First deploy: nothing serves traffic yet, so there is nothing to shift.
    await client.send(new CreateAliasCommand({ FunctionName: p.FunctionName, Name: LIVE_ALIAS, FunctionVersion: p.TargetVersion }));
    await putAlias(client, p.FunctionName, STABLE_ALIAS, p.TargetVersion);
    log('info', 'initialized aliases', { live: p.TargetVersion, stable: p.TargetVersion });
    return result('initialized', intent, '');
  }
  const current = live.FunctionVersion!;
  const cd = codedeploy();
  const request = requestTag(event.RequestId);
  const previousRecord = parseRecord(fn.Tags?.[TAG_UPDATE_RECORD]);
  const retried = previousRecord?.request === request && previousRecord.target === p.TargetVersion ? previousRecord : undefined;
  const deadline = async () => String(Date.now() + (Number(p.MaxDeploymentSeconds) + await runtimeShiftSeconds(cd, p)) * 1000);

  const inFlight = retried?.deployment ? [] : await inFlightDeployments(cd, p);
  const resumed = await resumeRetriedDeployment(event, cd, p, retried, inFlight);
  if (resumed) return result('deploy', intent, retried?.live ?? current, { DeploymentId: resumed, Deadline: await deadline() });

  // Record what serves before this update moves anything, so its rollback Update can restore exactly that.
  // A retry keeps the first attempt's record (live may have moved since).
  const stable = await getAlias(client, p.FunctionName, STABLE_ALIAS);
  const record: UpdateRecord = retried ?? { target: p.TargetVersion, live: current, stable: stable?.FunctionVersion ?? '', request, deployment: '' };
  if (!retried) await writeRecord(client, arn, record);

  if (inFlight.length > 0) {
    throw new Error(
      `CodeDeploy deployment ${inFlight.map((d) => d.deploymentId).join(', ')} is in progress on ${p.FunctionName}:${LIVE_ALIAS}; ` +
      'wait for it to finish or stop it (`cdk-rollback api rollback`), then deploy again',
    );
  }
  await clearStrayWeights(client, p, current, live.RoutingConfig?.AdditionalVersionWeights ?? {});
  if (current === p.TargetVersion) {
    if (!stable) await putAlias(client, p.FunctionName, STABLE_ALIAS, current);
    log('info', `live already serves version ${current}: nothing to shift`);
    return result('none', intent, current);
  }

  const runDeadline = await deadline();
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
  try {
    await writeRecord(client, arn, { ...record, deployment: deploymentId });
  } catch (e) {
    // The deployment's description still identifies it for a retry.
    log('warn', 'could not add the deployment id to the update record', { error: (e as Error).message });
  }
  return result('deploy', intent, current, { DeploymentId: deploymentId, Deadline: runDeadline });
}

/**
 * A retried event (same RequestId) finds the deployment its first attempt started: from its update record, among
 * the deployments in flight (by description), or, when its record has no id and it is no longer in flight, among
 * the recent ones. Returns the deployment's id, or undefined when this request started none.
 */
async function resumeRetriedDeployment(
  event: CloudFormationCustomResourceEvent, cd: CodeDeployClient, p: AliasDeploymentProperties,
  retried: UpdateRecord | undefined, inFlight: readonly { deploymentId?: string; description?: string }[],
): Promise<string | undefined> {
  if (retried?.deployment) {
    log('info', 'retried event: resuming the deployment this request started', { deploymentId: retried.deployment });
    return retried.deployment;
  }
  const ours = inFlight.find((d) => d.description === deploymentDescription(event.RequestId));
  if (ours) {
    log('info', 'retried event: resuming the deployment this request started', { deploymentId: ours.deploymentId });
    return ours.deploymentId;
  }
  if (retried) {
    // A retry whose first attempt crashed between CreateDeployment and recording it, and whose deployment
    // is no longer in flight: find it among the recent ones rather than starting a second one.
    const earlier = await findDeployment(cd, p, deploymentDescription(event.RequestId));
    if (earlier) {
      log('info', 'retried event: the deployment this request started has ended; reporting its outcome', { deploymentId: earlier });
      return earlier;
    }
  }
  return undefined;
}

/** A shift that ended without a deployment (should not happen): serve from the primary version only. */
async function clearStrayWeights(client: LambdaClient, p: AliasDeploymentProperties, current: string, weights: Record<string, number>): Promise<void> {
  if (Object.keys(weights).length === 0) return;
  log('warn', 'live had weighted routing with no deployment in flight; clearing it', { current, weights });
  await client.send(new UpdateAliasCommand({
    FunctionName: p.FunctionName, Name: LIVE_ALIAS, FunctionVersion: current, RoutingConfig: { AdditionalVersionWeights: {} },
  }));
}

export async function isComplete(event: IsCompleteEvent): Promise<IsCompleteResult> {
  const data = event.Data;
  if (!data) throw new Error('isComplete: the onEvent result (Data) is missing');
  if (data.Action === 'delete') return { IsComplete: true };
  const p = props(event);

  if (data.Action === 'wait') return rollbackWait(p, data);

  if (data.Action === 'deploy') {
    const outcome = await pollDeployment(p, data);
    if (outcome === 'waiting') return { IsComplete: false };
    await putAlias(lambda(), p.FunctionName, STABLE_ALIAS, p.TargetVersion);
    log('info', 'deployment succeeded; stable moved', { deploymentId: data.DeploymentId, stable: p.TargetVersion });
  }

  const pruned = await safePrune(p);
  return { IsComplete: true, Data: { Version: p.TargetVersion, PrunedVersions: pruned.join(',') } };
}

/**
 * One poll of a forward deployment: 'waiting', 'succeeded', or it throws (failed or stopped, once
 * CodeDeploy's rollback deployment has put `live` back).
 */
async function pollDeployment(p: AliasDeploymentProperties, data: OnEventResult['Data']): Promise<'waiting' | 'succeeded'> {
  const cd = codedeploy();
  const pastDeadline = Date.now() > Number(data.Deadline);
  let info: DeploymentInfo;
  try {
    info = await getDeployment(cd, data.DeploymentId);
  } catch (e) {
    // A throttled or timed-out poll is not a failed deployment: poll again at the next interval.
    if (isTransient(e)) {
      log('warn', 'polling the deployment failed; trying again at the next interval', { error: (e as Error).name });
      return 'waiting';
    }
    throw e;
  }
  const status = info.status as DeploymentStatus;
  if (IN_FLIGHT_STATUSES.includes(status)) {
    if (pastDeadline) {
      // Stop it and let CodeDeploy roll live back; the update fails only once live is back (a stack
      // rollback that found CodeDeploy's rollback deployment in flight used to end UPDATE_ROLLBACK_FAILED).
      try {
        await cd.send(new StopDeploymentCommand({ deploymentId: data.DeploymentId, autoRollbackEnabled: true }));
        log('warn', 'deadline passed: deployment stopped with auto rollback; waiting for CodeDeploy to put live back',
          { deploymentId: data.DeploymentId, maxDeploymentSeconds: p.MaxDeploymentSeconds });
      } catch (e) {
        log('warn', 'StopDeployment failed; trying again at the next interval', { error: (e as Error).message });
      }
      return 'waiting';
    }
    log('info', 'deployment in flight', { deploymentId: data.DeploymentId, status });
    return 'waiting';
  }
  if (FAILED_STATUSES.includes(status)) {
    // CodeDeploy restores `live` in a rollback deployment: wait for it (and for anything else in flight on
    // the group), so the stack rollback that follows finds `live` where it was and nothing in flight.
    try {
      const rollbackId = info.rollbackInfo?.rollbackDeploymentId;
      if (rollbackId) {
        const rb = await getDeployment(cd, rollbackId);
        if (IN_FLIGHT_STATUSES.includes(rb.status as DeploymentStatus)) {
          log('info', 'waiting for the CodeDeploy rollback deployment', { rollbackId, status: rb.status });
          return 'waiting';
        }
      }
      const others = await inFlightDeployments(cd, p);
      if (others.length > 0) {
        log('info', 'waiting for deployments in flight before failing', { inFlight: others.map((d) => d.deploymentId) });
        return 'waiting';
      }
    } catch (e) {
      if (isTransient(e)) return 'waiting';
      throw e;
    }
    const live = await getAlias(lambda(), p.FunctionName, LIVE_ALIAS).catch(() => undefined);
    const where = `live serves version ${live?.FunctionVersion ?? 'unknown'}, stable was not moved`;
    if (status === DeploymentStatus.STOPPED && pastDeadline) {
      throw new Error(
        `CodeDeploy deployment ${data.DeploymentId} did not finish within ${p.MaxDeploymentSeconds} s` +
        `${p.DeploymentConfigName ? ` plus the traffic shifting of ${p.DeploymentConfigName}` : ''}; ` +
        `it was stopped and CodeDeploy rolled live back; ${where}`,
      );
    }
    throw new Error(`${describeFailure(info)}; ${where}`);
  }
  if (status !== DeploymentStatus.SUCCEEDED) {
    throw new Error(`CodeDeploy deployment ${data.DeploymentId} is in an unexpected state: ${status}`);
  }
  return 'succeeded';
}

/**
 * isComplete of a rollback Update that found a deployment in flight (or a transient error): waits for
 * it, bounded; then restores. Never throws, except when restoring is impossible (said clearly).
 */
async function rollbackWait(p: AliasDeploymentProperties, data: OnEventResult['Data']): Promise<IsCompleteResult> {
  const failed = data.FailedVersion ?? '';
  const now = Date.now();
  const giveUp = now > Number(data.GiveUpAt ?? data.Deadline);
  try {
    const cd = codedeploy();
    const inFlight = await inFlightDeployments(cd, p);
    if (inFlight.length > 0) {
      if (giveUp) {
        log('error', 'stack rollback: a deployment is still in flight at the wait limit; live is left to it (CodeDeploy ' +
          'rolls it back if it fails) rather than failing the stack rollback', { inFlight: inFlight.map((d) => d.deploymentId) });
        return { IsComplete: true, Data: { Version: p.TargetVersion, PrunedVersions: '', Restored: 'left-in-flight' } };
      }
      if (now > Number(data.Deadline)) {
        for (const d of inFlight.filter((x) => x.creator !== DeploymentCreator.CodeDeployRollback)) {
          try {
            await cd.send(new StopDeploymentCommand({ deploymentId: d.deploymentId, autoRollbackEnabled: true }));
            log('warn', 'stack rollback: stopped a deployment still in flight (auto rollback)', { deploymentId: d.deploymentId });
          } catch (e) {
            log('warn', 'stack rollback: StopDeployment failed', { deploymentId: d.deploymentId, error: (e as Error).message });
          }
        }
      }
      log('info', 'stack rollback: waiting for deployments in flight', { inFlight: inFlight.map((d) => `${d.deploymentId} ${d.status}`) });
      return { IsComplete: false };
    }
    const restored = await restoreAfterFailedUpdate(lambda(), p, failed);
    const pruned = await safePrune(p);
    return { IsComplete: true, Data: { Version: p.TargetVersion, PrunedVersions: pruned.join(','), Restored: restored.action } };
  } catch (e) {
    if (e instanceof ImpossibleRestore) throw e;
    if (giveUp) {
      throw new Error(`stack rollback of ${p.FunctionName}:${LIVE_ALIAS} could not check or restore live within the wait limit: ` +
        `${(e as Error).name}: ${(e as Error).message}. Point live at the version to serve with \`cdk-rollback api rollback --to VERSION\`, ` +
        'then `aws cloudformation continue-update-rollback`');
    }
    log('warn', 'stack rollback: trying again at the next interval', { error: (e as Error).message, name: (e as Error).name });
    return { IsComplete: false };
  }
}

/**
 * The rollback Update's restore, with nothing in flight: only if `live` still serves (or routes to) the
 * failed version is it pointed straight back, at what served before the failed update began (the
 * record), else at the template's old version. Otherwise `live` stays: CodeDeploy already put it back,
 * or an operator chose it. `stable` leaves the failed version the same way. Never starts a deployment.
 */
async function restoreAfterFailedUpdate(client: LambdaClient, p: AliasDeploymentProperties, failed: string): Promise<{ action: Action; previous: string }> {
  const live = await getAlias(client, p.FunctionName, LIVE_ALIAS);
  const record = await readRecord(client, p);
  const matching = record?.target === failed ? record : undefined;
  if (!matching) log('info', 'stack rollback: no update record of the failed version', { failed, record });
  let action: Action = 'none';
  if (live) {
    const weights = live.RoutingConfig?.AdditionalVersionWeights ?? {};
    const servesFailed = live.FunctionVersion === failed || failed in weights;
    if (servesFailed) {
      const candidates = [...new Set([matching?.live, p.TargetVersion].filter((v): v is string => !!v && v !== failed))];
      let restored: string | undefined;
      const errors: string[] = [];
      for (const v of candidates) {
        try {
          await client.send(new UpdateAliasCommand({
            FunctionName: p.FunctionName, Name: LIVE_ALIAS, FunctionVersion: v, RoutingConfig: { AdditionalVersionWeights: {} },
          }));
          restored = v;
          break;
        } catch (e) {
          if ((e as Error).name !== 'ResourceNotFoundException') throw e;
          errors.push(`version ${v}: ${(e as Error).message}`);
        }
      }
      if (!restored) {
        throw new ImpossibleRestore(`stack rollback cannot point ${p.FunctionName}:${LIVE_ALIAS} back from the failed version ${failed}: ` +
          `no earlier version to restore exists (${errors.join('; ') || 'none recorded'}). Point live at a version with ` +
          '`cdk-rollback api rollback --to VERSION --force`, then `aws cloudformation continue-update-rollback`');
      }
      action = 'direct';
      log('info', `stack rollback: live pointed straight back from version ${failed} to ${restored}`, { from: 'record', record: matching });
    } else {
      log('info', `stack rollback: live serves version ${live.FunctionVersion}, not the failed version ${failed}: left as it is`);
    }
  }
  try {
    const stable = await getAlias(client, p.FunctionName, STABLE_ALIAS);
    if (stable?.FunctionVersion === failed) {
      const to = [matching?.stable, p.TargetVersion].find((v) => !!v && v !== failed)!;
      await client.send(new UpdateAliasCommand({ FunctionName: p.FunctionName, Name: STABLE_ALIAS, FunctionVersion: to }));
      log('info', `stack rollback: stable moved back from the rolled-back version ${failed} to ${to}`);
    }
  } catch (e) {
    log('error', 'stack rollback: could not move stable off the failed version', { error: (e as Error).message });
  }
  return { action, previous: live?.FunctionVersion ?? '' };
}

const TRANSIENT_ERRORS = ['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded', 'TimeoutError', 'ServiceUnavailable', 'InternalFailure'];

function isTransient(e: unknown): boolean {
  const err = e as { name?: string; $retryable?: unknown };
  return TRANSIENT_ERRORS.includes(err?.name ?? '') || Boolean(err?.$retryable);
}

function deploymentDescription(requestId: string): string {
  return `cdk-rollback ${requestId}`;
}

function oldTarget(event: CloudFormationCustomResourceEvent): string | undefined {
  if (event.RequestType !== 'Update') return undefined;
  return (event.OldResourceProperties as Partial<AliasDeploymentProperties> | undefined)?.TargetVersion;
}

/** What the event means: from the old and new properties and the stack status. */
async function classify(event: CloudFormationCustomResourceEvent, p: AliasDeploymentProperties): Promise<Intent> {
  if (event.RequestType === 'Create') return 'create';
  if (event.RequestType === 'Delete') return 'delete';
  const old = oldTarget(event);
  if (old === undefined || old === '') return 'forward';
  if (old === p.TargetVersion) return 'unchanged';
  const status = await stackStatus(event.StackId);
  if (status !== undefined) return status.endsWith('ROLLBACK_IN_PROGRESS') ? 'rollback' : 'forward';
  // Unknown status: published versions only grow, so an older target comes from the rollback's reversed properties.
  return Number(p.TargetVersion) < Number(old) ? 'rollback' : 'forward';
}

async function stackStatus(stackId: string): Promise<string | undefined> {
  try {
    const out = await new CloudFormationClient({}).send(new DescribeStacksCommand({ StackName: stackId }));
    return out.Stacks?.[0]?.StackStatus;
  } catch (e) {
    log('warn', 'could not read the stack status; deciding from the version order', { error: (e as Error).message, name: (e as Error).name });
    return undefined;
  }
}

/** Traffic shifting time of a config unknown at synth, read at run time (0 when known at synth). */
async function runtimeShiftSeconds(cd: CodeDeployClient, p: AliasDeploymentProperties): Promise<number> {
  if (!p.DeploymentConfigName) return 0;
  const limit = waitLimitMs(p) / 1000 - ROLLBACK_ROOM_SECONDS;
  let shift: number | undefined;
  try {
    const out = await cd.send(new GetDeploymentConfigCommand({ deploymentConfigName: p.DeploymentConfigName }));
    shift = shiftSeconds(out.deploymentConfigInfo?.trafficRoutingConfig);
  } catch (e) {
    log('warn', 'could not read the deployment config; assuming the longest deployment that fits', { error: (e as Error).message });
    return Math.max(0, limit - Number(p.MaxDeploymentSeconds));
  }
  if (shift === undefined) {
    log('warn', 'the deployment config has an unknown traffic routing; assuming the longest deployment that fits', { config: p.DeploymentConfigName });
    return Math.max(0, limit - Number(p.MaxDeploymentSeconds));
  }
  if (Number(p.MaxDeploymentSeconds) + shift > limit) {
    throw new Error(
      `\`deploymentConfig\` ${p.DeploymentConfigName} shifts traffic for ${Math.ceil(shift / 60)} min; with hooks and margins a deployment ` +
      `may take ${Math.ceil((Number(p.MaxDeploymentSeconds) + shift) / 60)} min, more than the ${Math.floor(limit / 60)} min the custom resource ` +
      'can wait (CloudFormation gives it 1 hour): no deployment was started. Choose a shorter deployment config',
    );
  }
  return shift;
}

/** The CLI's discovery tags and the alarmed version: housekeeping, so a failure is logged and the event carries on. */
async function housekeepingTags(client: LambdaClient, p: AliasDeploymentProperties): Promise<void> {
  try {
    const fn = await client.send(new GetFunctionCommand({ FunctionName: p.FunctionName }));
    const arn = fn.Configuration?.FunctionArn;
    if (!arn) throw new Error(`function ${p.FunctionName} not found`);
    const tags: Record<string, string> = {
      [TAG_MANAGED_BY]: MANAGED_BY_VALUE,
      [TAG_CONSTRUCT_PATH]: p.ConstructPath,
      [TAG_CODEDEPLOY_APPLICATION]: p.ApplicationName,
      [TAG_CODEDEPLOY_GROUP]: p.DeploymentGroupName,
      [TAG_ALARMED_VERSION]: p.TargetVersion,
    };
    if (p.BeforeAllowTrafficHook) tags[TAG_PRE_TRAFFIC_HOOK] = p.BeforeAllowTrafficHook;
    if (p.AfterAllowTrafficHook) tags[TAG_POST_TRAFFIC_HOOK] = p.AfterAllowTrafficHook;
    await client.send(new TagResourceCommand({ Resource: arn, Tags: tags }));
  } catch (e) {
    log('warn', 'tagging the function failed (housekeeping: the event carries on)', { error: (e as Error).message, name: (e as Error).name });
  }
}

async function writeRecord(client: LambdaClient, arn: string, record: UpdateRecord): Promise<void> {
  await client.send(new TagResourceCommand({ Resource: arn, Tags: { [TAG_UPDATE_RECORD]: formatRecord(record) } }));
  log('info', 'update recorded', { record });
}

/** The update record, or undefined (a failure to read it is logged: the caller falls back). */
async function readRecord(client: LambdaClient, p: AliasDeploymentProperties): Promise<UpdateRecord | undefined> {
  try {
    const fn = await client.send(new GetFunctionCommand({ FunctionName: p.FunctionName }));
    return parseRecord(fn.Tags?.[TAG_UPDATE_RECORD]);
  } catch (e) {
    log('warn', 'could not read the update record', { error: (e as Error).message });
    return undefined;
  }
}

async function putAlias(client: LambdaClient, functionName: string, name: string, version: string): Promise<void> {
  if (await getAlias(client, functionName, name)) {
    await client.send(new UpdateAliasCommand({ FunctionName: functionName, Name: name, FunctionVersion: version }));
  } else {
    await client.send(new CreateAliasCommand({ FunctionName: functionName, Name: name, FunctionVersion: version }));
  }
}

async function inFlightDeployments(cd: CodeDeployClient, p: AliasDeploymentProperties) {
  const ids = await inFlightDeploymentIds(cd, p.ApplicationName, p.DeploymentGroupName);
  // A deployment group runs one deployment at a time, so this is one or two calls.
  const infos = await Promise.all(ids.map((id) => getDeployment(cd, id)));
  return infos
    .filter((d) => IN_FLIGHT_STATUSES.includes(d.status as DeploymentStatus))
    .map((d) => ({ deploymentId: d.deploymentId!, description: d.description ?? '', creator: d.creator, status: d.status }));
}

/** A deployment of the group with this description among those of the last 2 hours (any status). */
async function findDeployment(cd: CodeDeployClient, p: AliasDeploymentProperties, description: string): Promise<string | undefined> {
  let nextToken: string | undefined;
  do {
    const out = await cd.send(new ListDeploymentsCommand({
      applicationName: p.ApplicationName,
      deploymentGroupName: p.DeploymentGroupName,
      createTimeRange: { start: new Date(Date.now() - 2 * 3600_000) },
      nextToken,
    }));
    for (const id of out.deployments ?? []) {
      if ((await getDeployment(cd, id)).description === description) return id;
    }
    nextToken = out.nextToken;
  } while (nextToken);
  return undefined;
}

/** Version pruning is housekeeping: any failure (its list calls, its in-flight check) is logged, never fails the event. */
async function safePrune(p: AliasDeploymentProperties): Promise<string[]> {
  try {
    return await pruneVersions(lambda(), codedeploy(), p);
  } catch (e) {
    log('warn', 'pruning versions failed (housekeeping: the event carries on)', { error: (e as Error).message, name: (e as Error).name });
    return [];
  }
}

/**
 * Deletes published versions beyond the newest `RetainVersions`, never one that any alias points at
 * (live, stable, weighted routing, the user's own aliases) or that the update record names (what a
 * stack rollback would restore), and not at all while a deployment is in flight (its versions may not
 * be on an alias yet). A version that cannot be deleted is logged and kept.
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
  const record = await readRecord(client, p);
  if (record) for (const v of [record.target, record.live, record.stable]) if (v) protectedVersions.add(v);

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
