import { App, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
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

/** Stack `App` with a VPC `Vpc` (one NAT gateway) and an Aurora PostgreSQL 16.4 cluster `Db` (a Serverless v2 writer) in it. */
export function clusterStack(): { stack: Stack; vpc: ec2.Vpc; cluster: rds.DatabaseCluster } {
  const app = new App();
  const stack = new Stack(app, 'App');
  const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 1 });
  const cluster = new rds.DatabaseCluster(stack, 'Db', {
    engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
    writer: rds.ClusterInstance.serverlessV2('Writer'), vpc,
  });
  return { stack, vpc, cluster };
}
