/**
 * `site releases|rollback` and the site part of `status`: VersionedSite's KeyValueStore pointer, its release
 * history in the bucket, and the same activation (pointer with ETag, then invalidation) as a deploy.
 */
// The CloudFront KeyValueStore API signs with SigV4A: without this import the client fails before sending.
import '@aws-sdk/signature-v4a';
import {
  CloudFrontKeyValueStoreClient, DescribeKeyValueStoreCommand as DescribeKvsCommand, GetKeyCommand, UpdateKeysCommand,
} from '@aws-sdk/client-cloudfront-keyvaluestore';
import { GetBucketTaggingCommand, S3Client } from '@aws-sdk/client-s3';
import type { ReleaseRecord } from '../../lambda/site-release/activate';
import { getManifest, getText, manifestKey } from '../../lambda/site-release/bucket';
import { SITE_HISTORY_KEY, SITE_KVS_ACTIVE_KEY, SITE_KVS_PREVIOUS_KEY } from '../../lambda/shared/contract';
import type { ReleaseManifest } from '../../lambda/shared/site-contract';
import { StepPlan, runPlan } from './plan';
import { PendingAudit, readAudit, startAudit } from './audit';
import { CommandResult, Context, afterIo, iso, reasonOf, refused, usage } from './context';
import { ConstructTarget, assertStackIdle, discoverStack, physicalId, pickConstruct, stackStatus } from './discovery';

// Loaded when first needed, or while the first requests are in flight (see afterIo): the first round trip of
// `site rollback` needs only the KeyValueStore and S3 clients. `activate` brings the CloudFront client.
const activation = () => import('../../lambda/site-release/activate');
const cloudFront = () => import('@aws-sdk/client-cloudfront');

async function readHistory(s3: S3Client, bucketName: string): Promise<ReleaseRecord[]> {
  const text = await getText(s3, bucketName, SITE_HISTORY_KEY);
  if (text === undefined) return [];
  const parsed = JSON.parse(text) as { releases?: ReleaseRecord[] };
  return (await activation()).sortHistory(parsed.releases ?? []);
}

export interface SiteTarget {
  readonly path?: string;
  readonly kvsArn: string;
  readonly bucketName: string;
  readonly distributionId: string;
}

/** `--kvs ARN --bucket NAME --distribution ID`, or the VersionedSite of `--stack` (picked with `--target`). */
export async function resolveSiteTarget(ctx: Context, o: Record<string, unknown>, fromStack?: ConstructTarget): Promise<SiteTarget> {
  const kvs = o.kvs as string | undefined;
  const bucket = o.bucket as string | undefined;
  const distribution = o.distribution as string | undefined;
  if (!fromStack && (kvs || bucket || distribution)) {
    const missing = [!kvs && '--kvs ARN', !bucket && '--bucket NAME', !distribution && '--distribution ID'].filter(Boolean);
    if (missing.length > 0) throw usage(`an explicit site target needs --kvs, --bucket and --distribution: missing ${missing.join(', ')}`);
    if (!/^arn:aws[a-z-]*:cloudfront::\d{12}:key-value-store\/.+/.test(kvs!)) {
      throw usage(`\`--kvs\` must be a CloudFront KeyValueStore ARN (arn:aws:cloudfront::ACCOUNT:key-value-store/ID), got: ${kvs}`);
    }
    return { kvsArn: kvs!, bucketName: bucket!, distributionId: distribution! };
  }
  let construct = fromStack;
  if (!construct) {
    if (!ctx.opts.stack) throw usage('no site target: pass --stack NAME or --kvs ARN --bucket NAME --distribution ID');
    construct = pickConstruct(await discoverStack(ctx, ctx.opts.stack), ['VersionedSite'], ctx.opts.target);
  }
  const kvsId = physicalId(construct, 'key-value-store');
  let kvsArn = kvsId;
  if (!kvsId.startsWith('arn:')) {
    // The KeyValueStore's physical id is its name; the data-plane API needs its ARN.
    const { CloudFrontClient, DescribeKeyValueStoreCommand } = await cloudFront();
    const out = await new CloudFrontClient(ctx.clientConfig).send(new DescribeKeyValueStoreCommand({ Name: kvsId }));
    kvsArn = out.KeyValueStore?.ARN ?? '';
    if (!kvsArn) throw usage(`KeyValueStore ${kvsId} of ${construct.path} was not found`);
  }
  return {
    path: construct.path,
    kvsArn,
    bucketName: physicalId(construct, 'bucket'),
    distributionId: physicalId(construct, 'distribution'),
  };
}

