/**
 * The multi-language package: the jsii assembly built by `npm run build`, the API reference generated from it,
 * and the bindings jsii-pacmak generates for Python, Java, .NET and Go (sources only: compiling the Java, .NET and
 * Go ones needs the jsii runtime from Maven Central, NuGet and the Go proxy, which a release pipeline reaches).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name);

interface JsiiProperty { name: string; optional?: boolean; docs?: { summary?: string; default?: string } }
interface JsiiType { kind: string; fqn: string; datatype?: boolean; properties?: JsiiProperty[]; docs?: { summary?: string } }
interface Assembly { name: string; targets: Record<string, unknown>; types: Record<string, JsiiType> }

function assembly(): Assembly {
  const file = path.join(root, '.jsii');
  if (!fs.existsSync(file)) throw new Error('.jsii is missing: run `npm run build` first (npm test does)');
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Assembly;
}

test('the assembly declares the four language targets', () => {
  expect(Object.keys(assembly().targets).sort()).toEqual(['dotnet', 'go', 'java', 'js', 'python']);
});

test('every struct property is documented, and every optional one states its @default', () => {
  const missing: string[] = [];
  for (const type of Object.values(assembly().types)) {
    if (!type.docs?.summary) missing.push(`${type.fqn}: no summary`);
    if (!type.datatype) continue;
    for (const p of type.properties ?? []) {
      if (!p.docs?.summary) missing.push(`${type.fqn}.${p.name}: no summary`);
      if (p.optional && !p.docs?.default) missing.push(`${type.fqn}.${p.name}: no @default`);
    }
  }
  expect(missing).toEqual([]);
});

test('API.md is what jsii-docgen generates from the current doc comments (run `npm run docgen` to refresh it)', () => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'docgen-')), 'API.md');
  const res = spawnSync(bin('jsii-docgen'), ['-o', out], { cwd: root, encoding: 'utf8' });
  expect(res.stderr).not.toMatch(/error/i);
  expect(res.status).toBe(0);
  const committed = fs.readFileSync(path.join(root, 'API.md'), 'utf8');
  expect(committed).toBe(fs.readFileSync(out, 'utf8'));
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
}, 180_000);

test('jsii-pacmak generates Python, Java, .NET and Go bindings, and the Python package compiles', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pacmak-'));
  try {
    const res = spawnSync(bin('jsii-pacmak'), ['--code-only', '--targets', 'python,java,dotnet,go', '-o', out], { cwd: root, encoding: 'utf8' });
    expect(res.status).toBe(0);
    const files = (dir: string, ext: string): string[] => fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith(ext)).map((f) => path.join(dir, f));
    const python = files(path.join(out, 'python'), '.py');
    expect(python.map((f) => path.basename(path.dirname(f)))).toContain('cdk_rollback');
    expect(files(path.join(out, 'java'), '.java').length).toBeGreaterThan(0);
    expect(files(path.join(out, 'dotnet'), '.cs').length).toBeGreaterThan(0);
    expect(files(path.join(out, 'go'), '.go').length).toBeGreaterThan(0);
    // What can be checked offline: the generated Python is valid Python.
    const compiled = spawnSync('python3', ['-m', 'py_compile', ...python], { encoding: 'utf8' });
    expect(compiled.stderr).toBe('');
    expect(compiled.status).toBe(0);
    // Every prop reads as idiomatic Python (snake_case keyword arguments).
    const init = fs.readFileSync(python.find((f) => f.endsWith(path.join('cdk_rollback', '__init__.py')))!, 'utf8');
    expect(init).toContain('retain_versions: typing.Optional[jsii.Number] = None');
    expect(init).toContain('migrations_dir: builtins.str');
    // keyword arguments of the initializers and struct constructors (8-space indented `name: type` lines)
    const params = [...init.matchAll(/^ {8}([A-Za-z_]\w*): /gm)].map((m) => m[1]);
    expect(params.length).toBeGreaterThan(40);
    expect(params.filter((name) => name !== name.toLowerCase())).toEqual([]);
    // README's Python examples parse, and every keyword argument they pass is one the bindings take.
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    for (const block of blocks) {
      const parsed = spawnSync('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], { input: block, encoding: 'utf8' });
      expect(parsed.stderr).toBe('');
      const kwargs = [...block.matchAll(/[(,\s]([a-z_]+)=/g)].map((m) => m[1]);
      expect(kwargs.filter((k) => !params.includes(k))).toEqual([]);
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 300_000);
