/**
 * The SafeLambdaApi deployment custom resource across CloudFormation's lifecycle (issue 8): the three
 * scenarios in which a rollback used to make things worse, and the cases around them. Lambda is real
 * (moto_server); CodeDeploy is the in-memory stand-in of test/helpers/fake-codedeploy.ts, which moves
 * the alias and runs automatic rollback deployments as CodeDeploy does; the stack status is mocked.
 */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { CodeDeployClient, DeploymentStatus, StopDeploymentCommand } from '@aws-sdk/client-codedeploy';
import { GetAliasCommand, LambdaClient, ListTagsCommand, UpdateAliasCommand } from '@aws-sdk/client-lambda';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { isComplete, onEvent, type IsCompleteResult, type OnEventResult } from '../lambda/alias-deployment/index';
import { setStackStatus, updateEvent } from './helpers/alias-events';
import { FakeCodeDeploy } from './helpers/fake-codedeploy';
import { createFunctionWithVersions, event } from './helpers/lambda-fixtures';
import { useMotoServer } from './helpers/moto';

const moto = useMotoServer();
const cdMock = mockClient(CodeDeployClient);
const cfnMock = mockClient(CloudFormationClient);
let lambda: LambdaClient;
let cd: FakeCodeDeploy;
let fnArn: string;

const aliasVersion = async (name: string) =>
  (await lambda.send(new GetAliasCommand({ FunctionName: 'fn', Name: name }))).FunctionVersion;
const operatorPoints = (version: string) =>
  lambda.send(new UpdateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: version, RoutingConfig: { AdditionalVersionWeights: {} } }));
const complete = (ev: CloudFormationCustomResourceEvent, out: OnEventResult): Promise<IsCompleteResult> => isComplete({ ...ev, ...out });

/** Creates versions 1..n and deploys `initial` with a Create (live = stable = initial). */
async function given(n: number, initial: string): Promise<void> {
  fnArn = await createFunctionWithVersions(lambda, 'fn', n);
  setStackStatus(cfnMock, 'CREATE_IN_PROGRESS');
  const ev = event('Create', { TargetVersion: initial });
  expect((await complete(ev, await onEvent(ev))).IsComplete).toBe(true);
}

/** A forward Update old -> target while the stack is UPDATE_IN_PROGRESS. */
async function forward(oldTarget: string, target: string, requestId = `forward-${target}`) {
  setStackStatus(cfnMock, 'UPDATE_IN_PROGRESS');
  const ev = updateEvent({ TargetVersion: target }, { TargetVersion: oldTarget }, requestId);
  return { ev, out: await onEvent(ev) };
}

/** The rollback Update CloudFormation sends after the forward update old -> failed failed. */
async function stackRollback(failed: string, restoreTo: string, requestId = `rollback-${failed}`) {
  setStackStatus(cfnMock, 'UPDATE_ROLLBACK_IN_PROGRESS');
  const ev = updateEvent({ TargetVersion: restoreTo }, { TargetVersion: failed }, requestId);
  return { ev, out: await onEvent(ev) };
}

beforeEach(async () => {
  await moto.reset();
  lambda = new LambdaClient({});
  cfnMock.reset();
  cd = new FakeCodeDeploy(cdMock, lambda);
  cd.install();
});

afterAll(() => {
  cdMock.restore();
  cfnMock.restore();
});

