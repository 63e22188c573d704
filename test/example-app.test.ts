import { App } from 'aws-cdk-lib';
import { buildExampleApp } from '../bin/example-app';
import { synthAndValidate } from './helpers/synth-and-validate';

test('the example app passes cfn-lint and cdk-nag', () => {
  const { templates } = synthAndValidate(buildExampleApp(new App()));
  expect(Object.keys(templates)).toEqual(['CdkRollbackExample']);
  const t = templates.CdkRollbackExample;
  t.resourceCountIs('Custom::CdkRollbackAliasDeployment', 1);
  // snapshot -> migrations -> API traffic shift
  const resources = t.toJSON().Resources as Record<string, { Type: string; DependsOn?: string[] }>;
  const idOf = (type: string) => Object.entries(resources).find(([, r]) => r.Type === type)![0];
  const migrations = Object.entries(resources).find(([, r]) => r.Type.startsWith('Custom::') && r.Type.includes('Migration') && !r.Type.includes('Snapshot'))![0];
  const snapshot = Object.entries(resources).find(([, r]) => r.Type.startsWith('Custom::') && r.Type.includes('Snapshot'))![0];
  expect(resources[migrations].DependsOn).toContain(snapshot);
  expect(resources[idOf('Custom::CdkRollbackAliasDeployment')].DependsOn).toContain(migrations);
  t.resourceCountIs('Custom::CdkRollbackSiteRelease', 1);
  expect(resources[idOf('Custom::CdkRollbackSiteRelease')].DependsOn).toContain(idOf('Custom::CdkRollbackAliasDeployment'));
});
