import { App, Duration, Stack, Stage } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as rds from 'aws-cdk-lib/aws-rds';
import { PreMigrationSnapshot, PreMigrationSnapshotProps } from '../lib/pre-migration-snapshot';
import { synthAndValidate } from './helpers/synth-and-validate';

function imported(stack: Stack, id = 'Db', clusterIdentifier = 'orders'): rds.IDatabaseCluster {
  return rds.DatabaseCluster.fromDatabaseClusterAttributes(stack, id, { clusterIdentifier });
}

function make(over: Partial<PreMigrationSnapshotProps> = {}) {
  const stack = new Stack(new App(), 'App');
  return () => new PreMigrationSnapshot(stack, 'Snap', { cluster: imported(stack), fingerprint: 'abc', ...over });
}

describe('PreMigrationSnapshot template', () => {
  test('is cdk-nag and cfn-lint clean in an env-agnostic stack inside a Stage', () => {
    const app = new App();
    const stack = new Stack(new Stage(app, 'Prod'), 'App');
    new PreMigrationSnapshot(stack, 'Snap', { cluster: imported(stack), fingerprint: 'v1' });
    const { templates } = synthAndValidate(app);
    templates['Prod/App'].hasResourceProperties('Custom::PreMigrationSnapshot', {
      ClusterIdentifier: 'orders', Fingerprint: 'v1', SnapshotPrefix: 'pre-migration', StackName: 'Prod-App', ConstructPath: 'Prod/App/Snap',
      RetentionCount: 10, RetentionMaxAgeDays: 30, ClusterWaitSeconds: 1200,
    });
  });

  test('exposes the snapshot identifier and ARN as attributes', () => {
    const stack = new Stack(new App(), 'App');
    const snap = new PreMigrationSnapshot(stack, 'Snap', { cluster: imported(stack), fingerprint: 'v1' });
    const id = stack.getLogicalId(snap.resource.node.defaultChild as never);
    expect(stack.resolve(snap.snapshotIdentifier)).toEqual({ 'Fn::GetAtt': [id, 'SnapshotIdentifier'] });
    expect(stack.resolve(snap.snapshotArn)).toEqual({ 'Fn::GetAtt': [id, 'SnapshotArn'] });
  });

  test('shares one Provider per stack between snapshots, each with its own scoped policy', () => {
    const stack = new Stack(new App(), 'App');
    new PreMigrationSnapshot(stack, 'A', { cluster: imported(stack, 'DbA', 'a'), fingerprint: '1', snapshotPrefix: 'a' });
    new PreMigrationSnapshot(stack, 'B', { cluster: imported(stack, 'DbB', 'b'), fingerprint: '1', snapshotPrefix: 'b', retention: { count: 3, maxAge: Duration.days(7) } });
    const t = Template.fromStack(stack);
    t.resourceCountIs('Custom::PreMigrationSnapshot', 2);
    expect(Object.keys(t.findResources('AWS::Lambda::Function', { Properties: { Handler: 'index.isComplete' } }))).toHaveLength(1);
    t.hasResourceProperties('Custom::PreMigrationSnapshot', { ClusterIdentifier: 'b', RetentionCount: 3, RetentionMaxAgeDays: 7 });
    for (const [cluster, prefix] of [['a', 'a'], ['b', 'b']]) {
      t.hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: {
          Statement: Match.arrayWith([{
            Action: 'rds:DescribeDBClusters', Effect: 'Allow',
            Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':rds:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:cluster:${cluster}`]] },
          }, Match.objectLike({
            Action: 'rds:AddTagsToResource',
            Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':rds:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:cluster-snapshot:${prefix}-*`]] },
          })]),
        },
      });
    }
  });

  test('may read the status of its own stack only (rollback detection), and runs outside any VPC', () => {
    const stack = new Stack(new App(), 'App');
    new PreMigrationSnapshot(stack, 'Snap', { cluster: imported(stack), fingerprint: 'v1' });
    const t = Template.fromStack(stack);
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([{ Action: 'cloudformation:DescribeStacks', Effect: 'Allow', Resource: { Ref: 'AWS::StackId' } }]) },
    });
    for (const fn of Object.values(t.findResources('AWS::Lambda::Function'))) {
      expect((fn as { Properties: object }).Properties).not.toHaveProperty('VpcConfig');
    }
  });

  test('marks the custom resource for the CLI and waits for its policy', () => {
    const stack = new Stack(new App(), 'App');
    new PreMigrationSnapshot(stack, 'Snap', { cluster: imported(stack), fingerprint: 'v1' });
    const t = Template.fromStack(stack);
    t.hasResource('Custom::PreMigrationSnapshot', {
      Metadata: { 'cdk-rollback': { version: 1, kind: 'PreMigrationSnapshot', role: 'snapshot', path: 'App/Snap' } },
      DependsOn: [Match.stringLikeRegexp('^SnapPolicy')],
    });
  });
});

