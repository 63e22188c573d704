import { ChildProcess, spawn } from 'child_process';
import * as net from 'net';
import { requireTool } from './tools';

export interface MotoServer {
  /** e.g. http://127.0.0.1:50123 */
  readonly endpoint: string;
  /** Forgets every resource created so far (POST /moto-api/reset). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

const FAKE_ENV: Record<string, string> = {
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  AWS_SESSION_TOKEN: 'testing',
  AWS_REGION: 'us-east-1',
  AWS_DEFAULT_REGION: 'us-east-1',
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

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

/** Starts `moto_server` on a free loopback port. */
export async function startMotoServer(): Promise<MotoServer> {
  requireTool('moto_server', ['--help']);
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const proc = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (b: Buffer) => { log = (log + b.toString()).slice(-4000); };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  await waitUntilUp(endpoint, proc, () => log);
  return {
    endpoint,
    async reset() {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!res.ok) throw new Error(`moto reset failed: ${res.status}`);
    },
    stop() {
      return new Promise<void>((resolve) => {
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
