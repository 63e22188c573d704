/**
 * `site releases|rollback` and the site part of `status`: VersionedSite's KeyValueStore pointer, its release
 * history in the bucket, and the same activation (pointer with ETag, then invalidation) as a deploy.
 */
// The CloudFront KeyValueStore API signs with SigV4A: without this import the client fails before sending.
import '@aws-sdk/signature-v4a';
import { CloudFrontClient, DescribeKeyValueStoreCommand } from '@aws-sdk/client-cloudfront';
import { CloudFrontKeyValueStoreClient, GetKeyCommand } from '@aws-sdk/client-cloudfront-keyvaluestore';
import { S3Client } from '@aws-sdk/client-s3';
import { activateRelease, readHistory, ReleaseRecord } from '../../lambda/site-release/activate';
import { SITE_KVS_ACTIVE_KEY, SITE_KVS_PREVIOUS_KEY } from '../../lib/private/contract';
import { audit, readAudit } from './audit';
import { CommandResult, Context, iso, refused, usage } from './context';
import { ConstructTarget, discoverStack, physicalId, pickConstruct } from './discovery';

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

export async function siteRollback(ctx: Context, o: Record<string, unknown>): Promise<CommandResult> {
  const t = await resolveSiteTarget(ctx, o);
  const state = await readSiteState(ctx, t);
  const requested = o.to as string | undefined;
  const to = requested ?? state.previous;
  if (!to) throw refused(`site ${label(t)} has no previous release to roll back to: pass --to RELEASE (see \`site releases\`)`);
  if (to === state.active) throw refused(`release ${to} is already active: nothing to roll back`);
  const record = state.releases.find((r) => r.id === to);
  const retained = state.releases.filter((r) => r.status !== 'pruned' && r.status !== 'failed' && r.id !== state.active).map((r) => r.id);
  if (!record) throw usage(`release ${to} is not in the release history of ${t.bucketName}; retained releases: ${retained.join(', ') || 'none'}`);
  if (record.status === 'pruned' || record.status === 'failed') {
    throw refused(`release ${to} is ${record.status}: its files are not servable; retained releases: ${retained.join(', ') || 'none'}`);
  }
  const plan = [
    `active release of ${label(t)}: ${state.active ?? 'none'} -> ${to}`,
    `then invalidate the entry points on distribution ${t.distributionId}${o.wait ? ' and wait for it' : ''}`,
  ];
  if (!(await ctx.confirm(`Activate release ${to}?`, plan))) {
    return { data: { dryRun: true, from: state.active ?? null, to, plan }, lines: ['dry run: nothing was changed', ...plan.map((p) => `  would ${p}`)] };
  }
  const result = await activateRelease({
    kvsArn: t.kvsArn,
    bucketName: t.bucketName,
    distributionId: t.distributionId,
    releaseId: to,
    waitForInvalidation: Boolean(o.wait),
    log: (line) => ctx.progress(line),
    clients: {
      kvs: new CloudFrontKeyValueStoreClient(ctx.clientConfig),
      s3: new S3Client(ctx.clientConfig),
      cloudfront: new CloudFrontClient(ctx.clientConfig),
    },
  });
  ctx.step(`release ${to} is active`);
  const from = result.previousReleaseId ?? state.active ?? 'none';
  const a = await audit(ctx, 'site', t.bucketName, 'site rollback', `release ${from}`, `release ${to}`);
  return {
    data: {
      action: 'rollback', path: t.path, bucket: t.bucketName, distribution: t.distributionId, from, to,
      invalidationIds: result.invalidationIds, paths: result.paths, waited: Boolean(o.wait), audit: a.entry, auditRecordedIn: a.recordedIn,
    },
    lines: [
      `Rolled back ${label(t)}: release ${from} -> ${to}.`,
      `  invalidation ${result.invalidationIds.join(', ') || '-'} of ${result.paths.join(' ') || '-'}${o.wait ? ' completed' : ' started (use --wait to wait for it)'}`,
      a.line,
    ],
  };
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
