import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudFrontClient, CreateInvalidationCommand, ListInvalidationsCommand, GetInvalidationCommand } from '@aws-sdk/client-cloudfront';
import { CloudFrontKeyValueStoreClient, UpdateKeysCommand, DescribeKeyValueStoreCommand } from '@aws-sdk/client-cloudfront-keyvaluestore';
import {
  DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import {
  activateRelease, readHistory, batchInvalidationPaths, invalidate, invalidationPaths as computeInvalidationPaths,
} from '../lambda/site-release/activate';
import { clients, isComplete, onEvent, ReleaseProps, ROLLBACK_INVALIDATION_WAIT_MS } from '../lambda/site-release/index';
import { readDeployments } from '../lambda/site-release/intent';
import { releasesToKeep } from '../lambda/site-release/prune';
import { retryPolicy } from '../lambda/site-release/retry';
import { uploadRelease } from '../lambda/site-release/upload';
import { ReleaseManifest, immutablePattern } from '../lib/private/site-contract';
import { useMotoServer } from './helpers/moto';
import { KVS_ARN, bodyText, createBuckets, createDistribution, fakeKvs, putZip } from './fixtures/site/helpers';

const moto = useMotoServer();
const SITE = 'site-bucket';
const ASSETS = 'cdk-assets';
const PATTERN = immutablePattern();

const V1 = {
  'index.html': '<html><script src="/assets/app.3f9a1c2b.js"></script>v1</html>',
  'docs/index.html': '<html>docs v1</html>',
  'assets/app.3f9a1c2b.js': 'console.log("v1")',
  'assets/vendor.77aa11bb.js': 'vendor()',
  'robots.txt': 'User-agent: *',
  'logo.png': Buffer.from([0x89, 0x50, 0x4e, 0x47]),
};
const V2 = {
  ...V1,
  'index.html': '<html><script src="/assets/app.9e8d7c6b.js"></script>v2</html>',
  'assets/app.9e8d7c6b.js': 'console.log("v2")',
};
delete (V2 as Record<string, unknown>)['assets/app.3f9a1c2b.js'];
const V3 = { ...V2, 'index.html': '<html>v3</html>', 'assets/app.1234abcd.js': 'v3()' };

let s3: S3Client;
let cf: CloudFrontClient;
let distributionId: string;
let kvs: ReturnType<typeof fakeKvs>;
let sleeps: number[];
let cfn: ReturnType<typeof mockClient>;
/** What DescribeStacks answers for the stack (the tests switch it to UPDATE_ROLLBACK_IN_PROGRESS). */
let stackStatus: string;

function props(releaseId: string, extra: Partial<ReleaseProps> = {}): ReleaseProps {
  return {
    BucketName: SITE, DistributionId: distributionId, KvsArn: KVS_ARN, AssetBucket: ASSETS, AssetKey: `${releaseId}.zip`,
    ReleaseId: releaseId, SourceHash: `src-${releaseId}`, ImmutablePattern: PATTERN, RetainReleases: '10',
    WaitForInvalidation: 'false', RemovalPolicy: 'retain', ...extra,
  };
}

const STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/S/1';
let requestSeq = 0;

function event(type: 'Create' | 'Update' | 'Delete', p: ReleaseProps, old?: ReleaseProps, requestId = `req-${++requestSeq}`): CloudFormationCustomResourceEvent {
  const base = {
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:x', ResponseURL: 'https://cloudformation-custom-resource-response/secret',
    StackId: STACK_ID, RequestId: requestId, LogicalResourceId: 'Release',
    ResourceType: 'Custom::CdkRollbackSiteRelease', ResourceProperties: { ServiceToken: 'x', ...p },
  };
  if (type === 'Create') return { ...base, RequestType: 'Create' };
  if (type === 'Update') return { ...base, RequestType: 'Update', PhysicalResourceId: `${SITE}/site-release`, OldResourceProperties: { ServiceToken: 'x', ...(old ?? p) } };
  return { ...base, RequestType: 'Delete', PhysicalResourceId: `${SITE}/site-release` };
}

async function keys(prefix = ''): Promise<string[]> {
  const res = await s3.send(new ListObjectsV2Command({ Bucket: SITE, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key!).sort();
}

async function text(key: string): Promise<string> {
  return bodyText((await s3.send(new GetObjectCommand({ Bucket: SITE, Key: key }))).Body);
}

/** Counts the PutObject calls an S3 client makes into the release and pool prefixes. */
function countUploads(client: S3Client): { count: () => number } {
  let n = 0;
  const send = client.send.bind(client);
  jest.spyOn(client, 'send').mockImplementation(((cmd: unknown) => {
    if (cmd instanceof PutObjectCommand && /^(releases|_pool)\//.test(cmd.input.Key ?? '')) n++;
    return send(cmd as never);
  }) as never);
  return { count: () => n };
}

async function invalidationPaths(): Promise<string[][]> {
  const list = await cf.send(new ListInvalidationsCommand({ DistributionId: distributionId }));
  const out: string[][] = [];
  for (const s of list.InvalidationList?.Items ?? []) {
    const inv = await cf.send(new GetInvalidationCommand({ DistributionId: distributionId, Id: s.Id }));
    out.push([...(inv.Invalidation!.InvalidationBatch!.Paths!.Items ?? [])].sort());
  }
  return out;
}

beforeEach(async () => {
  await moto.reset();
  s3 = new S3Client({});
  cf = new CloudFrontClient({});
  clients.s3 = () => s3;
  clients.cloudfront = () => cf;
  kvs = fakeKvs();
  clients.kvs = () => new CloudFrontKeyValueStoreClient({});
  sleeps = [];
  stackStatus = 'UPDATE_IN_PROGRESS';
  cfn = mockClient(CloudFormationClient);
  cfn.on(DescribeStacksCommand).callsFake(() => ({ Stacks: [{ StackName: 'S', StackStatus: stackStatus, CreationTime: new Date() }] }));
  clients.cloudformation = () => new CloudFormationClient({});
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
  retryPolicy.sleep = async (ms: number) => { sleeps.push(ms); };
  await createBuckets(s3, SITE, ASSETS);
  distributionId = await createDistribution(cf);
  await putZip(s3, ASSETS, 'r1.zip', V1);
  await putZip(s3, ASSETS, 'r2.zip', V2);
  await putZip(s3, ASSETS, 'r3.zip', V3);
});

afterEach(() => {
  kvs.mock.restore();
  cfn.restore();
  jest.restoreAllMocks();
});

describe('release handler against moto_server', () => {
  test('first release: uploads hashed files to the pool and the rest under the release, sets active', async () => {
    const res = await onEvent(event('Create', props('r1')));

    expect(res).toEqual({
      PhysicalResourceId: `${SITE}/site-release`,
      Data: { ReleaseId: 'r1', PreviousReleaseId: '', InvalidationIds: '', ActiveReleaseId: 'r1', Action: 'release', StartedAt: expect.any(String) },
    });
    expect(await keys('_pool/')).toEqual(['_pool/assets/app.3f9a1c2b.js', '_pool/assets/vendor.77aa11bb.js']);
    expect(await keys('releases/')).toEqual(['releases/r1/docs/index.html', 'releases/r1/index.html', 'releases/r1/logo.png', 'releases/r1/robots.txt']);
    expect(await text('releases/r1/index.html')).toBe(V1['index.html']);
    expect(kvs.state.store.get('active')).toBe('r1');
    expect(kvs.state.store.has('previous')).toBe(false);
    expect(await invalidationPaths()).toEqual([]); // nothing was served before
    const history = await readHistory(s3, SITE);
    expect(history).toEqual([expect.objectContaining({ id: 'r1', sourceHash: 'src-r1', status: 'active', activatedAt: expect.any(String) })]);
  });

  test('sets Cache-Control per file (immutable only for content-hashed names) and the right Content-Type', async () => {
    await onEvent(event('Create', props('r1')));
    const head = (key: string) => s3.send(new HeadObjectCommand({ Bucket: SITE, Key: key }));
    const js = await head('_pool/assets/app.3f9a1c2b.js');
    expect(js.CacheControl).toBe('public, max-age=31536000, immutable');
    expect(js.ContentType).toBe('text/javascript; charset=utf-8');
    const html = await head('releases/r1/index.html');
    expect(html.CacheControl).toBe('public, max-age=0, must-revalidate');
    expect(html.ContentType).toBe('text/html; charset=utf-8');
    expect((await head('releases/r1/logo.png')).ContentType).toBe('image/png');
    expect((await head('releases/r1/robots.txt')).ContentType).toBe('text/plain; charset=utf-8');
  });

  test('the same build again uploads nothing and leaves the pointer alone', async () => {
    await onEvent(event('Create', props('r1')));
    const uploads = countUploads(s3);
    const res = await onEvent(event('Update', props('r1', { RetainReleases: '5' }), props('r1')));
    expect(uploads.count()).toBe(0);
    expect(res.Data?.InvalidationIds).toBe('');
    expect(kvs.mock.commandCalls(UpdateKeysCommand)).toHaveLength(1); // the first release only
  });

  test('second release: moves active, keeps previous, keeps the old chunks and invalidates the changed entry points', async () => {
    await onEvent(event('Create', props('r1')));
    const uploads = countUploads(s3);
    const res = await onEvent(event('Update', props('r2'), props('r1')));

    // only what the bucket did not hold: the new chunk and the release's mutable files
    expect(uploads.count()).toBe(5);
    expect(kvs.state.store.get('active')).toBe('r2');
    expect(kvs.state.store.get('previous')).toBe('r1');
    expect(res.Data?.PreviousReleaseId).toBe('r1');
    expect(await keys('_pool/')).toEqual(['_pool/assets/app.3f9a1c2b.js', '_pool/assets/app.9e8d7c6b.js', '_pool/assets/vendor.77aa11bb.js']);
    expect(await invalidationPaths()).toEqual([['/', '/index.html']]);
    const history = await readHistory(s3, SITE);
    expect(history.map((r) => [r.id, r.status])).toEqual([['r2', 'active'], ['r1', 'previous']]);
  });

  test('rollback Update with the old properties flips the pointer back without re-uploading', async () => {
    await onEvent(event('Create', props('r1')));
    await onEvent(event('Update', props('r2'), props('r1')));
    stackStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';
    // the old asset zip is not even needed: the release is still in the bucket
    await s3.send(new DeleteObjectCommand({ Bucket: ASSETS, Key: 'r1.zip' }));
    const uploads = countUploads(s3);

    const res = await onEvent(event('Update', props('r1'), props('r2')));

    expect(uploads.count()).toBe(0);
    expect(kvs.state.store.get('active')).toBe('r1');
    expect(kvs.state.store.get('previous')).toBe('r2');
    expect(res.Data?.PreviousReleaseId).toBe('r2');
    const history = await readHistory(s3, SITE);
    expect(history.map((r) => [r.id, r.status])).toEqual([['r2', 'previous'], ['r1', 'active']]);
    expect(await text('releases/r1/index.html')).toBe(V1['index.html']);
  });

  test('retention keeps the newest releases plus active and previous, and drops unreferenced pool objects', async () => {
    await onEvent(event('Create', props('r1', { RetainReleases: '2' })));
    await onEvent(event('Update', props('r2', { RetainReleases: '2' }), props('r1')));
    await onEvent(event('Update', props('r3', { RetainReleases: '2' }), props('r2')));

    expect(await keys('releases/r1/')).toEqual([]);
    expect(await keys('_cdk-rollback/manifests/')).toEqual(['_cdk-rollback/manifests/r2.json', '_cdk-rollback/manifests/r3.json']);
    // r1's own chunk is gone, the chunks r2/r3 still reference stay
    expect(await keys('_pool/')).toEqual(['_pool/assets/app.1234abcd.js', '_pool/assets/app.9e8d7c6b.js', '_pool/assets/vendor.77aa11bb.js']);
    const history = await readHistory(s3, SITE);
    expect(history.map((r) => [r.id, r.status])).toEqual([['r3', 'active'], ['r2', 'previous'], ['r1', 'pruned']]);
  });

  test('retention keeps the newest retainReleases PLUS active and previous: A, B, stack rollback to A, C keeps B', async () => {
    await onEvent(event('Create', props('r1', { RetainReleases: '2' })));
    await onEvent(event('Update', props('r2', { RetainReleases: '2' }), props('r1')));
    stackStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';
    await onEvent(event('Update', props('r1', { RetainReleases: '2' }), props('r2'))); // rollback: r1 active, r2 previous
    stackStatus = 'UPDATE_IN_PROGRESS';
    await onEvent(event('Update', props('r3', { RetainReleases: '2' }), props('r1'))); // r3 active, r1 previous

    // the newest two by creation time are r3 and r2; r1 is previous: all three stay
    const history = await readHistory(s3, SITE);
    expect(history.map((r) => [r.id, r.status])).toEqual([['r3', 'active'], ['r2', 'retained'], ['r1', 'previous']]);
    expect(await keys('releases/r1/')).toHaveLength(4);
    expect(await keys('releases/r2/')).toHaveLength(4);
    expect(await keys('_cdk-rollback/manifests/')).toHaveLength(3);
  });

  test('retention: A, B, operator rollback to A (cdk-rollback site rollback), C with retainReleases 2 keeps B', async () => {
    await onEvent(event('Create', props('r1', { RetainReleases: '2' })));
    await onEvent(event('Update', props('r2', { RetainReleases: '2' }), props('r1')));
    await activateRelease({ kvsArn: KVS_ARN, bucketName: SITE, distributionId, releaseId: 'r1', clients: { s3, cloudfront: cf } });
    await onEvent(event('Update', props('r3', { RetainReleases: '2' }), props('r2')));

    expect(kvs.state.store.get('active')).toBe('r3');
    expect(kvs.state.store.get('previous')).toBe('r1');
    const history = await readHistory(s3, SITE);
    expect(history.map((r) => [r.id, r.status])).toEqual([['r3', 'active'], ['r2', 'retained'], ['r1', 'previous']]);
    expect(await keys('releases/r2/')).toHaveLength(4);
    // a fourth release finally pushes r2 out: r4 and r3 are the newest two, r3 is also previous
    await putZip(s3, ASSETS, 'r4.zip', { ...V3, 'index.html': 'v4' });
    await onEvent(event('Update', { ...props('r4', { RetainReleases: '2' }), AssetKey: 'r4.zip' }, props('r3')));
    expect((await readHistory(s3, SITE)).map((r) => [r.id, r.status])).toEqual([['r4', 'active'], ['r3', 'previous'], ['r2', 'pruned'], ['r1', 'pruned']]);
  });

  test('releasesToKeep: newest N by creation time, plus active, previous and what the caller protects; failed ones do not count', () => {
    const at = (i: number) => `2026-01-0${i}T00:00:00.000Z`;
    const history = [
      { id: 'e', createdAt: at(5), sourceHash: 'h', status: 'failed' as const },
      { id: 'd', createdAt: at(4), sourceHash: 'h', status: 'retained' as const },
      { id: 'c', createdAt: at(3), sourceHash: 'h', status: 'retained' as const },
      { id: 'b', createdAt: at(2), sourceHash: 'h', status: 'previous' as const },
      { id: 'a', createdAt: at(1), sourceHash: 'h', status: 'active' as const },
      { id: 'z', createdAt: at(1), sourceHash: 'h', status: 'pruned' as const },
    ];
    expect([...releasesToKeep(history, 2)].sort()).toEqual(['a', 'b', 'c', 'd']);
    expect([...releasesToKeep(history, 1, ['x', undefined])].sort()).toEqual(['a', 'b', 'd', 'x']);
  });

  test('Delete keeps every release by default', async () => {
    await onEvent(event('Create', props('r1')));
    const before = await keys();
    await onEvent(event('Delete', props('r1')));
    expect(await keys()).toEqual(before);
  });

  test('Delete with removalPolicy destroy empties the bucket so it can be deleted', async () => {
    await onEvent(event('Create', props('r1', { RemovalPolicy: 'destroy' })));
    await onEvent(event('Delete', props('r1', { RemovalPolicy: 'destroy' })));
    expect(await keys()).toEqual([]);
  });

  test('isComplete waits for the invalidations only when asked', async () => {
    await onEvent(event('Create', props('r1')));
    const res = await onEvent(event('Update', props('r2', { WaitForInvalidation: 'true' }), props('r1')));
    const base = { RequestType: 'Update', Data: res.Data };
    expect(await isComplete({ ...base, ResourceProperties: props('r2', { WaitForInvalidation: 'true' }) })).toEqual({ IsComplete: true });
    const cfMock = mockClient(CloudFrontClient);
    cfMock.on(GetInvalidationCommand).resolves({ Invalidation: { Id: 'I', Status: 'InProgress', CreateTime: new Date(), InvalidationBatch: undefined } });
    expect(await isComplete({ ...base, ResourceProperties: props('r2', { WaitForInvalidation: 'true' }) })).toEqual({ IsComplete: false });
    expect(await isComplete({ ...base, ResourceProperties: props('r2') })).toEqual({ IsComplete: true });
    cfMock.restore();
  });

  test('logs structured JSON with the ResponseURL redacted', async () => {
    const lines: string[] = [];
    jest.spyOn(console, 'log').mockImplementation((l: string) => { lines.push(l); });
    await onEvent(event('Create', props('r1')));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
    expect(lines.join('\n')).not.toContain('secret');
    expect(lines.join('\n')).toContain('[redacted]');
  });

  test('streams a file larger than the batch through the inflater into PutObject', async () => {
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
    await putZip(s3, ASSETS, 'big.zip', { 'index.html': 'x', 'video.bin': big, 'a.txt': 'a', 'b.txt': 'b' });
    const res = await uploadRelease({
      s3, assetBucket: ASSETS, assetKey: 'big.zip', bucketName: SITE, releaseId: 'big', sourceHash: 'h',
      immutable: new RegExp(PATTERN), batchBytes: 64 * 1024, concurrency: 2,
    });
    expect(res.uploaded).toBe(4);
    const got = await s3.send(new GetObjectCommand({ Bucket: SITE, Key: 'releases/big/video.bin' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(big)).toBe(true);
    expect(await text('releases/big/b.txt')).toBe('b');
  });

  test('reads zip64 archives', async () => {
    await putZip(s3, ASSETS, 'z64.zip', V1, { zip64: true });
    const res = await uploadRelease({
      s3, assetBucket: ASSETS, assetKey: 'z64.zip', bucketName: SITE, releaseId: 'z64', sourceHash: 'h', immutable: new RegExp(PATTERN),
    });
    expect(res.uploaded).toBe(6);
    expect(await text('releases/z64/docs/index.html')).toBe(V1['docs/index.html']);
    expect(await text('_pool/assets/vendor.77aa11bb.js')).toBe('vendor()');
  });

  test('a hash-looking name that comes back with other bytes is overwritten and invalidated under both URIs', async () => {
    await onEvent(event('Create', props('r1')));
    await putZip(s3, ASSETS, 'r4.zip', { ...V1, 'index.html': 'v4', 'assets/vendor.77aa11bb.js': 'vendor() // changed' });
    const res = await onEvent(event('Update', { ...props('r4'), AssetKey: 'r4.zip' }, props('r1')));
    expect(await text('_pool/assets/vendor.77aa11bb.js')).toBe('vendor() // changed');
    const inv = await invalidationPaths();
    expect(inv).toEqual([['/', '/_pool/assets/vendor.77aa11bb.js', '/assets/vendor.77aa11bb.js', '/index.html']]);
    expect(res.Data?.InvalidationIds).not.toBe('');
  });

  test('more than 3,000 changed paths collapse to one /* invalidation', () => {
    const manifest = (tag: number): ReleaseManifest => ({
      version: 1, id: `m${tag}`, sourceHash: 'h', createdAt: '2026-01-01T00:00:00.000Z',
      files: Object.fromEntries(Array.from({ length: 3001 }, (_, i) => [`p/${i}.txt`, { size: 1, crc32: tag, pooled: false }])),
    });
    expect(computeInvalidationPaths(manifest(2), manifest(1))).toEqual(['/*']);
    const few = { ...manifest(2), files: { 'index.html': { size: 1, crc32: 2, pooled: false } } };
    expect(computeInvalidationPaths(few, { ...few, files: {} })).toEqual(['/', '/index.html']);
  });

  test('activateRelease refuses a release that is not in the bucket and leaves the pointer alone', async () => {
    await onEvent(event('Create', props('r1')));
    await expect(activateRelease({ kvsArn: KVS_ARN, bucketName: SITE, distributionId, releaseId: 'nope', clients: { s3, cloudfront: cf } }))
      .rejects.toThrow('release nope does not exist in bucket site-bucket (no manifest at _cdk-rollback/manifests/nope.json)');
    expect(kvs.state.store.get('active')).toBe('r1');
  });

  test('activateRelease (the CLI rollback) invalidates what the deploy invalidated', async () => {
    await onEvent(event('Create', props('r1')));
    await onEvent(event('Update', props('r2'), props('r1')));
    const res = await activateRelease({ kvsArn: KVS_ARN, bucketName: SITE, distributionId, releaseId: 'r1', waitForInvalidation: true, clients: { s3, cloudfront: cf } });
    expect(res).toEqual({ previousReleaseId: 'r2', releaseId: 'r1', moved: true, invalidationIds: [expect.any(String)], paths: ['/', '/index.html'] });
    expect(kvs.state.store.get('active')).toBe('r1');
  });
});

describe('faults (aws-sdk-client-mock)', () => {
  test('retries the pointer update on an ETag conflict with a fresh ETag', async () => {
    kvs.state.conflictsToInject = 1;
    await onEvent(event('Create', props('r1')));
    const calls = kvs.mock.commandCalls(UpdateKeysCommand);
    expect(calls).toHaveLength(2);
    expect(calls[0].args[0].input.IfMatch).toBe('E1');
    expect(calls[1].args[0].input.IfMatch).toBe('E2');
    expect(kvs.mock.commandCalls(DescribeKeyValueStoreCommand)).toHaveLength(2);
    expect(kvs.state.store.get('active')).toBe('r1');
  });

  test('backs off and retries while CloudFront answers TooManyInvalidationsInProgress', async () => {
    const cfMock = mockClient(CloudFrontClient);
    const tooMany = Object.assign(new Error('too many'), { name: 'TooManyInvalidationsInProgress', $metadata: { httpStatusCode: 400 } });
    cfMock.on(CreateInvalidationCommand)
      .rejectsOnce(tooMany).rejectsOnce(tooMany)
      .resolves({ Invalidation: { Id: 'INV1', Status: 'InProgress', CreateTime: new Date(), InvalidationBatch: undefined } });
    const ids = await invalidate(new CloudFrontClient({}), 'D', ['/index.html'], 'ref', () => undefined);
    expect(ids).toEqual(['INV1']);
    expect(cfMock.commandCalls(CreateInvalidationCommand)).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
    expect(sleeps[1]).toBeGreaterThanOrEqual(sleeps[0] / 2); // exponential with jitter
    // the same caller reference on every attempt: a lost response cannot create a second invalidation
    const refs = cfMock.commandCalls(CreateInvalidationCommand).map((c) => c.args[0].input.InvalidationBatch!.CallerReference);
    expect(new Set(refs).size).toBe(1);
    cfMock.restore();
  });

  test('batches invalidation paths under 3,000 paths and 15 wildcards per invalidation', () => {
    const paths = [...Array.from({ length: 3500 }, (_, i) => `/p${i}`), ...Array.from({ length: 20 }, (_, i) => `/w${i}/*`)];
    const batches = batchInvalidationPaths(paths);
    expect(batches.map((b) => b.length)).toEqual([3000, 515, 5]);
    for (const b of batches) expect(b.filter((p) => p.includes('*')).length).toBeLessThanOrEqual(15);
    expect(batches.flat()).toEqual(paths);
  });

  test('retries throttled KeyValueStore and S3 calls', async () => {
    const throttle = () => Object.assign(new Error('slow down'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
    kvs.mock.on(DescribeKeyValueStoreCommand).rejectsOnce(throttle()).callsFake(() => ({ ETag: `E${kvs.state.etag}` }));
    let throttled = 0;
    const send = s3.send.bind(s3);
    jest.spyOn(s3, 'send').mockImplementation(((cmd: unknown) => {
      if (cmd instanceof PutObjectCommand && throttled === 0) {
        throttled++;
        return Promise.reject(Object.assign(new Error('SlowDown'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }));
      }
      return send(cmd as never);
    }) as never);
    await onEvent(event('Create', props('r1')));
    expect(throttled).toBe(1);
    expect(kvs.state.store.get('active')).toBe('r1');
    expect(await keys('releases/r1/')).toHaveLength(4);
    expect(sleeps.length).toBeGreaterThanOrEqual(2);
  });

  test('a failed upload midway fails the deploy, records the failure and does not move the pointer', async () => {
    await onEvent(event('Create', props('r1')));
    let puts = 0;
    const send = s3.send.bind(s3);
    jest.spyOn(s3, 'send').mockImplementation(((cmd: unknown) => {
      if (cmd instanceof PutObjectCommand && /^(releases|_pool)\//.test(cmd.input.Key ?? '') && ++puts === 3) {
        return Promise.reject(Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }));
      }
      return send(cmd as never);
    }) as never);

    await expect(onEvent(event('Update', props('r2'), props('r1')))).rejects.toThrow('Access Denied');

    expect(kvs.state.store.get('active')).toBe('r1');
    expect(kvs.mock.commandCalls(UpdateKeysCommand)).toHaveLength(1);
    expect(await keys('_cdk-rollback/manifests/')).toEqual(['_cdk-rollback/manifests/r1.json']);
    const history = await readHistory(s3, SITE);
    expect(history.find((r) => r.id === 'r2')?.status).toBe('failed');
    expect(history.find((r) => r.id === 'r1')?.status).toBe('active');

    // the retry of the same release completes it from where it stopped
    (s3.send as jest.Mock).mockRestore();
    await onEvent(event('Update', props('r2'), props('r1')));
    expect(kvs.state.store.get('active')).toBe('r2');
    expect((await readHistory(s3, SITE)).find((r) => r.id === 'r2')?.status).toBe('active');
  });
});

describe('lifecycle: decides from intent (OldResourceProperties, stack status), never from the current state alone', () => {
  const operatorRollback = (releaseId: string) =>
    activateRelease({ kvsArn: KVS_ARN, bucketName: SITE, distributionId, releaseId, clients: { s3, cloudfront: cf } });

  /** Fails every command of `type` the site's S3 client sends (after the setup). */
  function failS3<T>(type: new (...args: never[]) => T): void {
    const send = s3.send.bind(s3);
    jest.spyOn(s3, 'send').mockImplementation(((cmd: unknown) => {
      if (cmd instanceof type) return Promise.reject(Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }));
      return send(cmd as never);
    }) as never);
  }

  function failInvalidations(): void {
    const send = cf.send.bind(cf);
    jest.spyOn(cf, 'send').mockImplementation(((cmd: unknown) => {
      if (cmd instanceof CreateInvalidationCommand) {
        return Promise.reject(Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }));
      }
      return send(cmd as never);
    }) as never);
  }

  test('an Update with the same ReleaseId (only retainReleases, concurrency, waitForInvalidation changed) never re-activates it', async () => {
    await onEvent(event('Create', props('r1')));
    await onEvent(event('Update', props('r2'), props('r1')));
    await operatorRollback('r1'); // cdk-rollback site rollback
    const updates = kvs.mock.commandCalls(UpdateKeysCommand).length;
    const uploads = countUploads(s3);
    cfn.resetHistory();

    const res = await onEvent(event('Update', props('r2', { RetainReleases: '5', Concurrency: '4', WaitForInvalidation: 'true' }), props('r2')));

    expect(kvs.state.store.get('active')).toBe('r1'); // the operator's choice stands
    expect(kvs.mock.commandCalls(UpdateKeysCommand)).toHaveLength(updates);
    expect(uploads.count()).toBe(0);
    expect(res.Data).toMatchObject({ Action: 'housekeeping', InvalidationIds: '' });
    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(0); // the target decides, no status needed
  });

  test('a forward Update records what actually served (the operator\'s choice), and the rollback Update restores exactly that', async () => {
    await onEvent(event('Create', props('r1')));
    await onEvent(event('Update', props('r2'), props('r1')));
    await operatorRollback('r1'); // the template says r2, r1 serves

    await onEvent(event('Update', props('r3'), props('r2'), 'deploy-r3'));
    expect(kvs.state.store.get('active')).toBe('r3');
    expect(kvs.state.store.get('previous')).toBe('r1');
    const recorded = (await readDeployments(s3, SITE)).find((r) => r.requestId === 'deploy-r3');
    expect(recorded).toMatchObject({ kind: 'deploy', templateFrom: 'r2', to: 'r3', servedBefore: 'r1', invalidationIds: [expect.any(String)] });

    // a later resource fails: CloudFormation sends the old properties (r2) while the stack rolls back
    stackStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';
    const res = await onEvent(event('Update', props('r2'), props('r3')));

    expect(kvs.state.store.get('active')).toBe('r1'); // not the template's r2
    expect(res.Data).toMatchObject({ Action: 'rollback', ActiveReleaseId: 'r1', PreviousReleaseId: 'r3' });
    expect(cfn.commandCalls(DescribeStacksCommand)[0].args[0].input).toEqual({ StackName: STACK_ID });
  });

  test('the rollback Update of an update that never activated its release leaves what serves alone', async () => {
    await onEvent(event('Create', props('r1')));
    await onEvent(event('Update', props('r2'), props('r1')));
    await operatorRollback('r1');
    // the next deploy fails before it activates anything (its asset is missing)
    await expect(onEvent(event('Update', { ...props('r3'), AssetKey: 'missing.zip' }, props('r2')))).rejects.toThrow();
    expect(kvs.state.store.get('active')).toBe('r1');
    const updates = kvs.mock.commandCalls(UpdateKeysCommand).length;

    stackStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';
    const res = await onEvent(event('Update', props('r2'), { ...props('r3'), AssetKey: 'missing.zip' }));

    expect(kvs.state.store.get('active')).toBe('r1');
    expect(kvs.mock.commandCalls(UpdateKeysCommand)).toHaveLength(updates);
    expect(res.Data).toMatchObject({ Action: 'rollback', ActiveReleaseId: 'r1', InvalidationIds: '' });
  });

  test('without a deployment record the rollback Update restores the KeyValueStore\'s previous release', async () => {
    await onEvent(event('Create', props('r1')));
    await onEvent(event('Update', props('r2'), props('r1')));
    await s3.send(new DeleteObjectCommand({ Bucket: SITE, Key: '_cdk-rollback/deployments.json' })); // e.g. deployed by an older version
    stackStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';
    await onEvent(event('Update', props('r1'), props('r2')));
    expect(kvs.state.store.get('active')).toBe('r1');
  });

  test('the rollback Update never throws: a failed invalidation and failed retention are logged', async () => {
    await onEvent(event('Create', props('r1', { RetainReleases: '2' })));
    await onEvent(event('Update', props('r2', { RetainReleases: '2' }), props('r1')));
    failInvalidations();
    failS3(DeleteObjectsCommand);
    const errors: string[] = [];
    jest.spyOn(console, 'log').mockImplementation((l: string) => { errors.push(l); });
    stackStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';

    const res = await onEvent(event('Update', props('r1', { RetainReleases: '2' }), props('r2', { RetainReleases: '2' })));

    expect(kvs.state.store.get('active')).toBe('r1');
    expect(res.Data).toMatchObject({ Action: 'rollback', ActiveReleaseId: 'r1' });
    expect(errors.join('\n')).toContain('the invalidation failed; invalidate / /index.html by hand');
  });

  test('the rollback Update never throws even when the pointer cannot be moved, and names the command that finishes it', async () => {
    await onEvent(event('Create', props('r1')));
    await onEvent(event('Update', props('r2'), props('r1')));
    kvs.mock.on(UpdateKeysCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException', $metadata: { httpStatusCode: 403 } }));
    const lines: string[] = [];
    jest.spyOn(console, 'error').mockImplementation((l: string) => { lines.push(l); });
    stackStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';

    await expect(onEvent(event('Update', props('r1'), props('r2')))).resolves.toMatchObject({ Data: { Action: 'rollback' } });
    expect(lines.join('\n')).toContain('cdk-rollback site rollback --to r1');
  });

  test('pruning that fails is logged and never fails a forward release', async () => {
    await onEvent(event('Create', props('r1', { RetainReleases: '2' })));
    await onEvent(event('Update', props('r2', { RetainReleases: '2' }), props('r1')));
    failS3(DeleteObjectsCommand);
    const res = await onEvent(event('Update', props('r3', { RetainReleases: '2' }), props('r2')));
    expect(kvs.state.store.get('active')).toBe('r3');
    expect(res.Data?.Action).toBe('release');
  });

  test('pruning never deletes what the KeyValueStore serves, even when the history says otherwise', async () => {
    await onEvent(event('Create', props('r1')));
    await onEvent(event('Update', props('r2'), props('r1')));
    await onEvent(event('Update', props('r3'), props('r2')));
    // the history was written by someone who lost track of r1 (stale history): the store still serves r1
    kvs.state.store.set('active', 'r1');
    kvs.state.store.set('previous', 'r3');
    await s3.send(new PutObjectCommand({ Bucket: SITE, Key: '_cdk-rollback/releases.json', Body: JSON.stringify({ releases: [
      { id: 'r3', createdAt: '2026-01-03T00:00:00.000Z', sourceHash: 'h', status: 'retained' },
      { id: 'r2', createdAt: '2026-01-02T00:00:00.000Z', sourceHash: 'h', status: 'retained' },
      { id: 'r1', createdAt: '2026-01-01T00:00:00.000Z', sourceHash: 'h', status: 'retained' },
    ] }) }));
    await onEvent(event('Update', props('r3', { RetainReleases: '1' }), props('r3')));
    // r3 is the newest, r1 and r3 are what the store names: only r2 goes
    expect(await keys('_cdk-rollback/manifests/')).toEqual(['_cdk-rollback/manifests/r1.json', '_cdk-rollback/manifests/r3.json']);
  });

  test('a retried forward event (same RequestId) whose first attempt moved the pointer resumes: it invalidates against what served before', async () => {
    await onEvent(event('Create', props('r1')));
    failInvalidations();
    await expect(onEvent(event('Update', props('r2'), props('r1'), 'req-retried'))).rejects.toThrow('Access Denied');
    expect(kvs.state.store.get('active')).toBe('r2'); // the first attempt got this far
    (cf.send as jest.Mock).mockRestore();

    const res = await onEvent(event('Update', props('r2'), props('r1'), 'req-retried'));

    expect(res.Data).toMatchObject({ ReleaseId: 'r2', PreviousReleaseId: 'r1', Action: 'release' });
    expect(res.Data?.InvalidationIds).not.toBe('');
    expect(await invalidationPaths()).toEqual([['/', '/index.html']]);
    expect(kvs.state.store.get('previous')).toBe('r1');
    expect((await readDeployments(s3, SITE)).filter((r) => r.requestId === 'req-retried')).toHaveLength(1);
  });

  test('a retried event after a complete release starts nothing twice and answers the same', async () => {
    await onEvent(event('Create', props('r1')));
    const first = await onEvent(event('Update', props('r2'), props('r1'), 'req-twice'));
    const updates = kvs.mock.commandCalls(UpdateKeysCommand).length;
    const uploads = countUploads(s3);
    const again = await onEvent(event('Update', props('r2'), props('r1'), 'req-twice'));
    expect(again.Data).toEqual({ ...first.Data, StartedAt: expect.any(String) });
    expect(kvs.mock.commandCalls(UpdateKeysCommand)).toHaveLength(updates);
    expect(uploads.count()).toBe(0);
    expect(await invalidationPaths()).toHaveLength(1);
  });

  test('a retried rollback event (same RequestId) moves nothing twice', async () => {
    await onEvent(event('Create', props('r1')));
    await onEvent(event('Update', props('r2'), props('r1')));
    stackStatus = 'UPDATE_ROLLBACK_IN_PROGRESS';
    const first = await onEvent(event('Update', props('r1'), props('r2'), 'rb-1'));
    const updates = kvs.mock.commandCalls(UpdateKeysCommand).length;
    const again = await onEvent(event('Update', props('r1'), props('r2'), 'rb-1'));
    expect(kvs.state.store.get('active')).toBe('r1');
    expect(kvs.mock.commandCalls(UpdateKeysCommand)).toHaveLength(updates);
    expect(again.Data?.InvalidationIds).toBe(first.Data?.InvalidationIds);
    expect(await invalidationPaths()).toHaveLength(2); // the deploy's and the rollback's, no third
  });

  test('a stack status that cannot be read is retried, then the Update is treated as a forward release', async () => {
    await onEvent(event('Create', props('r1')));
    cfn.on(DescribeStacksCommand)
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $metadata: { httpStatusCode: 400 } }))
      .callsFake(() => ({ Stacks: [{ StackName: 'S', StackStatus: 'UPDATE_ROLLBACK_IN_PROGRESS', CreationTime: new Date() }] }));
    await onEvent(event('Update', props('r2'), props('r1')));
    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(2);
    expect(kvs.state.store.get('active')).toBe('r1'); // it was a rollback after all: nothing to restore, nothing activated
  });

  test('a stack status that cannot be read at all: the Update is a forward release', async () => {
    await onEvent(event('Create', props('r1')));
    cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }));
    const res = await onEvent(event('Update', props('r2'), props('r1')));
    expect(kvs.state.store.get('active')).toBe('r2');
    expect(res.Data?.Action).toBe('release');
  });

  test('a damaged deployment record file blocks no release; it is rewritten', async () => {
    await onEvent(event('Create', props('r1')));
    await s3.send(new PutObjectCommand({ Bucket: SITE, Key: '_cdk-rollback/deployments.json', Body: '{"deployments": [' }));
    await onEvent(event('Update', props('r2'), props('r1'), 'after-damage'));
    expect(kvs.state.store.get('active')).toBe('r2');
    expect((await readDeployments(s3, SITE)).map((r) => r.requestId)).toEqual(['after-damage']);
  });

  test('the rollback\'s isComplete waits for its invalidations only within its bound and never fails on them', async () => {
    const base = { RequestType: 'Update', ResourceProperties: props('r1', { WaitForInvalidation: 'true' }) };
    const cfMock = mockClient(CloudFrontClient);
    try {
      cfMock.on(GetInvalidationCommand).resolves({ Invalidation: { Id: 'I', Status: 'InProgress', CreateTime: new Date(), InvalidationBatch: undefined } });
      const now = new Date().toISOString();
      expect(await isComplete({ ...base, Data: { InvalidationIds: 'I', Action: 'rollback', StartedAt: now } })).toEqual({ IsComplete: false });
      const old = new Date(Date.now() - ROLLBACK_INVALIDATION_WAIT_MS - 1000).toISOString();
      expect(await isComplete({ ...base, Data: { InvalidationIds: 'I', Action: 'rollback', StartedAt: old } })).toEqual({ IsComplete: true });
      cfMock.on(GetInvalidationCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }));
      expect(await isComplete({ ...base, Data: { InvalidationIds: 'I', Action: 'rollback', StartedAt: now } })).toEqual({ IsComplete: true });
      // a forward release still fails on it
      await expect(isComplete({ ...base, Data: { InvalidationIds: 'I', Action: 'release', StartedAt: now } })).rejects.toThrow('denied');
    } finally {
      cfMock.restore();
    }
  });
});
