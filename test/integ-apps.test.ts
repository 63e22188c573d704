import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildIntegApp } from './integ.safe-lambda-api';

test('the SafeLambdaApi integ app synthesizes its stack and its assertions', () => {
  const { app } = buildIntegApp(new App());
  const assembly = app.synth();
  const stacks = assembly.stacksRecursively.map((s) => s.stackName).sort();
  expect(stacks).toEqual(['CdkRollbackIntegSafeLambdaApi', expect.stringMatching(/^SafeLambdaApiIntegDefaultTestDeployAssert/)]);
  const assertions = Template.fromJSON(assembly.stacksRecursively.find((s) => s.stackName.startsWith('SafeLambdaApiInteg'))!.template);
  assertions.resourceCountIs('Custom::DeployAssert@SdkCallLambdagetAlias', 2);
  assertions.resourceCountIs('Custom::DeployAssert@SdkCallLambdalistTags', 1);
  assertions.resourceCountIs('Custom::DeployAssert@HttpCall', 1);
});
