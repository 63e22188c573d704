/**
 * The built-in pre-traffic hook. moto cannot invoke functions (no Docker) and has no
 * lifecycle-hook or deployment-target calls, so Lambda and CodeDeploy are mocked here.
 */
import {
  CodeDeployClient,
  GetDeploymentTargetCommand,
  ListDeploymentTargetsCommand,
  PutLifecycleEventHookExecutionStatusCommand,
} from '@aws-sdk/client-codedeploy';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { apiGatewayEvent, handler } from '../lambda/smoke-test/index';

const cd = mockClient(CodeDeployClient);
const lambda = mockClient(LambdaClient);
const ENV = {
  FUNCTION_NAME: 'fn',
  SMOKE_PATH: '/health?deep=1',
  SMOKE_METHOD: 'GET',
  SMOKE_EXPECTED_STATUS: '200',
  PAYLOAD_FORMAT: '1.0',
  SMOKE_TIMEOUT_MS: '2000',
};
const saved = { ...process.env };

beforeEach(() => {
  cd.reset();
  lambda.reset();
  Object.assign(process.env, ENV);
  cd.on(ListDeploymentTargetsCommand).resolves({ targetIds: ['fn:live'] });
  cd.on(GetDeploymentTargetCommand).resolves({
    deploymentTarget: { lambdaTarget: { lambdaFunctionInfo: { functionName: 'fn', currentVersion: '6', targetVersion: '7' } } },
  });
  cd.on(PutLifecycleEventHookExecutionStatusCommand).resolves({});
});
afterAll(() => {
  process.env = saved;
  cd.restore();
  lambda.restore();
});

const hookEvent = { DeploymentId: 'd-1', LifecycleEventHookExecutionId: 'hook-1' };
const answer = (payload: unknown, functionError?: string) =>
  lambda.on(InvokeCommand).resolves({ StatusCode: 200, FunctionError: functionError, Payload: Buffer.from(JSON.stringify(payload)) as never });
const reported = () => cd.commandCalls(PutLifecycleEventHookExecutionStatusCommand).map((c) => c.args[0].input);

test('invokes the deployment\'s TARGET version with a REST-shaped request and reports Succeeded', async () => {
  answer({ statusCode: 200, body: 'ok' });
  await expect(handler(hookEvent)).resolves.toEqual({ status: 'Succeeded', reason: undefined });

  const invoke = lambda.commandCalls(InvokeCommand)[0].args[0].input;
  expect(invoke.FunctionName).toBe('fn');
  expect(invoke.Qualifier).toBe('7');
  const request = JSON.parse(Buffer.from(invoke.Payload as Uint8Array).toString());
  expect(request).toMatchObject({ httpMethod: 'GET', path: '/health', queryStringParameters: { deep: '1' } });
  expect(reported()).toEqual([{ deploymentId: 'd-1', lifecycleEventHookExecutionId: 'hook-1', status: 'Succeeded' }]);
});

test('an HTTP API gets a payload format 2.0 request', () => {
  const ev = apiGatewayEvent({ functionName: 'fn', path: '/v1/ping', method: 'POST', expectedStatus: 204, payloadFormat: '2.0', timeoutMs: 1 });
  expect(ev).toMatchObject({ version: '2.0', rawPath: '/v1/ping', requestContext: { http: { method: 'POST', path: '/v1/ping' } } });
});

test('a wrong status code reports Failed with the reason', async () => {
  answer({ statusCode: 500 });
  await expect(handler(hookEvent)).resolves.toEqual({
    status: 'Failed',
    reason: 'GET /health?deep=1 on version 7 returned status 500, expected 200',
  });
  expect(reported()[0].status).toBe('Failed');
});

test('a function error reports Failed', async () => {
  answer({ errorMessage: 'boom' }, 'Unhandled');
  const out = await handler(hookEvent);
  expect(out.status).toBe('Failed');
  expect(out.reason).toMatch(/^version 7 threw \(Unhandled\): .*boom/);
});

test('a version that does not answer within the deadline reports Failed, bounded by SMOKE_TIMEOUT_MS', async () => {
  process.env.SMOKE_TIMEOUT_MS = '50';
  lambda.on(InvokeCommand).callsFake(() => new Promise(() => undefined)); // never answers
  await expect(handler(hookEvent)).resolves.toEqual({ status: 'Failed', reason: 'no answer from version 7 within 50 ms' });
  expect(reported()[0].status).toBe('Failed');
});

test('a deployment without a Lambda target reports Failed, it does not hang CodeDeploy', async () => {
  cd.on(ListDeploymentTargetsCommand).resolves({ targetIds: [] });
  await expect(handler(hookEvent)).resolves.toEqual({ status: 'Failed', reason: 'smoke test could not run: deployment d-1 has no target' });
});

test('a failure to report to CodeDeploy throws, so that Lambda retries the hook', async () => {
  answer({ statusCode: 200 });
  cd.on(PutLifecycleEventHookExecutionStatusCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
  await expect(handler(hookEvent)).rejects.toThrow('Rate exceeded');
});

describe('every path reports within the function\'s own timeout', () => {
  const context = (ms: number) => {
    const end = Date.now() + ms;
    return { getRemainingTimeInMillis: () => end - Date.now() };
  };

  test('a hung ListDeploymentTargets is reported as Failed before the function would be killed', async () => {
    cd.on(ListDeploymentTargetsCommand).callsFake(() => new Promise(() => undefined)); // never answers
    const started = Date.now();
    const out = await handler(hookEvent, context(2000));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(out.status).toBe('Failed');
    expect(out.reason).toMatch(/^smoke test could not run: ListDeploymentTargets of d-1: no answer within 1\d{3} ms$/);
    expect(reported()).toEqual([{ deploymentId: 'd-1', lifecycleEventHookExecutionId: 'hook-1', status: 'Failed' }]);
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(0);
  });

  test('a hung GetDeploymentTarget is reported as Failed too', async () => {
    cd.on(GetDeploymentTargetCommand).callsFake(() => new Promise(() => undefined));
    const out = await handler(hookEvent, context(1500));
    expect(out.reason).toMatch(/^smoke test could not run: GetDeploymentTarget fn:live of d-1: no answer within \d+ ms$/);
    expect(reported()[0].status).toBe('Failed');
  });

  test('a slow lookup shortens the invoke\'s deadline so that the report still fits', async () => {
    process.env.SMOKE_TIMEOUT_MS = '60000'; // longer than the function has left
    cd.on(ListDeploymentTargetsCommand).callsFake(() => new Promise((r) => setTimeout(() => r({ targetIds: ['fn:live'] }), 300)));
    lambda.on(InvokeCommand).callsFake(() => new Promise(() => undefined));
    const started = Date.now();
    const out = await handler(hookEvent, context(2000));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(out.reason).toMatch(/^no answer from version 7 within \d+ ms$/);
    expect(Number(/within (\d+) ms/.exec(out.reason!)![1])).toBeLessThan(1500);
    expect(reported()[0].status).toBe('Failed');
  });

  test('a hung report throws before the function would be killed, so that Lambda retries the hook', async () => {
    answer({ statusCode: 200 });
    cd.on(PutLifecycleEventHookExecutionStatusCommand).callsFake(() => new Promise(() => undefined));
    const started = Date.now();
    await expect(handler(hookEvent, context(1500))).rejects.toThrow(/^PutLifecycleEventHookExecutionStatus: no answer within \d+ ms$/);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
