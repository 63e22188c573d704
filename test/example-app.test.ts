import { App } from 'aws-cdk-lib';
import { buildExampleApp } from '../bin/example-app';
import { synthAndValidate } from './helpers/synth-and-validate';

test('the example app passes cfn-lint and cdk-nag', () => {
  const { templates } = synthAndValidate(buildExampleApp(new App()));
  expect(Object.keys(templates)).toEqual(['CdkRollbackExample']);
  templates.CdkRollbackExample.resourceCountIs('Custom::CdkRollbackAliasDeployment', 1);
});
