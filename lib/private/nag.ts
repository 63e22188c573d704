import { CfnResource, Stack, Validations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as cr from 'aws-cdk-lib/custom-resources';
import { IConstruct } from 'constructs';

const BASIC_EXECUTION = 'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole';

function logicalId(c: IConstruct): string {
  return Stack.of(c).getLogicalId(c.node.defaultChild as CfnResource);
}

/** Acknowledges `AwsSolutions-IAM5` for `<Fn.Arn>:*` (a function and its versions) on `scope`. */
export function acknowledgeInvokeVersions(scope: IConstruct, fn: lambda.IFunction, reason: string): void {
  Validations.of(scope).acknowledge({ id: `AwsSolutions-IAM5[Resource::<${logicalId(fn)}.Arn>:*]`, reason });
}

/**
 * Acknowledges the cdk-nag findings inside the Provider framework, which its users cannot change:
 * the framework roles use AWSLambdaBasicExecutionRole and invoke the handlers and each other with
 * `<arn>:*`. Each acknowledgement is on the framework construct that has it.
 */
export function acknowledgeProviderFramework(provider: cr.Provider, handlers: lambda.IFunction[]): void {
  const reason = 'aws-cdk-lib Provider framework internals: the framework functions invoke the handlers (any version) and each other';
  const frameworkFns = ['framework-onEvent', 'framework-isComplete', 'framework-onTimeout']
    .map((id) => provider.node.tryFindChild(id))
    .filter((c): c is lambda.Function => c !== undefined);
  for (const fn of frameworkFns) {
    Validations.of(fn.role!).acknowledge({
      id: `AwsSolutions-IAM4[${BASIC_EXECUTION}]`,
      reason: 'aws-cdk-lib Provider framework functions write their logs through AWSLambdaBasicExecutionRole',
    });
    for (const target of [...handlers, ...frameworkFns]) acknowledgeInvokeVersions(fn.role!, target, reason);
  }
  const waiter = provider.node.tryFindChild('waiter-state-machine');
  if (waiter) {
    for (const target of frameworkFns) acknowledgeInvokeVersions(waiter, target, reason);
    Validations.of(waiter).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Step Functions log delivery (logs:CreateLogDelivery and friends) supports no resource-level permissions',
    });
    Validations.of(waiter).acknowledge({
      id: 'AwsSolutions-SF2',
      reason: 'The Provider framework waiter state machine only polls isComplete; its handler logs are the trace',
    });
  }
}
