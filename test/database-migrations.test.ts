import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Duration, Stack, Stage } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { DatabaseMigrations, DatabaseMigrationsProps } from '../lib/database-migrations';
import { clusterStack } from './helpers/fixtures';

function folder(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mig-'));
  for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
  return dir;
}

const GOOD = {
  '0001_users.sql': 'CREATE TABLE users (id int);',
  '0001_users.down.sql': 'DROP TABLE users;',
  '0002_emails.sql': 'ALTER TABLE users ADD COLUMN email text;',
};

function setup(over: Partial<DatabaseMigrationsProps> = {}, files: Record<string, string> = GOOD) {
  const app = new App();
  const stack = new Stack(app, 'App');
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    natGateways: 0, subnetConfiguration: [{ name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
  });
  const cluster = new rds.DatabaseCluster(stack, 'Db', {
    engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
    writer: rds.ClusterInstance.serverlessV2('Writer'),
    vpc,
    vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
  });
  const migrations = new DatabaseMigrations(stack, 'Migrations', { cluster, vpc, migrationsDir: folder(files), ...over });
  return { app, stack, vpc, cluster, migrations, template: () => Template.fromStack(stack) };
}

function logicalIds(t: Template, type: string): string[] {
  return Object.keys(t.findResources(type));
}

