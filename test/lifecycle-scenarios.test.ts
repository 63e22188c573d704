/**
 * The three paths of issue 8 ("Why") played as CloudFormation plays them, on the lifecycle driver
 * (test/helpers/lifecycle): the prebundled handlers against moto, the in-memory CodeDeploy and the KVS
 * stand-in, with the stack status of each phase served to DescribeStacks, and the operator's commands run
 * through the CLI's own `main()`.
 */
import { DescribeDBClusterSnapshotsCommand, RDSClient } from '@aws-sdk/client-rds';
import { API, API_RESOURCE, SITE, KVS_ARN, SITE_RESOURCE, SNAPSHOT_RESOURCE, useLifecycleWorld } from './helpers/lifecycle/world';
import { createCluster } from './fixtures/cli/aws';
import { runInProcess } from './fixtures/cli/harness';
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('./fixtures/cli/loopback-dns.js');

const world = useLifecycleWorld();

async function cli(args: string[]): Promise<void> {
  const r = await runInProcess([...args, '--yes']);
  if (r.code !== 0) throw new Error(`cdk-rollback ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
}

const apiRollback = (to?: string) => cli(['api', 'rollback', '--function', API.functionName, ...(to ? ['--to', to] : [])]);
const siteRollback = (to?: string) => cli(['site', 'rollback', '--kvs', KVS_ARN, '--bucket', SITE.bucket, '--distribution', world().distributionId, ...(to ? ['--to', to] : [])]);

const deploymentsStartedIn = (from: number) => world().cd.calls.slice(from).filter((c) => c.operation === 'CreateDeployment').length;

/** An API stack whose `live` and `stable` went through real deployments up to version `upTo`. */
async function apiStack(upTo: number) {
  const w = world();
  await w.createApiFunction();
  const stack = w.newStack('App', [API_RESOURCE]);
  const created = await stack.create({ ApiDeployment: w.apiProps(await w.publishVersion()) });
  expect(created.outcome).toBe('CREATE_COMPLETE');
  for (let v = 2; v <= upTo; v++) {
    const r = await stack.update({ ApiDeployment: w.apiProps(await w.publishVersion()) });
    expect(r.outcome).toBe('UPDATE_COMPLETE');
  }
  expect(await w.api()).toEqual({ live: String(upTo), weights: {}, stable: String(upTo) });
  return stack;
}

describe('the driver itself', () => {
  test('a deploy runs Created -> InProgress -> Succeeded through isComplete polling, stable follows', async () => {
    const stack = await apiStack(2);
    const e = stack.history.filter((h) => h.requestType === 'Update');
    expect(e).toHaveLength(1);
    expect(e[0]).toMatchObject({ status: 'SUCCESS', stackStatus: 'UPDATE_IN_PROGRESS', oldProps: { TargetVersion: '1' }, props: { TargetVersion: '2' } });
    // 2 s + 30 s hook + 300 s canary + 30 s post hook, polled every 20 s
    expect(e[0].simulatedSeconds).toBeGreaterThanOrEqual(362);
    expect(e[0].simulatedSeconds).toBeLessThan(362 + 60);
    expect(world().cd.succeededTargets()).toEqual(['2']);
  });

  test('an event that never completes fails at the provider\'s totalTimeout instead of hanging the test', async () => {
    const w = world();
    await w.createApiFunction();
    const stack = w.newStack('App', [API_RESOURCE]);
    await stack.create({ ApiDeployment: w.apiProps(await w.publishVersion()) });
    // a deadline the handler never reaches: it waits for the hung shift until the framework gives up
    w.cd.nextOutcomes.push('hang');
    const r = await stack.update({ ApiDeployment: w.apiProps(await w.publishVersion(), { MaxDeploymentSeconds: '999999' }) });
    expect(r.events[0]).toMatchObject({ phase: 'forward', status: 'TIMED_OUT' });
    expect(r.events[0].simulatedSeconds).toBeGreaterThanOrEqual(55 * 60);
    expect(r.events[0].simulatedSeconds).toBeLessThan(55 * 60 + 30);
  });
});

describe('issue 8, path 1: a manual rollback is undone by CloudFormation\'s own rollback', () => {
  test('live=stable=4, operator rolls live back to 3, the v5 deploy fails on an alarm: the stack rollback leaves live on 3 and starts no deployment', async () => {
    const w = world();
    const stack = await apiStack(4);
    await apiRollback('3');
    expect((await w.api()).live).toBe('3');

    w.cd.nextOutcomes.push('alarm');
    const before = w.cd.calls.length;
    const r = await stack.update({ ApiDeployment: w.apiProps(await w.publishVersion()) });
    expect(r.events.map((e) => `${e.phase}:${e.status}`)).toEqual(['forward:FAILED', 'rollback:SUCCESS']);
    expect(r.outcome).toBe('UPDATE_ROLLBACK_COMPLETE');
    const rollback = r.events[1];
    expect(rollback).toMatchObject({ stackStatus: 'UPDATE_ROLLBACK_IN_PROGRESS', props: { TargetVersion: '4' }, oldProps: { TargetVersion: '5' } });
    // the deploy's own deployment (3 -> 5) only: the rollback Update started none
    expect(deploymentsStartedIn(before)).toBe(1);
    await w.waitForCodeDeploy();
    expect(await w.api()).toEqual({ live: '3', weights: {}, stable: '4' });
  });
});

describe('issue 8, path 2: a manual rollback is undone by an unrelated deploy', () => {
  test.each([
    ['BeforeAllowTrafficHook', 'orders-pre-traffic-v2'],
    ['RetainVersions', '5'],
  ])('API: after `api rollback` (3 -> 2) a deploy that changes only %s leaves live on 2', async (prop, value) => {
    const w = world();
    const stack = await apiStack(3);
    await apiRollback('2');
    const before = w.cd.calls.length;
    const r = await stack.update({ ApiDeployment: { ...stack.propsOf('ApiDeployment')!, [prop]: value } });
    expect(r.outcome).toBe('UPDATE_COMPLETE');
    expect(r.events).toHaveLength(1);
    expect(deploymentsStartedIn(before)).toBe(0);
    await w.waitForCodeDeploy();
    expect((await w.api()).live).toBe('2');
  });

  async function siteStack(releases: number) {
    const w = world();
    await w.createSite();
    const stack = w.newStack('Web', [SITE_RESOURCE]);
    const ids = [await w.publishRelease()];
    expect((await stack.create({ SiteRelease: w.siteProps(ids[0]) })).outcome).toBe('CREATE_COMPLETE');
    for (let i = 1; i < releases; i++) {
      ids.push(await w.publishRelease());
      expect((await stack.update({ SiteRelease: w.siteProps(ids[i]) })).outcome).toBe('UPDATE_COMPLETE');
    }
    expect(w.site().active).toBe(ids[ids.length - 1]);
    return { stack, ids };
  }

  test.each([
    ['RetainReleases', '4'],
    ['Concurrency', '2'],
    ['WaitForInvalidation', 'true'],
  ])('site: after `site rollback` a deploy that changes only %s leaves the rolled-back release active', async (prop, value) => {
    const w = world();
    const { stack, ids } = await siteStack(2);
    await siteRollback();
    expect(w.site().active).toBe(ids[0]);
    const r = await stack.update({ SiteRelease: { ...stack.propsOf('SiteRelease')!, [prop]: value } });
    expect(r.outcome).toBe('UPDATE_COMPLETE');
    expect(w.site().active).toBe(ids[0]);
  });

  test('site: the rollback Update restores what the operator had chosen, not the template\'s old release', async () => {
    const w = world();
    const { stack, ids } = await siteStack(3);
    await siteRollback(ids[0]);
    expect(w.site().active).toBe(ids[0]);
    const next = await w.publishRelease();
    const r = await stack.update({ SiteRelease: w.siteProps(next) }, { failAfter: true });
    expect(r.events.map((e) => `${e.phase}:${e.status}`)).toEqual(['forward:SUCCESS', 'rollback:SUCCESS']);
    expect(r.outcome).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(w.site().active).toBe(ids[0]);
    for (const id of [ids[0], w.site().previous!]) expect(await w.releaseServable(id)).toBe(true);
  });
});

describe('issue 8, path 3: a stop at the deadline', () => {
  test('the deploy stopped at its deadline fails after CodeDeploy\'s rollback, and the stack rolls back cleanly (not UPDATE_ROLLBACK_FAILED)', async () => {
    const w = world();
    const stack = await apiStack(2);
    w.cd.nextOutcomes.push('hang');
    const r = await stack.update({ ApiDeployment: w.apiProps(await w.publishVersion()) });
    expect(r.events[0]).toMatchObject({ phase: 'forward', status: 'FAILED' });
    expect(r.events[0].reason).toMatch(/did not finish within 900 s/);
    expect(r.events[0].simulatedSeconds).toBeLessThan(55 * 60);
    expect(r.events[1]).toMatchObject({ phase: 'rollback', status: 'SUCCESS' });
    expect(r.outcome).toBe('UPDATE_ROLLBACK_COMPLETE');
    await w.waitForCodeDeploy();
    expect(await w.api()).toEqual({ live: '2', weights: {}, stable: '2' });
    const stopped = [...w.cd.deployments.values()].find((d) => d.status === 'Stopped');
    expect(stopped?.rollbackInfo?.rollbackDeploymentId).toBeDefined();
  });
});

describe('PreMigrationSnapshot on the driver', () => {
  const snapshotProps = (fingerprint: string) => ({
    ClusterIdentifier: 'app-db', Fingerprint: fingerprint, SnapshotPrefix: 'app', StackName: 'App',
    ConstructPath: 'App/Db/Snapshot', RetentionCount: '10', RetentionMaxAgeDays: '30', ClusterWaitSeconds: '1200',
  });
  const snapshots = async () => {
    const out = await new RDSClient({ endpoint: world().moto.endpoint }).send(new DescribeDBClusterSnapshotsCommand({ DBClusterIdentifier: 'app-db', SnapshotType: 'manual' }));
    return (out.DBClusterSnapshots ?? []).map((x) => x.DBClusterSnapshotIdentifier!).sort();
  };

  test('a new fingerprint takes one snapshot even when delivered twice; the rollback Update after a later failure takes none and succeeds under throttling', async () => {
    const w = world();
    await createCluster('app-db', []);
    const stack = w.newStack('App', [SNAPSHOT_RESOURCE]);
    expect((await stack.create({ PreMigrationSnapshot: snapshotProps('a1a1a1a1a1a1a1a1') })).outcome).toBe('CREATE_COMPLETE');
    expect(await snapshots()).toHaveLength(1);

    const twice = await stack.update({ PreMigrationSnapshot: snapshotProps('b2b2b2b2b2b2b2b2') }, { duplicate: ['PreMigrationSnapshot'] });
    expect(twice.outcome).toBe('UPDATE_COMPLETE');
    expect(await snapshots()).toHaveLength(2);

    // every DescribeStacks of the rollback Update is throttled twice in a row
    const r = await stack.update({ PreMigrationSnapshot: snapshotProps('c3c3c3c3c3c3c3c3') }, {
      failAfter: true,
      beforeEvent: ({ phase }) => {
        if (phase === 'rollback') w.gateway.throttle({ seed: 0, oneIn: 1, burst: 2, pick: (sig) => sig === 'cloudformation DescribeStacks' });
      },
    });
    w.gateway.clearThrottles();
    expect(r.events.map((e) => `${e.phase}:${e.status}`)).toEqual(['forward:SUCCESS', 'rollback:SUCCESS']);
    expect(r.outcome).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(w.gateway.calls.filter((c) => c.throttled && c.operation === 'DescribeStacks').length).toBeGreaterThan(0);
    expect(await snapshots()).toHaveLength(3);
  });
});
