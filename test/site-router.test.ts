import * as path from 'path';
import * as vm from 'vm';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { uploadRelease } from '../lambda/site-release/upload';
import { immutablePattern } from '../lambda/shared/site-contract';
import { ROUTER_MAX_URI_LENGTH } from '../lib/private/site-router';
import { VersionedSite } from '../lib/versioned-site';
import { useMotoServer } from './helpers/moto';
import { bodyText, createBuckets, putZip } from './fixtures/site/helpers';

interface CfRequest {
  method: string;
  uri: string;
  querystring: Record<string, { value: string; multiValue?: { value: string }[] }>;
  headers: Record<string, { value: string }>;
  cookies: Record<string, { value: string }>;
}
type Handler = (event: unknown) => Promise<CfRequest & { statusCode?: number; statusDescription?: string }>;
interface RouterOpts { spaFallback?: boolean; prefixes?: string[]; detectHashedNames?: boolean }

const BUILD = path.join(__dirname, 'fixtures', 'site', 'build');
const synthesized = new Map<string, string>();

/** The router's code exactly as the VersionedSite template carries it (AWS::CloudFront::Function FunctionCode). */
function routerCode(opts: RouterOpts = {}): string {
  const key = JSON.stringify(opts);
  let code = synthesized.get(key);
  if (code === undefined) {
    const stack = new Stack(new App(), 'S');
    new VersionedSite(stack, 'Site', {
      source: BUILD, spaFallback: opts.spaFallback, immutablePaths: opts.prefixes, detectHashedNames: opts.detectHashedNames,
    });
    const fns = Object.values(Template.fromStack(stack).findResources('AWS::CloudFront::Function'));
    expect(fns).toHaveLength(1);
    code = fns[0].Properties.FunctionCode as string;
    synthesized.set(key, code);
  }
  return code;
}

/**
 * Loads the synthesized router, with a stand-in for the `cloudfront` module whose KeyValueStore reads `store`
 * (a missing key throws, like the real one) and counts its reads.
 */
