/**
 * Site upload benchmark: the VersionedSite release handler side by side with aws-cdk-lib's BucketDeployment
 * handler (Python + `aws s3 sync`), both uploading the same generated 5,000-file (~50 MB) site asset zip from
 * the same moto_server S3.
 *
 * - first deploy into an empty bucket, then the second deploy of the unchanged build;
 * - wall time, and peak memory (max RSS) of each handler run in its own process: ours a Node process, theirs
 *   the Python process plus its largest child (`aws` CLI), which run at the same time inside one Lambda.
 *
 * BucketDeployment calls a hard-coded `/opt/awscli/aws` (the AwsCliLayer path). When that path does not exist,
 * a small Python wrapper (written to bench/.work/) makes it resolve WITHOUT editing the handler: it imports the
 * handler module unchanged and maps that one argv[0] to the `aws` on PATH in `subprocess.check_call`. The
 * wrapper also serves the pre-signed ResponseURL the handler PUTs its result to, on loopback.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as yazl from 'yazl';
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { uploadRelease } from '../lambda/site-release/upload';
import { immutablePattern } from '../lib/private/site-contract';
import { startMotoServer } from '../test/helpers/moto';

const FILES = 5000;

function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
}

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = 'const let function return import export default await async class extends this null true false value item render state props component module'.split(' ');

/** 5,000 files, mixed sizes (80% 1-8 KB, 18% 8-40 KB, 2% 60-160 KB), text and binary, about 50 MB. */
function generateSite(dir: string): { files: number; bytes: number } {
  const rnd = prng(42);
  let bytes = 0;
  fs.rmSync(dir, { recursive: true, force: true });
  for (let i = 0; i < FILES; i++) {
    const r = rnd();
    const size = r < 0.8 ? 1024 + Math.floor(rnd() * 7 * 1024) : r < 0.98 ? 8192 + Math.floor(rnd() * 32 * 1024) : 61440 + Math.floor(rnd() * 100 * 1024);
    const kind = i % 10;
    const hash = Math.floor(rnd() * 0xffffffff).toString(16).padStart(8, '0');
    const name = kind < 5 ? `assets/js/chunk-${i}.${hash}.js`
      : kind < 7 ? `assets/css/style-${i}.${hash}.css`
        : kind < 9 ? `img/${i % 50}/photo-${i}.png`
          : `pages/${i % 100}/page-${i}.html`;
    let data: Buffer;
    if (name.endsWith('.png')) {
      data = Buffer.alloc(size);
      for (let j = 0; j < size; j++) data[j] = Math.floor(rnd() * 256);
    } else {
      const parts: string[] = [];
      let len = 0;
      while (len < size) {
        const w = WORDS[Math.floor(rnd() * WORDS.length)] + (rnd() < 0.1 ? '\n' : ' ');
        parts.push(w);
        len += w.length;
      }
      data = Buffer.from(parts.join('').slice(0, size));
    }
    fs.mkdirSync(path.join(dir, path.dirname(name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), data);
    bytes += data.length;
  }
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>bench</title>');
  return { files: FILES + 1, bytes: bytes + 36 };
}

/** Zips `dir` the way CDK publishes a directory asset (deflate, fixed dates). */
function zipDir(dir: string, out: string): Promise<void> {
  const zip = new yazl.ZipFile();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (fs.statSync(path.join(dir, r)).isDirectory()) walk(r);
      else zip.addFile(path.join(dir, r), r, { mtime: new Date(0), mode: 0o644 });
    }
  };
  walk('');
  zip.end();
  return new Promise((resolve, reject) => {
    zip.outputStream.pipe(fs.createWriteStream(out)).on('close', () => resolve()).on('error', reject);
  });
}

async function countObjects(s3: S3Client, bucket: string): Promise<number> {
  let n = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    n += page.KeyCount ?? 0;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return n;
}

interface Measure { ms: number; maxRssMb: number; detail?: string }

/** The server's floor: bare PutObject calls (the same count and sizes, 16 at a time), nothing else. */
async function putFloor(s3: S3Client, siteDir: string, bucket: string): Promise<number> {
  const files: string[] = [];
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(siteDir, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (fs.statSync(path.join(siteDir, r)).isDirectory()) walk(r);
      else files.push(r);
    }
  };
  walk('');
  const bodies = files.map((f) => fs.readFileSync(path.join(siteDir, f)));
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < files.length) {
      const i = next++;
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: files[i], Body: bodies[i] }));
    }
  }));
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/**
 * Runs a process without blocking the event loop: moto_server (started by this process) writes a log line per
 * request into a pipe this process drains, so a blocking spawnSync would deadlock it.
 */
