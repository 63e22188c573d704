/**
 * `cdk-rollback api promote` and the version alarms (issue 8): the error-rate, latency and throttle alarms
 * of a SafeLambdaApi are scoped to the stack's version (ExecutedVersion), which the deployment custom
 * resource tags on the function (`cdk-rollback:alarmed-version`). A promote to another version would be
 * guarded by the hooks and the API 5XX alarm only, so it is refused unless `--force`. In process, against moto.
 */
import { CodeDeployClient, ListDeploymentsCommand } from '@aws-sdk/client-codedeploy';
import { GetFunctionCommand, LambdaClient, TagResourceCommand } from '@aws-sdk/client-lambda';
import { useMotoServer } from './helpers/moto';
import { createApi } from './fixtures/cli/aws';
import { json, runInProcess } from './fixtures/cli/harness';

const moto = useMotoServer();
beforeEach(() => moto.reset());

async function givenAlarmsWatch(version: string): Promise<void> {
  await createApi({ functionName: 'orders', versions: 4, live: 2, stable: 2, codeDeploy: true });
  const lambda = new LambdaClient({});
  const arn = (await lambda.send(new GetFunctionCommand({ FunctionName: 'orders' }))).Configuration!.FunctionArn!;
  await lambda.send(new TagResourceCommand({ Resource: arn, Tags: { 'cdk-rollback:alarmed-version': version } }));
}
const deployments = async () =>
  (await new CodeDeployClient({}).send(new ListDeploymentsCommand({ applicationName: 'orders-app', deploymentGroupName: 'orders-group' }))).deployments ?? [];

test('a promote to a version the alarms do not watch is refused (exit 3), says what guards it, and starts nothing', async () => {
  await givenAlarmsWatch('4');
  const r = await runInProcess(['api', 'promote', '--function', 'orders', '--to', '3', '--yes']);
  expect(r.code).toBe(3);
  expect(r.stderr).toContain('the deployment group\'s version alarms (error rate, p99 latency, throttles) watch version 4, the version the stack deployed; ' +
    'a promote to version 3 would be guarded by the hooks and the API 5XX alarm only. Promote to version 4, or pass --force to accept that');
  expect(await deployments()).toEqual([]);
});

test('a promote to the version the alarms watch starts the deployment', async () => {
  await givenAlarmsWatch('4');
  const r = await runInProcess(['api', 'promote', '--function', 'orders', '--to', '4', '--yes', '--json']);
  expect(r.code).toBe(0);
  expect(json(r)).toMatchObject({ action: 'promote', to: '4' });
  expect(await deployments()).toHaveLength(1);
});

test('--force promotes another version and the plan says which version the alarms watch', async () => {
  await givenAlarmsWatch('4');
  const dry = await runInProcess(['api', 'promote', '--function', 'orders', '--to', '3', '--force', '--dry-run']);
  expect(dry.stdout).toContain('(its version alarms watch version 4, not 3)');
  const r = await runInProcess(['api', 'promote', '--function', 'orders', '--to', '3', '--force', '--yes', '--json']);
  expect(r.code).toBe(0);
  expect(await deployments()).toHaveLength(1);
});