describe('DatabaseMigrations template', () => {
  test('runs the migrations only after the pre-migration snapshot (dependency and snapshot id)', () => {
    const t = setup().template();
    const [snap] = logicalIds(t, 'Custom::PreMigrationSnapshot');
    const [mig] = logicalIds(t, 'Custom::DatabaseMigrations');
    const res = t.toJSON().Resources[mig];
    expect(res.DependsOn).toEqual(expect.arrayContaining([snap]));
    expect(res.Properties.SnapshotIdentifier).toEqual({ 'Fn::GetAtt': [snap, 'SnapshotIdentifier'] });
  });

  test('gives the custom resource the fingerprint, MigrationCount, LatestVersion and the CLI metadata', () => {
    const { template, migrations } = setup();
    const t = template();
    t.hasResource('Custom::DatabaseMigrations', {
      Properties: {
        MigrationCount: 2, LatestVersion: '0002', Fingerprint: migrations.fingerprint, ClusterIdentifier: { Ref: Match.stringLikeRegexp('^Db') },
      },
      Metadata: { 'cdk-rollback': { version: 1, kind: 'DatabaseMigrations', role: 'migrations', path: 'App/Migrations' } },
    });
    t.hasResource('Custom::PreMigrationSnapshot', {
      Properties: { Fingerprint: migrations.fingerprint, ClusterIdentifier: { Ref: Match.stringLikeRegexp('^Db') } },
      Metadata: { 'cdk-rollback': { version: 1, kind: 'PreMigrationSnapshot', role: 'snapshot', path: 'App/Migrations/Snapshot' } },
    });
  });

  test('runs after the cluster and its writer instance', () => {
    const t = setup().template();
    const [mig] = logicalIds(t, 'Custom::DatabaseMigrations');
    const writer = logicalIds(t, 'AWS::RDS::DBInstance')[0];
    expect(t.toJSON().Resources[mig].DependsOn).toEqual(expect.arrayContaining([writer]));
  });

  test('places the runner in the VPC subnets with its own security group, allowed into the cluster port', () => {
    const { template, vpc } = setup();
    const t = template();
    const subnets = vpc.isolatedSubnets.map((s) => ({ Ref: Stack.of(s).getLogicalId(s.node.defaultChild as ec2.CfnSubnet) }));
    t.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Layers: [{ Ref: Match.stringLikeRegexp('^MigrationsFiles') }],
      VpcConfig: { SubnetIds: subnets, SecurityGroupIds: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^MigrationsRunnerSecurityGroup'), 'GroupId'] }] },
      Environment: { Variables: Match.objectLike({ MIGRATIONS_DIR: '/opt', LOCK_TIMEOUT: '5000ms', STATEMENT_TIMEOUT: '600000ms', NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem' }) },
    });
    t.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      FromPort: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Db'), 'Endpoint.Port'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MigrationsRunnerSecurityGroup'), 'GroupId'] },
    });
    t.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'cdk-rollback migrations runner',
      SecurityGroupEgress: [{ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, CidrIp: { 'Fn::GetAtt': [Match.anyValue(), 'CidrBlock'] } }],
    });
  });

  test('uses the given subnets and security groups', () => {
    const { stack, vpc, cluster } = clusterStack();
    const sg = new ec2.SecurityGroup(stack, 'Mine', { vpc });
    new DatabaseMigrations(stack, 'Migrations', {
      cluster, vpc, migrationsDir: folder(GOOD), vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }, securityGroups: [sg],
    });
    const t = Template.fromStack(stack);
    const subnets = vpc.privateSubnets.map((s) => ({ Ref: stack.getLogicalId(s.node.defaultChild as ec2.CfnSubnet) }));
    t.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler', VpcConfig: { SubnetIds: subnets, SecurityGroupIds: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Mine'), 'GroupId'] }] },
    });
    expect(t.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: 'cdk-rollback migrations runner' } })).toEqual({});
  });

  test('lets the runner read the cluster secret and nothing else from Secrets Manager', () => {
    const t = setup().template();
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
          Resource: { Ref: Match.stringLikeRegexp('^DbSecretAttachment') },
        })]),
      },
      Roles: [{ Ref: Match.stringLikeRegexp('^MigrationsRunnerRole') }],
    });
  });

  test('lets the runner read the status of its own stack only (rollback detection)', () => {
    const t = setup().template();
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([{ Action: 'cloudformation:DescribeStacks', Effect: 'Allow', Resource: { Ref: 'AWS::StackId' } }]) },
      Roles: [{ Ref: Match.stringLikeRegexp('^MigrationsRunnerRole') }],
    });
  });

  test('uses the given secret (an imported cluster)', () => {
    const app = new App();
    const stack = new Stack(app, 'App');
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'd', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(stack, 'Db', {
      clusterIdentifier: 'legacy', port: 5432, securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, 'DbSg', 'sg-0123456789abcdef0')],
    });
    const secret = secretsmanager.Secret.fromSecretCompleteArn(stack, 'S', 'arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf');
    new DatabaseMigrations(stack, 'Migrations', { cluster, vpc, secret, migrationsDir: folder(GOOD), databaseName: 'orders' });
    const t = Template.fromStack(stack);
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf', DATABASE_NAME: 'orders' }) },
    });
    t.hasResourceProperties('Custom::DatabaseMigrations', { ClusterIdentifier: 'legacy' });
  });

  test('fails without a secret for a cluster that has none', () => {
    const app = new App();
    const stack = new Stack(app, 'App');
    const vpc = new ec2.Vpc(stack, 'Vpc');
    const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(stack, 'Db', { clusterIdentifier: 'legacy' });
    expect(() => new DatabaseMigrations(stack, 'Migrations', { cluster, vpc, migrationsDir: folder(GOOD) })).toThrow(
      '`secret` is required when `cluster` has no secret (an imported cluster, or one created with credentials from a password), got: undefined');
  });

  test('snapshot: false takes no snapshot and needs none', () => {
    const { template, migrations } = setup({ snapshot: false });
    const t = template();
    expect(migrations.snapshot).toBeUndefined();
    t.resourceCountIs('Custom::PreMigrationSnapshot', 0);
    expect(t.toJSON().Resources[logicalIds(t, 'Custom::DatabaseMigrations')[0]].Properties.SnapshotIdentifier).toBeUndefined();
  });

  test('the snapshot handler may snapshot only this cluster under the prefix and delete only its own tagged snapshots', () => {
    const t = setup({ snapshotPrefix: 'orders-db' }).template();
    const clusterArn = {
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':rds:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':cluster:', { Ref: Match.stringLikeRegexp('^Db') }]],
    };
    const prefixArn = {
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':rds:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':cluster-snapshot:orders-db-*']],
    };
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          { Action: 'rds:CreateDBClusterSnapshot', Effect: 'Allow', Resource: [clusterArn, prefixArn] },
          { Action: 'rds:AddTagsToResource', Effect: 'Allow', Resource: prefixArn },
          {
            Action: 'rds:DeleteDBClusterSnapshot', Effect: 'Allow', Resource: prefixArn,
            Condition: { StringEquals: { 'aws:ResourceTag/cdk-rollback:managed-by': 'cdk-rollback', 'aws:ResourceTag/cdk-rollback:construct-path': 'App/Migrations/Snapshot' } },
          },
        ]),
      },
    });
    // the snapshot handlers run outside any VPC
    const fns = t.findResources('AWS::Lambda::Function', { Properties: { Handler: Match.stringLikeRegexp('^index\\.(onEvent|isComplete)$'), Description: Match.stringLikeRegexp('snapshot') } });
    expect(Object.keys(fns)).toHaveLength(2);
    for (const fn of Object.values(fns)) expect((fn as { Properties: object }).Properties).not.toHaveProperty('VpcConfig');
  });

  test('other resources can be ordered after the migrations with node.addDependency', () => {
    const { stack, migrations, template } = setup();
    const api = new sns.Topic(stack, 'Api');
    api.node.addDependency(migrations);
    const t = template();
    const [mig] = logicalIds(t, 'Custom::DatabaseMigrations');
    expect(t.toJSON().Resources[stack.getLogicalId(api.node.defaultChild as sns.CfnTopic)].DependsOn).toEqual(expect.arrayContaining([mig]));
  });

  test('synthesizes byte-identical templates from any checkout path, in an env-agnostic stack inside a Stage', () => {
    const synth = (dir: string) => {
      const app = new App();
      const stack = new Stack(new Stage(app, 'Prod'), 'App');
      const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'd', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
      const cluster = new rds.DatabaseCluster(stack, 'Db', {
        engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
        writer: rds.ClusterInstance.serverlessV2('Writer'), vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      });
      new DatabaseMigrations(stack, 'Migrations', { cluster, vpc, migrationsDir: dir, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED } });
      return JSON.stringify(Template.fromStack(stack).toJSON());
    };
    const a = synth(folder(GOOD));
    const b = synth(folder(GOOD));
    expect(a).toBe(b);
    expect(a).not.toContain(os.tmpdir());
  });
});

