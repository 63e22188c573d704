import * as path from 'path';
import { App, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { SafeLambdaApi } from '../lib';
import { addExampleDatabase } from './examples/database';
import { addExampleSite } from './examples/site';

/**
 * The example app: the release runbook as one stack (Aurora snapshot -> SQL migrations -> API traffic
 * shift -> site release). Env-agnostic, so `npx cdk synth` needs no AWS account.
 */
export class ExampleStack extends Stack {
  public readonly api: SafeLambdaApi;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    const logGroup = new logs.LogGroup(this, 'HandlerLogs', { retention: logs.RetentionDays.ONE_MONTH });
    const role = new iam.Role(this, 'HandlerRole', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    logGroup.grantWrite(role);
    const handler = new lambda.Function(this, 'Handler', {
      runtime: lambda.Runtime.NODEJS_24_X,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(path.join(__dirname, 'example-api')),
      role,
      logGroup,
      memorySize: 256,
    });

    this.api = new SafeLambdaApi(this, 'Api', {
      handler,
      smokeTest: { path: '/health' },
    });
    for (const id of ['AwsSolutions-APIG3', 'AwsSolutions-APIG4', 'AwsSolutions-COG4']) {
      Validations.of(this.api.api).acknowledge({ id, reason: 'The example API is public by design and has no WAF' });
    }

    // The runbook's order: snapshot -> migrations -> API traffic shift.
    const { migrations } = addExampleDatabase(this);
    this.api.node.addDependency(migrations);

    // ... -> site release, last: any earlier failure rolls the release back with the stack.
    addExampleSite(this).node.addDependency(this.api);
  }
}

export function buildExampleApp(app: App = new App()): App {
  new ExampleStack(app, 'CdkRollbackExample');
  return app;
}
