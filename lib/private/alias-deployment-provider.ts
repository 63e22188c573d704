import { Duration } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { HandlerProvider } from './provider';

/**
 * How long the Provider framework waits for one deployment. CloudFormation gives a custom
 * resource one hour at most; the framework answers before that.
 */
export const PROVIDER_TOTAL_TIMEOUT = Duration.minutes(55);

/** The stack's one alias-deployment provider. */
export function aliasDeploymentProvider(scope: Construct): HandlerProvider {
  return HandlerProvider.of(scope, 'CdkRollbackAliasDeploymentProvider', {
    handler: 'alias-deployment',
    description: 'cdk-rollback: creates CodeDeploy deployments of Lambda aliases and waits for them',
    label: 'cdk-rollback alias deployment',
    queryInterval: Duration.seconds(20),
    totalTimeout: PROVIDER_TOTAL_TIMEOUT,
    handlerTimeout: Duration.minutes(2),
  });
}
