/**
 * What the CLI benchmarks (bench/cli.ts, bench/cli-latency.ts) share: the built CLI, this process's SDK pointed
 * straight at moto for the set-up, the environment of each spawned CLI, and a loopback proxy in front of moto.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { packageRoot } from '../lib/private/package-root';
import { FAKE_ENV } from '../test/helpers/moto';

/** The repository root, the built CLI (`dist/bin/cdk-rollback.js`, which must exist) and the loopback DNS shim. */
export function builtCli(): { root: string; cli: string; dnsShim: string } {
  const root = packageRoot();
  const cli = path.join(root, 'dist', 'bin', 'cdk-rollback.js');
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  return { root, cli, dnsShim: path.join(root, 'test', 'fixtures', 'cli', 'loopback-dns.js') };
}

/**
 * Points this process's AWS SDK at moto (fake credentials, us-east-1, AWS_ENDPOINT_URL); returns what puts the
 * variables it set back as they were.
 */
export function pointSdkAtMoto(motoEndpoint: string): () => void {
  const env: Record<string, string> = { ...FAKE_ENV, AWS_ENDPOINT_URL: motoEndpoint };
  const saved = { ...process.env };
  Object.assign(process.env, env);
  return () => {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  };
}

/**
 * The environment of a spawned CLI: PATH, a temporary HOME, no colours, fake credentials and no AWS config files;
 * AWS calls go to `endpoint`, KeyValueStore calls to `kvsEndpoint` (as localhost, for the loopback DNS shim).
 */
export function cliChildEnv(endpoint: string, kvsEndpoint: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH, HOME: os.tmpdir(), NO_COLOR: '1',
    ...FAKE_ENV, AWS_ENDPOINT_URL: endpoint,
    AWS_ENDPOINT_URL_CLOUDFRONT_KEYVALUESTORE: kvsEndpoint.replace('127.0.0.1', 'localhost'),
    AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
  };
}

/**
 * A loopback proxy to `target` (listening once it resolves): `onRequest` gets each request with its body read, and
 * `forward`, which sends it on and pipes the answer back; `done` runs when the answer has ended or failed.
 */
export async function startForwardingProxy(
  target: string,
  onRequest: (req: http.IncomingMessage, body: Buffer, forward: (done?: () => void) => void) => void,
): Promise<{ server: http.Server; endpoint: string }> {
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      onRequest(req, body, (done = () => {}) => {
        const fwd = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          up.on('end', done);
        });
        fwd.on('error', (e) => { done(); res.writeHead(502); res.end(String(e)); });
        fwd.end(body);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  return { server, endpoint: `http://127.0.0.1:${addr && typeof addr === 'object' ? addr.port : 0}` };
}
