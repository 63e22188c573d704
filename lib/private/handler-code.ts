import * as fs from 'fs';
import * as path from 'path';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { packageRoot } from './package-root';

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
