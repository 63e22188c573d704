/**
 * Deployment state transitions of the SafeLambdaApi deployment custom resource. Lambda is real
 * (moto_server); CodeDeploy is a scripted stand-in (aws-sdk-client-mock) because moto never moves a
 * deployment out of "Created": the stand-in records CreateDeployment and, when a test finishes a
 * deployment, applies its AppSpec to the real alias the way CodeDeploy would.
 */
import {
  CodeDeployClient,
  CreateDeploymentCommand,
  DeploymentStatus,
  GetDeploymentCommand,
  ListDeploymentsCommand,
  StopDeploymentCommand,
  type DeploymentInfo,
} from '@aws-sdk/client-codedeploy';
import { GetAliasCommand, LambdaClient, UpdateAliasCommand } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { isComplete, onEvent, type OnEventResult } from '../lambda/alias-deployment/index';
import { useMotoServer } from './helpers/moto';
import { createFunctionWithVersions, event } from './helpers/lambda-fixtures';
import { updateEvent } from './helpers/alias-events';

const moto = useMotoServer();
const cdMock = mockClient(CodeDeployClient);
let lambda: LambdaClient;

interface FakeDeployment { info: DeploymentInfo; appSpec: { Resources: Array<Record<string, { Properties: Record<string, string> }>> } }
let deployments: Map<string, FakeDeployment>;

function installCodeDeploy(): void {
  cdMock.reset();
  deployments = new Map();
  cdMock.on(CreateDeploymentCommand).callsFake((input) => {
    const id = `d-${deployments.size + 1}`;
    deployments.set(id, {
      info: { deploymentId: id, status: DeploymentStatus.CREATED, description: input.description },
      appSpec: JSON.parse(input.revision.appSpecContent.content),
    });
    return { deploymentId: id };
  });
  cdMock.on(ListDeploymentsCommand).callsFake((input) => ({
    deployments: [...deployments.values()]
      .filter((d) => !input.includeOnlyStatuses || input.includeOnlyStatuses.includes(d.info.status))
      .map((d) => d.info.deploymentId),
  }));
  cdMock.on(GetDeploymentCommand).callsFake((input) => ({ deploymentInfo: deployments.get(input.deploymentId)?.info }));
  cdMock.on(StopDeploymentCommand).callsFake((input) => {
    deployments.get(input.deploymentId)!.info = { ...deployments.get(input.deploymentId)!.info, status: DeploymentStatus.STOPPED };
    return { status: 'Pending' };
  });
}

/** What CodeDeploy does when a deployment ends: success moves live to the target, anything else leaves it. */
async function finish(id: string, status: DeploymentStatus, extra: Partial<DeploymentInfo> = {}): Promise<void> {
  const d = deployments.get(id)!;
  if (status === DeploymentStatus.SUCCEEDED) {
    const props = Object.values(d.appSpec.Resources[0])[0].Properties;
    await lambda.send(new UpdateAliasCommand({ FunctionName: props.Name, Name: props.Alias, FunctionVersion: props.TargetVersion }));
  }
  d.info = { ...d.info, status, ...extra };
}

function setStatus(id: string, status: DeploymentStatus): void {
  const d = deployments.get(id)!;
  d.info = { ...d.info, status };
}

const aliasVersion = async (name: string) =>
  (await lambda.send(new GetAliasCommand({ FunctionName: 'fn', Name: name }))).FunctionVersion;

async function start(target: string, requestId = `update-to-${target}`): Promise<{ ev: ReturnType<typeof event>; out: OnEventResult }> {
  const ev = updateEvent({ TargetVersion: target }, { TargetVersion: String(Number(target) - 1) }, requestId);
  return { ev, out: await onEvent(ev) };
}

beforeEach(async () => {
  await moto.reset();
  lambda = new LambdaClient({});
  installCodeDeploy();
  await createFunctionWithVersions(lambda, 'fn', 3);
  await onEvent(event('Create', { TargetVersion: '1' })); // live = stable = 1
});

afterAll(() => cdMock.restore());

test('deploy v2, roll live back to v1 by hand, deploy v3: the shift goes v1 -> v3 and the next deploy works', async () => {
  const v2 = await start('2');
  expect(deployments.get(v2.out.Data.DeploymentId)!.appSpec.Resources[0].fn.Properties)
    .toMatchObject({ CurrentVersion: '1', TargetVersion: '2' });
  await finish(v2.out.Data.DeploymentId, DeploymentStatus.SUCCEEDED);
  expect((await isComplete({ ...v2.ev, ...v2.out })).IsComplete).toBe(true);
  expect(await aliasVersion('stable')).toBe('2');

  // The operator's manual rollback (what CloudFormation's CodeDeployLambdaAliasUpdate policy cannot survive).
  await lambda.send(new UpdateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: '1' }));

  const v3 = await start('3');
  expect(v3.out.Data.PreviousVersion).toBe('1');
  expect(deployments.get(v3.out.Data.DeploymentId)!.appSpec.Resources[0].fn.Properties)
    .toEqual({ Name: 'fn', Alias: 'live', CurrentVersion: '1', TargetVersion: '3' });
  await finish(v3.out.Data.DeploymentId, DeploymentStatus.SUCCEEDED);
  expect((await isComplete({ ...v3.ev, ...v3.out })).IsComplete).toBe(true);
  expect(await aliasVersion('live')).toBe('3');
  expect(await aliasVersion('stable')).toBe('3');
});

