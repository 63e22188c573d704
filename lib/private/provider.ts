import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { handlerCode } from './handler-code';
import { acknowledgeProviderFramework } from './nag';

export interface HandlerProviderOptions {
  /** Prebundled handler (lambda/<name>/index.ts) exporting `onEvent` and `isComplete`. */
  readonly handler: string;
  /** What the handler role is for (IAM role description). */
  readonly description: string;
  /** Short name in the handler functions' descriptions (`<label>: index.onEvent`). */
  readonly label: string;
  readonly queryInterval: Duration;
  readonly totalTimeout: Duration;
  /** @default Duration.minutes(1) */
  readonly handlerTimeout?: Duration;
}

/**
 * A Provider framework custom resource provider (onEvent + isComplete) for one prebundled handler:
 * one role shared by both handler functions (each construct adds its own scoped statements), log
 * groups with retention, a logged waiter state machine, and the framework's cdk-nag findings
 * acknowledged where they arise.
 */
export class HandlerProvider extends Construct {
  /**
   * The stack's one provider with this id: `stack.node.tryFindChild(id) ?? new HandlerProvider(...)`.
   * `onCreate` runs once, when the provider is created (for statements every user of it needs).
   */
  public static of(scope: Construct, id: string, options: HandlerProviderOptions, onCreate?: (p: HandlerProvider) => void): HandlerProvider {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(id) as HandlerProvider | undefined;
    if (existing) return existing;
    const created = new HandlerProvider(stack, id, options);
    onCreate?.(created);
    return created;
  }

  public readonly serviceToken: string;
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string, options: HandlerProviderOptions) {
    super(scope, id);
    this.role = new iam.Role(this, 'HandlerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: options.description,
    });
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.ONE_MONTH });
    logGroup.grantWrite(this.role);
    const fn = (name: string, handler: string) => new lambda.Function(this, name, {
      runtime: lambda.Runtime.NODEJS_24_X,
      code: handlerCode(options.handler),
      handler,
      role: this.role,
      timeout: options.handlerTimeout ?? Duration.minutes(1),
      memorySize: 256,
      logGroup,
      description: `${options.label}: ${handler}`,
    });
    const onEvent = fn('OnEvent', 'index.onEvent');
    const isComplete = fn('IsComplete', 'index.isComplete');
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      queryInterval: options.queryInterval,
      totalTimeout: options.totalTimeout,
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