describe('scenario 1: a manual rollback survives CloudFormation\'s rollback', () => {
  test('live=4, operator rolls back to 3, deploy of 6 fails: the rollback Update (TargetVersion 4) leaves live on 3 and starts no deployment', async () => {
    await given(6, '4');
    await operatorPoints('3'); // cdk-rollback api rollback

    const deploy = await forward('4', '6');
    expect(deploy.out.Data).toMatchObject({ Action: 'deploy', PreviousVersion: '3' });
    expect(cd.get(deploy.out.Data.DeploymentId).target).toMatchObject({ current: '3', target: '6' });
    const rollbackId = await cd.fail(deploy.out.Data.DeploymentId);
    // The forward update waits for CodeDeploy to put live back before it fails.
    expect(await complete(deploy.ev, deploy.out)).toEqual({ IsComplete: false });
    await cd.completeRollback(rollbackId);
    await expect(complete(deploy.ev, deploy.out)).rejects.toThrow(/CodeDeploy deployment d-0001 Failed: ALARM_ACTIVE .*; live serves version 3, stable was not moved/);

    const rollback = await stackRollback('6', '4');
    expect(rollback.out.Data).toMatchObject({ Action: 'none', Intent: 'rollback', FailedVersion: '6' });
    expect((await complete(rollback.ev, rollback.out)).IsComplete).toBe(true);

    expect(await aliasVersion('live')).toBe('3');
    expect(await aliasVersion('stable')).toBe('4');
    expect(cd.created()).toHaveLength(1); // only the failed forward deployment
  });

  test('the forward Update records what served before it (live and stable), keyed by its target and request', async () => {
    await given(6, '4');
    await operatorPoints('3');
    const deploy = await forward('4', '6', 'req-6');
    const tags = (await lambda.send(new ListTagsCommand({ Resource: fnArn }))).Tags ?? {};
    expect(tags['cdk-rollback:update-record']).toBe(`target=6 live=3 stable=4 request=req-6 deployment=${deploy.out.Data.DeploymentId}`);
  });

  test('a later resource fails after the deployment succeeded: live goes straight back to what served before (3, the operator\'s choice), stable back to 4, no deployment', async () => {
    await given(6, '4');
    await operatorPoints('3');
    const deploy = await forward('4', '6');
    await cd.succeed(deploy.out.Data.DeploymentId);
    expect((await complete(deploy.ev, deploy.out)).IsComplete).toBe(true);
    expect(await aliasVersion('stable')).toBe('6');

    const rollback = await stackRollback('6', '4');
    expect(rollback.out.Data).toMatchObject({ Action: 'direct', PreviousVersion: '6' });
    expect((await complete(rollback.ev, rollback.out)).IsComplete).toBe(true);
    expect(await aliasVersion('live')).toBe('3');
    expect(await aliasVersion('stable')).toBe('4');
    expect(cd.created()).toHaveLength(1);
  });

  test('without a record of the failed update, a rollback Update that finds live on the failed version restores the template\'s old version', async () => {
    await given(6, '4');
    await operatorPoints('6'); // e.g. an earlier handler version moved it without a record
    const rollback = await stackRollback('6', '4');
    expect(rollback.out.Data.Action).toBe('direct');
    expect(await aliasVersion('live')).toBe('4');
    expect(cd.created()).toHaveLength(0);
  });

  test('without the stack status (DescribeStacks denied), an older target than the old properties\' is taken for the rollback', async () => {
    await given(6, '4');
    await operatorPoints('3');
    cfnMock.reset();
    cfnMock.rejects(Object.assign(new Error('not authorized to perform cloudformation:DescribeStacks'), { name: 'AccessDenied' }));
    const ev = updateEvent({ TargetVersion: '4' }, { TargetVersion: '6' }, 'rollback-no-status');
    const out = await onEvent(ev);
    expect(out.Data).toMatchObject({ Action: 'none', Intent: 'rollback' });
    expect(await aliasVersion('live')).toBe('3');
    expect(cd.created()).toHaveLength(0);
  });
});

describe('scenario 2: an Update with an unchanged TargetVersion is housekeeping only', () => {
  test.each([
    ['a hook', { BeforeAllowTrafficHook: 'new-smoke' }, 'UPDATE_IN_PROGRESS'],
    ['retainVersions', { RetainVersions: '5' }, 'UPDATE_IN_PROGRESS'],
    ['the deadline (deployment config)', { MaxDeploymentSeconds: '900' }, 'UPDATE_IN_PROGRESS'],
    ['a hook, in a stack rollback', { BeforeAllowTrafficHook: 'old-smoke' }, 'UPDATE_ROLLBACK_IN_PROGRESS'],
  ] as const)('after `api rollback` (3 -> 2), an Update that changes only %s neither deploys nor moves live', async (_what, change, status) => {
    await given(3, '3');
    await operatorPoints('2');
    setStackStatus(cfnMock, status);
    const ev = updateEvent({ TargetVersion: '3', ...change }, { TargetVersion: '3' });
    const out = await onEvent(ev);
    expect(out.Data).toMatchObject({ Action: 'none', Intent: 'unchanged', PreviousVersion: '2' });
    expect((await complete(ev, out)).IsComplete).toBe(true);
    expect(await aliasVersion('live')).toBe('2');
    expect(await aliasVersion('stable')).toBe('3');
    expect(cd.created()).toHaveLength(0);
  });
});