async function getKey(kvs: CloudFrontKeyValueStoreClient, kvsArn: string, key: string): Promise<string | undefined> {
  try {
    return (await kvs.send(new GetKeyCommand({ KvsARN: kvsArn, Key: key }))).Value;
  } catch (err) {
    if ((err as Error).name === 'ResourceNotFoundException') return undefined;
    throw err;
  }
}

/** One key of the site's KeyValueStore, or undefined when it is not set. */
export async function readKey(ctx: Context, kvsArn: string, key: string): Promise<string | undefined> {
  return getKey(new CloudFrontKeyValueStoreClient(ctx.clientConfig), kvsArn, key);
}

interface SiteState {
  readonly active?: string;
  readonly previous?: string;
  readonly releases: ReleaseRecord[];
}

async function readSiteState(ctx: Context, t: SiteTarget): Promise<SiteState> {
  const kvs = new CloudFrontKeyValueStoreClient(ctx.clientConfig);
  const [active, previous, releases] = await Promise.all([
    getKey(kvs, t.kvsArn, SITE_KVS_ACTIVE_KEY),
    getKey(kvs, t.kvsArn, SITE_KVS_PREVIOUS_KEY),
    readHistory(new S3Client(ctx.clientConfig), t.bucketName),
  ]);
  return { active, previous, releases };
}

function label(t: SiteTarget): string {
  return t.path ? `${t.path} (bucket ${t.bucketName}, distribution ${t.distributionId})` : `bucket ${t.bucketName}, distribution ${t.distributionId}`;
}

function releaseLine(r: ReleaseRecord, state: SiteState): string {
  const mark = r.id === state.active ? '*' : ' ';
  const status = r.id === state.active ? 'active' : r.id === state.previous ? 'previous' : r.status;
  return `${mark} ${r.id.padEnd(28)} ${status.padEnd(9)} created ${iso(r.createdAt)}${r.activatedAt ? `  activated ${iso(r.activatedAt)}` : ''}`;
}

export async function siteReleases(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const t = await resolveSiteTarget(ctx, o);
  const state = await readSiteState(ctx, t);
  const lines = [
    `Releases of ${label(t)} (* = active):`,
    ...(state.releases.length > 0 ? state.releases.map((r) => releaseLine(r, state)) : ['  no release recorded yet']),
  ];
  if (state.active && !state.releases.some((r) => r.id === state.active)) {
    lines.push(ctx.color.yellow(`  the KeyValueStore points at ${state.active}, which the history does not list`));
  }
  return { data: { path: t.path, bucket: t.bucketName, distribution: t.distributionId, kvs: t.kvsArn, active: state.active ?? null, previous: state.previous ?? null, releases: state.releases }, lines };
}

/** The stack a bucket belongs to (its `aws:cloudformation:stack-name` tag), for the stack-state check. */
async function stackOfBucket(ctx: Context, s3: S3Client, bucketName: string): Promise<string | undefined> {
  try {
    const out = await s3.send(new GetBucketTaggingCommand({ Bucket: bucketName }));
    return out.TagSet?.find((tag) => tag.Key === 'aws:cloudformation:stack-name')?.Value;
  } catch (err) {
    if ((err as Error).name !== 'NoSuchTagSet') ctx.warn(`could not read the tags of bucket ${bucketName} to find its stack (${reasonOf(err)})`);
    return undefined;
  }
}

/** How long `site rollback --wait` waits for the invalidation before it gives up (the rollback itself is done). */
export const INVALIDATION_WAIT_SECONDS = 1800;