describe('PreMigrationSnapshot validation', () => {
  test('`snapshotPrefix` too long', () => {
    const p = 'a'.repeat(40);
    expect(make({ snapshotPrefix: p })).toThrow(`\`snapshotPrefix\` must be 1 to 39 characters long, got: '${p}' (40)`);
  });
  test('`snapshotPrefix` empty', () => {
    expect(make({ snapshotPrefix: '' })).toThrow("`snapshotPrefix` must be 1 to 39 characters long, got: '' (0)");
  });
  test('`snapshotPrefix` not starting with a letter', () => {
    expect(make({ snapshotPrefix: '1db' })).toThrow(
      "`snapshotPrefix` must start with a lowercase letter and hold only lowercase letters, digits and hyphens, got: '1db'");
  });
  test('`snapshotPrefix` with an invalid character', () => {
    expect(make({ snapshotPrefix: 'Orders_db' })).toThrow(
      "`snapshotPrefix` must start with a lowercase letter and hold only lowercase letters, digits and hyphens, got: 'Orders_db'");
  });
  test('`snapshotPrefix` with a double hyphen', () => {
    expect(make({ snapshotPrefix: 'orders--db' })).toThrow(
      "`snapshotPrefix` must not contain two consecutive hyphens or end with a hyphen, got: 'orders--db'");
  });
  test('`snapshotPrefix` ending with a hyphen', () => {
    expect(make({ snapshotPrefix: 'orders-' })).toThrow(
      "`snapshotPrefix` must not contain two consecutive hyphens or end with a hyphen, got: 'orders-'");
  });
  test('`snapshotPrefix` as a token', () => {
    const stack = new Stack(new App(), 'App');
    expect(() => new PreMigrationSnapshot(stack, 'S', { cluster: imported(stack), fingerprint: 'x', snapshotPrefix: stack.account })).toThrow(
      '`snapshotPrefix` must be a literal string (it scopes the IAM policy), got a token');
  });
  test('`retention.count` out of range', () => {
    expect(make({ retention: { count: 0 } })).toThrow('`retention.count` must be an integer between 1 and 100, got: 0');
    expect(make({ retention: { count: 101 } })).toThrow('`retention.count` must be an integer between 1 and 100, got: 101');
  });
  test('`retention.count` not an integer', () => {
    expect(make({ retention: { count: 2.5 } })).toThrow('`retention.count` must be an integer between 1 and 100, got: 2.5');
  });
  test('`clusterWaitTimeout` out of range', () => {
    expect(make({ clusterWaitTimeout: Duration.hours(1) })).toThrow('`clusterWaitTimeout` must be between 1 and 45 minutes, got: 1 hour');
  });
  test('empty `fingerprint`', () => {
    expect(make({ fingerprint: '' })).toThrow("`fingerprint` must not be empty, got: ''");
  });
});
