/**
 * Property-based lifecycle tests (fast-check) on the lifecycle driver (test/helpers/lifecycle): one stack with
 * a SafeLambdaApi deployment and a VersionedSite release, the prebundled handlers, moto, the in-memory
 * CodeDeploy and the KVS stand-in. Each run plays a random sequence of
 * - deploys: a new function version and/or a new site release, or only unrelated properties (RetainVersions,
 *   RetainReleases, the pre-traffic hook); the deployment succeeds, fails on an alarm, fails on the hook, or
 *   hangs until the handler's deadline; optionally a later resource fails (stack rollback); optionally the
 *   event is delivered twice (same RequestId);
 * - operator actions through the CLI's own main(): `api rollback [--to]`, `api promote --to`, `site rollback [--to]`;
 * - transient throttling (1-2 consecutive throttling errors, within the SDK's retries) on any AWS call;
 * and after every event and every step asserts the invariants of issue 8.
 *
 * Replaying a failure: the failure message prints fast-check's `seed` and `path`; run
 *   FC_SEED=<seed> FC_PATH=<path> npx jest test/lifecycle-properties.test.ts
 * (FC_RUNS=<n> changes the number of runs; the default keeps this file within about two minutes on 2 cores).
 */
import fc from 'fast-check';
import type { EventRecord } from './helpers/lifecycle/driver';
import { API, API_RESOURCE, ApiView, KVS_ARN, LifecycleWorld, SITE, SITE_RESOURCE, SiteView, useLifecycleWorld } from './helpers/lifecycle/world';
import { runInProcess } from './fixtures/cli/harness';
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('./fixtures/cli/loopback-dns.js');

const world = useLifecycleWorld();

type Outcome = 'succeed' | 'alarm' | 'hook' | 'hang';
interface Throttle { seed: number; oneIn: number; burst: number }
type Change = { kind: 'none' } | { kind: 'retainVersions' | 'retainReleases'; value: number } | { kind: 'hook' };
type Step =
  | { kind: 'deploy'; api: boolean; site: boolean; change: Change; outcome: Outcome; laterFails: boolean; duplicate: boolean; throttle?: Throttle }
  | { kind: 'api-rollback'; to?: number; throttle?: Throttle }
  | { kind: 'api-promote'; to: number; outcome: 'succeed' | 'alarm'; throttle?: Throttle }
  | { kind: 'site-rollback'; to?: number; throttle?: Throttle };

// About one AWS call in `oneIn` of the step is throttled, each 1-2 times in a row (the SDK makes 3 attempts).
const throttleArb = fc.option(fc.record({ seed: fc.nat(), oneIn: fc.integer({ min: 8, max: 40 }), burst: fc.integer({ min: 1, max: 2 }) }), { freq: 2, nil: undefined });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('deploy' as const),
      api: fc.boolean(),
      site: fc.boolean(),
      change: fc.oneof(
        fc.constant({ kind: 'none' as const }),
        fc.record({ kind: fc.constantFrom('retainVersions' as const, 'retainReleases' as const), value: fc.integer({ min: 1, max: 3 }) }),
        fc.constant({ kind: 'hook' as const }),
      ),
      outcome: fc.constantFrom<Outcome>('succeed', 'succeed', 'alarm', 'hook', 'hang'),
      laterFails: fc.boolean(),
      duplicate: fc.boolean(),
      throttle: throttleArb,
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('api-rollback' as const), to: fc.option(fc.nat(), { nil: undefined }), throttle: throttleArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('api-promote' as const), to: fc.nat(), outcome: fc.constantFrom('succeed' as const, 'alarm' as const), throttle: throttleArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('site-rollback' as const), to: fc.option(fc.nat(), { nil: undefined }), throttle: throttleArb }) },
);

class Violation extends Error {}

const stats = { runs: 0, steps: 0, events: 0, rollbackUpdates: 0, throttled: 0, deployments: 0, stackRollbacks: 0 };

function label(s: Step): string {
  const t = s.throttle ? ` [throttling ~1/${s.throttle.oneIn} calls x${s.throttle.burst}, seed ${s.throttle.seed}]` : '';
  return `${plainLabel(s)}${t}`;
}

