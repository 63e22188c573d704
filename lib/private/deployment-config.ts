import { Duration, Token } from 'aws-cdk-lib';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import { Construct } from 'constructs';

export interface DeploymentConfigInfo {
  readonly name: string;
  /** How long the new version runs on part of the traffic before it takes all of it. */
  readonly bake: Duration;
  /** How long traffic shifting takes in all. */
  readonly total: Duration;
}

function canary(name: string, minutes: number): DeploymentConfigInfo {
  return { name, bake: Duration.minutes(minutes), total: Duration.minutes(minutes) };
}

function linear(name: string, percent: number, minutes: number): DeploymentConfigInfo {
  // p% at once, then p% more every `minutes`: all traffic after ceil(100/p) - 1 intervals.
  const steps = Math.ceil(100 / percent) - 1;
  return { name, bake: Duration.minutes(steps * minutes), total: Duration.minutes(steps * minutes) };
}

/**
 * What a Lambda deployment config does with traffic, when it can be known at synth: the
 * predefined `CodeDeployDefault.Lambda*` configs (by name) and configs defined in this app (by
 * their traffic routing). Undefined for configs imported by a name that says nothing.
 */
export function describeDeploymentConfig(config: codedeploy.ILambdaDeploymentConfig): DeploymentConfigInfo | undefined {
  const name = config.deploymentConfigName;
  if (!Token.isUnresolved(name)) {
    const c = /^CodeDeployDefault\.LambdaCanary(\d+)Percent(\d+)Minutes?$/.exec(name);
    if (c) return canary(name, Number(c[2]));
    const l = /^CodeDeployDefault\.LambdaLinear(\d+)PercentEvery(\d+)Minutes?$/.exec(name);
    if (l) return linear(name, Number(l[1]), Number(l[2]));
    if (name === 'CodeDeployDefault.LambdaAllAtOnce') return { name, bake: Duration.seconds(0), total: Duration.seconds(0) };
  }
  const cfn = config instanceof Construct ? config.node.defaultChild : undefined;
  if (cfn instanceof codedeploy.CfnDeploymentConfig) {
    const routing = cfn.trafficRoutingConfig as codedeploy.CfnDeploymentConfig.TrafficRoutingConfigProperty | undefined;
    const label = cfn.deploymentConfigName ?? config.node.path;
    const c = routing?.timeBasedCanary as codedeploy.CfnDeploymentConfig.TimeBasedCanaryProperty | undefined;
    if (c && !Token.isUnresolved(c.canaryInterval)) return canary(label, c.canaryInterval);
    const l = routing?.timeBasedLinear as codedeploy.CfnDeploymentConfig.TimeBasedLinearProperty | undefined;
    if (l && !Token.isUnresolved(l.linearInterval)) return linear(label, l.linearPercentage, l.linearInterval);
    if (routing?.type === 'AllAtOnce') return { name: label, bake: Duration.seconds(0), total: Duration.seconds(0) };
  }
  return undefined;
}