describe('scenario 3: a stop at the deadline ends in UPDATE_ROLLBACK_COMPLETE, not UPDATE_ROLLBACK_FAILED', () => {
  const late = (out: OnEventResult): OnEventResult => ({ ...out, Data: { ...out.Data, Deadline: String(Date.now() - 1) } });

  test('past the deadline, isComplete stops the deployment with auto rollback and waits for CodeDeploy to put live back before failing', async () => {
    await given(2, '1');
    const deploy = await forward('1', '2');
    cd.progress(deploy.out.Data.DeploymentId);

    expect(await complete(deploy.ev, late(deploy.out))).toEqual({ IsComplete: false });
    expect(cdMock.commandCalls(StopDeploymentCommand)[0].args[0].input).toEqual({ deploymentId: 'd-0001', autoRollbackEnabled: true });
    expect(cd.get('d-0001').info.status).toBe(DeploymentStatus.STOPPED);
    // CodeDeploy's rollback deployment is in flight: keep waiting.
    expect(await complete(deploy.ev, late(deploy.out))).toEqual({ IsComplete: false });
    await cd.completeRollback(cd.rollbackDeployments()[0]);
    await expect(complete(deploy.ev, late(deploy.out))).rejects.toThrow(
      'CodeDeploy deployment d-0001 did not finish within 1200 s; it was stopped and CodeDeploy rolled live back; live serves version 1, stable was not moved');

    const rollback = await stackRollback('2', '1');
    expect(rollback.out.Data.Action).toBe('none');
    expect((await complete(rollback.ev, rollback.out)).IsComplete).toBe(true);
    expect(await aliasVersion('live')).toBe('1');
    expect(cd.created()).toHaveLength(1);
  });

  test('a rollback Update that finds CodeDeploy\'s rollback deployment in flight waits for it instead of throwing, then restores nothing', async () => {
    await given(2, '1');
    const deploy = await forward('1', '2');
    await cd.fail(deploy.out.Data.DeploymentId); // its rollback deployment is in flight

    const rollback = await stackRollback('2', '1');
    expect(rollback.out.Data).toMatchObject({ Action: 'wait', FailedVersion: '2' });
    expect(await complete(rollback.ev, rollback.out)).toEqual({ IsComplete: false });
    await cd.completeRollback(cd.rollbackDeployments()[0]);
    expect(await complete(rollback.ev, rollback.out)).toMatchObject({ IsComplete: true, Data: { Restored: 'none' } });
    expect(await aliasVersion('live')).toBe('1');
    expect(cd.created()).toHaveLength(1);
  });

  test('a rollback Update that finds the failed update\'s own deployment still in flight (the Provider timed out) stops it at its deadline and waits for the rollback', async () => {
    await given(2, '1');
    const deploy = await forward('1', '2');
    cd.progress(deploy.out.Data.DeploymentId);

    const rollback = await stackRollback('2', '1');
    expect(rollback.out.Data.Action).toBe('wait');
    expect(await complete(rollback.ev, rollback.out)).toEqual({ IsComplete: false });
    expect(cdMock.commandCalls(StopDeploymentCommand)).toHaveLength(0); // not before its deadline

    const lateRollback = { ...rollback.out, Data: { ...rollback.out.Data, Deadline: String(Date.now() - 1) } };
    expect(await complete(rollback.ev, lateRollback)).toEqual({ IsComplete: false });
    expect(cdMock.commandCalls(StopDeploymentCommand).map((c) => c.args[0].input)).toEqual([{ deploymentId: 'd-0001', autoRollbackEnabled: true }]);
    await cd.completeRollback(cd.rollbackDeployments()[0]);
    expect((await complete(rollback.ev, lateRollback)).IsComplete).toBe(true);
    expect(await aliasVersion('live')).toBe('1');
  });

  test('at its wait limit a rollback Update completes rather than failing the stack rollback, leaving live to the deployment in flight', async () => {
    await given(2, '1');
    const deploy = await forward('1', '2');
    cd.progress(deploy.out.Data.DeploymentId);
    const rollback = await stackRollback('2', '1');
    const expired = { ...rollback.out, Data: { ...rollback.out.Data, Deadline: String(Date.now() - 2), GiveUpAt: String(Date.now() - 1) } };
    expect(await complete(rollback.ev, expired)).toMatchObject({ IsComplete: true, Data: { Restored: 'left-in-flight' } });
  });
});