function plainLabel(s: Step): string {
  switch (s.kind) {
    case 'deploy': {
      const parts = [s.api ? 'new version' : '', s.site ? 'new release' : '', s.change.kind !== 'none' ? `change ${s.change.kind}${'value' in s.change ? `=${s.change.value}` : ''}` : '']
        .filter(Boolean);
      return `deploy(${parts.join(', ') || 'nothing'}; deployment ${s.outcome}${s.laterFails ? '; later resource fails' : ''}${s.duplicate ? '; events delivered twice' : ''})`;
    }
    case 'api-rollback': return `cdk-rollback api rollback${s.to !== undefined ? ` --to #${s.to}` : ''}`;
    case 'api-promote': return `cdk-rollback api promote --to #${s.to} (${s.outcome})`;
    default: return `cdk-rollback site rollback${s.to !== undefined ? ` --to #${s.to}` : ''}`;
  }
}

const sameLive = (a: ApiView, b: ApiView) => a.live === b.live && JSON.stringify(a.weights) === JSON.stringify(b.weights);

async function cli(args: string[]): Promise<number> {
  const r = await runInProcess([...args, '--yes']);
  if (r.code !== 0 && r.code !== 3) {
    // 3 = a safety check refused (nothing changed): a legitimate answer in a random sequence.
    throw new Violation(`cdk-rollback ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
  return r.code;
}

/** Checks that hold after every event and every step. */
async function invariantsNow(w: LifecycleWorld, firstVersion: string, where: string): Promise<void> {
  const api = await w.api();
  const site = w.site();
  const deleted = w.gateway.deletedVersions;
  for (const v of [api.live, api.stable, ...Object.keys(api.weights)]) {
    if (v && deleted.has(`${API.functionName}:${v}`)) throw new Violation(`${where}: version ${v} is deleted but an alias points or routes at it (${JSON.stringify(api)})`);
  }
  const good = new Set([firstVersion, ...w.cd.succeededTargets()]);
  if (api.stable !== undefined && !good.has(api.stable)) {
    throw new Violation(`${where}: stable names version ${api.stable}, which never completed a successful deployment (succeeded: ${[...good].join(', ')})`);
  }
  for (const d of w.versionDeletes) {
    if (d.inFlightDeployments.length > 0) throw new Violation(`${where}: version ${d.version} was deleted while deployment ${d.inFlightDeployments.join(', ')} names it`);
  }
  for (const [key, id] of [['active', site.active], ['previous', site.previous]] as const) {
    if (id && !(await w.releaseServable(id))) throw new Violation(`${where}: the ${key} release ${id} is not servable (deleted)`);
  }
}

async function run(steps: Step[]): Promise<void> {
  const w = world();
  await w.reset();
  stats.runs++;
  // A one-minute canary (CodeDeployDefault.LambdaCanary10Percent1Minute) keeps each deployment short.
  w.cd.timeline = { ...w.cd.timeline, bakeSeconds: 60, alarmAfterSeconds: 30 };
  await w.createApiFunction('CodeDeployDefault.LambdaCanary10Percent1Minute');
  await w.createSite();
  const stack = w.newStack('App', [API_RESOURCE, SITE_RESOURCE]);
  const firstVersion = await w.publishVersion();
  const created = await stack.create({
    ApiDeployment: w.apiProps(firstVersion, { MaxDeploymentSeconds: '600' }),
    SiteRelease: w.siteProps(await w.publishRelease()),
  });
  if (created.outcome !== 'CREATE_COMPLETE') throw new Error(`the stack was not created: ${JSON.stringify(created.events)}`);
  const trace: string[] = [];

  for (const [i, step] of steps.entries()) {
    const where = `step ${i + 1} ${label(step)}`;
    trace.push(where);
    stats.steps++;
    const before = { api: await w.api(), site: w.site() };
    const callsBefore = w.gateway.calls.length;
    if (step.throttle) w.gateway.throttle(step.throttle);
    try {
      if (step.kind === 'deploy') {
        const cur = { api: stack.propsOf('ApiDeployment')!, site: stack.propsOf('SiteRelease')! };
        const nextApi = { ...cur.api };
        const nextSite = { ...cur.site };
        if (step.api) nextApi.TargetVersion = await w.publishVersion();
        if (step.site) {
          const id = await w.publishRelease();
          Object.assign(nextSite, { ReleaseId: id, AssetKey: `${id}.zip`, SourceHash: `source-${id}` });
        }
        if (step.change.kind === 'retainVersions') nextApi.RetainVersions = String(step.change.value);
        if (step.change.kind === 'retainReleases') nextSite.RetainReleases = String(step.change.value);
        if (step.change.kind === 'hook') nextApi.BeforeAllowTrafficHook = cur.api.BeforeAllowTrafficHook === API.preHook ? `${API.preHook}-v2` : API.preHook;
        w.cd.nextOutcomes.length = 0;
        w.cd.nextOutcomes.push(step.outcome);

        let eventBefore: { api: ApiView; site: SiteView; cdCalls: number } | undefined;
        const result = await stack.update({ ApiDeployment: nextApi, SiteRelease: nextSite }, {
          failAfter: step.laterFails,
          duplicate: step.duplicate ? ['ApiDeployment', 'SiteRelease'] : [],
          beforeEvent: async () => { eventBefore = { api: await w.api(), site: w.site(), cdCalls: w.cd.calls.length }; },
          afterEvent: async (e: EventRecord) => {
            stats.events++;
            const at = `${where}, ${e.phase} ${e.requestType} of ${e.logicalId} (${e.requestId}, stack ${e.stackStatus})`;
            if (e.status === 'TIMED_OUT' || e.status === 'HUNG') throw new Violation(`${at}: exceeded its bound: ${e.reason}`);
            if (e.phase === 'forward' && e.logicalId === 'ApiDeployment' && e.status === 'FAILED' && w.cd.inFlight().length > 0) {
              throw new Violation(`${at}: the update failed while CodeDeploy still had ${w.cd.inFlight().map((d) => `${d.id} (${d.creator})`).join(', ')} in flight`);
            }
            if (e.phase === 'rollback') {
              stats.rollbackUpdates++;
              if (e.status !== 'SUCCESS') throw new Violation(`${at}: the rollback Update failed (UPDATE_ROLLBACK_FAILED): ${e.reason}`);
            }
            const started = w.cd.calls.slice(eventBefore!.cdCalls).filter((c) => c.operation === 'CreateDeployment').length;
            if (started > 1) throw new Violation(`${at}: started ${started} CodeDeploy deployments`);
            if (e.phase === 'rollback' && started > 0) throw new Violation(`${at}: the rollback Update started a CodeDeploy deployment`);
            const targetKey = e.logicalId === 'ApiDeployment' ? 'TargetVersion' : 'ReleaseId';
            if (e.requestType === 'Update' && e.oldProps?.[targetKey] === e.props[targetKey]) {
              if (e.logicalId === 'ApiDeployment') {
                const now = await w.api();
                if (!sameLive(now, eventBefore!.api)) throw new Violation(`${at}: an Update with unchanged TargetVersion moved live ${JSON.stringify(eventBefore!.api)} -> ${JSON.stringify(now)}`);
              } else if (w.site().active !== eventBefore!.site.active) {
                throw new Violation(`${at}: an Update with unchanged ReleaseId moved active ${eventBefore!.site.active} -> ${w.site().active}`);
              }
            }
            await invariantsNow(w, firstVersion, at);
          },
        });
        w.cd.nextOutcomes.length = 0;
        trace.push(`  -> ${result.outcome}: ${result.events.map((e) => `${e.phase} ${e.logicalId} ${e.status}${e.reason ? ` (${e.reason.slice(0, 120)})` : ''}`).join('; ') || 'no event'}`);
        await w.waitForCodeDeploy();
        const after = { api: await w.api(), site: w.site() };
        if (result.outcome === 'UPDATE_ROLLBACK_COMPLETE') {
          stats.stackRollbacks++;
          if (!sameLive(after.api, before.api)) {
            throw new Violation(`${where}: after the stack rollback live is ${JSON.stringify(after.api)}, but before the update it was ${JSON.stringify(before.api)}`);
          }
          if (after.site.active !== before.site.active) {
            throw new Violation(`${where}: after the stack rollback the active release is ${after.site.active}, but before the update it was ${before.site.active}`);
          }
          const lost = w.versionDeletes.find((d) => d.version === before.api.live);
          if (lost) throw new Violation(`${where}: version ${before.api.live}, which served before the failed update, was deleted`);
        } else if (result.outcome === 'UPDATE_COMPLETE') {
          if (step.api && (after.api.live !== nextApi.TargetVersion || after.api.stable !== nextApi.TargetVersion)) {
            throw new Violation(`${where}: the update completed but live/stable are ${JSON.stringify(after.api)}, not version ${nextApi.TargetVersion}`);
          }
          if (!step.api && !sameLive(after.api, before.api)) throw new Violation(`${where}: live moved without a new version ${JSON.stringify(before.api)} -> ${JSON.stringify(after.api)}`);
          if (step.site && after.site.active !== nextSite.ReleaseId) throw new Violation(`${where}: the update completed but release ${after.site.active} is active, not ${nextSite.ReleaseId}`);
          if (!step.site && after.site.active !== before.site.active) throw new Violation(`${where}: active moved without a new release ${before.site.active} -> ${after.site.active}`);
        } else {
          throw new Violation(`${where}: the stack ended ${result.outcome}`);
        }
      } else if (step.kind === 'api-rollback') {
        const versions = [...await w.existingVersions()].filter((v) => v !== before.api.live).sort((a, b) => Number(a) - Number(b));
        const to = step.to !== undefined && versions.length > 0 ? versions[step.to % versions.length] : undefined;
        const code = await cli(['api', 'rollback', '--function', API.functionName, ...(to ? ['--to', to, '--force'] : [])]);
        trace.push(`  -> exit ${code}${to ? ` (to ${to})` : ''}`);
        await w.waitForCodeDeploy();
      } else if (step.kind === 'api-promote') {
        const versions = [...await w.existingVersions()].filter((v) => v !== before.api.live).sort((a, b) => Number(a) - Number(b));
        if (versions.length > 0) {
          const to = versions[step.to % versions.length];
          w.cd.nextOutcomes.length = 0;
          w.cd.nextOutcomes.push(step.outcome);
          const code = await cli(['api', 'promote', '--function', API.functionName, '--to', to]);
          w.cd.nextOutcomes.length = 0;
          trace.push(`  -> exit ${code} (to ${to})`);
          await w.waitForCodeDeploy();
        }
      } else {
        const history = await w.siteHistory();
        const candidates = history.filter((r) => r.status !== 'pruned' && r.status !== 'failed' && r.id !== before.site.active).map((r) => r.id);
        const to = step.to !== undefined && candidates.length > 0 ? candidates[step.to % candidates.length] : undefined;
        const code = await cli(['site', 'rollback', '--kvs', KVS_ARN, '--bucket', SITE.bucket, '--distribution', w.distributionId, ...(to ? ['--to', to] : [])]);
        trace.push(`  -> exit ${code}${to ? ` (to ${to})` : ''}`);
      }
      await invariantsNow(w, firstVersion, where);
    } catch (e) {
      const api = await w.api().catch(() => undefined);
      const throttled = w.gateway.calls.slice(callsBefore).map((c, n) => (c.throttled ? `#${n} ${c.service} ${c.operation.slice(0, 80)}` : '')).filter(Boolean);
      throw new Violation(`${(e as Error).message}\n\nsequence:\n${trace.join('\n')}\n\nstate: live/stable ${JSON.stringify(api)}, site ${JSON.stringify(w.site())}` +
        `\nthrottled in this step: ${throttled.join('; ') || 'none'}` +
        `\n\nlast handler log lines:\n${w.logs.slice(-12).join('\n')}`);
    } finally {
      stats.throttled += w.gateway.calls.slice(callsBefore).filter((c) => c.throttled).length;
      w.gateway.clearThrottles();
    }
  }
  stats.deployments += [...w.cd.deployments.values()].filter((d) => d.creator === 'user').length;
}

test('random deploys, failures, operator actions and throttling never break the lifecycle invariants', async () => {
  const seed = process.env.FC_SEED !== undefined ? Number(process.env.FC_SEED) : undefined;
  const path = process.env.FC_PATH;
  const numRuns = Number(process.env.FC_RUNS ?? 10);
  try {
    // endOnFailure: a run takes seconds, so the first counterexample is reported as found, without shrinking.
    await fc.assert(fc.asyncProperty(fc.array(stepArb, { minLength: 3, maxLength: 6 }), run), { numRuns, seed, path, endOnFailure: true });
  } finally {
    process.stderr.write(`lifecycle properties: ${JSON.stringify(stats)}\n`);
  }
}, 15 * 60_000);
