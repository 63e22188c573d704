import { App, Stack, Stage } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { addExampleDatabase } from '../bin/examples/database';
import { synthAndValidate } from './helpers/synth-and-validate';

describe('example database (bin/examples/database.ts)', () => {
  test('passes cdk-nag and cfn-lint in an env-agnostic stack inside a Stage', () => {
    const app = new App();
    const stage = new Stage(app, 'Prod');
    const stack = new Stack(stage, 'App');
    const { migrations } = addExampleDatabase(stack);
    const { templates } = synthAndValidate(app);
    const t = templates['Prod/App'];
    expect(migrations.migrationCount).toBe(3);
    t.hasResourceProperties('Custom::DatabaseMigrations', { MigrationCount: 3, LatestVersion: '0003' });
    const endpoints = t.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface' } });
    expect(JSON.stringify(endpoints)).toContain('.secretsmanager');
    // only the runner may use the endpoint
    t.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      IpProtocol: 'tcp', FromPort: 443, ToPort: 443,
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^VpcSecretsManagerSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MigrationsRunnerSecurityGroup'), 'GroupId'] },
    });
  });
});
