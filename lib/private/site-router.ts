import * as fs from 'fs';
import * as path from 'path';
import { SITE_KVS_ACTIVE_KEY, SITE_RELEASES_PREFIX } from '../../lambda/shared/contract';
import { SITE_POOL_PREFIX, immutablePrefixPattern } from '../../lambda/shared/site-contract';

/**
 * Longest viewer URI the router passes on, in characters: 3 x 1,024, the percent-encoded length of the longest
 * S3 key (1,024 bytes of UTF-8). A longer URI cannot name an object of the site; the router answers 414 before
 * any matching.
 */
export const ROUTER_MAX_URI_LENGTH = 3 * 1024;

/**
 * The router applies the same immutable-path rule as the release handler (site-contract `immutablePattern`,
 * tested against `/<path>`), but evaluates it in time linear in the URI: the folder prefixes as one anchored
 * pattern, the content-hash test by a single pass over the file name.
 */
export interface RouterOptions {
  /** Folder prefixes whose files are immutable (`immutablePaths`). */
  readonly immutablePaths: readonly string[];
  /** Detect content hashes in file names (`detectHashedNames`). */
  readonly detectHashedNames: boolean;
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

/**
 * The CloudFront Function code of the router, with the site's rules filled in and the source's explanatory
 * comment lines left out (the code stays under 2 KB; the function limit is 10 KB). Deterministic.
 */
export function renderRouterCode(opts: RouterOptions): string {
  const prefix = immutablePrefixPattern(opts.immutablePaths);
  const source = fs.readFileSync(routerSourceFile(), 'utf8')
    .split('\n').filter((line) => !/^\s*\/\/(?! cdk-rollback)/.test(line)).join('\n');
  return source
    // escapeRegExp in site-contract escapes `/`, so the source is a valid RegExp literal
    .replace('__PREFIX__', () => (prefix === undefined ? 'null' : `/${prefix}/`))
    .replace('__HASHES__', String(opts.detectHashedNames))
    .replace('__MAX_URI__', String(ROUTER_MAX_URI_LENGTH))
    .replace('__SPA__', String(opts.spaFallback))
    .replace('__POOL__', SITE_POOL_PREFIX)
    .replace('__ACTIVE__', SITE_KVS_ACTIVE_KEY)
    .replace('__RELEASES__', SITE_RELEASES_PREFIX);
}
