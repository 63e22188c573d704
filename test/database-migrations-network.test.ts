/**
 * DatabaseMigrations networking: the runner's default security group follows what its subnets can use, isolated
 * subnets without a Secrets Manager endpoint get a synth warning, and the runner is marked for the CLI.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, CfnResource, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as rds from 'aws-cdk-lib/aws-rds';
import { DatabaseMigrations, DatabaseMigrationsProps } from '../lib/database-migrations';

const WARNING_ID = 'cdk-rollback:migrations-no-secrets-manager-endpoint';

function folder(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mig-net-'));
  fs.writeFileSync(path.join(dir, '0001_users.sql'), 'CREATE TABLE users (id int);');
  return dir;
}

type Layout = 'isolated' | 'nat';

function setup(layout: Layout, over: Partial<DatabaseMigrationsProps> = {}, before?: (vpc: ec2.Vpc, stack: Stack) => void) {
  const app = new App();
  const stack = new Stack(app, 'App');
  const vpc = layout === 'isolated'
    ? new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] })
    : new ec2.Vpc(stack, 'Vpc', { natGateways: 1 });
  before?.(vpc, stack);
  const cluster = new rds.DatabaseCluster(stack, 'Db', {
    engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
    writer: rds.ClusterInstance.serverlessV2('Writer'),
    vpc,
    vpcSubnets: { subnetType: layout === 'isolated' ? ec2.SubnetType.PRIVATE_ISOLATED : ec2.SubnetType.PRIVATE_WITH_EGRESS },
  });
  const migrations = new DatabaseMigrations(stack, 'Migrations', { cluster, vpc, migrationsDir: folder(), ...over });
  return { app, stack, vpc, migrations };
}

const runnerGroup = (t: Template) => Object.values(t.findResources('AWS::EC2::SecurityGroup', {
  Properties: { GroupDescription: 'cdk-rollback migrations runner' },
}));

describe('the runner\'s default security group', () => {
  test('subnets that route to a NAT gateway (PRIVATE_WITH_EGRESS): HTTPS out to anywhere, through the NAT', () => {
    const { stack } = setup('nat');
    const [sg] = runnerGroup(Template.fromStack(stack));
    expect(sg.Properties.SecurityGroupEgress).toEqual([
      { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, CidrIp: '0.0.0.0/0', Description: 'AWS APIs (Secrets Manager) through the NAT gateway of the subnets' },
    ]);
  });

  test('isolated subnets: HTTPS out to the VPC CIDR only (interface endpoints)', () => {
    const { stack, vpc } = setup('isolated');
    const [sg] = runnerGroup(Template.fromStack(stack));
    expect(sg.Properties.SecurityGroupEgress).toEqual([
      { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, CidrIp: { 'Fn::GetAtt': [stack.getLogicalId(vpc.node.defaultChild as ec2.CfnVPC), 'CidrBlock'] }, Description: 'AWS APIs through VPC interface endpoints (Secrets Manager)' },
    ]);
  });

  test('isolated subnets chosen in a VPC that also has NAT subnets: the VPC CIDR only, and the warning', () => {
    const app = new App();
    const stack = new Stack(app, 'App');
    const vpc = new ec2.Vpc(stack, 'Vpc', {
      natGateways: 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC },
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      ],
    });
    const cluster = new rds.DatabaseCluster(stack, 'Db', {
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
      writer: rds.ClusterInstance.serverlessV2('Writer'), vpc, vpcSubnets: { subnetGroupName: 'data' },
    });
    new DatabaseMigrations(stack, 'Migrations', { cluster, vpc, migrationsDir: folder(), vpcSubnets: { subnetGroupName: 'data' } });
    const [sg] = runnerGroup(Template.fromStack(stack));
    expect(sg.Properties.SecurityGroupEgress[0].CidrIp).toEqual({ 'Fn::GetAtt': [stack.getLogicalId(vpc.node.defaultChild as ec2.CfnVPC), 'CidrBlock'] });
    Annotations.fromStack(stack).hasWarning('/App/Migrations', Match.stringLikeRegexp(WARNING_ID));
  });
});

describe('the synth warning about Secrets Manager', () => {
  test('isolated subnets without a Secrets Manager endpoint: a warning with its id that names the fix', () => {
    const { stack } = setup('isolated');
    Annotations.fromStack(stack).hasWarning('/App/Migrations', Match.stringLikeRegexp(
      'isolated subnets \\(no NAT gateway\\) and this app defines no Secrets Manager interface endpoint.*InterfaceVpcEndpointAwsService.SECRETS_MANAGER.*PRIVATE_WITH_EGRESS.*\\[ack: cdk-rollback:migrations-no-secrets-manager-endpoint\\]'));
  });

  test('isolated subnets with a Secrets Manager endpoint (added even after the construct): no warning', () => {
    const { stack, vpc } = setup('isolated');
    vpc.addInterfaceEndpoint('SecretsManager', { service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER });
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp(WARNING_ID));
  });

  test('an endpoint of another service, or without private DNS, does not count', () => {
    const { stack } = setup('isolated', {}, (vpc) => {
      vpc.addInterfaceEndpoint('Ssm', { service: ec2.InterfaceVpcEndpointAwsService.SSM });
      vpc.addInterfaceEndpoint('SecretsNoDns', { service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER, privateDnsEnabled: false });
    });
    Annotations.fromStack(stack).hasWarning('/App/Migrations', Match.stringLikeRegexp(WARNING_ID));
  });

  test('NAT subnets need no endpoint: no warning', () => {
    const { stack } = setup('nat');
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp(WARNING_ID));
  });
});

describe('the runner for operators', () => {
  test('is marked for the CLI (role runner) and its entry serves both CloudFormation and operator requests', () => {
    const { stack } = setup('nat');
    Template.fromStack(stack).hasResource('AWS::Lambda::Function', {
      Metadata: { 'cdk-rollback': { version: 1, kind: 'DatabaseMigrations', role: 'runner', path: 'App/Migrations' } },
      Properties: Match.objectLike({ Handler: 'index.handler' }),
    });
  });

  test('grantInvokeRunner allows lambda:InvokeFunction on the runner and nothing else', () => {
    const { stack, migrations } = setup('nat');
    const role = new iam.Role(stack, 'Operator', { assumedBy: new iam.AccountRootPrincipal() });
    migrations.grantInvokeRunner(role);
    const policies = Template.fromStack(stack).findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: Match.stringLikeRegexp('^Operator') }] } });
    const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
    const runner = stack.getLogicalId(migrations.runner.node.defaultChild as CfnResource);
    expect(statements).toEqual([{
      Action: 'lambda:InvokeFunction', Effect: 'Allow',
      Resource: [{ 'Fn::GetAtt': [runner, 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': [runner, 'Arn'] }, ':*']] }],
    }]);
  });
});
