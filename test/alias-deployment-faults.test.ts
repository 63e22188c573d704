/**
 * Housekeeping never fails an event (issue 8): faults that no emulator produces (throttling, denied
 * calls) on the tagging and version-pruning calls of the SafeLambdaApi deployment custom resource,
 * above all inside a rollback Update. Lambda, CodeDeploy and CloudFormation are aws-sdk-client-mock
 * stubs; Lambda keeps its aliases in a map so the outcome can be checked.
 */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import {
  CodeDeployClient,
  DeploymentStatus,
  GetDeploymentCommand,
  ListDeploymentsCommand,
} from '@aws-sdk/client-codedeploy';
import {
  DeleteFunctionCommand,
  GetAliasCommand,
  GetFunctionCommand,
  LambdaClient,
  ListAliasesCommand,
  ListVersionsByFunctionCommand,
  TagResourceCommand,
  UpdateAliasCommand,
  CreateAliasCommand,
} from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { isComplete, onEvent } from '../lambda/alias-deployment/index';
import { setStackStatus, updateEvent } from './helpers/alias-events';

const lambdaMock = mockClient(LambdaClient);
const cdMock = mockClient(CodeDeployClient);
const cfnMock = mockClient(CloudFormationClient);

const throttled = () => Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException', $retryable: { throttling: true } });
const denied = () => Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' });

let aliases: Map<string, string>;
let record: string | undefined;

