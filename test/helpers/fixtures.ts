import { Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct, IConstruct } from 'constructs';

/** A small user function that is clean under cdk-nag (own role, own log group, latest runtime). */
export function userFunction(scope: Construct, id: string, props: Partial<lambda.FunctionProps> = {}): lambda.Function {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, { retention: logs.RetentionDays.ONE_WEEK });
  const role = new iam.Role(scope, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  logGroup.grantWrite(role);
  return new lambda.Function(scope, id, {
    runtime: lambda.Runtime.NODEJS_24_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler = async () => ({ statusCode: 200, body: "ok" });'),
    role,
    logGroup,
    ...props,
  });
}

/** What a user acknowledges for a public API without WAF (the test apps are public by design). */
export function acknowledgePublicApi(api: IConstruct): void {
  const reason = 'test app: a public API without authorizer or WAF, by design';
  for (const id of ['AwsSolutions-APIG3', 'AwsSolutions-APIG4', 'AwsSolutions-COG4']) {
    Validations.of(api).acknowledge({ id, reason });
  }
}
