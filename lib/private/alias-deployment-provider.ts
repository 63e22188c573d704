import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { HandlerProvider } from './provider';

/**
 * How long the Provider framework waits for one deployment. CloudFormation gives a custom
 * resource one hour at most; the framework answers before that.
 */
export const PROVIDER_TOTAL_TIMEOUT = Duration.minutes(55);
/** ServiceTimeout of the custom resource: the framework's wait plus its own start-up; at most one hour. */
export const ALIAS_DEPLOYMENT_SERVICE_TIMEOUT = PROVIDER_TOTAL_TIMEOUT.plus(Duration.minutes(4));
/**
 * What a forward deployment's deadline must leave of the framework's wait: after a stop at the deadline,
 * the handler waits for CodeDeploy's rollback deployment before it fails the update (lambda/alias-deployment
 * ROLLBACK_ROOM_SECONDS).
 */
export const ROLLBACK_ROOM = Duration.minutes(5);

/** The stack's one alias-deployment provider. */
export function aliasDeploymentProvider(scope: Construct): HandlerProvider {
  const stack = Stack.of(scope);
  return HandlerProvider.of(scope, 'CdkRollbackAliasDeploymentProvider', {
    handler: 'alias-deployment',
    description: 'cdk-rollback: creates CodeDeploy deployments of Lambda aliases and waits for them',
    label: 'cdk-rollback alias deployment',
    queryInterval: Duration.seconds(20),
    totalTimeout: PROVIDER_TOTAL_TIMEOUT,
    handlerTimeout: Duration.minutes(2),
  }, (created) => {
    // Intent: the rollback Update (old properties) arrives while the stack is UPDATE_ROLLBACK_IN_PROGRESS.
    created.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['cloudformation:DescribeStacks'],
      resources: [stack.stackId],
    }));
  });
}
