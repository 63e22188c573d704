/**
 * An in-memory CodeDeploy for Lambda deployments, faithful to the API shapes the handlers and the CLI use
 * (JSON 1.1 protocol, `CodeDeploy_20141006.*` targets), served by the lifecycle gateway on loopback.
 *
 * A deployment runs on the simulated clock (see clock.ts):
 *
 *   Created --2 s--> InProgress (BeforeAllowTraffic hook, 30 s) --> traffic shift starts: `live` routes 10 % to
 *   the target (canary) --bake 300 s--> `live` on the target --AfterAllowTraffic 30 s--> Succeeded
 *
 * with a scripted outcome per deployment (`nextOutcome` / `outcomeFor`):
 * - `succeed`;
 * - `hook`: the BeforeAllowTraffic hook fails (no traffic moved);
 * - `alarm`: an alarm fires 60 s into the canary;
 * - `hang`: the shift never finishes (InProgress with 10 % routed, until someone stops it).
 *
 * A failed deployment, and a stopped one with `autoRollbackEnabled`, gets an automatic rollback deployment
 * (creator `autoRollback`, `rollbackInfo` on both) that puts `live` back on the AppSpec's CurrentVersion
 * 30 s later. A deployment whose CurrentVersion is not what `live` serves when its shift starts fails
 * (as CodeDeploy does). One deployment per group at a time (DeploymentLimitExceededException).
 *
 * Alias changes are written to moto's Lambda (the `lambda` client passed in, pointed straight at moto).
 */
import { GetAliasCommand, LambdaClient, UpdateAliasCommand } from '@aws-sdk/client-lambda';

export type DeploymentOutcome = 'succeed' | 'hook' | 'alarm' | 'hang';
export type DeploymentState = 'Created' | 'Queued' | 'InProgress' | 'Baking' | 'Ready' | 'Succeeded' | 'Failed' | 'Stopped';
const IN_FLIGHT: DeploymentState[] = ['Created', 'Queued', 'InProgress', 'Baking', 'Ready'];

export interface Timeline {
  startSeconds: number;
  hookSeconds: number;
  alarmAfterSeconds: number;
  /** Canary interval of the group's deployment config (CodeDeployDefault.LambdaCanary10Percent5Minutes: 300). */
  bakeSeconds: number;
  rollbackSeconds: number;
}

export const DEFAULT_TIMELINE: Readonly<Timeline> = {
  startSeconds: 2,
  hookSeconds: 30,
  alarmAfterSeconds: 60,
  bakeSeconds: 300,
  rollbackSeconds: 30,
};

export interface AppSpecTarget {
  readonly functionName: string;
  readonly alias: string;
  readonly currentVersion: string;
  readonly targetVersion: string;
  readonly beforeHook?: string;
  readonly afterHook?: string;
}

export interface Deployment {
  readonly id: string;
  readonly applicationName: string;
  readonly deploymentGroupName: string;
  readonly description?: string;
  readonly creator: 'user' | 'autoRollback';
  readonly spec: AppSpecTarget;
  readonly outcome: DeploymentOutcome;
  readonly createdAt: number;
  status: DeploymentState;
  completedAt?: number;
  errorInformation?: { code: string; message: string };
  rollbackInfo?: { rollbackDeploymentId?: string; rollbackTriggeringDeploymentId?: string; rollbackMessage?: string };
  /** Simulated time of the next transition. */
  nextAt: number;
  phase: 'created' | 'hook' | 'shifting' | 'post-hook' | 'rollback' | 'done';
}

interface Group { applicationName: string; deploymentGroupName: string; deploymentConfigName: string }

export class CodeDeployError extends Error {
  constructor(readonly type: string, message: string) { super(message); }
}

export class InMemoryCodeDeploy {
  readonly deployments = new Map<string, Deployment>();
  readonly groups = new Map<string, Group>();
  /** Every API call: target name and input (for assertions such as "never started twice"). */
  readonly calls: { operation: string; input: Record<string, unknown> }[] = [];
  /** Outcomes for the next deployments created (first in, first out); `outcomeFor` decides when empty. */
  readonly nextOutcomes: DeploymentOutcome[] = [];
  outcomeFor: (spec: AppSpecTarget, description: string | undefined) => DeploymentOutcome = () => 'succeed';
  /** Page size of ListDeployments (small, so callers must paginate). */
  pageSize = 2;
  /** Durations of the phases (simulated seconds). */
  timeline: Timeline = { ...DEFAULT_TIMELINE };
  private counter = 0;
  private settling: Promise<void> = Promise.resolve();

