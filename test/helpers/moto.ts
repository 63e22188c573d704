/// <reference types="jest" />
import { ChildProcess, spawn } from 'child_process';
import * as http from 'http';
import * as net from 'net';
import { requireTool } from './tools';
import { freePort } from './ports';

export interface MotoServer {
  /** e.g. http://127.0.0.1:50123 */
  readonly endpoint: string;
  /** Forgets every resource created so far (POST /moto-api/reset). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Fake credentials and region for moto_server (what useMotoServer, the lifecycle world and the benchmarks sign with). */
export const FAKE_ENV: Readonly<Record<string, string>> = {
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  AWS_SESSION_TOKEN: 'testing',
  AWS_REGION: 'us-east-1',
  AWS_DEFAULT_REGION: 'us-east-1',
};

async function waitUntilUp(endpoint: string, proc: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      throw new Error(`moto_server exited with ${proc.exitCode} before it was ready:\n${output()}`);
    }
    try {
      const res = await fetch(`${endpoint}/moto-api/data.json`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`moto_server did not answer at ${endpoint} within 30 s:\n${output()}`);
}

const CODEDEPLOY_TIMESTAMPS = new Set(['createTime', 'startTime', 'completeTime', 'lastUpdatedAt']);

/** ISO-8601 timestamps (moto's CodeDeploy) to epoch seconds (the AWS wire format the JS SDK parses). */
function fixTimestamps(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fixTimestamps);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [
      k,
      CODEDEPLOY_TIMESTAMPS.has(k) && typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? Date.parse(v) / 1000 : fixTimestamps(v),
    ]));
  }
  return value;
}

/**
 * A loopback proxy in front of moto_server that passes everything through unchanged, except that it
 * rewrites moto's CodeDeploy timestamps (ISO strings) into the epoch seconds AWS sends: the AWS SDK for
 * JavaScript rejects the ISO form ("Expected real number"), while boto3 accepts both.
 */
function startWireProxy(target: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const codedeploy = String(req.headers['x-amz-target'] ?? '').startsWith('CodeDeploy_20141006.');
    const upstream = http.request({ host: '127.0.0.1', port: target, path: req.url, method: req.method, headers: req.headers }, (up) => {
      if (!codedeploy) {
        res.writeHead(up.statusCode ?? 500, up.headers);
        up.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('end', () => {
        let body = Buffer.concat(chunks);
        try {
          body = Buffer.from(JSON.stringify(fixTimestamps(JSON.parse(body.toString('utf8')))));
        } catch {
          // not JSON: pass it on as it is
        }
        res.writeHead(up.statusCode ?? 500, { ...up.headers, 'content-length': String(body.length) });
        res.end(body);
      });
    });
    upstream.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
    req.pipe(upstream);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Starts `moto_server` on a free loopback port (behind a loopback wire-format proxy, see startWireProxy). */
export async function startMotoServer(): Promise<MotoServer> {
  requireTool('moto_server', ['--help']);
  const port = await freePort();
  const motoEndpoint = `http://127.0.0.1:${port}`;
  const proc = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (b: Buffer) => { log = (log + b.toString()).slice(-4000); };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  await waitUntilUp(motoEndpoint, proc, () => log);
  const proxy = await startWireProxy(port);
  const endpoint = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
  return {
    endpoint,
    async reset() {
      const res = await fetch(`${motoEndpoint}/moto-api/reset`, { method: 'POST' });
      if (!res.ok) throw new Error(`moto reset failed: ${res.status}`);
    },
    async stop() {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      await new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      });
    },
  };
}

/**
 * Jest fixture: starts moto_server before the file's tests, points the AWS SDK
 * at it (AWS_ENDPOINT_URL, fake credentials, us-east-1) and stops it afterwards.
 *
 *   const moto = useMotoServer();
 *   beforeEach(() => moto.reset());
 */
export function useMotoServer(): MotoServer {
  let server: MotoServer | undefined;
  const saved: Record<string, string | undefined> = {};
  beforeAll(async () => {
    server = await startMotoServer();
    for (const [k, v] of Object.entries({ ...FAKE_ENV, AWS_ENDPOINT_URL: server.endpoint })) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
  }, 60_000);
  afterAll(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await server?.stop();
  });
  const get = (): MotoServer => {
    if (!server) throw new Error('useMotoServer: the server is only available inside tests (after beforeAll)');
    return server;
  };
  return {
    get endpoint() { return get().endpoint; },
    reset: () => get().reset(),
    stop: () => get().stop(),
  };
}