/**
 * Reads and checks everything `site rollback` needs, then returns the plan; the flip is the third round trip:
 * 1. (with `--stack`: the stack, and the KeyValueStore's ARN) the store's ETag (DescribeKeyValueStore), `active`,
 *    `previous`, the release history, the bucket's stack tag and the audit reads, all at once;
 * 2. the manifests of the target and of the active release, `active` and `previous` again (so the ETag of 1 is
 *    known to match what was planned), and the stack's status;
 * 3. UpdateKeys with the ETag of 1: any write since then is refused, and the command stops.
 * The history, the invalidation (the same paths as a deploy) and the audit follow the flip.
 */
export async function planSiteRollback(ctx: Context, o: Record<string, unknown>, construct?: ConstructTarget): Promise<StepPlan> {
  const t = await resolveSiteTarget(ctx, o, construct);
  const kvs = new CloudFrontKeyValueStoreClient(ctx.clientConfig);
  const s3 = new S3Client(ctx.clientConfig);
  const requested = o.to as string | undefined;
  const pendingAudit = startAudit(ctx, 'site', t.bucketName);
  const site: SiteRollback = { ctx, t, kvs, s3, pendingAudit };
  const read = await readForRollback(site, requested);
  const { to, retained } = releaseToActivate(t, read, requested);
  const { manifest, activeManifest } = await recheckForRollback(site, read, to, retained);
  return activationPlan(site, read, to, manifest, activeManifest, Boolean(o.wait));
}

/** What every step of `site rollback` works with: the target, its clients, and the audit started with the first reads. */
interface SiteRollback {
  readonly ctx: Context;
  readonly t: SiteTarget;
  readonly kvs: CloudFrontKeyValueStoreClient;
  readonly s3: S3Client;
  readonly pendingAudit: PendingAudit;
}

/** What the first round trip read. */
interface SiteRollbackRead {
  /** The KeyValueStore's ETag, which guards the flip. */
  readonly etag?: string;
  readonly active?: string;
  readonly previous?: string;
  readonly releases: ReleaseRecord[];
  /** The bucket's stack (explicit target of a mutating command only), for the stack-state check. */
  readonly stackName?: string;
  /** The manifest of `--to`, read with the rest when it is given. */
  readonly requestedManifest?: ReleaseManifest;
}

/**
 * The first round trip: the store's ETag, `active`, `previous`, the release history, the bucket's stack tag (explicit
 * target of a mutating command) and the manifest of `--to`, all at once (the audit reads started by the caller go
 * with them).
 */
async function readForRollback(site: SiteRollback, requested: string | undefined): Promise<SiteRollbackRead> {
  const { ctx, t, kvs, s3 } = site;
  const explicit = !t.path;
  const [desc, active, previous, releases, stackName, requestedManifest] = await Promise.all([
    kvs.send(new DescribeKvsCommand({ KvsARN: t.kvsArn })),
    getKey(kvs, t.kvsArn, SITE_KVS_ACTIVE_KEY),
    getKey(kvs, t.kvsArn, SITE_KVS_PREVIOUS_KEY),
    readHistory(s3, t.bucketName),
    explicit && ctx.mutating ? stackOfBucket(ctx, s3, t.bucketName) : Promise.resolve(undefined),
    requested ? getManifest(s3, t.bucketName, requested) : Promise.resolve(undefined),
    // What comes after the flip is loaded while the first round trip is in flight.
    afterIo().then(() => Promise.all([activation(), cloudFront(), import('@aws-sdk/client-cloudformation')])).then(() => undefined, () => undefined),
  ]);
  return { etag: desc.ETag, active, previous, releases, stackName, requestedManifest };
}

/**
 * The release to activate: `--to`, else `previous`. Refuses when there is none, when it is already active, or when the
 * history lists it as pruned or failed; a release the history does not list is a usage error. Also returns the
 * retained releases (named in those messages).
 */
function releaseToActivate(t: SiteTarget, read: SiteRollbackRead, requested: string | undefined): { to: string; retained: string[] } {
  const { active, previous, releases } = read;
  const to = requested ?? previous;
  if (!to) throw refused(`site ${label(t)} has no previous release to roll back to: pass --to RELEASE (see \`site releases\`)`);
  if (to === active) throw refused(`release ${to} is already active: nothing to roll back`);
  const record = releases.find((r) => r.id === to);
  const retained = releases.filter((r) => r.status !== 'pruned' && r.status !== 'failed' && r.id !== active).map((r) => r.id);
  if (!record) throw usage(`release ${to} is not in the release history of ${t.bucketName}; retained releases: ${retained.join(', ') || 'none'}`);
  if (record.status === 'pruned' || record.status === 'failed') {
    throw refused(`release ${to} is ${record.status}: its files are not servable; retained releases: ${retained.join(', ') || 'none'}`);
  }
  return { to, retained };
}

