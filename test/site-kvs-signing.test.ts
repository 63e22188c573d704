import { spawnSync } from 'child_process';
import * as path from 'path';
import { DescribeKeyValueStoreCommand } from '@aws-sdk/client-cloudfront-keyvaluestore';
import { kvsClient } from '../lambda/site-release/kvs';
import { startKvsRecorder } from './fixtures/cli/kvs-server';

const ARN = 'arn:aws:cloudfront::123456789012:key-value-store/3e4c7d8a-0000-4000-8000-000000000001';

/** A local HTTP server that records the Authorization header and answers like DescribeKeyValueStore. */
const recorder = () => startKvsRecorder(ARN);

const CREDS = { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret', AWS_REGION: 'us-east-1' };

describe('KeyValueStore client signing (unmocked)', () => {
  test('the handler client signs with SigV4A (AWS4-ECDSA-P256-SHA256) and reaches the server', async () => {
    const srv = await recorder();
    try {
      // The real endpoint is https://<account>.cloudfront-kvs.global.api.aws; only the URL is replaced.
      const client = kvsClient({
        region: 'us-east-1', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
        endpointProvider: () => ({ url: new URL(srv.url) }),
      });
      const out = await client.send(new DescribeKeyValueStoreCommand({ KvsARN: ARN }));
      expect(out.ETag).toBe('E1');
      expect(srv.auth()).toMatch(/^AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE\//);
    } finally {
      await srv.close();
    }
  });

  test('without @aws-sdk/signature-v4a the same call fails before it is sent', async () => {
    const srv = await recorder();
    try {
      // A fresh process, so this file's import of signature-v4a cannot leak in.
      const script = `
        const { CloudFrontKeyValueStoreClient, DescribeKeyValueStoreCommand } = require('@aws-sdk/client-cloudfront-keyvaluestore');
        new CloudFrontKeyValueStoreClient({ endpointProvider: () => ({ url: new URL('${srv.url}') }) }).send(new DescribeKeyValueStoreCommand({ KvsARN: '${ARN}' }))
          .then(() => { console.log('SENT'); }, (e) => { console.log('FAILED ' + e.message); });`;
      const res = spawnSync(process.execPath, ['-e', script], {
        cwd: path.join(__dirname, '..'), encoding: 'utf8', env: { PATH: process.env.PATH, ...CREDS },
      });
      expect(res.stdout).toMatch(/^FAILED .*(SigV4a|signature-v4-crt|signature-v4a)/im);
      expect(srv.auth()).toBeUndefined();
    } finally {
      await srv.close();
    }
  });
});
