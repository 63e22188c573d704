/**
 * Starting a CodeDeploy deployment that shifts a Lambda alias from the version it ACTUALLY
 * points at to a target version. Shared by the SafeLambdaApi deployment custom resource and
 * `cdk-rollback api promote`, so both create deployments the same way.
 *
 * No CDK imports: this module is bundled into a Lambda handler and compiled into the CLI.
 */
import {
  CodeDeployClient,
  CreateDeploymentCommand,
  DeploymentStatus,
  GetDeploymentCommand,
  ListDeploymentsCommand,
  type DeploymentInfo,
} from '@aws-sdk/client-codedeploy';

export interface AliasDeploymentRequest {
  readonly applicationName: string;
  readonly deploymentGroupName: string;
  readonly functionName: string;
  readonly aliasName: string;
  /** The version the alias points at now (read from the alias, never assumed). */
  readonly currentVersion: string;
  readonly targetVersion: string;
  /** Function name of the BeforeAllowTraffic hook. */
  readonly beforeAllowTrafficHook?: string;
  /** Function name of the AfterAllowTraffic hook. */
  readonly afterAllowTrafficHook?: string;
  readonly description?: string;
}

/** Deployment states in which a deployment still holds the alias. */
export const IN_FLIGHT_STATUSES: DeploymentStatus[] = [
  DeploymentStatus.CREATED,
  DeploymentStatus.QUEUED,
  DeploymentStatus.IN_PROGRESS,
  DeploymentStatus.BAKING,
  DeploymentStatus.READY,
];

/** Terminal deployment states that did not succeed. */
export const FAILED_STATUSES: DeploymentStatus[] = [DeploymentStatus.FAILED, DeploymentStatus.STOPPED];

/** The AppSpec (JSON) of a Lambda alias deployment. */
export function buildAppSpec(req: AliasDeploymentRequest): string {
  if (req.currentVersion === req.targetVersion) {
    throw new Error(`alias ${req.functionName}:${req.aliasName} already points at version ${req.targetVersion}: nothing to deploy`);
  }
  const hooks: Array<Record<string, string>> = [];
  if (req.beforeAllowTrafficHook) hooks.push({ BeforeAllowTraffic: req.beforeAllowTrafficHook });
  if (req.afterAllowTrafficHook) hooks.push({ AfterAllowTraffic: req.afterAllowTrafficHook });
  const spec = {
    version: 0.0,
    Resources: [{
      [req.functionName]: {
        Type: 'AWS::Lambda::Function',
        Properties: {
          Name: req.functionName,
          Alias: req.aliasName,
          CurrentVersion: req.currentVersion,
          TargetVersion: req.targetVersion,
        },
      },
    }],
    ...(hooks.length > 0 ? { Hooks: hooks } : {}),
  };
  return JSON.stringify(spec);
}

/** Creates the deployment and returns its id. */
export async function startAliasDeployment(client: CodeDeployClient, req: AliasDeploymentRequest): Promise<string> {
  const appSpec = buildAppSpec(req);
  const out = await client.send(new CreateDeploymentCommand({
    applicationName: req.applicationName,
    deploymentGroupName: req.deploymentGroupName,
    description: req.description,
    revision: {
      revisionType: 'AppSpecContent',
      appSpecContent: { content: appSpec },
    },
  }));
  if (!out.deploymentId) {
    throw new Error(`CodeDeploy returned no deployment id for ${req.applicationName}/${req.deploymentGroupName}`);
  }
  return out.deploymentId;
}

/** Reads a deployment; throws if CodeDeploy does not know it. */
export async function getDeployment(client: CodeDeployClient, deploymentId: string): Promise<DeploymentInfo> {
  const out = await client.send(new GetDeploymentCommand({ deploymentId }));
  if (!out.deploymentInfo) throw new Error(`CodeDeploy deployment ${deploymentId} not found`);
  return out.deploymentInfo;
}

/** One line that explains why a deployment failed or stopped. */
export function describeFailure(info: DeploymentInfo): string {
  const parts = [`CodeDeploy deployment ${info.deploymentId} ${info.status}`];
  if (info.errorInformation?.code || info.errorInformation?.message) {
    parts.push(`${info.errorInformation.code ?? ''} ${info.errorInformation.message ?? ''}`.trim());
  }
  if (info.rollbackInfo?.rollbackMessage) parts.push(`rollback: ${info.rollbackInfo.rollbackMessage}`);
  return parts.join(': ');
}

/** The ids of the deployments of a group that still hold the alias (all pages). */
export async function inFlightDeploymentIds(client: CodeDeployClient, applicationName: string, deploymentGroupName: string): Promise<string[]> {
  const ids: string[] = [];
  let nextToken: string | undefined;
  do {
    const out = await client.send(new ListDeploymentsCommand({
      applicationName, deploymentGroupName, includeOnlyStatuses: IN_FLIGHT_STATUSES, nextToken,
    }));
    ids.push(...(out.deployments ?? []));
    nextToken = out.nextToken;
  } while (nextToken);
  return ids;
}

export { getAlias } from '../shared/aliases';

/** The traffic routing of a Lambda deployment config, as GetDeploymentConfig returns it. */
export interface TrafficRouting {
  readonly type?: string;
  readonly timeBasedCanary?: { readonly canaryInterval?: number };
  readonly timeBasedLinear?: { readonly linearPercentage?: number; readonly linearInterval?: number };
}

/**
 * How long a deployment config takes to put all traffic on the new version, in seconds: the canary
 * interval, or (ceil(100 / p) - 1) linear intervals; 0 for all-at-once. Undefined when the routing
 * is not one CodeDeploy documents for Lambda.
 */
export function shiftSeconds(routing: TrafficRouting | undefined): number | undefined {
  if (!routing || routing.type === 'AllAtOnce') return 0;
  if (routing.type === 'TimeBasedCanary' && routing.timeBasedCanary?.canaryInterval !== undefined) {
    return routing.timeBasedCanary.canaryInterval * 60;
  }
  const l = routing.timeBasedLinear;
  if (routing.type === 'TimeBasedLinear' && l?.linearInterval !== undefined && l.linearPercentage) {
    return (Math.ceil(100 / l.linearPercentage) - 1) * l.linearInterval * 60;
  }
  return undefined;
}
