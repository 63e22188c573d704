/**
 * The SafeLambdaApi deployment custom resource against moto_server (Lambda and CodeDeploy through
 * the real SDK). moto keeps every CodeDeploy deployment in status "Created" forever, so the tests
 * that need deployments to finish live in alias-deployment-states.test.ts.
 */
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import {
  CodeDeployClient,
  CreateApplicationCommand,
  CreateDeploymentGroupCommand,
  GetDeploymentCommand,
  ListDeploymentsCommand,
} from '@aws-sdk/client-codedeploy';
import {
  CreateAliasCommand,
  GetAliasCommand,
  LambdaClient,
  ListTagsCommand,
  ListVersionsByFunctionCommand,
  UpdateAliasCommand,
} from '@aws-sdk/client-lambda';
import { isComplete, onEvent, type OnEventResult } from '../lambda/alias-deployment/index';
import { useMotoServer } from './helpers/moto';
import { createFunctionWithVersions, event } from './helpers/lambda-fixtures';
import { updateEvent } from './helpers/alias-events';

const moto = useMotoServer();

let lambda: LambdaClient;
let codedeploy: CodeDeployClient;
const APP = 'app';
const GROUP = 'group';

beforeEach(async () => {
  await moto.reset();
  lambda = new LambdaClient({});
  codedeploy = new CodeDeployClient({});
  await codedeploy.send(new CreateApplicationCommand({ applicationName: APP, computePlatform: 'Lambda' }));
  await codedeploy.send(new CreateDeploymentGroupCommand({
    applicationName: APP,
    deploymentGroupName: GROUP,
    serviceRoleArn: 'arn:aws:iam::123456789012:role/codedeploy',
    deploymentConfigName: 'CodeDeployDefault.LambdaCanary10Percent5Minutes',
    deploymentStyle: { deploymentType: 'BLUE_GREEN', deploymentOption: 'WITH_TRAFFIC_CONTROL' },
  }));
});

const aliasVersion = async (name: string) =>
  (await lambda.send(new GetAliasCommand({ FunctionName: 'fn', Name: name }))).FunctionVersion;
const deployments = async () =>
  (await codedeploy.send(new ListDeploymentsCommand({ applicationName: APP, deploymentGroupName: GROUP }))).deployments ?? [];

