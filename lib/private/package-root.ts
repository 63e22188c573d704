import * as fs from 'fs';
import * as path from 'path';

/**
 * Finds the package root (the folder holding this package's package.json), from
 * `lib/private` when run through ts-node and from `dist/lib/private` when compiled. No CDK import: the tests'
 * fixtures and the benchmarks use it too.
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
