import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { handlerCode } from './handler-code';
import { acknowledgeProviderFramework } from './nag';

const PROVIDER_ID = 'CdkRollbackAliasDeploymentProvider';

/**
 * How long the Provider framework waits for one deployment. CloudFormation gives a custom
 * resource one hour at most; the framework answers before that.
 */
export const PROVIDER_TOTAL_TIMEOUT = Duration.minutes(55);

export interface AliasDeploymentProvider {
  readonly serviceToken: string;
  /** The role of the onEvent and isComplete handlers (each SafeLambdaApi adds its scoped statements). */
  readonly role: iam.IRole;
}

class ProviderConstruct extends Construct implements AliasDeploymentProvider {
  public readonly serviceToken: string;
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.role = new iam.Role(this, 'HandlerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'cdk-rollback: creates CodeDeploy deployments of Lambda aliases and waits for them',
    });
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.ONE_MONTH });
    logGroup.grantWrite(this.role);
    const fn = (name: string, handler: string) => new lambda.Function(this, name, {
      runtime: lambda.Runtime.NODEJS_24_X,
      code: handlerCode('alias-deployment'),
      handler,
      role: this.role,
      timeout: Duration.minutes(2),
      memorySize: 256,
      logGroup,
      description: `cdk-rollback alias deployment: ${handler}`,
    });
    const onEvent = fn('OnEvent', 'index.onEvent');
    const isComplete = fn('IsComplete', 'index.isComplete');
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      queryInterval: Duration.seconds(20),
      totalTimeout: PROVIDER_TOTAL_TIMEOUT,
      logGroup: new logs.LogGroup(this, 'ProviderLogs', { retention: logs.RetentionDays.ONE_MONTH }),
      disableWaiterStateMachineLogging: false,
      waiterStateMachineLogOptions: {
        destination: new logs.LogGroup(this, 'WaiterLogs', { retention: logs.RetentionDays.ONE_MONTH }),
        level: sfn.LogLevel.ALL,
      },
    });
    this.serviceToken = provider.serviceToken;
    acknowledgeProviderFramework(provider, [onEvent, isComplete]);
  }
}

/** The stack's one alias-deployment provider. */
export function aliasDeploymentProvider(scope: Construct): AliasDeploymentProvider {
  const stack = Stack.of(scope);
  return (stack.node.tryFindChild(PROVIDER_ID) as ProviderConstruct | undefined) ?? new ProviderConstruct(stack, PROVIDER_ID);
}
