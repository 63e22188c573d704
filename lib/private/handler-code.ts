import * as fs from 'fs';
import * as path from 'path';
import * as lambda from 'aws-cdk-lib/aws-lambda';

/**
 * Finds the package root (the folder holding this package's package.json), from
 * `lib/private` when run through ts-node and from `dist/lib/private` when compiled.
 */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'cdk-rollback') {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`cdk-rollback: cannot find the package root above ${__dirname}`);
    }
    dir = parent;
  }
}

/** The folder holding the prebundled handler `name` (built by `npm run build`). */
export function handlerDir(name: string): string {
  const dir = path.join(packageRoot(), 'dist', 'handlers', name);
  if (!fs.existsSync(path.join(dir, 'index.js'))) {
    throw new Error(
      `cdk-rollback: the prebundled handler '${name}' is missing at ${dir}. ` +
      'Run `npm run build` in the cdk-rollback package (a published package ships it).',
    );
  }
  return dir;
}

/**
 * Code of a prebundled handler. It is a plain asset: no bundling, no esbuild and
 * no Docker at the consumer's synth.
 */
export function handlerCode(name: string): lambda.Code {
  return lambda.Code.fromAsset(handlerDir(name));
}