  constructor(private readonly lambda: LambdaClient, private readonly now: () => number) {}

  addGroup(applicationName: string, deploymentGroupName: string, deploymentConfigName = 'CodeDeployDefault.LambdaCanary10Percent5Minutes'): void {
    this.groups.set(`${applicationName}/${deploymentGroupName}`, { applicationName, deploymentGroupName, deploymentConfigName });
  }

  inFlight(): Deployment[] {
    return [...this.deployments.values()].filter((d) => IN_FLIGHT.includes(d.status));
  }

  /** Targets of the user deployments that succeeded. */
  succeededTargets(): string[] {
    return [...this.deployments.values()].filter((d) => d.creator === 'user' && d.status === 'Succeeded').map((d) => d.spec.targetVersion);
  }

  /** Applies every transition due by now (serialised: concurrent callers wait for one pass). */
  settle(): Promise<void> {
    const run = this.settling.then(() => this.settleOnce());
    this.settling = run.catch(() => undefined);
    return run;
  }

  private async settleOnce(): Promise<void> {
    for (;;) {
      const due = [...this.deployments.values()]
        .filter((d) => d.phase !== 'done' && d.nextAt <= this.now())
        .sort((a, b) => a.nextAt - b.nextAt)[0];
      if (!due) return;
      await this.step(due);
    }
  }

  private async alias(spec: AppSpecTarget) {
    return this.lambda.send(new GetAliasCommand({ FunctionName: spec.functionName, Name: spec.alias }));
  }

  private async point(spec: AppSpecTarget, version: string, weights: Record<string, number> = {}): Promise<void> {
    await this.lambda.send(new UpdateAliasCommand({
      FunctionName: spec.functionName, Name: spec.alias, FunctionVersion: version, RoutingConfig: { AdditionalVersionWeights: weights },
    }));
  }

  private async step(d: Deployment): Promise<void> {
    const at = d.nextAt;
    switch (d.phase) {
      case 'created':
        d.status = 'InProgress';
        if (d.creator === 'autoRollback') {
          d.phase = 'rollback';
          d.nextAt = at + this.timeline.rollbackSeconds * 1000;
        } else {
          d.phase = 'hook';
          d.nextAt = at + this.timeline.hookSeconds * 1000;
        }
        return;
      case 'hook': {
        if (d.outcome === 'hook') return this.fail(d, at, 'HOOK_EXECUTION_FAILURE', `BeforeAllowTraffic hook ${d.spec.beforeHook ?? '(none)'} reported Failed`);
        const live = await this.alias(d.spec);
        const weights = live.RoutingConfig?.AdditionalVersionWeights ?? {};
        if (live.FunctionVersion !== d.spec.currentVersion || Object.keys(weights).length > 0) {
          // Validation before any traffic moved: nothing to roll back.
          return this.fail(d, at, 'INVALID_REVISION',
            `alias ${d.spec.alias} points at version ${live.FunctionVersion} (weights ${JSON.stringify(weights)}), not the AppSpec's CurrentVersion ${d.spec.currentVersion}`,
            'Failed', false);
        }
        await this.point(d.spec, d.spec.currentVersion, { [d.spec.targetVersion]: 0.1 });
        d.phase = 'shifting';
        d.nextAt = d.outcome === 'alarm' ? at + this.timeline.alarmAfterSeconds * 1000
          : d.outcome === 'hang' ? Number.POSITIVE_INFINITY
            : at + this.timeline.bakeSeconds * 1000;
        return;
      }
      case 'shifting':
        if (d.outcome === 'alarm') return this.fail(d, at, 'ALARM_ACTIVE', 'One or more alarms have been activated: ErrorRateAlarm');
        await this.point(d.spec, d.spec.targetVersion);
        d.phase = 'post-hook';
        d.nextAt = at + this.timeline.hookSeconds * 1000;
        return;
      case 'post-hook':
        d.status = 'Succeeded';
        d.phase = 'done';
        d.completedAt = at;
        return;
      case 'rollback':
        await this.point(d.spec, d.spec.targetVersion);
        d.status = 'Succeeded';
        d.phase = 'done';
        d.completedAt = at;
        return;
      default:
        return;
    }
  }

