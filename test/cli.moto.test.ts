/**
 * The built CLI (`node dist/bin/cdk-rollback.js`) as a child process, against moto_server through the
 * real AWS SDK: status, api rollback and its refusals, promote, db snapshots/restore/drill, stack
 * discovery and targets, bad flags, and the confirmation gate without a TTY.
 */
import { CloudFormationClient, CreateStackCommand } from '@aws-sdk/client-cloudformation';
import { CodeDeployClient, ListDeploymentsCommand } from '@aws-sdk/client-codedeploy';
import { CreateAliasCommand, GetAliasCommand, LambdaClient, PublishVersionCommand, UpdateFunctionCodeCommand } from '@aws-sdk/client-lambda';
import { DescribeDBClustersCommand, DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { useMotoServer } from './helpers/moto';
import { ACCOUNT, createApi, createCluster, createRole, zip } from './fixtures/cli/aws';
import { ensureCliBuilt, json, runCli, runCliOnTty } from './fixtures/cli/harness';
import { requireTool } from './helpers/tools';

const moto = useMotoServer();
const lambda = () => new LambdaClient({});
const liveVersion = async (fn: string) => (await lambda().send(new GetAliasCommand({ FunctionName: fn, Name: 'live' }))).FunctionVersion;

beforeAll(() => ensureCliBuilt(), 180_000);
beforeEach(() => moto.reset());

describe('argument handling', () => {
  test('an unknown flag is a usage error (exit 2) naming the flag', async () => {
    const r = await runCli(['api', 'rollback', '--function', 'f', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--bogus'");
    expect(r.stdout).toBe('');
  });

  test('with --json a usage error is one JSON document too', async () => {
    const r = await runCli(['status', '--json', '--bogus']);
    expect(r.code).toBe(2);
    expect(json(r)).toEqual({ ok: false, error: "unknown option '--bogus'", exitCode: 2, done: [] });
  });

  test('a missing required flag is a usage error', async () => {
    const r = await runCli(['api', 'promote', '--function', 'f', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--to <version>' not specified");
  });

  test('a malformed version is a usage error naming the flag and the value', async () => {
    const r = await runCli(['api', 'rollback', '--function', 'f', '--to', 'latest', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('`--to` must be a published version number, got: latest');
  });

  test('no target at all is a usage error that names the flags to use', async () => {
    const r = await runCli(['api', 'rollback', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no API target: pass --stack NAME or --function NAME');
  });

  test('a function that does not exist is a usage error', async () => {
    const r = await runCli(['api', 'rollback', '--function', 'missing-fn', '--yes', '--json']);
    expect(r.code).toBe(2);
    expect(json(r)).toMatchObject({ ok: false, exitCode: 2, error: 'function missing-fn does not exist (check --function, --region and --profile)' });
  });

  test('--region is honoured: the function is looked up in that region', async () => {
    await createApi({ functionName: 'orders', versions: 2, live: 2, stable: 1 });
    expect((await runCli(['status', '--function', 'orders'])).code).toBe(0);
    const r = await runCli(['status', '--function', 'orders', '--region', 'eu-west-1']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('error: function orders does not exist');
  });

  test('--profile is honoured: an unknown profile has no credentials', async () => {
    const r = await runCli(['api', 'rollback', '--function', 'orders', '--profile', 'no-such-profile', '--yes'], {
      AWS_CONFIG_FILE: '/nonexistent/config', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cdk-rollback: error: CredentialsProviderError: .*(no-such-profile|Could not load credentials)/);
  });

  test('--help prints usage on stdout and exits 0', async () => {
    const r = await runCli(['api', 'rollback', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--to <version>');
    expect(r.stdout).toContain('--dry-run');
  });
});

describe('status', () => {
  test('shows live, stable and the CodeDeploy group of an API, and the snapshots of a cluster (text)', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    await createCluster('orders-db', ['orders-aaaaaaaa-20260101000000', 'orders-bbbbbbbb-20260102000000']);
    const r = await runCli(['status', '--function', 'orders', '--cluster', 'orders-db']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('API orders');
    expect(r.stdout).toContain('live:   version 3');
    expect(r.stdout).toContain('stable: version 2');
    expect(r.stdout).toContain('CodeDeploy: orders-app/orders-group');
    expect(r.stdout).toContain('deployment in flight: none');
    expect(r.stdout).toMatch(/snapshot: orders-bbbbbbbb-20260102000000[\s\S]*snapshot: orders-aaaaaaaa-20260101000000/);
    expect(r.stdout).not.toMatch(/\u001b\[/); // no colours without a TTY
  });

  test('--json prints exactly one JSON document on stdout', async () => {
    await createApi({ functionName: 'orders', versions: 2, live: 2, stable: 1, liveWeights: { 1: 0.25 } });
    const r = await runCli(['status', '--function', 'orders', '--json']);
    expect(r.code).toBe(0);
    const doc = json(r);
    expect(doc.ok).toBe(true);
    expect(doc.apis).toEqual([expect.objectContaining({
      function: 'orders', live: { version: '2', weights: { 1: 0.25 } }, stable: '1', inFlight: [],
    })]);
  });

  test('reports the stack status and every marked construct of a deployed stack', async () => {
    await createStack('AppStack', ['AppStack/Api']);
    const r = await runCli(['status', '--stack', 'AppStack']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Stack AppStack: CREATE_COMPLETE');
    expect(r.stdout).toContain('API AppStack/Api (appstack-api)');
    expect(r.stdout).toContain('live:   version 2');
  });

  test('a stack that does not exist is a usage error', async () => {
    const r = await runCli(['status', '--stack', 'Nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stack Nope does not exist');
  });
});

describe('targets in a stack', () => {
  test('several APIs without --target is an error listing the choices, and nothing changes', async () => {
    await createStack('AppStack', ['AppStack/Api', 'AppStack/Admin']);
    const r = await runCli(['api', 'rollback', '--stack', 'AppStack', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stack AppStack has 2 SafeLambdaApi targets: pass --target with one of: AppStack/Admin, AppStack/Api');
    expect(await liveVersion('appstack-api')).toBe('2');
    expect(await liveVersion('appstack-admin')).toBe('2');
  });

  test('--target picks one (full path or last segment)', async () => {
    await createStack('AppStack', ['AppStack/Api', 'AppStack/Admin']);
    // The hand-made stack has no CodeDeploy group: the in-flight check cannot be made, so --force is needed.
    const refusedRun = await runCli(['api', 'rollback', '--stack', 'AppStack', '--target', 'Admin', '--yes']);
    expect(refusedRun.code).toBe(3);
    expect(refusedRun.stderr).toContain('cannot check for an in-flight CodeDeploy deployment of AppStack/Admin (appstack-admin)');
    expect(await liveVersion('appstack-admin')).toBe('2');
    const r = await runCli(['api', 'rollback', '--stack', 'AppStack', '--target', 'Admin', '--yes', '--force']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('going ahead because of --force');
    expect(r.stdout).toContain('Rolled back live of AppStack/Admin (appstack-admin): version 2 -> version 1.');
    expect(await liveVersion('appstack-admin')).toBe('1');
    expect(await liveVersion('appstack-api')).toBe('2');
  });

  test('a --target that matches nothing lists the choices', async () => {
    await createStack('AppStack', ['AppStack/Api']);
    const r = await runCli(['api', 'rollback', '--stack', 'AppStack', '--target', 'Web', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('`--target` Web matches no SafeLambdaApi in stack AppStack; choices: AppStack/Api');
  });

  test('a stack without the kind asked for says how to name a target explicitly', async () => {
    await createStack('AppStack', ['AppStack/Api']);
    const r = await runCli(['db', 'snapshots', '--stack', 'AppStack']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no PreMigrationSnapshot or DatabaseMigrations found in stack AppStack: deploy one, or name the target with --cluster ID');
  });
});

describe('api rollback', () => {
  test('points live at stable, records the audit entry in SSM, and status shows it', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const r = await runCli(['api', 'rollback', '--function', 'orders', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Rolled back live of orders: version 3 -> version 2.');
    expect(r.stdout).toMatch(/AUDIT \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ who=arn:aws:sts::123456789012:user\/moto action="api rollback" target=orders from=live=3 to=live=2/);
    expect(await liveVersion('orders')).toBe('2');
    const param = await new SSMClient({}).send(new GetParameterCommand({ Name: '/cdk-rollback/audit/api/orders' }));
    expect(JSON.parse(param.Parameter!.Value!)).toEqual([expect.objectContaining({ action: 'api rollback', from: 'live=3', to: 'live=2' })]);
    const s = await runCli(['status', '--function', 'orders']);
    expect(s.stdout).toMatch(/last: \S+ api rollback live=3 -> live=2 by arn:aws:sts::123456789012:user\/moto/);
  });

  test('clears the weights of a half-shifted alias', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 2, stable: 2, liveWeights: { 3: 0.1 }, codeDeploy: true });
    const r = await runCli(['api', 'rollback', '--function', 'orders', '--yes', '--json']);
    expect(r.code).toBe(0);
    expect(json(r)).toMatchObject({ action: 'rollback', from: { version: '2', weights: { 3: 0.1 } }, to: '2' });
    const alias = await lambda().send(new GetAliasCommand({ FunctionName: 'orders', Name: 'live' }));
    expect(alias.FunctionVersion).toBe('2');
    expect(alias.RoutingConfig?.AdditionalVersionWeights ?? {}).toEqual({});
  });

  test('refuses when live already is stable: the stable version itself is failing (exit 3)', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 2, stable: 2, codeDeploy: true });
    const r = await runCli(['api', 'rollback', '--function', 'orders', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('live of orders already points at stable (version 2): if it is failing, the stable version itself is failing');
  });

  test('refuses to "roll back" forward when live is already older than stable (no rollback loop)', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 1, stable: 2, codeDeploy: true });
    const r = await runCli(['api', 'rollback', '--function', 'orders', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('live of orders (version 1) is already older than stable (version 2): nothing to roll back');
    expect(await liveVersion('orders')).toBe('1');
  });

  test('refuses --to the version that is already live', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const r = await runCli(['api', 'rollback', '--function', 'orders', '--to', '3', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('live of orders already points at version 3: nothing to roll back');
  });

  test('refuses --to a version newer than stable unless --force', async () => {
    await createApi({ functionName: 'orders', versions: 4, live: 4, stable: 2, codeDeploy: true });
    const refusedRun = await runCli(['api', 'rollback', '--function', 'orders', '--to', '3', '--yes']);
    expect(refusedRun.code).toBe(3);
    expect(refusedRun.stderr).toContain('version 3 is newer than stable (version 2): a rollback goes to stable or older; pass --force to override');
    expect(await liveVersion('orders')).toBe('4');
    const forced = await runCli(['api', 'rollback', '--function', 'orders', '--to', '3', '--force', '--yes']);
    expect(forced.code).toBe(0);
    expect(await liveVersion('orders')).toBe('3');
  });

  test('compares versions numerically (10 is newer than 9)', async () => {
    await createApi({ functionName: 'orders', versions: 11, live: 11, stable: 9, codeDeploy: true });
    const r = await runCli(['api', 'rollback', '--function', 'orders', '--to', '10', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('version 10 is newer than stable (version 9)');
  });

  test('rolls back --to an older version than stable', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const r = await runCli(['api', 'rollback', '--function', 'orders', '--to', '1', '--yes']);
    expect(r.code).toBe(0);
    expect(await liveVersion('orders')).toBe('1');
  });

  test('refuses without a stable alias unless --to and --force', async () => {
    await createApi({ functionName: 'orders', versions: 2, live: 2, codeDeploy: true });
    const r = await runCli(['api', 'rollback', '--function', 'orders', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('function orders has no `stable` alias: no version is known to be good; pick one with --to VERSION --force');
  });

  test('a --to version that does not exist is a usage error', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const missing = await runCli(['api', 'rollback', '--function', 'orders', '--to', '99', '--force', '--yes']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('version 99 of function orders does not exist');
  });

  test('without a TTY and without --yes it refuses and changes nothing', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const r = await runCli(['api', 'rollback', '--function', 'orders']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('there is no terminal to confirm on: pass --yes (or --dry-run to see the plan)');
    expect(await liveVersion('orders')).toBe('3');
  });

  test('on a terminal it shows the plan and asks (the real prompt); "n" changes nothing, "y" rolls back', async () => {
    requireTool('script', ['--version']);
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const no = await runCliOnTty(['api', 'rollback', '--function', 'orders'], {}, 'Point live at version 2?', 'n\r');
    expect(no.stdout).toContain('live of orders: version 3 -> version 2');
    expect(no.stdout).toContain('aborted at the prompt: nothing was changed');
    expect(no.code).toBe(4);
    expect(await liveVersion('orders')).toBe('3');
    const yes = await runCliOnTty(['api', 'rollback', '--function', 'orders'], {}, 'Point live at version 2?', 'y\r');
    expect(yes.code).toBe(0);
    expect(yes.stdout).toContain('Rolled back live of orders: version 3 -> version 2.');
    expect(await liveVersion('orders')).toBe('2');
  });

  test('--dry-run shows the plan (from -> to) and changes nothing', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const r = await runCli(['api', 'rollback', '--function', 'orders', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('would set live of orders: version 3 -> version 2');
    expect(await liveVersion('orders')).toBe('3');
  });

  test('leaves the next deployment working: a later promote shifts from the rolled-back version', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    expect((await runCli(['api', 'rollback', '--function', 'orders', '--yes'])).code).toBe(0);
    const p = await runCli(['api', 'promote', '--function', 'orders', '--to', '3', '--yes', '--json']);
    expect(p.code).toBe(0);
    expect(json(p)).toMatchObject({ action: 'promote', from: { version: '2' }, to: '3' });
  });
});

describe('api promote', () => {
  test('creates a CodeDeploy deployment of the group found through the function tags', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 2, stable: 2, codeDeploy: true });
    const r = await runCli(['api', 'promote', '--function', 'orders', '--to', '3', '--yes', '--json']);
    expect(r.code).toBe(0);
    const doc = json(r);
    expect(doc).toMatchObject({ action: 'promote', to: '3', from: { version: '2' }, auditRecordedIn: '/cdk-rollback/audit/api/orders' });
    const listed = await new CodeDeployClient({}).send(new ListDeploymentsCommand({ applicationName: 'orders-app', deploymentGroupName: 'orders-group' }));
    expect(listed.deployments).toEqual([doc.deploymentId]);
    // the new deployment is in flight: status shows it and a second promote is refused
    const s = await runCli(['status', '--function', 'orders']);
    expect(s.stdout).toContain(`deployment in flight: ${doc.deploymentId}`);
    const again = await runCli(['api', 'promote', '--function', 'orders', '--to', '1', '--yes']);
    expect(again.code).toBe(3);
    expect(again.stderr).toContain(`CodeDeploy deployment ${doc.deploymentId} is in flight`);
  });

  test('refuses a function without a CodeDeploy group', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 2, stable: 2 });
    const r = await runCli(['api', 'promote', '--function', 'orders', '--to', '3', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('function orders has no CodeDeploy deployment group');
  });

  test('refuses the version that is already live', async () => {
    await createApi({ functionName: 'orders', versions: 3, live: 3, stable: 2, codeDeploy: true });
    const r = await runCli(['api', 'promote', '--function', 'orders', '--to', '3', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('live of orders already points at version 3: nothing to promote');
  });
});

describe('db', () => {
  test('snapshots lists the managed snapshots of the cluster, newest first, not the others', async () => {
    await createCluster('orders-db', ['orders-aaaaaaaa-20260101000000', 'orders-bbbbbbbb-20260102000000'], { unmanaged: 'hand-made' });
    const r = await runCli(['db', 'snapshots', '--cluster', 'orders-db', '--json']);
    expect(r.code).toBe(0);
    const doc = json(r);
    expect(doc.snapshots.map((s: { id: string }) => s.id)).toEqual(['orders-bbbbbbbb-20260102000000', 'orders-aaaaaaaa-20260101000000']);
    expect(doc.snapshots[0]).toMatchObject({ status: 'available', fingerprint: 'bbbbbbbb', constructPath: 'AppStack/Snapshot' });
  });

  test('restore creates a NEW cluster shaped like the source, then its writer, and prints the endpoint', async () => {
    await createCluster('orders-db', ['orders-aaaaaaaa-20260101000000']);
    const r = await runCli(['db', 'restore', '--snapshot', 'orders-aaaaaaaa-20260101000000', '--new-cluster-id', 'orders-db-restored', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Restored orders-aaaaaaaa-20260101000000 into cluster orders-db-restored');
    expect(r.stdout).toMatch(/endpoint: orders-db-restored\.cluster-\S+/);
    expect(r.stdout).toContain('Switch steps:');
    expect(r.stdout).toMatch(/action="db restore" target=orders-db from=snapshot orders-aaaaaaaa-20260101000000 of cluster orders-db \(\S+, fingerprint aaaaaaaa\) to=new cluster orders-db-restored/);
    expect(r.stderr).toContain('cluster orders-db-restored is available');
    const rds = new RDSClient({});
    const [source] = (await rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: 'orders-db' }))).DBClusters!;
    const [restored] = (await rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: 'orders-db-restored' }))).DBClusters!;
    expect(restored.EngineVersion).toBe(source.EngineVersion);
    expect(restored.DBClusterParameterGroup).toBe(source.DBClusterParameterGroup);
    expect(restored.KmsKeyId).toBe(source.KmsKeyId);
    const [writer] = (await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: 'orders-db-restored-writer' }))).DBInstances!;
    expect(writer.DBClusterIdentifier).toBe('orders-db-restored');
    expect(writer.DBInstanceClass).toBe('db.r6g.large');
  });

  test('restore refuses an existing cluster id and a malformed one', async () => {
    await createCluster('orders-db', ['orders-aaaaaaaa-20260101000000']);
    const exists = await runCli(['db', 'restore', '--snapshot', 'orders-aaaaaaaa-20260101000000', '--new-cluster-id', 'orders-db', '--yes']);
    expect(exists.code).toBe(3);
    expect(exists.stderr).toContain('cluster orders-db already exists: choose another --new-cluster-id');
    const bad = await runCli(['db', 'restore', '--snapshot', 'orders-aaaaaaaa-20260101000000', '--new-cluster-id', '9-bad--id', '--yes']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('`--new-cluster-id` must be 1-63 letters, digits or hyphens, start with a letter, with no double or trailing hyphen, got: 9-bad--id');
  });

  test('restore of a snapshot that does not exist is a usage error', async () => {
    const r = await runCli(['db', 'restore', '--snapshot', 'nope', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('snapshot nope does not exist');
  });

  test('drill restores the newest snapshot into a temporary cluster, reports the time, and deletes it', async () => {
    await createCluster('orders-db', ['orders-aaaaaaaa-20260101000000', 'orders-bbbbbbbb-20260102000000']);
    const r = await runCli(['db', 'drill', '--cluster', 'orders-db', '--yes', '--json']);
    expect(r.code).toBe(0);
    const doc = json(r);
    expect(doc).toMatchObject({ action: 'drill', passed: true, snapshot: 'orders-bbbbbbbb-20260102000000' });
    expect(doc.temporaryCluster).toMatch(/^orders-db-drill-\d{14}$/);
    expect(typeof doc.totalSeconds).toBe('number');
    const clusters = (await new RDSClient({}).send(new DescribeDBClustersCommand({}))).DBClusters!.map((c) => c.DBClusterIdentifier);
    expect(clusters).toEqual(['orders-db']);
  });

  test('drill refuses a cluster without managed snapshots', async () => {
    await createCluster('orders-db', [], { unmanaged: 'hand-made' });
    const r = await runCli(['db', 'drill', '--cluster', 'orders-db', '--yes']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('cluster orders-db has no available pre-migration snapshot to drill with');
  });
});

/** A deployed stack whose template carries the cdk-rollback metadata: one SafeLambdaApi function per path. */
async function createStack(stackName: string, apiPaths: string[]): Promise<void> {
  const role = await createRole('stack-role');
  const resources: Record<string, unknown> = {};
  for (const p of apiPaths) {
    const name = p.toLowerCase().replace(/\//g, '-');
    resources[`${p.split('/').pop()}Function`] = {
      Type: 'AWS::Lambda::Function',
      Metadata: { 'cdk-rollback': { version: 1, kind: 'SafeLambdaApi', role: 'function', path: p } },
      Properties: {
        FunctionName: name, Runtime: 'nodejs22.x', Handler: 'index.handler', Role: role,
        Code: { ZipFile: 'exports.handler = async () => 0;' },
      },
    };
  }
  await new CloudFormationClient({}).send(new CreateStackCommand({ StackName: stackName, TemplateBody: JSON.stringify({ Resources: resources }) }));
  for (const p of apiPaths) {
    const name = p.toLowerCase().replace(/\//g, '-');
    await lambda().send(new PublishVersionCommand({ FunctionName: name }));
    await lambda().send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: await zip('exports.handler = async () => 2;') }));
    await lambda().send(new PublishVersionCommand({ FunctionName: name }));
    await lambda().send(new CreateAliasCommand({ FunctionName: name, Name: 'stable', FunctionVersion: '1' }));
    await lambda().send(new CreateAliasCommand({ FunctionName: name, Name: 'live', FunctionVersion: '2' }));
  }
  expect(ACCOUNT).toBe('123456789012');
}