test('Created -> InProgress -> Succeeded: waits, then moves stable to the new version', async () => {
  const { ev, out } = await start('2');
  expect(await isComplete({ ...ev, ...out })).toEqual({ IsComplete: false });
  setStatus(out.Data.DeploymentId, DeploymentStatus.IN_PROGRESS);
  expect(await isComplete({ ...ev, ...out })).toEqual({ IsComplete: false });
  expect(await aliasVersion('stable')).toBe('1');
  await finish(out.Data.DeploymentId, DeploymentStatus.SUCCEEDED);
  expect(await isComplete({ ...ev, ...out })).toEqual({ IsComplete: true, Data: { Version: '2', PrunedVersions: '' } });
  expect(await aliasVersion('stable')).toBe('2');
});

test.each([DeploymentStatus.FAILED, DeploymentStatus.STOPPED])('%s: throws with the reason and leaves stable on the last good version', async (status) => {
  const { ev, out } = await start('2');
  await finish(out.Data.DeploymentId, status, { errorInformation: { code: 'ALARM_ACTIVE', message: 'ErrorRateAlarm is in ALARM' } });
  await expect(isComplete({ ...ev, ...out })).rejects.toThrow(
    `CodeDeploy deployment d-1 ${status}: ALARM_ACTIVE ErrorRateAlarm is in ALARM; live serves version 1, stable was not moved`);
  expect(await aliasVersion('stable')).toBe('1');
});

test('a failed deployment waits for CodeDeploy\'s rollback deployment before failing the stack update', async () => {
  const { ev, out } = await start('2');
  cdMock.on(GetDeploymentCommand, { deploymentId: 'd-rollback' }).resolves({
    deploymentInfo: { deploymentId: 'd-rollback', status: DeploymentStatus.IN_PROGRESS },
  });
  await finish(out.Data.DeploymentId, DeploymentStatus.FAILED, { rollbackInfo: { rollbackDeploymentId: 'd-rollback' } });
  expect(await isComplete({ ...ev, ...out })).toEqual({ IsComplete: false });

  cdMock.on(GetDeploymentCommand, { deploymentId: 'd-rollback' }).resolves({
    deploymentInfo: { deploymentId: 'd-rollback', status: DeploymentStatus.SUCCEEDED },
  });
  await expect(isComplete({ ...ev, ...out })).rejects.toThrow(/CodeDeploy deployment d-1 Failed/);
});

test('past its deadline a deployment is stopped with auto rollback, and the update fails once it has stopped', async () => {
  const { ev, out } = await start('2');
  setStatus(out.Data.DeploymentId, DeploymentStatus.IN_PROGRESS);
  const late = { ...out, Data: { ...out.Data, Deadline: String(Date.now() - 1) } };
  expect(await isComplete({ ...ev, ...late })).toEqual({ IsComplete: false });
  expect(cdMock.commandCalls(StopDeploymentCommand)[0].args[0].input).toEqual({ deploymentId: 'd-1', autoRollbackEnabled: true });
  await expect(isComplete({ ...ev, ...late })).rejects.toThrow(
    'CodeDeploy deployment d-1 did not finish within 1200 s; it was stopped and CodeDeploy rolled live back; live serves version 1, stable was not moved');
});

test.each(['ThrottlingException', 'TimeoutError'])('a %s while polling is retried at the next interval, not a failure', async (name) => {
  const { ev, out } = await start('2');
  await finish(out.Data.DeploymentId, DeploymentStatus.SUCCEEDED);
  const fault = Object.assign(new Error('Rate exceeded'), { name });
  cdMock.on(GetDeploymentCommand).rejectsOnce(fault).callsFake((input) => ({ deploymentInfo: deployments.get(input.deploymentId)?.info }));
  expect(await isComplete({ ...ev, ...out })).toEqual({ IsComplete: false });
  expect((await isComplete({ ...ev, ...out })).IsComplete).toBe(true);
});

test('a non-transient polling error fails the update', async () => {
  const { ev, out } = await start('2');
  cdMock.on(GetDeploymentCommand).rejects(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }));
  await expect(isComplete({ ...ev, ...out })).rejects.toThrow('User is not authorized');
});

test('the stack rollback after a failed deployment is a no-op: CodeDeploy already put live back', async () => {
  const { ev, out } = await start('2');
  await finish(out.Data.DeploymentId, DeploymentStatus.FAILED);
  await expect(isComplete({ ...ev, ...out })).rejects.toThrow(/Failed/);

  const rollback = updateEvent({ TargetVersion: '1' }, { TargetVersion: '2' }, 'stack-rollback');
  const rbOut = await onEvent(rollback);
  expect(rbOut.Data.Action).toBe('none');
  expect((await isComplete({ ...rollback, ...rbOut })).IsComplete).toBe(true);
  expect(await aliasVersion('live')).toBe('1');
  expect(await aliasVersion('stable')).toBe('1');
  expect(cdMock.commandCalls(CreateDeploymentCommand)).toHaveLength(1);
});
