/**
 * Deploy proof of SafeLambdaApi, for a user with an AWS account:
 *
 *   npx integ-runner --directory test --parallel-regions eu-west-1 --update-on-failed
 *
 * Deploys one SafeLambdaApi (first deploy: live and stable initialized on version 1, smoke test
 * hook in place), then asserts through real AWS calls that `live` and `stable` exist on the same
 * version, that the function carries the CLI's tags, and that the API answers through `live`.
 * (`test/integ-apps.test.ts` synthesizes this app in CI, which has no account.)
 */
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { ExpectedResult, IntegTest } from '@aws-cdk/integ-tests-alpha';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SafeLambdaApi } from '../lib';

export function buildIntegApp(app: App = new App()): { app: App; test: IntegTest } {
  const stack = new Stack(app, 'CdkRollbackIntegSafeLambdaApi');
  const handler = new lambda.Function(stack, 'Handler', {
    runtime: lambda.Runtime.NODEJS_24_X,
    handler: 'index.handler',
    code: lambda.Code.fromAsset(path.join(__dirname, '..', 'bin', 'example-api')),
  });
  const api = new SafeLambdaApi(stack, 'Api', { handler, smokeTest: { path: '/health' } });

  const test = new IntegTest(app, 'SafeLambdaApiInteg', { testCases: [stack] });
  const live = test.assertions.awsApiCall('Lambda', 'getAlias', { FunctionName: handler.functionName, Name: 'live' });
  live.expect(ExpectedResult.objectLike({ Name: 'live', FunctionVersion: '1' }));
  test.assertions.awsApiCall('Lambda', 'getAlias', { FunctionName: handler.functionName, Name: 'stable' })
    .expect(ExpectedResult.objectLike({ Name: 'stable', FunctionVersion: '1' }));
  test.assertions.awsApiCall('Lambda', 'listTags', { Resource: handler.functionArn })
    .expect(ExpectedResult.objectLike({ Tags: { 'cdk-rollback:construct-path': api.node.path } }));
  test.assertions.httpApiCall(`${api.url}health`).expect(ExpectedResult.objectLike({ status: 200, body: { ok: true } }));
  return { app, test };
}

if (require.main === module) buildIntegApp().app.synth();
