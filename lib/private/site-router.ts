import * as fs from 'fs';
import * as path from 'path';
import { SITE_KVS_ACTIVE_KEY, SITE_RELEASES_PREFIX } from './contract';
import { SITE_POOL_PREFIX } from './site-contract';

export interface RouterOptions {
  /** Regular expression source of the immutable-path rule (site-contract `immutablePattern`). */
  readonly immutablePattern: string;
  /** Extension-less paths serve the root `index.html` (true) or `<path>/index.html` (false). */
  readonly spaFallback: boolean;
}

function routerSourceFile(): string {
  // lib/private (ts-node, jest) or dist/lib/private (compiled)
  const candidates = [
    path.join(__dirname, '..', '..', 'lambda', 'site-router', 'router.js'),
    path.join(__dirname, '..', '..', '..', 'lambda', 'site-router', 'router.js'),
  ];
  const found = candidates.find((f) => fs.existsSync(f));
  if (!found) throw new Error(`cdk-rollback: the site router source is missing (looked at ${candidates.join(', ')})`);
  return found;
}

/** The CloudFront Function code of the router, with the site's rules filled in. Deterministic. */
export function renderRouterCode(opts: RouterOptions): string {
  // A RegExp literal cannot hold an unescaped `/`.
  const pattern = opts.immutablePattern.replace(/(^|[^\\])\//g, '$1\\/');
  const source = fs.readFileSync(routerSourceFile(), 'utf8');
  return source
    .replace('__IMMUTABLE__', () => pattern)
    .replace('__SPA__', String(opts.spaFallback))
    .replace('__POOL__', SITE_POOL_PREFIX)
    .replace('__ACTIVE__', SITE_KVS_ACTIVE_KEY)
    .replace('__RELEASES__', SITE_RELEASES_PREFIX);
}
