import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { handlerDir } from '../lib/private/handler-code';
import { startKvsRecorder } from './fixtures/cli/kvs-server';

/**
 * The prebundled site-release handler carries its own AWS SDK clients (built from the SDK's ES module builds,
 * which load faster than the CommonJS ones in the Lambda runtime), loads its KeyValueStore client (and SigV4A)
 * and the mime-types table on first use, not when the module loads (cold starts of isComplete and Delete never
 * use them), and the KeyValueStore client still signs with SigV4A. Each case runs in a fresh Node process, so
 * nothing this test file loaded can leak in.
 */
const BUNDLE = path.join(handlerDir('site-release'), 'index.js');
const DNS_SHIM = path.join(__dirname, 'fixtures', 'cli', 'loopback-dns.js');
const ARN = 'arn:aws:cloudfront::123456789012:key-value-store/3e4c7d8a-0000-4000-8000-000000000001';
const MARKER = "globalThis[Symbol.for('cdk-rollback.lazy-loaded')]";

function node(script: string, env: Record<string, string> = {}, cwd = path.join(__dirname, '..')): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--require', DNS_SHIM, '-e', script], {
      env: { PATH: process.env.PATH ?? '', AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret', AWS_REGION: 'us-east-1', ...env },
      cwd,
    }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout.trim())));
  });
}

describe('site-release bundle: its own SDK clients, the KeyValueStore client and mime-types loaded on first use', () => {
  test('loading the handler module loads neither the KeyValueStore client nor mime-types; creating the client loads it', async () => {
    const out = await node(`const h = require(${JSON.stringify(BUNDLE)});
      const before = [...(${MARKER} ?? [])];
      h.clients.kvs();
      console.log(JSON.stringify({ onEvent: typeof h.onEvent, isComplete: typeof h.isComplete, before, after: [...(${MARKER} ?? [])] }));`);
    // mime-types loads on the first upload; site-bundle.test.ts checks the types it then gives.
    expect(JSON.parse(out)).toEqual({ onEvent: 'function', isComplete: 'function', before: [], after: ['@aws-sdk/client-cloudfront-keyvaluestore'] });
  });

  test('the bundle needs no AWS SDK package from the runtime: it loads and creates every client where none can be resolved', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'site-release-alone-'));
    try {
      fs.copyFileSync(BUNDLE, path.join(dir, 'index.js'));
      const out = await node(`let sdk = 'not found';
        try { require.resolve('@aws-sdk/client-s3'); sdk = 'found'; } catch {}
        const h = require('./index.js');
        const made = ['s3', 'cloudfront', 'cloudformation', 'kvs'].map((k) => typeof h.clients[k]().send);
        console.log(JSON.stringify({ sdk, made }));`, {}, dir);
      expect(JSON.parse(out)).toEqual({ sdk: 'not found', made: ['function', 'function', 'function', 'function'] });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the client the handler creates loads it then, and signs with SigV4A', async () => {
    const srv = await startKvsRecorder(ARN);
    try {
      const out = await node(`const h = require(${JSON.stringify(BUNDLE)});
        const { DescribeKeyValueStoreCommand } = require('@aws-sdk/client-cloudfront-keyvaluestore');
        const client = h.clients.kvs();
        client.send(new DescribeKeyValueStoreCommand({ KvsARN: ${JSON.stringify(ARN)} })).then(
          (r) => console.log(JSON.stringify({ etag: r.ETag, loaded: [...(${MARKER} ?? [])] })),
          (e) => console.log(JSON.stringify({ error: e.message })));`,
      // The KeyValueStore endpoint rules put the account id in front of the host: <account>.localhost (dns shim).
      { AWS_ENDPOINT_URL_CLOUDFRONT_KEYVALUESTORE: srv.url.replace('127.0.0.1', 'localhost') });
      expect(JSON.parse(out)).toEqual({ etag: 'E1', loaded: ['@aws-sdk/client-cloudfront-keyvaluestore'] });
      expect(srv.auth()).toMatch(/^AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE\//);
    } finally {
      await srv.close();
    }
  });
});