function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-20000); });
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Our handler's upload in a fresh Node process (so its max RSS is its own). */
async function runOurs(env: NodeJS.ProcessEnv, bucket: string, releaseId: string): Promise<Measure> {
  const args = __filename.endsWith('.ts') ? ['-r', 'ts-node/register/transpile-only', __filename] : [__filename];
  const res = await runProcess(process.execPath, [...args, '--child', JSON.stringify({ bucket, releaseId })], env, repoRoot());
  const line = res.stdout.split('\n').find((l) => l.startsWith('{"ms"'));
  if (res.status !== 0 || !line) throw new Error(`our handler failed (exit ${res.status}): ${res.stderr.slice(-2000)}`);
  return JSON.parse(line) as Measure;
}

/**
 * This process's own peak RSS (VmHWM). Not `process.resourceUsage().maxRSS`: Linux carries the spawning
 * process's high-water RSS into ru_maxrss across vfork+exec, so a child of the (large) bench process would
 * report the bench's memory instead of its own.
 */
function peakRssKb(): number {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
  if (!line) throw new Error('no VmHWM in /proc/self/status');
  return Number(line.split(/\s+/)[1]);
}

async function child(input: { bucket: string; releaseId: string }): Promise<void> {
  const s3 = new S3Client({});
  const start = process.hrtime.bigint();
  const res = await uploadRelease({
    s3, assetBucket: 'bench-assets', assetKey: 'site.zip', bucketName: input.bucket, releaseId: input.releaseId,
    sourceHash: input.releaseId, immutable: new RegExp(immutablePattern()),
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const maxRssMb = peakRssKb() / 1024;
  console.log(JSON.stringify({ ms, maxRssMb, detail: `${res.uploaded} uploaded, ${res.skipped} skipped` }));
}

const WRAPPER = `
import http.server, json, os, resource, shutil, subprocess, sys, threading, time
sys.path.insert(0, sys.argv[1])
AWS = shutil.which('aws')
_check_call = subprocess.check_call
def check_call(args, *a, **kw):
    # the handler's hard-coded AwsCliLayer path -> the aws CLI on PATH (the handler itself is not edited)
    if args and args[0] == '/opt/awscli/aws' and not os.path.exists(args[0]):
        args = [AWS] + list(args[1:])
    return _check_call(args, *a, **kw)
subprocess.check_call = check_call
responses = []
class H(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get('content-length', 0)))
        responses.append(json.loads(body))
        self.send_response(200); self.send_header('content-length', '0'); self.end_headers()
    def log_message(self, *a): pass
srv = http.server.HTTPServer(('127.0.0.1', 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
import index
class Ctx: log_stream_name = 'bench'
props = {'SourceBucketNames': ['bench-assets'], 'SourceObjectKeys': ['site.zip'], 'DestinationBucketName': sys.argv[2], 'Prune': 'true'}
event = {'RequestType': sys.argv[3], 'ResponseURL': 'http://127.0.0.1:%d/response' % srv.server_address[1],
         'StackId': 'arn:aws:cloudformation:us-east-1:123456789012:stack/Bench/1', 'RequestId': 'r', 'LogicalResourceId': 'Deploy',
         'ResourceType': 'Custom::CDKBucketDeployment', 'ResourceProperties': props}
if sys.argv[3] == 'Update':
    event['PhysicalResourceId'] = 'aws.cdk.s3deployment.bench'; event['OldResourceProperties'] = props
t0 = time.time()
index.handler(event, Ctx())
ms = (time.time() - t0) * 1000
# VmHWM, not RUSAGE_SELF: Linux carries the spawning process's high-water RSS into ru_maxrss across
# vfork+exec, so a child of the (large) bench process would report the bench's memory, not its own.
self_kb = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1])
# the aws CLI children: their ru_maxrss is floored only by this small Python process at spawn time
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
status = responses[0]['Status'] if responses else 'NO RESPONSE'
print(json.dumps({'ms': ms, 'maxRssMb': (self_kb + child_kb) / 1024, 'detail': 'python %.0f MB + aws CLI %.0f MB, response %s' % (self_kb / 1024, child_kb / 1024, status), 'status': status}))
`;

async function runBucketDeployment(env: NodeJS.ProcessEnv, work: string, bucket: string, type: 'Create' | 'Update'): Promise<Measure> {
  const handlerDir = path.join(path.dirname(require.resolve('aws-cdk-lib/package.json')), 'custom-resource-handlers', 'dist', 'aws-s3-deployment', 'bucket-deployment-handler');
  const wrapper = path.join(work, 'bucket-deployment-wrapper.py');
  fs.writeFileSync(wrapper, WRAPPER);
  const tmp = path.join(work, 'tmp');
  fs.mkdirSync(tmp, { recursive: true });
  const res = await runProcess('python3', [wrapper, handlerDir, bucket, type], { ...env, TMPDIR: tmp });
  const line = res.stdout.split('\n').find((l) => l.startsWith('{"ms"'));
  if (res.status !== 0 || !line) throw new Error(`BucketDeployment handler failed (exit ${res.status}): ${res.stderr.slice(-3000)}`);
  const m = JSON.parse(line) as Measure & { status: string };
  if (m.status !== 'SUCCESS') throw new Error(`BucketDeployment handler answered ${m.status}: ${res.stderr.slice(-3000)}`);
  return m;
}

export async function run(): Promise<string> {
  const work = path.join(repoRoot(), 'bench', '.work', 'site-upload');
  fs.mkdirSync(work, { recursive: true });
  const site = generateSite(path.join(work, 'site'));
  const zipFile = path.join(work, 'site.zip');
  await zipDir(path.join(work, 'site'), zipFile);
  const zipBytes = fs.statSync(zipFile).size;

  const moto = await startMotoServer();
  try {
    const env: NodeJS.ProcessEnv = {
      ...process.env, AWS_ENDPOINT_URL: moto.endpoint, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_SESSION_TOKEN: 'testing', AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-east-1', NODE_NO_WARNINGS: '1',
    };
    Object.assign(process.env, { AWS_ENDPOINT_URL: moto.endpoint, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'us-east-1' });
    const s3 = new S3Client({});
    for (const Bucket of ['bench-assets', 'ours', 'theirs', 'floor']) await s3.send(new CreateBucketCommand({ Bucket }));
    await s3.send(new PutObjectCommand({ Bucket: 'bench-assets', Key: 'site.zip', Body: fs.readFileSync(zipFile) }));

    const ours1 = await runOurs(env, 'ours', 'bench-release');
    const ours2 = await runOurs(env, 'ours', 'bench-release');
    const theirs1 = await runBucketDeployment(env, work, 'theirs', 'Create');
    const theirs2 = await runBucketDeployment(env, work, 'theirs', 'Update');
    const floor = await putFloor(s3, path.join(work, 'site'), 'floor');
    const oursObjects = await countObjects(s3, 'ours');
    const theirsObjects = await countObjects(s3, 'theirs');

    const f = (n: number) => n.toFixed(0);
    const x = (a: number, b: number) => (a / b).toFixed(2);
    return [
      '## Site upload: VersionedSite release handler vs BucketDeployment',
      '',
      `Site: ${site.files} generated files, ${(site.bytes / 1e6).toFixed(1)} MB (asset zip ${(zipBytes / 1e6).toFixed(1)} MB), uploaded from and to the same moto_server S3 on loopback.`,
      `Objects in the destination bucket afterwards: ours ${oursObjects} (files + manifest), BucketDeployment ${theirsObjects}.`,
      '',
      '| run | VersionedSite handler | BucketDeployment handler | ratio (ours / theirs) |',
      '|---|---|---|---|',
      `| first deploy, wall time | ${f(ours1.ms)} ms | ${f(theirs1.ms)} ms | ${x(ours1.ms, theirs1.ms)} (${(theirs1.ms / ours1.ms).toFixed(1)}x faster) |`,
      `| first deploy, peak memory | ${f(ours1.maxRssMb)} MB | ${f(theirs1.maxRssMb)} MB | ${x(ours1.maxRssMb, theirs1.maxRssMb)} |`,
      `| unchanged build again, wall time | ${f(ours2.ms)} ms | ${f(theirs2.ms)} ms | ${x(ours2.ms, theirs2.ms)} |`,
      `| unchanged build again, peak memory | ${f(ours2.maxRssMb)} MB | ${f(theirs2.maxRssMb)} MB | ${x(ours2.maxRssMb, theirs2.maxRssMb)} |`,
      '',
      `moto_server floor: ${site.files} bare PutObject calls of the same files, 16 at a time, from an already-loaded process: ${f(floor)} ms`,
      `(${(floor / site.files).toFixed(2)} ms per object). Both handlers pay this per-object cost of the emulator; against real S3 the per-request`,
      'latency is network-bound and parallelism matters more.',
      '',
      `Ours: ${ours1.detail}; again: ${ours2.detail}. BucketDeployment: ${theirs1.detail}; again: ${theirs2.detail}.`,
      'Targets: >= 3x faster and <= 0.5x peak memory on the first deploy. Peak memory is the peak RSS (VmHWM) of each process: ours is one Node process;',
      "BucketDeployment's is its Python process plus its largest `aws` CLI child (they run at the same time in one Lambda).",
      "BucketDeployment also stages the zip and the extracted files on local disk; ours reads the zip with ranged GETs and writes nothing locally.",
      "`/opt/awscli/aws` (hard-coded in the handler) does not exist on this machine: a wrapper maps that argv[0] to the `aws` on PATH without editing the handler.",
    ].join('\n');
  } finally {
    await moto.stop();
  }
}

if (require.main === module && process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3])).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