function loadRouter(store: Record<string, string>, opts: RouterOpts = {}) {
  const code = routerCode(opts);
  const body = code.replace(/^import cf from 'cloudfront';$/m, '');
  expect(body).not.toBe(code);
  const kvsReads: string[] = [];
  const cf = {
    kvs: () => ({
      get: async (key: string) => {
        kvsReads.push(key);
        if (!(key in store)) throw new Error(`Key ${key} not found`);
        return store[key];
      },
    }),
  };
  const fns = new Function('cf', `${body}\nreturn { handler: handler, immutable: immutable };`)(cf) as { handler: Handler; immutable: (uri: string) => boolean };
  return { ...fns, code, kvsReads };
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
  const route = async (uri: string, opts: RouterOpts = {}) => (await loadRouter(store, opts).handler(viewerRequest(uri))).uri;

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
  test('the immutable-path rule sees the decoded path, as the release handler sees the file name', async () => {
    expect(await route('/my%20assets/plain.js', { prefixes: ['my assets/'] })).toBe('/_pool/my%20assets/plain.js');
    expect(await route('/%C3%A9t%C3%A9/plain.js', { prefixes: ['été/'] })).toBe('/_pool/%C3%A9t%C3%A9/plain.js');
    expect(await route('/a%20b.3f9a1c2b.js')).toBe('/_pool/a%20b.3f9a1c2b.js');
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

describe('router function: hostile URIs', () => {
  const store = { active: 'r2', previous: 'r1' };

  // Each must be answered by the function itself: never rewritten, never sent to the origin, no KVS read.
  const hostile: [string, string][] = [
    ['a dot-dot segment', '/../_cdk-rollback/releases.json'],
    ['a dot-dot segment after a hashed-looking folder', '/a-AbCd1234/../../_cdk-rollback/manifests/r1.json'],
    ['a dot-dot segment behind a pooled-looking name', '/assets/app.3f9a1c2b.js/../../_cdk-rollback/releases.json'],
    ['a trailing dot-dot segment', '/docs/..'],
    ['a bare dot-dot', '/..'],
    ['a dot segment', '/./index.html'],
    ['a trailing dot segment', '/docs/.'],
    ['encoded dots, lower case', '/%2e%2e/%2e%2e/releases/r1/index.html'],
    ['encoded dots, upper case', '/%2E%2E/_cdk-rollback/releases.json'],
    ['encoded dots, mixed case', '/%2E%2e/_cdk-rollback/releases.json'],
    ['half-encoded dots', '/.%2e/_cdk-rollback/releases.json'],
    ['half-encoded dots, the other half', '/%2E./_cdk-rollback/releases.json'],
    ['an encoded dot segment', '/%2e/index.html'],
    ['double-encoded dots', '/%252e%252e/_cdk-rollback/releases.json'],
    ['an encoded slash', '/assets%2F..%2F..%2F_cdk-rollback%2Freleases.json'],
    ['an encoded slash, lower case', '/..%2f_cdk-rollback/releases.json'],
    ['a double-encoded slash', '/..%252f_cdk-rollback/releases.json'],
    ['a raw backslash', '/..\\_cdk-rollback\\releases.json'],
    ['an encoded backslash', '/%5c..%5c_cdk-rollback%5creleases.json'],
    ['an encoded backslash, upper case', '/assets%5C..%5Cx.js'],
    ['an overlong UTF-8 dot (malformed)', '/%c0%ae%c0%ae/_cdk-rollback/releases.json'],
    ['a malformed escape', '/%zz/index.html'],
    ['a truncated escape', '/index.html%'],
    ['an encoded NUL', '/index.html%00.js'],
    ['an encoded line feed', '/a%0a.js'],
  ];
  test.each(hostile)('%s gets 400 before any rewrite: %s', async (_what, uri) => {
    const r = loadRouter(store);
    const out = await r.handler(viewerRequest(uri));
    expect({ status: out.statusCode, text: out.statusDescription, cache: out.headers['cache-control'].value })
      .toEqual({ status: 400, text: 'Bad Request', cache: 'no-store' });
    expect(out.uri).toBeUndefined();
    expect(r.kvsReads).toEqual([]);
  });

  test.each([
    ['/.well-known/security.txt', '/releases/r2/.well-known/security.txt'],
    ['/..foo/bar.txt', '/releases/r2/..foo/bar.txt'],
    ['/docs/v1..2/page.txt', '/releases/r2/docs/v1..2/page.txt'],
    ['/a%20b.png', '/releases/r2/a%20b.png'],
    ['/files/%E2%9C%93.txt', '/releases/r2/files/%E2%9C%93.txt'],
    ['/100%25.txt', '/releases/r2/100%25.txt'],
  ])('a look-alike that is no path trick is routed: %s', async (uri, expected) => {
    expect((await loadRouter(store).handler(viewerRequest(uri))).uri).toBe(expected);
  });

  test(`a URI longer than ${ROUTER_MAX_URI_LENGTH} characters gets 414 before any matching; one at the bound is routed`, async () => {
    const at = `/${'a'.repeat(ROUTER_MAX_URI_LENGTH - 4)}.js`;
    expect(at).toHaveLength(ROUTER_MAX_URI_LENGTH);
    const ok = loadRouter(store);
    expect((await ok.handler(viewerRequest(at))).uri).toBe(`/releases/r2${at}`);
    for (const uri of [`${at}x`, `/${'-a1'.repeat(2700)}`, `/x${'.abcdefg1'.repeat(900)}.js`]) {
      const r = loadRouter(store);
      const out = await r.handler(viewerRequest(uri));
      expect({ uri: uri.length > 8000 || uri.length === ROUTER_MAX_URI_LENGTH + 1, status: out.statusCode, text: out.statusDescription })
        .toEqual({ uri: true, status: 414, text: 'URI Too Long' });
      expect(r.kvsReads).toEqual([]);
    }
  });
});

describe('router function: the immutable-path rule', () => {
  /** Deterministic pseudo-random numbers (mulberry32). */
  function random(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  // The characters the rule distinguishes, weighted towards separators; no line breaks (the router refuses
  // control characters before matching).
  const ALPHABET = 'aaabbzZZQQ11990_--...//%~hhtmmll';
  const NAMES = [
    'main.3f9a1c2b.js', 'main.3f9a1c2b.chunk.js', 'index-BxK3a9Zq.js', 'app.3f9a1c2b.js.map', 'app.js',
    'logo-2024-01-15.png', 'component.min.js', 'jquery-3.6.0.min.js', 'hero-Banner2024.png', 'x.abcdefgh.js',
    'x-abcdefgh.js', 'x-abcdefGh.js', 'index.3f9a1c2b.html', 'a_b-c1d2e3f4g.css', 'a~b-c1d2e3f4g.css', 'a~bc1d2e3f4g.css',
    '.3f9a1c2b.js', '-3f9a1c2b.js', 'f.3f9a1c2b.', 'f.3f9a1c2b..js', 'f..3f9a1c2b.js', 'f.3f9a1c2b.j_s', 'assets/x.js',
  ];

  test.each([
    ['content-hash detection only', [], true],
    ['prefixes and content-hash detection', ['assets/', 'static/js/'], true],
    ['prefixes only', ['assets/'], false],
    ['neither', [], false],
  ] as [string, string[], boolean][])('agrees with the release handler\'s pattern on every path (%s)', (_what, prefixes, detect) => {
    const { immutable } = loadRouter({}, { prefixes, detectHashedNames: detect });
    const reference = new RegExp(immutablePattern(prefixes, detect));
    const next = random(prefixes.length * 2 + (detect ? 1 : 0) + 7);
    const paths = [...NAMES.map((n) => `/${n}`), ...NAMES.map((n) => `/assets/${n}`), ...NAMES.map((n) => `/static/js/${n}`)];
    for (let i = 0; i < 10000; i++) {
      let p = '/';
      const n = 1 + Math.floor(next() * 30);
      for (let c = 0; c < n; c++) p += ALPHABET[Math.floor(next() * ALPHABET.length)];
      paths.push(p);
    }
    const disagreements = paths.filter((p) => immutable(p) !== reference.test(p));
    expect(disagreements).toEqual([]);
    const positives = paths.filter((p) => reference.test(p)).length;
    if (detect || prefixes.length > 0) expect(positives).toBeGreaterThanOrEqual(detect ? 100 : 20);
  });

  /**
   * The matcher's work, counted deterministically: the characters handed to each string method and RegExp test it
   * calls (each of its regular expressions is anchored or has a single quantifier, so each call is linear in its
   * input). A quadratic matcher (a rescan per separator, per candidate hash or per extension) fails the 4x bound.
   */
  function matcherWork(uri: string): { matched: boolean; work: number } {
    const body = routerCode().replace(/^import cf from 'cloudfront';$/m, '');
    const ctx = vm.createContext({ cf: { kvs: () => ({}) }, uri });
    vm.runInContext(`
      var work = 0;
      (function () {
        var S = String.prototype;
        ['slice', 'split', 'lastIndexOf', 'indexOf', 'replace', 'charAt', 'search', 'match'].forEach(function (m) {
          var f = S[m];
          S[m] = function () { work += this.length; return f.apply(this, arguments); };
        });
        var R = RegExp.prototype, t = R.test, e = R.exec;
        R.test = function (s) { work += String(s).length; return t.call(this, s); };
        R.exec = function (s) { work += String(s).length; return e.call(this, s); };
      })();
      ${body}
      var matched = immutable(uri);`, ctx);
    return { matched: ctx.matched as boolean, work: ctx.work as number };
  }

  test.each([
    ['separators without an extension', (n: number) => `/${'-a1'.repeat(n / 3)}`],
    ['many hash-like pieces, then no valid extension', (n: number) => `/x${'.abcdefg1'.repeat(n / 9)}.!`],
    ['many hash-like pieces and extensions', (n: number) => `/x${'.abcdefg1'.repeat(n / 9)}.js`],
    ['a long dash run before a hash', (n: number) => `/${'a-'.repeat(n / 2)}.js`],
    ['a long hash', (n: number) => `/x-${'aB1'.repeat(n / 3)}.js`],
    ['many extensions after a non-hash', (n: number) => `/x${'.js'.repeat(n / 3)}`],
    ['many path segments', (n: number) => `${'/a.b'.repeat(n / 4)}`],
  ] as [string, (n: number) => string][])('does work linear in the URI on crafted 8,000+ character input: %s', (_what, make) => {
    const small = make(8400);
    const large = make(4 * 8400);
    expect(small.length).toBeGreaterThanOrEqual(8000);
    const a = matcherWork(small);
    const b = matcherWork(large);
    expect(a.matched).toBe(new RegExp(immutablePattern()).test(small));
    expect(b.matched).toBe(a.matched);
    expect(a.work).toBeLessThanOrEqual(24 * small.length);
    expect(b.work / a.work).toBeLessThanOrEqual(4.2);
  });

  test('the rendered router holds no `.*`-wrapped pattern: the prefix rule is anchored', () => {
    const code = routerCode({ prefixes: ['assets/'] });
    expect(code).not.toContain('.*');
    expect(code).toContain('var PREFIX = /^\\/(?:assets\\/)/;');
    expect(routerCode()).toContain('var PREFIX = null;');
  });

  test('detectHashedNames: false sends hashed names to the active release', async () => {
    const out = await loadRouter({ active: 'r2' }, { detectHashedNames: false }).handler(viewerRequest('/assets/app.3f9a1c2b.js'));
    expect(out.uri).toBe('/releases/r2/assets/app.3f9a1c2b.js');
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
