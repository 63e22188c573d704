// VersionedSite release handler: the shared pool is compared by content, not size, and every entry (streamed
// or batched) is checked against the zip's CRC-32 before it becomes an object. Against moto_server.
import { CloudFrontClient, GetInvalidationCommand, ListInvalidationsCommand } from '@aws-sdk/client-cloudfront';
import { CloudFrontKeyValueStoreClient } from '@aws-sdk/client-cloudfront-keyvaluestore';
import {
  GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { activateRelease } from '../lambda/site-release/activate';
import { UploadResult, uploadRelease } from '../lambda/site-release/upload';
import { EntryCheck, ZipEntry, crc32 } from '../lambda/site-release/zip';
import { ReleaseManifest, immutablePattern } from '../lambda/shared/site-contract';
import { useMotoServer } from './helpers/moto';
import { KVS_ARN, bodyText, createBuckets, createDistribution, fakeKvs, makeZip } from './fixtures/site/helpers';

const moto = useMotoServer();
const SITE = 'site-bucket';
const ASSETS = 'cdk-assets';
const CHUNK = 'assets/app.3f9a1c2b.js';
const POOL_KEY = `_pool/${CHUNK}`;

let s3: S3Client;
let puts: string[];
/** ChecksumCRC32 of every PutObject, by key. */
let checksums: Map<string, string | undefined>;
let lines: string[];

beforeEach(async () => {
  await moto.reset();
  s3 = new S3Client({});
  puts = [];
  checksums = new Map();
  lines = [];
  const send = s3.send.bind(s3);
  jest.spyOn(s3, 'send').mockImplementation(((cmd: unknown, options?: unknown) => {
    if (cmd instanceof PutObjectCommand && /^(releases|_pool)\//.test(cmd.input.Key ?? '')) puts.push(cmd.input.Key!);
    if (cmd instanceof PutObjectCommand) checksums.set(cmd.input.Key!, cmd.input.ChecksumCRC32);
    return send(cmd as never, options as never);
  }) as never);
  await createBuckets(s3, SITE, ASSETS);
});

afterEach(() => jest.restoreAllMocks());

async function text(key: string): Promise<string> {
  return bodyText((await s3.send(new GetObjectCommand({ Bucket: SITE, Key: key }))).Body);
}

async function exists(key: string): Promise<boolean> {
  const res = await s3.send(new ListObjectsV2Command({ Bucket: SITE, Prefix: key }));
  return (res.Contents ?? []).some((o) => o.Key === key);
}

async function release(id: string, files: Record<string, string | Buffer>, extra: { batchBytes?: number } = {}): Promise<UploadResult> {
  await s3.send(new PutObjectCommand({ Bucket: ASSETS, Key: `${id}.zip`, Body: await makeZip(files) }));
  puts = [];
  return uploadRelease({
    s3, assetBucket: ASSETS, assetKey: `${id}.zip`, bucketName: SITE, releaseId: id, sourceHash: `src-${id}`,
    immutable: new RegExp(immutablePattern()), log: (l) => lines.push(l), ...extra,
  });
}

describe('the pool is compared by content', () => {
  test('a hash-looking file whose bytes change but whose size does not is overwritten, warned about and recorded', async () => {
    await release('r1', { 'index.html': 'v1', [CHUNK]: 'AAAA' });
    const r2 = await release('r2', { 'index.html': 'v2', [CHUNK]: 'BBBB' });
    expect(await text(POOL_KEY)).toBe('BBBB');
    expect(puts).toContain(POOL_KEY);
    expect(r2.overwrittenPoolPaths).toEqual([`/${CHUNK}`]);
    expect(r2.manifest.overwrittenPoolPaths).toEqual([`/${CHUNK}`]);
    expect(lines.filter((l) => l.startsWith('warning:'))).toEqual([
      expect.stringContaining(`1 pooled file(s) changed content under the same name (not content-hashed?), e.g. /${CHUNK}`),
    ]);
  });

  test('activating that release invalidates the overwritten file under both URIs', async () => {
    const cf = new CloudFrontClient({});
    const distributionId = await createDistribution(cf);
    const kvs = fakeKvs();
    try {
      const activate = (id: string) => activateRelease({
        bucketName: SITE, distributionId, kvsArn: KVS_ARN, releaseId: id, log: () => undefined,
        clients: { s3, kvs: new CloudFrontKeyValueStoreClient({}), cloudfront: cf },
      });
      await release('r1', { 'index.html': 'v1', [CHUNK]: 'AAAA' });
      await activate('r1');
      await release('r2', { 'index.html': 'v1', [CHUNK]: 'BBBB' });
      await activate('r2');
      const list = await cf.send(new ListInvalidationsCommand({ DistributionId: distributionId }));
      expect(list.InvalidationList?.Items).toHaveLength(1);
      const inv = await cf.send(new GetInvalidationCommand({ DistributionId: distributionId, Id: list.InvalidationList!.Items![0].Id }));
      expect([...inv.Invalidation!.InvalidationBatch!.Paths!.Items!].sort()).toEqual([`/${POOL_KEY}`, `/${CHUNK}`]);
    } finally {
      kvs.mock.restore();
    }
  });

  test('the older bytes coming back are written back (the pool held the newer ones)', async () => {
    await release('r1', { 'index.html': 'v1', [CHUNK]: 'AAAA' });
    await release('r2', { 'index.html': 'v2', [CHUNK]: 'BBBB' });
    const r3 = await release('r3', { 'index.html': 'v3', [CHUNK]: 'AAAA' });
    expect(await text(POOL_KEY)).toBe('AAAA');
    expect(r3.overwrittenPoolPaths).toEqual([`/${CHUNK}`]);
  });

  test('the same bytes recorded by an earlier release are not uploaded again', async () => {
    await release('r1', { 'index.html': 'v1', [CHUNK]: 'AAAA', 'assets/vendor.77aa11bb.js': 'vendor()' });
    const r2 = await release('r2', { 'index.html': 'v2', [CHUNK]: 'AAAA', 'assets/vendor.77aa11bb.js': 'vendor()' });
    expect(puts).toEqual(['releases/r2/index.html']);
    expect(r2).toMatchObject({ uploaded: 1, skipped: 2, overwrittenPoolPaths: [] });
    expect(lines.filter((l) => l.startsWith('warning:'))).toEqual([]);
    // the skipped files carry the ETag the earlier release recorded
    const head = await s3.send(new HeadObjectCommand({ Bucket: SITE, Key: POOL_KEY }));
    expect(r2.manifest.files[CHUNK]).toEqual({ size: 4, crc32: crc32(Buffer.from('AAAA')), pooled: true, etag: head.ETag!.replace(/"/g, '') });
  });

  test('a pool object some failed release left with other bytes (no manifest records them) is overwritten and reported', async () => {
    await release('r1', { 'index.html': 'v1', [CHUNK]: 'AAAA' });
    // what a failed upload of another build leaves behind: the pool object, no manifest
    await s3.send(new PutObjectCommand({ Bucket: SITE, Key: POOL_KEY, Body: 'XXXX' }));
    const r3 = await release('r3', { 'index.html': 'v3', [CHUNK]: 'AAAA' });
    expect(await text(POOL_KEY)).toBe('AAAA');
    expect(r3.overwrittenPoolPaths).toEqual([`/${CHUNK}`]);
  });

  test('a pool object left by a failed attempt of the same build is written again, not reported as overwritten', async () => {
    await s3.send(new PutObjectCommand({ Bucket: SITE, Key: POOL_KEY, Body: 'AAAA' }));
    const r1 = await release('r1', { 'index.html': 'v1', [CHUNK]: 'AAAA' });
    expect(puts.sort()).toEqual([POOL_KEY, 'releases/r1/index.html']);
    expect(r1.overwrittenPoolPaths).toEqual([]);
    expect(lines.filter((l) => l.startsWith('warning:'))).toEqual([]);
  });

  test('a manifest written before ETags were recorded is not trusted: its pool files are written once more, then skipped', async () => {
    await release('r1', { 'index.html': 'v1', [CHUNK]: 'AAAA' });
    const key = '_cdk-rollback/manifests/r1.json';
    const old = JSON.parse(await text(key)) as ReleaseManifest;
    const legacy = { ...old, files: Object.fromEntries(Object.entries(old.files).map(([p, { etag: _etag, ...f }]) => [p, f])) };
    await s3.send(new PutObjectCommand({ Bucket: SITE, Key: key, Body: JSON.stringify(legacy) }));
    const r2 = await release('r2', { 'index.html': 'v2', [CHUNK]: 'AAAA' });
    expect(puts.sort()).toEqual([POOL_KEY, 'releases/r2/index.html']);
    expect(r2.overwrittenPoolPaths).toEqual([]);
    await release('r3', { 'index.html': 'v3', [CHUNK]: 'AAAA' });
    expect(puts).toEqual(['releases/r3/index.html']);
  });

  test('a manifest that is not valid JSON is left out of the comparison with a warning', async () => {
    await release('r1', { 'index.html': 'v1', [CHUNK]: 'AAAA' });
    await s3.send(new PutObjectCommand({ Bucket: SITE, Key: '_cdk-rollback/manifests/broken.json', Body: '{"files":' }));
    const r2 = await release('r2', { 'index.html': 'v2', [CHUNK]: 'AAAA' });
    expect(r2.uploaded).toBe(1);
    expect(lines).toContain('warning: _cdk-rollback/manifests/broken.json is not valid JSON; its pool files are not trusted');
  });
});

/** A zip of `files` whose central directory (and local header) give `name` the CRC-32 `crc`. */
async function zipWithCrc(files: Record<string, Buffer | string>, name: string, crc: number): Promise<Buffer> {
  const zip = await makeZip(files);
  const nameBytes = Buffer.from(name);
  let patched = 0;
  for (let i = 0; i + 4 <= zip.length; i++) {
    const sig = zip.readUInt32LE(i);
    if (sig === 0x04034b50 && zip.subarray(i + 30, i + 30 + nameBytes.length).equals(nameBytes) && zip.readUInt16LE(i + 26) === nameBytes.length) {
      zip.writeUInt32LE(crc >>> 0, i + 14);
      patched++;
    }
    if (sig === 0x02014b50 && zip.subarray(i + 46, i + 46 + nameBytes.length).equals(nameBytes) && zip.readUInt16LE(i + 28) === nameBytes.length) {
      zip.writeUInt32LE(crc >>> 0, i + 16);
      patched++;
    }
  }
  expect(patched).toBe(2);
  return zip;
}

describe('every entry is checked against the zip\'s CRC-32', () => {
  // incompressible (xorshift32), so the deflated entry is larger than the batch and is streamed
  const big = Buffer.alloc(300_000);
  for (let i = 0, x = 2463534242; i < big.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    big[i] = x & 0xff;
  }
  const bad = (crc32(big) ^ 0x5a5a5a5a) >>> 0;

  async function upload(id: string, zip: Buffer, batchBytes: number): Promise<unknown> {
    await s3.send(new PutObjectCommand({ Bucket: ASSETS, Key: `${id}.zip`, Body: zip }));
    return uploadRelease({
      s3, assetBucket: ASSETS, assetKey: `${id}.zip`, bucketName: SITE, releaseId: id, sourceHash: 'h',
      immutable: new RegExp(immutablePattern()), batchBytes, concurrency: 2,
    });
  }

  test('a large streamed entry whose bytes do not match its CRC-32 fails the upload and never becomes an object', async () => {
    const zip = await zipWithCrc({ 'index.html': 'x', 'video.bin': big }, 'video.bin', bad);
    await expect(upload('big', zip, 64 * 1024)).rejects.toThrow(
      `zip entry video.bin is corrupt: CRC-32 ${crc32(big).toString(16).padStart(8, '0')}, its directory entry says ${bad.toString(16).padStart(8, '0')}`);
    expect(await exists('releases/big/video.bin')).toBe(false);
    expect(await exists('_cdk-rollback/manifests/big.json')).toBe(false);
    // one attempt: a corrupt entry is not retried
    expect(puts.filter((k) => k === 'releases/big/video.bin')).toHaveLength(1);
  });

  test('a large streamed pool entry with a bad CRC-32 leaves the pool object it would have replaced untouched', async () => {
    const name = 'assets/movie.3f9a1c2b.bin';
    const old = Buffer.from(big);
    old[0] ^= 1;
    await s3.send(new PutObjectCommand({ Bucket: SITE, Key: `_pool/${name}`, Body: old }));
    const zip = await zipWithCrc({ 'index.html': 'x', [name]: big }, name, bad);
    await expect(upload('big', zip, 64 * 1024)).rejects.toThrow(`zip entry ${name} is corrupt: CRC-32`);
    const got = await s3.send(new GetObjectCommand({ Bucket: SITE, Key: `_pool/${name}` }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(old)).toBe(true);
  });

  test('a small batched entry with a bad CRC-32 fails the upload the same way', async () => {
    const zip = await zipWithCrc({ 'index.html': 'x', 'small.txt': 'hello' }, 'small.txt', 0x12345678);
    await expect(upload('small', zip, 64 * 1024)).rejects.toThrow(
      `zip entry small.txt is corrupt: CRC-32 ${crc32(Buffer.from('hello')).toString(16).padStart(8, '0')}, its directory entry says 12345678`);
    expect(await exists('releases/small/small.txt')).toBe(false);
  });

  test('a large streamed entry that inflates to more bytes than its directory entry says fails before S3 gets a full body', async () => {
    const zip = await makeZip({ 'index.html': 'x', 'video.bin': big });
    // shrink the declared size in both headers (the data itself is intact)
    let patched = 0;
    for (let i = 0; i + 4 <= zip.length; i++) {
      const sig = zip.readUInt32LE(i);
      if (sig === 0x04034b50 && zip.toString('utf8', i + 30, i + 39) === 'video.bin') { zip.writeUInt32LE(big.length - 1000, i + 22); patched++; }
      if (sig === 0x02014b50 && zip.toString('utf8', i + 46, i + 55) === 'video.bin') { zip.writeUInt32LE(big.length - 1000, i + 24); patched++; }
    }
    expect(patched).toBe(2);
    await expect(upload('long', zip, 64 * 1024)).rejects.toThrow(`zip entry video.bin is corrupt: more than the ${big.length - 1000} bytes its directory entry says`);
    expect(await exists('releases/long/video.bin')).toBe(false);
  });

  test('an intact large entry is streamed, checked and uploaded; every PutObject carries the zip\'s CRC-32 for S3 to verify', async () => {
    const zip = await makeZip({ 'index.html': 'x', 'video.bin': big });
    await upload('ok', zip, 64 * 1024);
    const got = await s3.send(new GetObjectCommand({ Bucket: SITE, Key: 'releases/ok/video.bin' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(big)).toBe(true);
    // (S3 answers BadDigest to a body that does not match; moto does not check, our own check above does)
    const b64 = (data: Buffer) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(crc32(data));
      return b.toString('base64');
    };
    expect(checksums.get('releases/ok/video.bin')).toBe(b64(big));
    expect(checksums.get('releases/ok/index.html')).toBe(b64(Buffer.from('x')));
  });
});

describe('EntryCheck (the streamed entry check)', () => {
  const data = Buffer.from('0123456789'.repeat(1000));
  const entry = (over: Partial<ZipEntry> = {}): ZipEntry => ({
    name: 'f.bin', method: 0, crc32: crc32(data), compressedSize: data.length, size: data.length, offset: 0, extraLength: 0, ...over,
  });

  /** Feeds `data` in 1,000-byte chunks; returns what came out and the error, if any. */
  function run(e: ZipEntry): Promise<{ out: Buffer; error?: Error }> {
    const check = new EntryCheck(e);
    const chunks: Buffer[] = [];
    check.on('data', (c: Buffer) => chunks.push(c));
    return new Promise((resolve) => {
      check.on('end', () => resolve({ out: Buffer.concat(chunks) }));
      check.on('error', (error) => resolve({ out: Buffer.concat(chunks), error }));
      for (let i = 0; i < data.length; i += 1000) check.write(data.subarray(i, i + 1000));
      check.end();
    });
  }

  test('passes intact bytes through unchanged', async () => {
    const { out, error } = await run(entry());
    expect(error).toBeUndefined();
    expect(out.equals(data)).toBe(true);
  });

  test('on a CRC-32 mismatch fails without ever passing the whole entry', async () => {
    const { out, error } = await run(entry({ crc32: 1 }));
    expect(error?.message).toMatch(/^zip entry f\.bin is corrupt: CRC-32 [0-9a-f]{8}, its directory entry says 00000001$/);
    expect(out.length).toBeLessThan(data.length);
  });

  test('fails as soon as the bytes exceed the size, without passing more than the size', async () => {
    const { out, error } = await run(entry({ size: 4500 }));
    expect(error?.message).toBe('zip entry f.bin is corrupt: more than the 4500 bytes its directory entry says');
    expect(out.length).toBeLessThan(4500);
  });

  test('fails on fewer bytes than the size', async () => {
    const { error } = await run(entry({ size: data.length + 1 }));
    expect(error?.message).toBe(`zip entry f.bin is corrupt: ${data.length} bytes, its directory entry says ${data.length + 1}`);
  });
});

describe('crc32', () => {
  test('is the zip (and S3 CRC32) checksum, also where Node.js lacks zlib.crc32, and continues across chunks', () => {
    const data = Buffer.from('The quick brown fox jumps over the lazy dog');
    expect(crc32(data)).toBe(0x414fa339);
    expect(crc32(data.subarray(10), crc32(data.subarray(0, 10)))).toBe(0x414fa339);
    // the module object itself (zip.ts reads zlib.crc32 through it on every call)
    const zlib = jest.requireActual<typeof import('zlib')>('zlib');
    const native = (zlib as unknown as { crc32?: unknown }).crc32;
    (zlib as unknown as { crc32?: unknown }).crc32 = undefined;
    try {
      expect(crc32(data)).toBe(0x414fa339);
      expect(crc32(data.subarray(10), crc32(data.subarray(0, 10)))).toBe(0x414fa339);
      expect(crc32(Buffer.alloc(0))).toBe(0);
    } finally {
      (zlib as unknown as { crc32?: unknown }).crc32 = native;
    }
  });
});