  /** Ends `d` as Failed/Stopped and starts the automatic rollback deployment. */
  private fail(d: Deployment, at: number, code: string, message: string, status: DeploymentState = 'Failed', rollback = true): void {
    d.status = status;
    d.phase = 'done';
    d.completedAt = at;
    d.errorInformation = { code, message };
    if (!rollback) return;
    const rb = this.create({
      applicationName: d.applicationName,
      deploymentGroupName: d.deploymentGroupName,
      creator: 'autoRollback',
      description: `Automatic rollback of ${d.id}`,
      // The rollback deployment puts the alias back on the version it came from.
      spec: { ...d.spec, currentVersion: d.spec.targetVersion, targetVersion: d.spec.currentVersion },
      outcome: 'succeed',
      at,
    });
    rb.rollbackInfo = { rollbackTriggeringDeploymentId: d.id };
    d.rollbackInfo = { rollbackDeploymentId: rb.id, rollbackMessage: `Deployment ${d.id} ${status.toLowerCase()}; rolled back by ${rb.id}` };
  }

  private create(o: { applicationName: string; deploymentGroupName: string; creator: 'user' | 'autoRollback'; description?: string; spec: AppSpecTarget; outcome: DeploymentOutcome; at: number }): Deployment {
    const id = `d-${String(++this.counter).padStart(9, '0')}`;
    const d: Deployment = {
      id, applicationName: o.applicationName, deploymentGroupName: o.deploymentGroupName, description: o.description,
      creator: o.creator, spec: o.spec, outcome: o.outcome, createdAt: o.at, status: 'Created',
      phase: 'created', nextAt: o.at + this.timeline.startSeconds * 1000,
    };
    this.deployments.set(id, d);
    return d;
  }

  private info(d: Deployment): Record<string, unknown> {
    const g = this.groups.get(`${d.applicationName}/${d.deploymentGroupName}`);
    return {
      applicationName: d.applicationName,
      deploymentGroupName: d.deploymentGroupName,
      deploymentConfigName: g?.deploymentConfigName,
      deploymentId: d.id,
      status: d.status,
      description: d.description,
      creator: d.creator,
      computePlatform: 'Lambda',
      createTime: d.createdAt / 1000,
      ...(d.completedAt !== undefined ? { completeTime: d.completedAt / 1000 } : {}),
      ...(d.errorInformation ? { errorInformation: d.errorInformation } : {}),
      ...(d.rollbackInfo ? { rollbackInfo: d.rollbackInfo } : {}),
      deploymentOverview: {
        Pending: d.status === 'Created' ? 1 : 0, InProgress: d.status === 'InProgress' ? 1 : 0,
        Succeeded: d.status === 'Succeeded' ? 1 : 0, Failed: d.status === 'Failed' ? 1 : 0, Skipped: 0, Ready: 0,
      },
    };
  }

  private get(id: unknown): Deployment {
    const d = this.deployments.get(String(id));
    if (!d) throw new CodeDeployError('DeploymentDoesNotExistException', `The deployment ${String(id)} could not be found`);
    return d;
  }

  private group(applicationName: unknown, deploymentGroupName: unknown): Group {
    const g = this.groups.get(`${String(applicationName)}/${String(deploymentGroupName)}`);
    if (!g) throw new CodeDeployError('DeploymentGroupDoesNotExistException', `No deployment group ${String(deploymentGroupName)} in application ${String(applicationName)}`);
    return g;
  }