describe('retried events (same RequestId)', () => {
  test('a retried forward Update after its deployment failed and was rolled back reports that failure; it does not deploy again', async () => {
    await given(2, '1');
    const first = await forward('1', '2', 'req-A');
    await cd.completeRollback(await cd.fail(first.out.Data.DeploymentId));

    const retry = await forward('1', '2', 'req-A');
    expect(retry.out.Data).toMatchObject({ Action: 'deploy', DeploymentId: first.out.Data.DeploymentId, PreviousVersion: '1' });
    await expect(complete(retry.ev, retry.out)).rejects.toThrow(/d-0001 Failed/);
    expect(cd.created()).toHaveLength(1);
  });

  test('a retried forward Update keeps the first attempt\'s record of what served before', async () => {
    await given(3, '1');
    await forward('1', '3', 'req-B');
    await operatorPoints('2'); // whatever live serves at the retry does not overwrite the record
    await forward('1', '3', 'req-B');
    const tags = (await lambda.send(new ListTagsCommand({ Resource: fnArn }))).Tags ?? {};
    expect(tags['cdk-rollback:update-record']).toMatch(/^target=3 live=1 stable=1 request=req-B deployment=d-0001$/);
  });

  test('a retried rollback Update after the restore is a no-op', async () => {
    await given(6, '4');
    const deploy = await forward('4', '6');
    await cd.succeed(deploy.out.Data.DeploymentId);
    await complete(deploy.ev, deploy.out);
    await stackRollback('6', '4', 'rb');
    const retry = await stackRollback('6', '4', 'rb');
    expect(retry.out.Data.Action).toBe('none');
    expect(await aliasVersion('live')).toBe('4');
    expect(await aliasVersion('stable')).toBe('4');
  });
});

describe('stable', () => {
  test('a failed deployment never moves stable; a stack rollback moves stable off a version it rolled back', async () => {
    await given(3, '1');
    const ok = await forward('1', '2');
    await cd.succeed(ok.out.Data.DeploymentId);
    await complete(ok.ev, ok.out);
    expect(await aliasVersion('stable')).toBe('2');

    const bad = await forward('2', '3');
    await cd.completeRollback(await cd.fail(bad.out.Data.DeploymentId));
    await expect(complete(bad.ev, bad.out)).rejects.toThrow(/Failed/);
    expect(await aliasVersion('stable')).toBe('2');

    // An operator promoted 3 by hand and stable followed it (e.g. a script): the rollback of 3 takes stable back.
    await operatorPoints('3');
    await lambda.send(new UpdateAliasCommand({ FunctionName: 'fn', Name: 'stable', FunctionVersion: '3' }));
    const rollback = await stackRollback('3', '2');
    await complete(rollback.ev, rollback.out);
    expect(await aliasVersion('live')).toBe('2');
    expect(await aliasVersion('stable')).toBe('2');
  });
});

describe('deployment config read at run time (imported config)', () => {
  test('the deadline adds the config\'s traffic shifting, read with GetDeploymentConfig', async () => {
    await given(2, '1');
    cd.configs.set('Custom.Linear20Every10', { type: 'TimeBasedLinear', timeBasedLinear: { linearPercentage: 20, linearInterval: 10 } });
    setStackStatus(cfnMock, 'UPDATE_IN_PROGRESS');
    const ev = updateEvent({ TargetVersion: '2', DeploymentConfigName: 'Custom.Linear20Every10', MaxDeploymentSeconds: '600' }, { TargetVersion: '1' });
    const before = Date.now();
    const out = await onEvent(ev);
    // 600 s of hooks and margins + 4 x 10 min of linear shifting
    expect(Number(out.Data.Deadline) - before).toBeGreaterThanOrEqual((600 + 2400) * 1000);
    expect(Number(out.Data.Deadline) - before).toBeLessThan((600 + 2400 + 60) * 1000);
  });

  test('a config too long for the custom resource\'s hour fails the forward Update before any deployment starts', async () => {
    await given(2, '1');
    cd.configs.set('Custom.Canary90', { type: 'TimeBasedCanary', timeBasedCanary: { canaryPercentage: 10, canaryInterval: 90 } });
    setStackStatus(cfnMock, 'UPDATE_IN_PROGRESS');
    const ev = updateEvent({ TargetVersion: '2', DeploymentConfigName: 'Custom.Canary90', MaxDeploymentSeconds: '600' }, { TargetVersion: '1' });
    await expect(onEvent(ev)).rejects.toThrow(
      '`deploymentConfig` Custom.Canary90 shifts traffic for 90 min; with hooks and margins a deployment may take 100 min, more than the 50 min ' +
      'the custom resource can wait (CloudFormation gives it 1 hour): no deployment was started. Choose a shorter deployment config');
    expect(cd.created()).toHaveLength(0);
    expect(await aliasVersion('live')).toBe('1');
  });

  test('when the config cannot be read, the deadline assumes the longest deployment that fits', async () => {
    await given(2, '1');
    setStackStatus(cfnMock, 'UPDATE_IN_PROGRESS');
    const ev = updateEvent({ TargetVersion: '2', DeploymentConfigName: 'Missing.Config', MaxDeploymentSeconds: '600' }, { TargetVersion: '1' });
    const before = Date.now();
    const out = await onEvent(ev);
    expect(Number(out.Data.Deadline) - before).toBeGreaterThanOrEqual(50 * 60_000);
    expect(Number(out.Data.Deadline) - before).toBeLessThan(51 * 60_000);
  });
});
