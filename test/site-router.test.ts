import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { uploadRelease } from '../lambda/site-release/upload';
import { immutablePattern } from '../lib/private/site-contract';
import { renderRouterCode } from '../lib/private/site-router';
import { useMotoServer } from './helpers/moto';
import { bodyText, createBuckets, putZip } from './fixtures/site/helpers';

interface CfRequest {
  method: string;
  uri: string;
  querystring: Record<string, { value: string; multiValue?: { value: string }[] }>;
  headers: Record<string, { value: string }>;
  cookies: Record<string, { value: string }>;
}
type Handler = (event: unknown) => Promise<CfRequest & { statusCode?: number }>;

/**
 * Loads the router exactly as CloudFront receives it, with a stand-in for the `cloudfront` module whose
 * KeyValueStore reads `store` (a missing key throws, like the real one).
 */
function loadRouter(store: Record<string, string>, opts: { spaFallback?: boolean; prefixes?: string[] } = {}): { handler: Handler; code: string } {
  const code = renderRouterCode({ immutablePattern: immutablePattern(opts.prefixes ?? []), spaFallback: opts.spaFallback ?? true });
  const body = code.replace(/^import cf from 'cloudfront';$/m, '');
  expect(body).not.toBe(code);
  const cf = {
    kvs: () => ({
      get: async (key: string) => {
        if (!(key in store)) throw new Error(`Key ${key} not found`);
        return store[key];
      },
    }),
  };
  return { handler: new Function('cf', `${body}\nreturn handler;`)(cf) as Handler, code };
}

function viewerRequest(uri: string, querystring: CfRequest['querystring'] = {}) {
  return {
    version: '1.0',
    context: { eventType: 'viewer-request', distributionId: 'D' },
    viewer: { ip: '198.51.100.1' },
    request: { method: 'GET', uri, querystring, headers: { host: { value: 'd.cloudfront.net' } }, cookies: {} },
  };
}

describe('router function (unit)', () => {
  const store = { active: 'r2', previous: 'r1' };
  const route = async (uri: string, opts = {}) => (await loadRouter(store, opts).handler(viewerRequest(uri))).uri;

  test('is well under the 10 KB limit (goal 2 KB)', () => {
    expect(Buffer.byteLength(loadRouter(store).code)).toBeLessThan(2048);
  });
  test('/ serves the active release index.html', async () => {
    expect(await route('/')).toBe('/releases/r2/index.html');
  });
  test('a nested extension-less route serves the release index.html (SPA fallback)', async () => {
    expect(await route('/users/42/profile')).toBe('/releases/r2/index.html');
    expect(await route('/v1.2/page')).toBe('/releases/r2/index.html');
  });
  test('/docs/ serves /docs/index.html of the active release', async () => {
    expect(await route('/docs/')).toBe('/releases/r2/docs/index.html');
  });
  test('without SPA fallback an extension-less path serves its folder index.html', async () => {
    expect(await route('/about', { spaFallback: false })).toBe('/releases/r2/about/index.html');
  });
  test('a file with an extension stays a file of the active release', async () => {
    expect(await route('/robots.txt')).toBe('/releases/r2/robots.txt');
  });
  test('a content-hashed asset goes to the shared pool, whatever release is active', async () => {
    expect(await route('/assets/index-BxK3a9Zq.js')).toBe('/_pool/assets/index-BxK3a9Zq.js');
    expect(await route('/static/js/main.3f9a1c2b.chunk.js')).toBe('/_pool/static/js/main.3f9a1c2b.chunk.js');
  });
  test('immutablePaths prefixes go to the pool even without a hash', async () => {
    expect(await route('/assets/plain.js', { prefixes: ['assets/'] })).toBe('/_pool/assets/plain.js');
    expect(await route('/assets/plain.js')).toBe('/releases/r2/assets/plain.js');
  });
  test('query strings are preserved', async () => {
    const qs = { utm_source: { value: 'mail' }, tag: { value: 'a', multiValue: [{ value: 'a' }, { value: 'b' }] } };
    const out = await loadRouter(store).handler(viewerRequest('/users/42', qs));
    expect(out.querystring).toEqual(qs);
    expect(out.uri).toBe('/releases/r2/index.html');
  });
  test('answers 503 (not cached) when no release is active yet', async () => {
    const out = await loadRouter({}).handler(viewerRequest('/'));
    expect(out.statusCode).toBe(503);
    expect(out.headers['cache-control'].value).toBe('no-store');
  });
});

describe('router + releases in moto S3: old tabs keep working', () => {
  const moto = useMotoServer();
  const SITE = 'site';
  const pattern = new RegExp(immutablePattern());
  const V1 = { 'index.html': '<script src="/assets/app.3f9a1c2b.js"></script>v1', 'assets/app.3f9a1c2b.js': 'v1()' };
  const V2 = { 'index.html': '<script src="/assets/app.9e8d7c6b.js"></script>v2', 'assets/app.9e8d7c6b.js': 'v2()', 'docs/index.html': 'docs v2' };
  let s3: S3Client;
  const store: Record<string, string> = {};

  /** What a viewer gets: the router's URI looked up in the bucket (CloudFront's origin request). */
  async function get(uri: string): Promise<{ status: number; body?: string }> {
    const out = await loadRouter(store).handler(viewerRequest(uri));
    try {
      const res = await s3.send(new GetObjectCommand({ Bucket: SITE, Key: out.uri.slice(1) }));
      return { status: 200, body: await bodyText(res.Body) };
    } catch (e) {
      if ((e as { name: string }).name === 'NoSuchKey') return { status: 404 };
      throw e;
    }
  }

  beforeAll(async () => {
    s3 = new S3Client({});
    await createBuckets(s3, SITE, 'assets');
    await putZip(s3, 'assets', 'r1.zip', V1);
    await putZip(s3, 'assets', 'r2.zip', V2);
    for (const id of ['r1', 'r2']) {
      await uploadRelease({ s3, assetBucket: 'assets', assetKey: `${id}.zip`, bucketName: SITE, releaseId: id, sourceHash: id, immutable: pattern });
    }
    void moto;
  });

  test('a tab holding release 1 HTML still loads its chunk after release 2 is live', async () => {
    Object.assign(store, { active: 'r2', previous: 'r1' });
    expect(await get('/')).toEqual({ status: 200, body: V2['index.html'] });
    expect(await get('/assets/app.9e8d7c6b.js')).toEqual({ status: 200, body: 'v2()' });
    expect(await get('/assets/app.3f9a1c2b.js')).toEqual({ status: 200, body: 'v1()' });
    expect(await get('/docs/')).toEqual({ status: 200, body: 'docs v2' });
  });

  test('after a rollback to release 1, a tab holding release 2 HTML still loads its chunk', async () => {
    Object.assign(store, { active: 'r1', previous: 'r2' });
    expect(await get('/some/route')).toEqual({ status: 200, body: V1['index.html'] });
    expect(await get('/assets/app.9e8d7c6b.js')).toEqual({ status: 200, body: 'v2()' });
  });

  test('a missing chunk is a real 404, not index.html', async () => {
    Object.assign(store, { active: 'r2', previous: 'r1' });
    expect(await get('/assets/app.00ff00ff1.js')).toEqual({ status: 404 });
    expect(await get('/missing.png')).toEqual({ status: 404 });
  });
});
