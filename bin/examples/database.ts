import * as path from 'path';
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import { DatabaseMigrations } from '../../lib/database-migrations';

/**
 * The example app's database: an Aurora PostgreSQL cluster in isolated subnets (no NAT), the VPC endpoint the
 * migrations runner needs (Secrets Manager), and `DatabaseMigrations` from `<repo>/migrations` after a
 * pre-migration snapshot. Order the API's traffic shift after it with `api.node.addDependency(migrations)`.
 */
export function addExampleDatabase(stack: Stack): { vpc: ec2.IVpc; cluster: rds.DatabaseCluster; migrations: DatabaseMigrations } {
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    maxAzs: 2,
    natGateways: 0,
    subnetConfiguration: [{ name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }],
    flowLogs: {
      rejected: {
        destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(stack, 'VpcFlowLogs', { retention: logs.RetentionDays.ONE_MONTH })),
        trafficType: ec2.FlowLogTrafficType.REJECT,
      },
    },
  });
  // Isolated subnets reach no AWS API: the runner reads its credentials through this endpoint.
  const secretsEndpoint = vpc.addInterfaceEndpoint('SecretsManager', {
    service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    subnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    open: false, // only the runner below may use it
  });

  const cluster = new rds.DatabaseCluster(stack, 'Database', {
    engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
    writer: rds.ClusterInstance.serverlessV2('Writer'),
    serverlessV2MinCapacity: 0.5,
    serverlessV2MaxCapacity: 2,
    vpc,
    vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    defaultDatabaseName: 'app',
    port: 5433,
    storageEncrypted: true,
    iamAuthentication: true,
    deletionProtection: true,
    backup: { retention: Duration.days(7) },
    cloudwatchLogsExports: ['postgresql'],
    removalPolicy: RemovalPolicy.SNAPSHOT,
  });
  Validations.of(cluster.node.findChild('Secret')).acknowledge({
    id: 'AwsSolutions-SMG4',
    reason: 'example app: rotating the master secret needs a rotation Lambda with its own endpoint; the runner reads it once per deploy',
  });

  const migrations = new DatabaseMigrations(stack, 'Migrations', {
    cluster,
    vpc,
    vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    migrationsDir: path.join(__dirname, '..', '..', 'migrations'),
  });
  secretsEndpoint.connections.allowDefaultPortFrom(migrations, 'cdk-rollback migrations runner reads the database secret');
  return { vpc, cluster, migrations };
}
