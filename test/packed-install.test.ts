/**
 * What `npm pack` publishes, installed the way a consumer gets it: the tarball unpacked into a project's
 * node_modules next to the consumer's own aws-cdk-lib and constructs (the peer dependencies), and nothing else.
 * The constructs synthesize from it (the migration lint's parser rides in the tarball as a bundled dependency),
 * and the CLI runs from it with none of its libraries installed (they are prebundled).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { consumerApp } from './helpers/consumer-app';

const root = path.join(__dirname, '..');

interface PackedPackage {
  dependencies?: Record<string, string>;
  bundledDependencies?: string[];
  files: string[];
}

let work: string;
let consumer: string;
let installed: string;

beforeAll(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'cli', 'cdk-rollback.mjs'))) {
    throw new Error('dist/cli is missing: run `npm run build` first (npm test does)');
  }
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'packed-'));
  // --ignore-scripts: `prepare` would build again; npm test has just built.
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
  if (pack.status !== 0) throw new Error(`npm pack failed:\n${pack.stderr}`);
  const tarball = path.join(work, pack.stdout.trim().split('\n').pop()!);
  consumer = path.join(work, 'consumer');
  installed = path.join(consumer, 'node_modules', 'cdk-rollback');
  fs.mkdirSync(installed, { recursive: true });
  const untar = spawnSync('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1'], { encoding: 'utf8' });
  if (untar.status !== 0) throw new Error(`tar failed:\n${untar.stderr}`);
  // the consumer's own peer dependencies
  for (const peer of ['aws-cdk-lib', 'constructs']) {
    fs.symlinkSync(path.join(root, 'node_modules', peer), path.join(consumer, 'node_modules', peer));
  }
}, 120_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('every runtime dependency of the published package is bundled in the tarball', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')) as PackedPackage;
  const deps = Object.keys(pkg.dependencies ?? {});
  expect(deps.length).toBeGreaterThan(0);
  expect([...(pkg.bundledDependencies ?? [])].sort()).toEqual([...deps].sort());
  for (const dep of deps) {
    expect(fs.existsSync(path.join(installed, 'node_modules', dep, 'package.json'))).toBe(true);
  }
});

test('the tarball holds the bundled CLI and the prebundled handlers, not the CLI sources', () => {
  expect(fs.existsSync(path.join(installed, 'dist', 'bin', 'cdk-rollback.js'))).toBe(true);
  expect(fs.existsSync(path.join(installed, 'dist', 'cli', 'cdk-rollback.mjs'))).toBe(true);
  expect(fs.existsSync(path.join(installed, 'dist', 'bin', 'cli'))).toBe(false);
  for (const handler of ['alias-deployment', 'database-migrations', 'pre-migration-snapshot', 'site-release', 'smoke-test']) {
    expect(fs.existsSync(path.join(installed, 'dist', 'handlers', handler, 'index.js'))).toBe(true);
  }
});

test('a consumer app synthesizes every construct from the installed tarball', () => {
  const migrations = path.join(consumer, 'migrations');
  fs.mkdirSync(migrations);
  fs.writeFileSync(path.join(migrations, '0001_create_orders.sql'), 'CREATE TABLE orders (id bigint PRIMARY KEY);\n');
  fs.writeFileSync(path.join(migrations, '0001_create_orders.down.sql'), 'DROP TABLE orders; -- cdk-rollback:allow-destructive the down migration of 0001\n');
  const site = path.join(root, 'test', 'fixtures', 'site', 'build');
  const script = consumerApp('cdk-rollback', 'cdk.out', `
    const ec2 = require('aws-cdk-lib/aws-ec2');
    const rds = require('aws-cdk-lib/aws-rds');
    new lib.VersionedSite(stack, 'Site', { source: ${JSON.stringify(site)} });
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const cluster = new rds.DatabaseCluster(stack, 'Db', {
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
      writer: rds.ClusterInstance.serverlessV2('Writer'), vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    });
    new lib.DatabaseMigrations(stack, 'Migrations', {
      cluster, vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED }, migrationsDir: 'migrations',
    });
    app.synth();
  `);
  const res = spawnSync(process.execPath, ['-e', script], { cwd: consumer, encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } });
  expect(res.stderr).not.toMatch(/Error/);
  expect(res.status).toBe(0);
  const template = fs.readFileSync(path.join(consumer, 'cdk.out', 'Consumer.template.json'), 'utf8');
  expect(template).toContain('Custom::CdkRollbackSiteRelease');
  expect(template).not.toContain(work);
}, 120_000);

test('the CLI runs from the installed tarball with none of its libraries installed', () => {
  // /tmp/packed-*/consumer/node_modules holds only cdk-rollback and the two peers: no AWS SDK, no commander.
  expect(fs.existsSync(path.join(consumer, 'node_modules', '@aws-sdk'))).toBe(false);
  const cli = path.join(installed, 'dist', 'bin', 'cdk-rollback.js');
  const help = spawnSync(process.execPath, [cli, '--help'], { cwd: consumer, encoding: 'utf8', env: { ...process.env, NODE_PATH: '' } });
  expect(help.stderr).toBe('');
  expect(help.status).toBe(0);
  expect(help.stdout).toContain('rollback');
  // A subcommand loads its AWS clients from the bundle: it gets as far as asking the (unreachable) endpoint.
  const status = spawnSync(process.execPath, [cli, 'api', 'rollback', '--function', 'orders', '--region', 'us-east-1', '--yes'], {
    cwd: consumer,
    encoding: 'utf8',
    env: {
      ...process.env, NODE_PATH: '', AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9', AWS_MAX_ATTEMPTS: '1',
    },
    timeout: 60_000,
  });
  expect(status.stderr).not.toMatch(/Cannot find (module|package)/);
  expect(status.stderr).toMatch(/ECONNREFUSED|connect/i);
  expect(status.status).not.toBe(0);
}, 120_000);