describe('onEvent', () => {
  test('Create on a function without aliases creates live and stable on the new version and starts no deployment', async () => {
    await createFunctionWithVersions(lambda, 'fn', 1);
    const out = await onEvent(event('Create', { TargetVersion: '1' }));
    expect(out.PhysicalResourceId).toBe('fn:live');
    expect(out.Data.Action).toBe('initialized');
    expect(await aliasVersion('live')).toBe('1');
    expect(await aliasVersion('stable')).toBe('1');
    expect(await deployments()).toEqual([]);
  });

  test('tags the function so that the CLI finds its deployment group and hooks', async () => {
    const arn = await createFunctionWithVersions(lambda, 'fn', 1);
    await onEvent(event('Create', { TargetVersion: '1', BeforeAllowTrafficHook: 'smoke', AfterAllowTrafficHook: '' }));
    const tags = (await lambda.send(new ListTagsCommand({ Resource: arn }))).Tags;
    expect(tags).toMatchObject({
      'cdk-rollback:codedeploy-application': APP,
      'cdk-rollback:codedeploy-deployment-group': GROUP,
      'cdk-rollback:pre-traffic-hook': 'smoke',
      'cdk-rollback:construct-path': 'Stack/Api',
      'cdk-rollback:alarmed-version': '1',
    });
    expect(tags).not.toHaveProperty('cdk-rollback:post-traffic-hook');
  });

  test('Update starts a CodeDeploy deployment from the version live ACTUALLY serves to the new one, with the hooks', async () => {
    await createFunctionWithVersions(lambda, 'fn', 3);
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: '2' }));
    // Someone rolled live back by hand: the stack still believes in version 2, live serves 1.
    await lambda.send(new UpdateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: '1' }));

    const out = await onEvent(updateEvent({ TargetVersion: '3', BeforeAllowTrafficHook: 'smoke', AfterAllowTrafficHook: 'post' }, { TargetVersion: '2' }));

    expect(out.Data).toMatchObject({ Action: 'deploy', PreviousVersion: '1', TargetVersion: '3' });
    const info = (await codedeploy.send(new GetDeploymentCommand({ deploymentId: out.Data.DeploymentId }))).deploymentInfo!;
    const appSpec = JSON.parse(info.revision!.appSpecContent!.content!);
    expect(appSpec.Resources[0].fn.Properties).toEqual({ Name: 'fn', Alias: 'live', CurrentVersion: '1', TargetVersion: '3' });
    expect(appSpec.Hooks).toEqual([{ BeforeAllowTraffic: 'smoke' }, { AfterAllowTraffic: 'post' }]);
    expect(info.description).toBe('cdk-rollback request-Update');
    // live is moved by CodeDeploy, not by the custom resource
    expect(await aliasVersion('live')).toBe('1');
  });

  test('a retried Update resumes the deployment its request started instead of starting a second one', async () => {
    await createFunctionWithVersions(lambda, 'fn', 2);
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: '1' }));
    const first = await onEvent(updateEvent({ TargetVersion: '2' }, { TargetVersion: '1' }));
    const retry = await onEvent(updateEvent({ TargetVersion: '2' }, { TargetVersion: '1' }));
    expect(retry.Data.DeploymentId).toBe(first.Data.DeploymentId);
    expect(await deployments()).toHaveLength(1);
  });

  test('Update while another deployment is in flight fails and says how to proceed', async () => {
    await createFunctionWithVersions(lambda, 'fn', 3);
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: '1' }));
    await onEvent(updateEvent({ TargetVersion: '2' }, { TargetVersion: '1' }, 'other-request'));
    await expect(onEvent(updateEvent({ TargetVersion: '3' }, { TargetVersion: '2' })))
      .rejects.toThrow(/CodeDeploy deployment [\w-]+ is in progress on fn:live; wait for it to finish or stop it \(`cdk-rollback api rollback`\)/);
  });

  test('the rollback Update after CodeDeploy restored live is a no-op (unknown stack status: the version order decides)', async () => {
    await createFunctionWithVersions(lambda, 'fn', 2);
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: '1' }));
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'stable', FunctionVersion: '1' }));
    const out = await onEvent(updateEvent({ TargetVersion: '1' }, { TargetVersion: '2' }));
    expect(out.Data.Action).toBe('none');
    expect(await aliasVersion('live')).toBe('1');
    expect(await deployments()).toEqual([]);
  });

  test('the rollback Update to an older version points live straight back and leaves stable alone', async () => {
    await createFunctionWithVersions(lambda, 'fn', 3);
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: '3' }));
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'stable', FunctionVersion: '2' }));
    const out = await onEvent(updateEvent({ TargetVersion: '1' }, { TargetVersion: '3' }));
    expect(out.Data).toMatchObject({ Action: 'direct', PreviousVersion: '3' });
    expect(await aliasVersion('live')).toBe('1');
    expect(await aliasVersion('stable')).toBe('2');
    expect(await deployments()).toEqual([]);
  });

  test('Delete changes nothing', async () => {
    await createFunctionWithVersions(lambda, 'fn', 2);
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: '2' }));
    const out = await onEvent({ ...event('Delete', { TargetVersion: '2' }), PhysicalResourceId: 'fn:live' } as CloudFormationCustomResourceEvent);
    expect(out.PhysicalResourceId).toBe('fn:live');
    expect(await isComplete({ ...event('Delete', { TargetVersion: '2' }), ...out })).toEqual({ IsComplete: true });
    expect(await aliasVersion('live')).toBe('2');
    const versions = await lambda.send(new ListVersionsByFunctionCommand({ FunctionName: 'fn' }));
    expect(versions.Versions?.map((v) => v.Version)).toEqual(['$LATEST', '1', '2']);
  });

  test('a missing property fails with its name', async () => {
    await expect(onEvent(event('Create', { TargetVersion: '' }))).rejects.toThrow('custom resource property TargetVersion is missing');
  });
});

describe('version pruning (isComplete)', () => {
  const listVersions = async () =>
    ((await lambda.send(new ListVersionsByFunctionCommand({ FunctionName: 'fn' }))).Versions ?? [])
      .map((v) => v.Version).filter((v) => v !== '$LATEST');

  async function completeNoop(target: string, retain: string): Promise<Record<string, string> | undefined> {
    const ev = event('Update', { TargetVersion: target, RetainVersions: retain });
    const out: OnEventResult = await onEvent(ev);
    const done = await isComplete({ ...ev, ...out });
    expect(done.IsComplete).toBe(true);
    return done.Data;
  }

  test('keeps the newest RetainVersions versions and every version an alias points at', async () => {
    await createFunctionWithVersions(lambda, 'fn', 14);
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: '14' }));
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'stable', FunctionVersion: '3' }));
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'pinned-by-user', FunctionVersion: '1' }));

    const data = await completeNoop('14', '10');

    expect(data?.PrunedVersions).toBe('4,2');
    expect(await listVersions()).toEqual(['1', '3', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14']);
  });

  test('prunes nothing while a deployment is in flight (its versions may not be on an alias yet)', async () => {
    await createFunctionWithVersions(lambda, 'fn', 14);
    await lambda.send(new CreateAliasCommand({ FunctionName: 'fn', Name: 'live', FunctionVersion: '13' }));
    await onEvent(updateEvent({ TargetVersion: '14' }, { TargetVersion: '13' }, 'in-flight'));

    const ev = event('Update', { TargetVersion: '14', RetainVersions: '2' }, 'in-flight');
    const done = await isComplete({
      ...ev,
      PhysicalResourceId: 'fn:live',
      Data: { Action: 'none', TargetVersion: '14', PreviousVersion: '14', DeploymentId: '', Deadline: String(Date.now() + 60_000) },
    });

    expect(done).toEqual({ IsComplete: true, Data: { Version: '14', PrunedVersions: '' } });
    expect(await listVersions()).toHaveLength(14);
  });
});