beforeEach(() => {
  lambdaMock.reset();
  cdMock.reset();
  cfnMock.reset();
  aliases = new Map([['live', '6'], ['stable', '6']]);
  record = 'target=6 live=3 stable=4 request=forward deployment=d-1';
  lambdaMock.on(GetFunctionCommand).callsFake(() => ({
    Configuration: { FunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:fn' },
    Tags: record ? { 'cdk-rollback:update-record': record } : {},
  }));
  lambdaMock.on(TagResourceCommand).resolves({});
  lambdaMock.on(GetAliasCommand).callsFake((input) => {
    const v = aliases.get(input.Name);
    if (!v) throw Object.assign(new Error('alias not found'), { name: 'ResourceNotFoundException' });
    return { Name: input.Name, FunctionVersion: v };
  });
  lambdaMock.on(UpdateAliasCommand).callsFake((input) => {
    aliases.set(input.Name, input.FunctionVersion);
    return {};
  });
  lambdaMock.on(CreateAliasCommand).callsFake((input) => {
    aliases.set(input.Name, input.FunctionVersion);
    return {};
  });
  lambdaMock.on(ListVersionsByFunctionCommand).resolves({ Versions: ['1', '2', '3', '4', '5', '6'].map((Version) => ({ Version })) });
  lambdaMock.on(ListAliasesCommand).callsFake(() => ({ Aliases: [...aliases].map(([Name, FunctionVersion]) => ({ Name, FunctionVersion })) }));
  lambdaMock.on(DeleteFunctionCommand).resolves({});
  cdMock.on(ListDeploymentsCommand).resolves({ deployments: [] });
  setStackStatus(cfnMock, 'UPDATE_ROLLBACK_IN_PROGRESS');
});

afterAll(() => {
  lambdaMock.restore();
  cdMock.restore();
  cfnMock.restore();
});

const rollbackEvent = () => updateEvent({ TargetVersion: '4', RetainVersions: '2' }, { TargetVersion: '6' }, 'rollback');

test('a rollback Update restores live and stable although tagging is denied and every pruning call is throttled', async () => {
  lambdaMock.on(TagResourceCommand).rejects(denied());
  lambdaMock.on(ListVersionsByFunctionCommand).rejects(throttled());
  const ev = rollbackEvent();
  const out = await onEvent(ev);
  expect(out.Data).toMatchObject({ Action: 'direct', Intent: 'rollback' });
  expect(await isComplete({ ...ev, ...out })).toEqual({ IsComplete: true, Data: { Version: '4', PrunedVersions: '' } });
  expect(aliases.get('live')).toBe('3');
  expect(aliases.get('stable')).toBe('4');
});

test('a rollback Update completes when pruning\'s in-flight check fails (ListDeployments denied after the restore)', async () => {
  const ev = rollbackEvent();
  const out = await onEvent(ev); // its own in-flight check succeeds
  cdMock.on(ListDeploymentsCommand).rejects(denied());
  expect(await isComplete({ ...ev, ...out })).toEqual({ IsComplete: true, Data: { Version: '4', PrunedVersions: '' } });
  expect(aliases.get('live')).toBe('3');
});

test('a rollback Update whose in-flight check is throttled waits and restores at the next poll instead of throwing', async () => {
  cdMock.on(ListDeploymentsCommand).rejectsOnce(throttled()).resolves({ deployments: [] });
  const ev = rollbackEvent();
  const out = await onEvent(ev);
  expect(out.Data).toMatchObject({ Action: 'wait', FailedVersion: '6' });
  expect(aliases.get('live')).toBe('6');
  const done = await isComplete({ ...ev, ...out });
  expect(done).toMatchObject({ IsComplete: true, Data: { Restored: 'direct' } });
  expect(aliases.get('live')).toBe('3');
});

test('a rollback Update keeps polling through errors and fails, saying so, only at its wait limit', async () => {
  cdMock.on(ListDeploymentsCommand).rejects(denied());
  const ev = rollbackEvent();
  const out = await onEvent(ev);
  expect(out.Data.Action).toBe('wait');
  expect(await isComplete({ ...ev, ...out })).toEqual({ IsComplete: false });
  const expired = { ...out, Data: { ...out.Data, GiveUpAt: String(Date.now() - 1) } };
  await expect(isComplete({ ...ev, ...expired })).rejects.toThrow(
    'stack rollback of fn:live could not check or restore live within the wait limit: AccessDeniedException: not authorized. ' +
    'Point live at the version to serve with `cdk-rollback api rollback --to VERSION`, then `aws cloudformation continue-update-rollback`');
});

test('a rollback Update with no version left to restore fails at once, saying what to do', async () => {
  lambdaMock.on(UpdateAliasCommand).callsFake((input) => {
    throw Object.assign(new Error(`Function not found: fn:${input.FunctionVersion}`), { name: 'ResourceNotFoundException' });
  });
  await expect(onEvent(rollbackEvent())).rejects.toThrow(
    'stack rollback cannot point fn:live back from the failed version 6: no earlier version to restore exists ' +
    '(version 3: Function not found: fn:3; version 4: Function not found: fn:4)');
});

test('a rollback Update whose record cannot be read restores the template\'s old version', async () => {
  lambdaMock.on(GetFunctionCommand).rejects(throttled());
  const ev = rollbackEvent();
  const out = await onEvent(ev);
  expect(out.Data.Action).toBe('direct');
  expect(aliases.get('live')).toBe('4');
  expect(aliases.get('stable')).toBe('4');
});

test('a successful forward deployment completes and moves stable although pruning cannot list aliases', async () => {
  setStackStatus(cfnMock, 'UPDATE_IN_PROGRESS');
  aliases = new Map([['live', '6'], ['stable', '5']]);
  cdMock.on(GetDeploymentCommand).resolves({ deploymentInfo: { deploymentId: 'd-7', status: DeploymentStatus.SUCCEEDED } });
  lambdaMock.on(ListAliasesCommand).rejects(throttled());
  const ev = updateEvent({ TargetVersion: '6' }, { TargetVersion: '5' }, 'forward');
  const done = await isComplete({
    ...ev,
    PhysicalResourceId: 'fn:live',
    Data: { Action: 'deploy', TargetVersion: '6', PreviousVersion: '5', DeploymentId: 'd-7', Deadline: String(Date.now() + 60_000) },
  });
  expect(done).toEqual({ IsComplete: true, Data: { Version: '6', PrunedVersions: '' } });
  expect(aliases.get('stable')).toBe('6');
});

test('an unchanged Update succeeds although reading and tagging the function fail', async () => {
  setStackStatus(cfnMock, 'UPDATE_IN_PROGRESS');
  lambdaMock.on(GetFunctionCommand).rejects(throttled());
  const ev = updateEvent({ TargetVersion: '6', RetainVersions: '3' }, { TargetVersion: '6' });
  const out = await onEvent(ev);
  expect(out.Data).toMatchObject({ Action: 'none', Intent: 'unchanged' });
  expect((await isComplete({ ...ev, ...out })).IsComplete).toBe(true);
});

test('pruning protects the versions the update record names (what a stack rollback restores)', async () => {
  setStackStatus(cfnMock, 'UPDATE_IN_PROGRESS');
  const ev = updateEvent({ TargetVersion: '6', RetainVersions: '2' }, { TargetVersion: '6' });
  const out = await onEvent(ev);
  const done = await isComplete({ ...ev, ...out });
  // newest 2 are 6 and 5; 4 (record's stable) and 3 (record's live) are kept; 2 and 1 go
  expect(done.Data?.PrunedVersions).toBe('2,1');
});
