/**
 * README "Testing your stacks": its example test file runs as written (a child jest in a folder of its own,
 * `cdk-rollback` and `cdk-rollback/testing` mapped to this checkout), its snapshot is stable, and the snapshot
 * holds no asset hash, version fingerprint or router code: an upgrade of the library that only changes those does
 * not churn it.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MASKED_ASSET_HASH, MASKED_ROUTER_CODE, MASKED_VERSION_FINGERPRINT, maskTemplateString, snapshotSerializer } from '../lib/testing';

const root = path.join(__dirname, '..');

function readmeExample(): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const marker = readme.indexOf('<!-- readme-test: test/readme-testing-example.test.ts');
  if (marker < 0) throw new Error('README.md has no block marked for test/readme-testing-example.test.ts');
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(marker));
  if (!block) throw new Error('no ```ts block after the readme-test marker');
  return block[1];
}

function runJest(dir: string, extra: string[] = []) {
  const config = {
    rootDir: dir,
    testEnvironment: 'node',
    transform: { '^.+\\.ts$': [require.resolve('ts-jest'), { diagnostics: false, isolatedModules: true, tsconfig: { esModuleInterop: true } }] },
    moduleNameMapper: {
      '^cdk-rollback$': path.join(root, 'lib', 'index.ts'),
      '^cdk-rollback/testing$': path.join(root, 'lib', 'testing.ts'),
    },
    modulePaths: [path.join(root, 'node_modules')],
    cacheDirectory: path.join(dir, '.jest-cache'),
  };
  fs.writeFileSync(path.join(dir, 'jest.config.json'), JSON.stringify(config));
  return spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '--config', path.join(dir, 'jest.config.json'), '--ci=false', ...extra], {
    cwd: dir, encoding: 'utf8', env: { ...process.env, CI: '' },
  });
}

test('the README example test file passes as written, twice, with a snapshot free of library hashes', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-example-'));
  try {
    fs.mkdirSync(path.join(dir, 'fixtures', 'api'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'fixtures', 'api', 'index.js'), 'exports.handler = async () => ({ statusCode: 200 });\n');
    fs.cpSync(path.join(root, 'test', 'fixtures', 'site', 'build'), path.join(dir, 'fixtures', 'site'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'fixtures', 'migrations'));
    fs.writeFileSync(path.join(dir, 'fixtures', 'migrations', '0001_create_orders.sql'), 'CREATE TABLE orders (id bigint PRIMARY KEY);\n');
    fs.writeFileSync(path.join(dir, 'fixtures', 'migrations', '0001_create_orders.down.sql'),
      'DROP TABLE orders; -- cdk-rollback:allow-destructive the down migration of 0001\n');
    fs.writeFileSync(path.join(dir, 'orders.test.ts'), readmeExample());

    const first = runJest(dir);
    expect(first.stderr).toMatch(/Tests:\s+4 passed, 4 total/);
    expect(first.stderr).toMatch(/1 written/);
    const second = runJest(dir);
    expect(second.stderr).toMatch(/Tests:\s+4 passed, 4 total/);
    expect(second.stderr).toMatch(/1 passed/);

    const snapshot = fs.readFileSync(path.join(dir, '__snapshots__', 'orders.test.ts.snap'), 'utf8');
    expect(snapshot).not.toMatch(/[0-9a-f]{64}/);
    expect(snapshot).not.toMatch(/cdk-rollback [0-9a-f]{32}/);
    expect(snapshot).toContain(MASKED_ASSET_HASH);
    expect(snapshot).toContain(MASKED_VERSION_FINGERPRINT);
    expect(snapshot).toContain(MASKED_ROUTER_CODE);
    expect(snapshot).toContain('Custom::CdkRollbackSiteRelease');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);

describe('snapshotSerializer', () => {
  const hash = 'ab'.repeat(32);
  test('masks asset hashes wherever they appear in a string', () => {
    expect(maskTemplateString(`${hash}.zip`)).toBe('[ASSET HASH].zip');
    expect(maskTemplateString(`asset.${hash}`)).toBe('asset.[ASSET HASH]');
  });
  test('masks version fingerprints and the router code, and nothing else', () => {
    expect(maskTemplateString(`cdk-rollback ${'0f'.repeat(16)}`)).toBe('cdk-rollback [VERSION FINGERPRINT]');
    expect(maskTemplateString("import cf from 'cloudfront';\n// cdk-rollback VersionedSite router: viewer request")).toBe(MASKED_ROUTER_CODE);
    expect(maskTemplateString('CodeDeployDefault.LambdaCanary10Percent5Minutes')).toBe('CodeDeployDefault.LambdaCanary10Percent5Minutes');
    expect(maskTemplateString('abc123')).toBe('abc123');
  });
  test('claims only strings that need masking, so jest prints everything else as usual', () => {
    expect(snapshotSerializer.test(`${hash}.zip`)).toBe(true);
    expect(snapshotSerializer.test(`${hash}.zip`)).toBe(true); // no state left in the global regexps
    expect(snapshotSerializer.test('plain')).toBe(false);
    expect(snapshotSerializer.test({ S3Key: `${hash}.zip` })).toBe(false);
    const printed = snapshotSerializer.serialize(`${hash}.zip`, {}, '', 0, [], (v) => JSON.stringify(v));
    expect(printed).toBe('"[ASSET HASH].zip"');
  });
});
