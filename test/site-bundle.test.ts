import * as path from 'path';
import { CloudFrontClient } from '@aws-sdk/client-cloudfront';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { immutablePattern } from '../lambda/shared/site-contract';
import { handlerDir } from '../lib/private/handler-code';
import { useMotoServer } from './helpers/moto';
import { KVS_ARN, createBuckets, createDistribution, putZip } from './fixtures/site/helpers';

/**
 * The prebundled handler the construct ships (dist/handlers/site-release), run as Lambda would run it: its own
 * bundled KeyValueStore client is replaced by a stand-in (moto has no KeyValueStore API), S3 and CloudFront
 * are the SDK's against moto_server.
 */
describe('prebundled site-release handler', () => {
  const moto = useMotoServer();

  test('releases a site end to end', async () => {
    await moto.reset();
    const s3 = new S3Client({});
    await createBuckets(s3, 'site', 'assets');
    await putZip(s3, 'assets', 'a.zip', { 'index.html': '<html></html>', 'assets/app.3f9a1c2b.js': 'x()', 'fonts/a.woff2': 'w' });
    const distributionId = await createDistribution(new CloudFrontClient({}));

    const store = new Map<string, string>();
    let etag = 1;
    const kvs = {
      send: async (cmd: { input: { Key?: string; IfMatch?: string; Puts?: { Key: string; Value: string }[] } }) => {
        const input = cmd.input;
        if (input.Puts) {
          if (input.IfMatch !== `E${etag}`) throw Object.assign(new Error('conflict'), { name: 'ConflictException' });
          for (const p of input.Puts) store.set(p.Key, p.Value);
          return { ETag: `E${++etag}` };
        }
        if (input.Key !== undefined) {
          if (!store.has(input.Key)) throw Object.assign(new Error('missing'), { name: 'ResourceNotFoundException' });
          return { Key: input.Key, Value: store.get(input.Key) };
        }
        return { ETag: `E${etag}` };
      },
    };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const bundle = require(path.join(handlerDir('site-release'), 'index.js'));
    bundle.clients.kvs = () => kvs;
    jest.spyOn(console, 'log').mockImplementation(() => undefined);

    const res = await bundle.onEvent({
      RequestType: 'Create', ResponseURL: 'https://x', StackId: 's', RequestId: 'r', LogicalResourceId: 'L', ResourceType: 'Custom::CdkRollbackSiteRelease',
      ServiceToken: 't',
      ResourceProperties: {
        ServiceToken: 't', BucketName: 'site', DistributionId: distributionId, KvsArn: KVS_ARN, AssetBucket: 'assets', AssetKey: 'a.zip',
        ReleaseId: 'b1', SourceHash: 'h', ImmutablePattern: immutablePattern(), RetainReleases: '10', WaitForInvalidation: 'false',
        RemovalPolicy: 'retain', Concurrency: '4',
      },
    });

    expect(res.Data.ReleaseId).toBe('b1');
    expect(store.get('active')).toBe('b1');
    const font = await s3.send(new HeadObjectCommand({ Bucket: 'site', Key: 'releases/b1/fonts/a.woff2' }));
    expect(font.ContentType).toBe('font/woff2'); // the mime-types database is in the bundle
    const js = await s3.send(new HeadObjectCommand({ Bucket: 'site', Key: '_pool/assets/app.3f9a1c2b.js' }));
    expect(js.CacheControl).toBe('public, max-age=31536000, immutable');
  });
});