/** For a mutating command on an explicit target: refuses while the bucket's stack is `*_IN_PROGRESS`. */
async function checkStackIdle(ctx: Context, stackName: string | undefined): Promise<void> {
  if (!stackName) return;
  const status = await stackStatus(ctx, stackName);
  if (status) assertStackIdle(ctx, stackName, status);
}

/**
 * The second round trip: the manifests of `to` and of the active release, `active` and `previous` again, and the
 * stack's status, all at once. Refuses when `to` has no manifest, or when the keys changed since the first round
 * trip (so its ETag matches what was planned). Returns the two manifests.
 */
async function recheckForRollback(site: SiteRollback, read: SiteRollbackRead, to: string, retained: string[]): Promise<{ manifest: ReleaseManifest; activeManifest?: ReleaseManifest }> {
  const { ctx, t, kvs, s3 } = site;
  const { active, previous, requestedManifest } = read;
  const [manifest, activeManifest, activeAgain, previousAgain] = await Promise.all([
    requestedManifest ? Promise.resolve(requestedManifest) : getManifest(s3, t.bucketName, to),
    active ? getManifest(s3, t.bucketName, active) : Promise.resolve(undefined),
    getKey(kvs, t.kvsArn, SITE_KVS_ACTIVE_KEY),
    getKey(kvs, t.kvsArn, SITE_KVS_PREVIOUS_KEY),
    checkStackIdle(ctx, read.stackName),
  ]);
  if (!manifest) {
    throw refused(`release ${to} has no manifest in bucket ${t.bucketName} (${manifestKey(to)}): it was never uploaded completely or it was pruned; ` +
      `retained releases: ${retained.join(', ') || 'none'}`);
  }
  if (activeAgain !== active || previousAgain !== previous) {
    throw refused(`the site's KeyValueStore changed while the rollback was planned (active ${active ?? 'none'} -> ${activeAgain ?? 'none'}): ` +
      'a deploy or another rollback is running; nothing was changed. Run it again to plan from the new state');
  }
  return { manifest, activeManifest };
}

/**
 * The flip: UpdateKeys (`active` = `to`, `previous` = the active release) with the ETag of the first round trip. A
 * write since then makes the store refuse, and the command refuses, having changed nothing.
 */
async function flipPointer(site: SiteRollback, etag: string | undefined, to: string, active: string | undefined): Promise<void> {
  const { t, kvs } = site;
  const puts = [{ Key: SITE_KVS_ACTIVE_KEY, Value: to }];
  if (active !== undefined) puts.push({ Key: SITE_KVS_PREVIOUS_KEY, Value: active });
  try {
    await kvs.send(new UpdateKeysCommand({ KvsARN: t.kvsArn, IfMatch: etag, Puts: puts }));
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if ((err as Error).name === 'ConflictException' || status === 409 || status === 412) {
      throw refused(`the site's KeyValueStore changed between the plan and the flip (its ETag is no longer ${etag}): ` +
        'a deploy or another rollback wrote to it; nothing was changed by this command. Run it again to plan from the new state');
    }
    throw err;
  }
}

/**
 * The plan that activates `to`: the flip (flipPointer), then at once the history, the invalidation of the paths that
 * differ from the active release (all of them when its manifest is gone) and the audit; with `wait`, it waits for
 * the invalidation.
 */
