import { ArnFormat, CustomResource, Duration, Stack, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as rds from 'aws-cdk-lib/aws-rds';
import { Construct } from 'constructs';
import { MANAGED_BY_VALUE, TAG_CONSTRUCT_PATH, TAG_MANAGED_BY } from '../lambda/shared/contract';
import { markForCli } from './private/metadata';
import { HandlerProvider } from './private/provider';

/** How many pre-migration snapshots to keep. A snapshot is kept when EITHER rule keeps it. */
export interface SnapshotRetention {
  /**
   * Keep the newest `count` snapshots this construct created for the cluster.
   * @default 10
   */
  readonly count?: number;
  /**
   * Keep every snapshot this construct created that is younger than this.
   * @default Duration.days(30)
   */
  readonly maxAge?: Duration;
}

/** Properties of `PreMigrationSnapshot`. */
export interface PreMigrationSnapshotProps {
  /** The Aurora cluster to snapshot. */
  readonly cluster: rds.IDatabaseCluster;
  /**
   * Any string that changes when the migrations change (DatabaseMigrations passes the hash of its files).
   * A new value takes a new snapshot; the same value takes none.
   */
  readonly fingerprint: string;
  /**
   * Prefix of the snapshot identifiers `<prefix>-<fingerprint 8 chars>-<UTC yyyymmddhhmmss>`: lowercase letters,
   * digits and single hyphens, a letter first, at most 39 characters (RDS identifiers are 63 at most).
   * The handler's IAM permissions are scoped to `cluster-snapshot:<prefix>-*`.
   * @default 'pre-migration'
   */
  readonly snapshotPrefix?: string;
  /**
   * Retention of the snapshots this construct created for this cluster (found by tag; nothing else is touched).
   * @default - the newest 10 and every snapshot younger than 30 days
   */
  readonly retention?: SnapshotRetention;
  /**
   * How long to wait for a cluster that is not `available` (backing up, scaling, resuming from zero) before failing.
   * @default Duration.minutes(20)
   */
  readonly clusterWaitTimeout?: Duration;
}

const PROVIDER_ID = 'CdkRollbackPreMigrationSnapshotProvider';
const MAX_PREFIX = 63 - '-abcdef01-20250101000000'.length;

/**
 * Takes a manual Aurora cluster snapshot whenever `fingerprint` changes, waits until it is `available`, tags it
 * and keeps only the newest `retention.count` plus everything younger than `retention.maxAge` of its own snapshots.
 */
export class PreMigrationSnapshot extends Construct {
  /** Identifier of the snapshot taken by the last deploy that changed the fingerprint. */
  public readonly snapshotIdentifier: string;
  /** ARN of that snapshot. */
  public readonly snapshotArn: string;
  /** The custom resource (order other resources after it with `node.addDependency`). */
  public readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: PreMigrationSnapshotProps) {
    super(scope, id);
    const prefix = props.snapshotPrefix ?? 'pre-migration';
    const count = props.retention?.count ?? 10;
    const maxAge = props.retention?.maxAge ?? Duration.days(30);
    const clusterWait = props.clusterWaitTimeout ?? Duration.minutes(20);
    this.validatePrefix(prefix);
    this.validateRetention(count);
    this.validateClusterWait(clusterWait);
    if (!Token.isUnresolved(props.fingerprint) && props.fingerprint.length === 0) {
      throw new Error('`fingerprint` must not be empty, got: \'\'');
    }

    const stack = Stack.of(this);
    const provider = HandlerProvider.of(stack, PROVIDER_ID, {
      handler: 'pre-migration-snapshot',
      description: 'cdk-rollback: takes pre-migration Aurora cluster snapshots and prunes its own old ones',
      label: 'cdk-rollback pre-migration snapshot',
      queryInterval: Duration.seconds(30),
      totalTimeout: Duration.minutes(55),
    }, (created) => {
      // Rollback detection: the Update with the old properties arrives while the stack is UPDATE_ROLLBACK_IN_PROGRESS.
      created.role.addToPrincipalPolicy(new iam.PolicyStatement({
        actions: ['cloudformation:DescribeStacks'],
        resources: [stack.stackId],
      }));
    });
    const clusterArn = stack.formatArn({
      service: 'rds', resource: 'cluster', resourceName: props.cluster.clusterIdentifier, arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const snapshotArns = stack.formatArn({
      service: 'rds', resource: 'cluster-snapshot', resourceName: `${prefix}-*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const anySnapshot = stack.formatArn({
      service: 'rds', resource: 'cluster-snapshot', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const policy = new iam.Policy(this, 'Policy', {
      statements: [
        new iam.PolicyStatement({ actions: ['rds:DescribeDBClusters'], resources: [clusterArn] }),
        new iam.PolicyStatement({ actions: ['rds:CreateDBClusterSnapshot'], resources: [clusterArn, snapshotArns] }),
        new iam.PolicyStatement({ actions: ['rds:AddTagsToResource'], resources: [snapshotArns] }),
        // Read-only listing of the cluster's manual snapshots (retention and duplicate detection filter them by tag).
        new iam.PolicyStatement({ actions: ['rds:DescribeDBClusterSnapshots'], resources: [clusterArn, anySnapshot] }),
        new iam.PolicyStatement({
          actions: ['rds:DeleteDBClusterSnapshot'],
          resources: [snapshotArns],
          conditions: {
            StringEquals: {
              [`aws:ResourceTag/${TAG_MANAGED_BY}`]: MANAGED_BY_VALUE,
              [`aws:ResourceTag/${TAG_CONSTRUCT_PATH}`]: this.node.path.slice(0, 256),
            },
          },
        }),
      ],
    });
    policy.attachToRole(provider.role);
    // Validations for the wildcard snapshot ARNs: scoped to the prefix (create, tag, delete-with-tag) or read-only.
    acknowledgeSnapshotWildcards(policy, prefix);

    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::PreMigrationSnapshot',
      properties: {
        ClusterIdentifier: props.cluster.clusterIdentifier,
        Fingerprint: props.fingerprint,
        SnapshotPrefix: prefix,
        StackName: stack.stackName,
        ConstructPath: this.node.path,
        RetentionCount: count,
        RetentionMaxAgeDays: maxAge.toDays({ integral: false }),
        ClusterWaitSeconds: clusterWait.toSeconds(),
      },
    });
    this.resource.node.addDependency(policy);
    markForCli(this.resource, this, 'PreMigrationSnapshot', 'snapshot');
    this.snapshotIdentifier = this.resource.getAttString('SnapshotIdentifier');
    this.snapshotArn = this.resource.getAttString('SnapshotArn');
  }

  private validatePrefix(prefix: string): void {
    if (Token.isUnresolved(prefix)) {
      throw new Error('`snapshotPrefix` must be a literal string (it scopes the IAM policy), got a token');
    }
    if (prefix.length < 1 || prefix.length > MAX_PREFIX) {
      throw new Error(`\`snapshotPrefix\` must be 1 to ${MAX_PREFIX} characters long, got: '${prefix}' (${prefix.length})`);
    }
    if (!/^[a-z][a-z0-9-]*$/.test(prefix)) {
      throw new Error(`\`snapshotPrefix\` must start with a lowercase letter and hold only lowercase letters, digits and hyphens, got: '${prefix}'`);
    }
    if (prefix.includes('--') || prefix.endsWith('-')) {
      throw new Error(`\`snapshotPrefix\` must not contain two consecutive hyphens or end with a hyphen, got: '${prefix}'`);
    }
  }

  private validateRetention(count: number): void {
    if (!Token.isUnresolved(count) && (!Number.isInteger(count) || count < 1 || count > 100)) {
      throw new Error(`\`retention.count\` must be an integer between 1 and 100, got: ${count}`);
    }
  }

  private validateClusterWait(wait: Duration): void {
    if (!wait.isUnresolved() && (wait.toSeconds() < 60 || wait.toSeconds() > 45 * 60)) {
      throw new Error(`\`clusterWaitTimeout\` must be between 1 and 45 minutes, got: ${wait.toHumanString()}`);
    }
  }
}

function acknowledgeSnapshotWildcards(policy: iam.Policy, prefix: string): void {
  Validations.of(policy).acknowledge({
    id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:rds:<AWS::Region>:<AWS::AccountId>:cluster-snapshot:${prefix}-*]`,
    reason: 'Snapshot names carry a timestamp, so they are scoped by the construct\'s prefix; deletion also requires the construct\'s tags',
  });
  Validations.of(policy).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:rds:<AWS::Region>:<AWS::AccountId>:cluster-snapshot:*]',
    reason: 'rds:DescribeDBClusterSnapshots only (read-only listing of the cluster\'s snapshots, filtered by tag in the handler)',
  });
}