  /** One API call (after `settle()`); throws CodeDeployError for API errors. */
  handle(operation: string, input: Record<string, unknown>): Record<string, unknown> {
    this.calls.push({ operation, input });
    switch (operation) {
      case 'CreateApplication':
        return { applicationId: `app-${String(input.applicationName)}` };
      case 'CreateDeploymentGroup':
        this.addGroup(String(input.applicationName), String(input.deploymentGroupName), String(input.deploymentConfigName ?? 'CodeDeployDefault.LambdaAllAtOnce'));
        return { deploymentGroupId: `dg-${String(input.deploymentGroupName)}` };
      case 'GetDeploymentGroup': {
        const g = this.group(input.applicationName, input.deploymentGroupName);
        return { deploymentGroupInfo: {
          applicationName: g.applicationName, deploymentGroupName: g.deploymentGroupName, deploymentConfigName: g.deploymentConfigName,
          computePlatform: 'Lambda', autoRollbackConfiguration: { enabled: true, events: ['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_ALARM'] },
        } };
      }
      case 'GetDeploymentConfig': {
        const name = String(input.deploymentConfigName);
        const canary = /Canary10Percent(\d+)Minutes/.exec(name);
        const linear = /Linear10PercentEvery(\d+)Minutes?/.exec(name);
        const trafficRoutingConfig = canary ? { type: 'TimeBasedCanary', timeBasedCanary: { canaryPercentage: 10, canaryInterval: Number(canary[1]) } }
          : linear ? { type: 'TimeBasedLinear', timeBasedLinear: { linearPercentage: 10, linearInterval: Number(linear[1]) } }
            : { type: 'AllAtOnce' };
        return { deploymentConfigInfo: { deploymentConfigName: name, computePlatform: 'Lambda', trafficRoutingConfig } };
      }
      case 'CreateDeployment': {
        const g = this.group(input.applicationName, input.deploymentGroupName);
        const busy = this.inFlight().filter((d) => d.applicationName === g.applicationName && d.deploymentGroupName === g.deploymentGroupName);
        if (busy.length > 0) {
          throw new CodeDeployError('DeploymentLimitExceededException', `The Deployment Group '${g.deploymentGroupName}' already has an active Deployment '${busy[0].id}'`);
        }
        const spec = parseAppSpec(input);
        const description = input.description === undefined ? undefined : String(input.description);
        const outcome = this.nextOutcomes.shift() ?? this.outcomeFor(spec, description);
        const d = this.create({ applicationName: g.applicationName, deploymentGroupName: g.deploymentGroupName, creator: 'user', description, spec, outcome, at: this.now() });
        return { deploymentId: d.id };
      }
      case 'GetDeployment':
        return { deploymentInfo: this.info(this.get(input.deploymentId)) };
      case 'BatchGetDeployments':
        return { deploymentsInfo: ((input.deploymentIds as string[]) ?? []).map((id) => this.info(this.get(id))) };
      case 'ListDeployments': {
        const statuses = input.includeOnlyStatuses as string[] | undefined;
        const all = [...this.deployments.values()]
          .filter((d) => (input.applicationName === undefined || d.applicationName === input.applicationName)
            && (input.deploymentGroupName === undefined || d.deploymentGroupName === input.deploymentGroupName)
            && (!statuses || statuses.includes(d.status)))
          .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1))
          .map((d) => d.id);
        const start = input.nextToken ? Number(String(input.nextToken).replace('page-', '')) : 0;
        const page = all.slice(start, start + this.pageSize);
        return { deployments: page, ...(start + this.pageSize < all.length ? { nextToken: `page-${start + this.pageSize}` } : {}) };
      }
      case 'StopDeployment': {
        const d = this.get(input.deploymentId);
        if (!IN_FLIGHT.includes(d.status)) {
          throw new CodeDeployError('DeploymentAlreadyCompletedException', `The deployment ${d.id} has already completed (${d.status})`);
        }
        const rollback = input.autoRollbackEnabled !== false;
        this.fail(d, this.now(), 'DEPLOYMENT_STOPPED', 'The deployment was stopped by a user', 'Stopped', rollback);
        return { status: 'Pending', statusMessage: rollback ? 'Stop requested; rolling back' : 'Stop requested' };
      }
      default:
        throw new CodeDeployError('UnknownOperationException', `the in-memory CodeDeploy does not implement ${operation}`);
    }
  }
}

function parseAppSpec(input: Record<string, unknown>): AppSpecTarget {
  const revision = input.revision as { revisionType?: string; appSpecContent?: { content?: string } } | undefined;
  if (revision?.revisionType !== 'AppSpecContent' || !revision.appSpecContent?.content) {
    throw new CodeDeployError('InvalidRevisionException', 'a Lambda deployment needs an AppSpecContent revision');
  }
  const spec = JSON.parse(revision.appSpecContent.content) as {
    Resources?: Array<Record<string, { Type?: string; Properties?: Record<string, string> }>>;
    Hooks?: Array<Record<string, string>>;
  };
  const resource = Object.values(spec.Resources?.[0] ?? {})[0];
  const p = resource?.Properties ?? {};
  if (resource?.Type !== 'AWS::Lambda::Function' || !p.Name || !p.Alias || !p.CurrentVersion || !p.TargetVersion) {
    throw new CodeDeployError('InvalidRevisionException', `AppSpec needs an AWS::Lambda::Function with Name, Alias, CurrentVersion, TargetVersion: ${revision.appSpecContent.content}`);
  }
  if (p.CurrentVersion === p.TargetVersion) {
    throw new CodeDeployError('InvalidRevisionException', `AppSpec CurrentVersion and TargetVersion are both ${p.TargetVersion}`);
  }
  const hook = (name: string) => spec.Hooks?.find((h) => h[name])?.[name];
  return {
    functionName: p.Name, alias: p.Alias, currentVersion: String(p.CurrentVersion), targetVersion: String(p.TargetVersion),
    beforeHook: hook('BeforeAllowTraffic'), afterHook: hook('AfterAllowTraffic'),
  };
}