async function activationPlan(site: SiteRollback, read: SiteRollbackRead, to: string, manifest: ReleaseManifest, activeManifest: ReleaseManifest | undefined, wait: boolean): Promise<StepPlan> {
  const { ctx, t, s3, pendingAudit } = site;
  const { active } = read;
  const { invalidate, invalidationPaths, invalidationsComplete, markActivated, writeHistory } = await activation();
  const { CloudFrontClient } = await cloudFront();
  const paths = !active ? [] : !activeManifest ? ['/*'] : invalidationPaths(manifest, activeManifest);
  const lines = [
    `active release of ${label(t)}: ${active ?? 'none'} -> ${to}`,
    `then invalidate ${paths.length} path(s) on distribution ${t.distributionId}${wait ? ' and wait for it' : ''}`,
  ];
  return {
    kind: 'site',
    label: label(t),
    question: `Activate release ${to}?`,
    lines,
    data: { path: t.path, bucket: t.bucketName, distribution: t.distributionId, action: 'rollback', from: active ?? null, to },
    dryRunVerb: '',
    async execute() {
      await flipPointer(site, read.etag, to, active);
      ctx.step(`release ${to} is active (was ${active ?? 'none'})`);
      const now = new Date().toISOString();
      const [, invalidationIds, a] = await Promise.all([
        (async () => {
          try {
            await writeHistory(s3, t.bucketName, markActivated(await readHistory(s3, t.bucketName), to, manifest, active, true, now));
          } catch (err) {
            ctx.warn(`release ${to} is active, but the release history in ${t.bucketName} could not be updated (${reasonOf(err)})`);
          }
        })(),
        paths.length > 0 ? invalidate(new CloudFrontClient(ctx.clientConfig), t.distributionId, paths, `cdk-rollback-${to}-${Date.now()}`, (l) => ctx.progress(l)) : Promise.resolve([]),
        pendingAudit.record('site rollback', `release ${active ?? 'none'}`, `release ${to}`),
      ]);
      if (invalidationIds.length > 0) ctx.step(`invalidation ${invalidationIds.join(', ')} of ${paths.length} path(s) started`);
      if (wait && invalidationIds.length > 0) {
        const cf = new CloudFrontClient(ctx.clientConfig);
        await ctx.waitFor(`invalidation ${invalidationIds.join(', ')}`, async () => (
          (await invalidationsComplete(cf, t.distributionId, invalidationIds)) ? { done: true, value: true } : { done: false, state: 'InProgress' }
        ), INVALIDATION_WAIT_SECONDS);
      }
      const from = active ?? 'none';
      return {
        data: {
          action: 'rollback', path: t.path, bucket: t.bucketName, distribution: t.distributionId, from, to,
          invalidationIds, paths, waited: wait, audit: a.entry, auditRecordedIn: a.recordedIn,
        },
        lines: [
          `Rolled back ${label(t)}: release ${from} -> ${to}.`,
          `  invalidation ${invalidationIds.join(', ') || '-'} of ${paths.join(' ') || '-'}${wait ? ' completed' : ' started (use --wait to wait for it)'}`,
          a.line,
        ],
      };
    },
  };
}

export async function siteRollback(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  return runPlan(ctx, await planSiteRollback(ctx, o));
}

/** The site section of `status`. */
export async function siteStatus(ctx: Context, t: SiteTarget): Promise<{ data: Record<string, unknown>; lines: string[] }> {
  const [state, trail] = await Promise.all([readSiteState(ctx, t), readAudit(ctx, 'site', t.bucketName)]);
  const c = ctx.color;
  const retained = state.releases.filter((r) => r.status === 'retained' && r.id !== state.active && r.id !== state.previous);
  const dated = (id: string | undefined) => {
    if (!id) return c.yellow('none');
    const r = state.releases.find((x) => x.id === id);
    return r ? `${id} (created ${iso(r.createdAt)})` : id;
  };
  const lines = [
    `${c.bold('Site')} ${label(t)}`,
    `  active:   ${dated(state.active)}`,
    `  previous: ${dated(state.previous)}`,
    ...retained.map((r) => `  retained: ${r.id} (created ${iso(r.createdAt)})`),
    ...trail.slice(0, 3).map((e) => `  last: ${e.at} ${e.action} ${e.from} -> ${e.to} by ${e.who}`),
  ];
  return {
    data: {
      path: t.path, bucket: t.bucketName, distribution: t.distributionId, kvs: t.kvsArn,
      active: state.active ?? null, previous: state.previous ?? null,
      retained: retained.map((r) => ({ id: r.id, createdAt: r.createdAt })), audit: trail,
    },
    lines,
  };
}