describe('DatabaseMigrations folder checks', () => {
  const build = (dir: string) => {
    const stack = new Stack(new App(), 'App');
    const vpc = new ec2.Vpc(stack, 'Vpc');
    const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(stack, 'Db', { clusterIdentifier: 'c' });
    const secret = secretsmanager.Secret.fromSecretNameV2(stack, 'S', 'db');
    return () => new DatabaseMigrations(stack, 'M', { cluster, vpc, secret, migrationsDir: dir });
  };

  test('a missing folder', () => {
    const dir = path.join(os.tmpdir(), 'no-such-migrations-folder');
    expect(build(dir)).toThrow(`\`migrationsDir\` does not exist or is not a folder: ${dir}`);
  });

  test('an empty folder', () => {
    const dir = folder({ '.gitkeep': '' });
    expect(build(dir)).toThrow(`\`migrationsDir\` ${dir} holds no migration (NNNN_name.sql or NNNN_name.down.sql (digits, underscore, letters/digits/_/-))`);
  });

  test('a file that does not match the pattern', () => {
    const dir = folder({ ...GOOD, 'V3__add.sql': 'SELECT 1;' });
    expect(build(dir)).toThrow(`\`migrationsDir\` ${dir}: file 'V3__add.sql' does not match NNNN_name.sql or NNNN_name.down.sql`);
  });

  test('two files with the same version', () => {
    const dir = folder({ ...GOOD, '0002_other.sql': 'SELECT 1;' });
    expect(build(dir)).toThrow(`\`migrationsDir\` ${dir}: duplicate version 0002: '0002_emails.sql' and '0002_other.sql'`);
  });

  test('a down file without its up file', () => {
    const dir = folder({ ...GOOD, '0003_gone.down.sql': 'SELECT 1;' });
    expect(build(dir)).toThrow(`\`migrationsDir\` ${dir}: down file '0003_gone.down.sql' has no up file 0003_gone.sql`);
  });

  test('a down file whose name differs from its up file', () => {
    const dir = folder({ ...GOOD, '0002_mails.down.sql': 'SELECT 1;' });
    expect(build(dir)).toThrow(`\`migrationsDir\` ${dir}: down file '0002_mails.down.sql' does not match its up file '0002_emails.sql' (expected 0002_emails.down.sql)`);
  });

  test('a destructive migration without the allow directive', () => {
    const dir = folder({ ...GOOD, '0003_drop.sql': 'ALTER TABLE users DROP COLUMN email;' });
    expect(build(dir)).toThrow(
      "`migrationsDir` fails the migration lint: 0003_drop.sql statement 1 (line 1): DROP COLUMN users.email [drop-column]. Fix: stop using it in one release and remove it in a later one (expand/contract); its data is then gone except in snapshots. Or let a file through: destructive changes with '-- cdk-rollback:allow-destructive <reason>' in the file.");
  });

  test('a destructive migration with the allow directive and a reason', () => {
    const dir = folder({ ...GOOD, '0003_drop.sql': '-- cdk-rollback:allow-destructive email moved to contacts in 0002\nALTER TABLE users DROP COLUMN email;' });
    expect(build(dir)).not.toThrow();
  });

  test('lockTimeout out of range', () => {
    const stack = new Stack(new App(), 'App');
    const vpc = new ec2.Vpc(stack, 'Vpc');
    const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(stack, 'Db', { clusterIdentifier: 'c' });
    const secret = secretsmanager.Secret.fromSecretNameV2(stack, 'S', 'db');
    expect(() => new DatabaseMigrations(stack, 'M', { cluster, vpc, secret, migrationsDir: folder(GOOD), lockTimeout: Duration.minutes(11) })).toThrow(
      '`lockTimeout` must be between 100 millis and 10 minutes, got: 11 minutes');
  });

  test('statementTimeout out of range', () => {
    const stack = new Stack(new App(), 'App');
    const vpc = new ec2.Vpc(stack, 'Vpc');
    const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(stack, 'Db', { clusterIdentifier: 'c' });
    const secret = secretsmanager.Secret.fromSecretNameV2(stack, 'S', 'db');
    expect(() => new DatabaseMigrations(stack, 'M', { cluster, vpc, secret, migrationsDir: folder(GOOD), statementTimeout: Duration.minutes(14) })).toThrow(
      '`statementTimeout` must be between 1 second and 13 minutes, got: 14 minutes');
  });
});
