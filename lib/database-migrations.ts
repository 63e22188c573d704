import * as path from 'path';
import { Annotations, CustomResource, Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { MigrationFile, migrationsFingerprint, readMigrations } from '../lambda/shared/migrations-folder';
import { PreMigrationSnapshot, SnapshotRetention } from './pre-migration-snapshot';
import { handlerCode } from './private/handler-code';
import { markForCli } from './private/metadata';
import { checkMigrations } from './private/migrations-lint';
import { acknowledgeProviderFramework } from './private/nag';

/** Properties of `DatabaseMigrations`. */
export interface DatabaseMigrationsProps {
  /**
   * The Aurora PostgreSQL cluster. A `rds.DatabaseCluster` brings its secret; an imported cluster needs `secret`.
   */
  readonly cluster: rds.IDatabaseCluster;
  /**
   * Credentials of the database user that runs the migrations (the RDS secret JSON: host, port, username, password).
   * @default - the cluster's own secret (`rds.DatabaseCluster.secret`)
   */
  readonly secret?: secretsmanager.ISecret;
  /**
   * Folder of `NNNN_name.sql` migrations and optional `NNNN_name.down.sql` files. Checked at synth: it must exist,
   * hold at least one migration, every file must match the pattern, versions must be unique, every down file needs
   * its up file. Every file is parsed with PostgreSQL's parser (a syntax error fails synth), and the migration lint
   * fails synth on destructive changes unless the file says `-- cdk-rollback:allow-destructive <reason>`, on changes
   * that break the previous release unless it says `-- cdk-rollback:allow-breaking <reason>`, and warns on changes
   * that block writes to a live table (README, "Migration lint").
   */
  readonly migrationsDir: string;
  /** The VPC of the cluster: the runner Lambda runs in it. */
  readonly vpc: ec2.IVpc;
  /**
   * Subnets of the runner Lambda. They must reach the cluster and Secrets Manager: a NAT gateway
   * (`PRIVATE_WITH_EGRESS` subnets) or an `ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER` interface endpoint with
   * private DNS. Isolated subnets without such an endpoint in the app get a synth warning
   * (`cdk-rollback:migrations-no-secrets-manager-endpoint`). The runner calls no other AWS API.
   * @default - the VPC's private subnets (with egress if there are any, else isolated)
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * Security groups of the runner Lambda.
   * @default - a new group allowed into the cluster's port, and out to HTTPS: anywhere when the subnets route to a
   * NAT gateway (`PRIVATE_WITH_EGRESS`), the VPC's CIDR (interface endpoints) when they are isolated
   */
  readonly securityGroups?: ec2.ISecurityGroup[];
  /**
   * Database to migrate.
   * @default - `dbname` of the secret, else `postgres`
   */
  readonly databaseName?: string;
  /**
   * Take a `PreMigrationSnapshot` (fingerprint: the hash of the migration files) and run the migrations only once
   * it is `available`.
   * @default true
   */
  readonly snapshot?: boolean;
  /**
   * Prefix of the pre-migration snapshot identifiers.
   * @default 'pre-migration'
   */
  readonly snapshotPrefix?: string;
  /**
   * Retention of the pre-migration snapshots.
   * @default - the newest 10 and every snapshot younger than 30 days
   */
  readonly snapshotRetention?: SnapshotRetention;
  /**
   * `lock_timeout` of every migration: how long a statement waits for a table lock before failing (so a
   * migration never queues the application's queries behind it for long).
   * @default Duration.seconds(5)
   */
  readonly lockTimeout?: Duration;
  /**
   * `statement_timeout` of every migration.
   * @default Duration.minutes(10)
   */
  readonly statementTimeout?: Duration;
}

/** The migrations layer puts the files here. */
const LAYER_DIR = '/opt';

/**
 * Applies ordered SQL migrations from a folder to an Aurora PostgreSQL cluster during `cdk deploy`, after a
 * pre-migration snapshot, each migration in its own transaction; a failing migration fails the deploy.
 */
export class DatabaseMigrations extends Construct {
  /** The migrations custom resource: order resources after the migrations with `node.addDependency(migrations)`. */
  public readonly resource: CustomResource;
  /**
   * The runner Lambda (in the VPC). Besides CloudFormation's events it serves the operator requests of
   * `cdk-rollback db history|migrate|down --stack` (invoke permission: `grantInvokeRunner`).
   */
  public readonly runner: lambda.IFunction;
  /** The pre-migration snapshot (undefined with `snapshot: false`). */
  public readonly snapshot?: PreMigrationSnapshot;
  /** The runner's network access (allow it into other resources with `migrations.connections`). */
  public readonly connections: ec2.Connections;
  /** Hash of the migration files. */
  public readonly fingerprint: string;
  /** Number of up migrations in the folder. */
  public readonly migrationCount: number;
  /** The highest version in the folder. */
  public readonly latestVersion: string;

  constructor(scope: Construct, id: string, props: DatabaseMigrationsProps) {
    super(scope, id);
    const files = this.validateFolder(props.migrationsDir);
    const secret = this.validateSecret(props);
    this.validateTimeouts(props);
    this.fingerprint = migrationsFingerprint(files);
    this.migrationCount = files.length;
    this.latestVersion = files[files.length - 1].version;

    if (props.snapshot ?? true) this.snapshot = this.createSnapshot(props);
    const network = this.createNetwork(props);
    this.connections = network.connections;
    const role = this.createRunnerRole(secret);
    this.runner = this.createRunner(props, files, secret, role, network);
    this.resource = this.createMigrationsResource(props);
  }

  /** The cluster snapshot taken before the migrations run (PreMigrationSnapshot). */
  private createSnapshot(props: DatabaseMigrationsProps): PreMigrationSnapshot {
    return new PreMigrationSnapshot(this, 'Snapshot', {
      cluster: props.cluster,
      fingerprint: this.fingerprint,
      snapshotPrefix: props.snapshotPrefix,
      retention: props.snapshotRetention,
    });
  }

  /** The runner's security groups, allowed into the cluster, and whether its subnets route to a NAT gateway. */
  private createNetwork(props: DatabaseMigrationsProps): { connections: ec2.Connections; securityGroups: ec2.ISecurityGroup[]; subnetsEgress: boolean } {
    const subnetsEgress = this.subnetsRouteToNat(props.vpc, props.vpcSubnets);
    const securityGroups = props.securityGroups ?? [this.defaultSecurityGroup(props.vpc, subnetsEgress)];
    const connections = new ec2.Connections({ securityGroups });
    // An imported cluster without a port: PostgreSQL's default.
    props.cluster.connections.allowFrom(connections, props.cluster.connections.defaultPort ?? ec2.Port.tcp(5432), 'cdk-rollback migrations runner');
    return { connections, securityGroups, subnetsEgress };
  }

  /** The runner's role: its logs, the secret, the stack's status (to tell a rollback Update apart) and VPC networking. */
  private createRunnerRole(secret: secretsmanager.ISecret): { role: iam.Role; logGroup: logs.LogGroup; eni: iam.Policy } {
    const role = new iam.Role(this, 'RunnerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'cdk-rollback: runs the SQL migrations in the VPC',
    });
    const logGroup = new logs.LogGroup(this, 'RunnerLogs', { retention: logs.RetentionDays.ONE_YEAR });
    logGroup.grantWrite(role);
    secret.grantRead(role);
    // Intent: the Update CloudFormation sends while rolling the stack back is told apart by the stack's status.
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['cloudformation:DescribeStacks'], resources: [Stack.of(this).stackId] }));
    // The ENI permissions of a Lambda in a VPC (as in AWSLambdaVPCAccessExecutionRole).
    const eni = new iam.Policy(this, 'RunnerNetworkPolicy', {
      statements: [new iam.PolicyStatement({
        actions: ['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DeleteNetworkInterface',
          'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'],
        resources: ['*'],
      })],
    });
    eni.attachToRole(role);
    Validations.of(eni).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Lambda VPC networking: the EC2 network-interface actions support no resource-level permissions',
    });
    return { role, logGroup, eni };
  }

  /** The runner Lambda in the VPC, with the migration files in a layer; it serves CloudFormation and operators. */
  private createRunner(
    props: DatabaseMigrationsProps, files: readonly MigrationFile[], secret: secretsmanager.ISecret,
    { role, logGroup, eni }: { role: iam.Role; logGroup: logs.LogGroup; eni: iam.Policy },
    network: { securityGroups: ec2.ISecurityGroup[]; subnetsEgress: boolean },
  ): lambda.Function {
    const layer = new lambda.LayerVersion(this, 'Files', {
      code: lambda.Code.fromAsset(path.resolve(props.migrationsDir), { exclude: ['.*'] }),
      compatibleRuntimes: [lambda.Runtime.NODEJS_24_X],
      description: `cdk-rollback migrations (${files.length} files, latest ${this.latestVersion})`,
    });

    const environment: Record<string, string> = {
      SECRET_ARN: secret.secretArn,
      MIGRATIONS_DIR: LAYER_DIR,
      LOCK_TIMEOUT: `${(props.lockTimeout ?? Duration.seconds(5)).toMilliseconds()}ms`,
      STATEMENT_TIMEOUT: `${(props.statementTimeout ?? Duration.minutes(10)).toMilliseconds()}ms`,
      // The Node.js 22 runtime loads the Amazon RDS certificate authorities only when asked to.
      NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
    };
    if (props.databaseName !== undefined) environment.DATABASE_NAME = props.databaseName;
    const runner = new lambda.Function(this, 'Runner', {
      runtime: lambda.Runtime.NODEJS_24_X,
      code: handlerCode('database-migrations'),
      handler: 'index.handler',
      layers: [layer],
      role,
      logGroup,
      timeout: Duration.minutes(14),
      memorySize: 512,
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: network.securityGroups,
      environment,
      description: 'cdk-rollback: applies the SQL migrations',
    });
    runner.node.addDependency(eni);
    markForCli(runner, this, 'DatabaseMigrations', 'runner');
    if (!network.subnetsEgress) this.warnWithoutSecretsManagerEndpoint(props.vpc);
    return runner;
  }

  /** The custom resource that runs the migrations, after the snapshot and the cluster. */
  private createMigrationsResource(props: DatabaseMigrationsProps): CustomResource {
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: this.runner,
      logGroup: new logs.LogGroup(this, 'ProviderLogs', { retention: logs.RetentionDays.ONE_MONTH }),
    });
    acknowledgeProviderFramework(provider, [this.runner]);

    const resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::DatabaseMigrations',
      properties: {
        ClusterIdentifier: props.cluster.clusterIdentifier,
        Fingerprint: this.fingerprint,
        MigrationCount: this.migrationCount,
        LatestVersion: this.latestVersion,
        ...(this.snapshot ? { SnapshotIdentifier: this.snapshot.snapshotIdentifier } : {}),
      },
    });
    // After the snapshot is available, and after the cluster (its instances and its ingress rule) is up.
    if (this.snapshot) resource.node.addDependency(this.snapshot);
    resource.node.addDependency(props.cluster);
    markForCli(resource, this, 'DatabaseMigrations', 'migrations');
    return resource;
  }

  /**
   * Lets `grantee` send operator requests to the runner (`cdk-rollback db history|migrate|down --stack`): the only
   * permission those commands need besides reading the stack.
   */
  public grantInvokeRunner(grantee: iam.IGrantable): iam.Grant {
    return this.runner.grantInvoke(grantee);
  }

  /** Whether the runner's subnets route to a NAT gateway (the VPC's PRIVATE_WITH_EGRESS subnets). */
  private subnetsRouteToNat(vpc: ec2.IVpc, selection: ec2.SubnetSelection | undefined): boolean {
    const selected = vpc.selectSubnets(selection).subnets;
    const withNat = new Set(vpc.privateSubnets.map((s) => s.subnetId));
    return selected.length > 0 && selected.every((s) => withNat.has(s.subnetId));
  }

  private defaultSecurityGroup(vpc: ec2.IVpc, egress: boolean): ec2.SecurityGroup {
    const sg = new ec2.SecurityGroup(this, 'RunnerSecurityGroup', {
      vpc,
      description: 'cdk-rollback migrations runner',
      allowAllOutbound: false,
    });
    if (egress) {
      sg.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'AWS APIs (Secrets Manager) through the NAT gateway of the subnets');
    } else {
      sg.addEgressRule(ec2.Peer.ipv4(vpc.vpcCidrBlock), ec2.Port.tcp(443), 'AWS APIs through VPC interface endpoints (Secrets Manager)');
    }
    return sg;
  }

  /**
   * At synth (so endpoints added later count): isolated subnets reach Secrets Manager only through an interface
   * endpoint with private DNS in the same VPC. Without one in the app, the runner cannot read its secret.
   */
  private warnWithoutSecretsManagerEndpoint(vpc: ec2.IVpc): void {
    this.node.addValidation({
      validate: () => {
        const found = this.node.root.node.findAll().some((c) => c instanceof ec2.CfnVPCEndpoint
          && c.vpcEndpointType === 'Interface'
          && c.vpcId === vpc.vpcId
          && typeof c.serviceName === 'string' && /\.secretsmanager(-fips)?($|\$\{Token\[)/.test(c.serviceName)
          && c.privateDnsEnabled === true);
        if (!found) {
          Annotations.of(this).addWarningV2('cdk-rollback:migrations-no-secrets-manager-endpoint',
            'the migrations runner runs in isolated subnets (no NAT gateway) and this app defines no Secrets Manager interface ' +
            'endpoint with private DNS in its VPC, so it cannot read the database secret. Add one ' +
            '(vpc.addInterfaceEndpoint(\'SecretsManager\', { service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER })), ' +
            'or give `vpcSubnets` PRIVATE_WITH_EGRESS subnets. If the endpoint exists outside this app, acknowledge this warning.');
        }
        return [];
      },
    });
  }

  private validateFolder(dir: string): MigrationFile[] {
    if (Token.isUnresolved(dir)) throw new Error('`migrationsDir` must be a literal path, got a token');
    const files = readMigrations(path.resolve(dir), '`migrationsDir`');
    checkMigrations(this, files, 'migrationsDir');
    return files;
  }

  private validateSecret(props: DatabaseMigrationsProps): secretsmanager.ISecret {
    const secret = props.secret ?? (props.cluster instanceof rds.DatabaseCluster ? props.cluster.secret : undefined);
    if (!secret) {
      throw new Error('`secret` is required when `cluster` has no secret (an imported cluster, or one created with credentials from a password), got: undefined');
    }
    return secret;
  }

  private validateTimeouts(props: DatabaseMigrationsProps): void {
    const check = (name: string, d: Duration | undefined, min: number, max: number) => {
      if (d === undefined || d.isUnresolved()) return;
      const ms = d.toMilliseconds();
      if (ms < min || ms > max) {
        throw new Error(`\`${name}\` must be between ${Duration.millis(min).toHumanString()} and ${Duration.millis(max).toHumanString()}, got: ${d.toHumanString()}`);
      }
    };
    check('lockTimeout', props.lockTimeout, 100, 10 * 60_000);
    check('statementTimeout', props.statementTimeout, 1000, 13 * 60_000);
  }
}

