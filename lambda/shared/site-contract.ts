/**
 * VersionedSite names shared by the construct (lib/), the release handler (lambda/site-release) and the
 * CLI. Imports nothing, so the handler can bundle it. Every value is part of the deployed contract.
 *
 * Bucket layout:
 * - `releases/<releaseId>/<path>`: the release's mutable files (HTML, robots.txt, unhashed images...).
 * - `_pool/<path>`: content-hashed files (`app.3f9a1c2b.js`), shared by every release that ships them.
 *   Old tabs keep working because a hashed URL resolves in the pool whatever release is active.
 * - `_cdk-rollback/manifests/<releaseId>.json`: the release manifest, written last: a release exists
 *   (and may be activated) exactly when its manifest exists.
 * - `_cdk-rollback/releases.json`: the release history (SITE_HISTORY_KEY in contract.ts).
 */

/** Bucket prefix of the shared content-addressed asset pool. */
export const SITE_POOL_PREFIX = '_pool/';
/** Bucket prefix of release manifests (`<prefix><releaseId>.json`). */
export const SITE_MANIFESTS_PREFIX = '_cdk-rollback/manifests/';

/** Cache-Control of content-hashed (pooled) files. */
export const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';
/** Cache-Control of every other file: browsers revalidate on each use. */
export const CACHE_REVALIDATE = 'public, max-age=0, must-revalidate';

/**
 * Default "this file name carries a content hash" rule, as a regular expression source matched against the
 * viewer path (`/assets/index-BxK3a9Zq.js`): a `.`- or `-`-separated name segment of at least 8 characters
 * from `[A-Za-z0-9_-]` holding a letter and either a digit or both letter cases, followed by the
 * extension(s). `main.3f9a1c2b.js`, `main.3f9a1c2b.chunk.js`, `index-BxK3a9Zq.js` match; `app.js`,
 * `logo-2024-01-15.png`, `component.min.js` do not. HTML files never match (they are entry points).
 */
export const HASHED_NAME_PATTERN =
  '[.-](?=[0-9_-]*[A-Za-z])(?=[A-Za-z_-]*[0-9]|[0-9_-]*[a-z][A-Za-z0-9_-]*[A-Z]|[0-9_-]*[A-Z][A-Za-z0-9_-]*[a-z])' +
  '[A-Za-z0-9_-]{8,}(?:\\.[A-Za-z0-9]+)+$';

/** Escapes a literal for use inside a regular expression. */
function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * The immutable-path rule shared by the router function and the release handler (they must agree, or a
 * hashed file would be looked up where it was not uploaded). `prefixes` are bucket-relative folder prefixes
 * (`assets/`) whose every file is treated as immutable.
 */
export function immutablePattern(prefixes: readonly string[] = [], detectHashes = true): string {
  const alts: string[] = [];
  if (prefixes.length > 0) alts.push(`/(?:${prefixes.map(escapeRegExp).join('|')})`);
  if (detectHashes) alts.push(`.*${HASHED_NAME_PATTERN}`);
  if (alts.length === 0) return '(?!)';
  return `^(?!.*\\.html?$)(?:${alts.join('|')})`;
}

/**
 * The `immutablePaths` part of the rule alone, anchored (`^/(?:assets\/|static\/)`), or undefined without
 * prefixes. The router tests it (and the content-hash rule) without the `.*` that `immutablePattern` needs.
 */
export function immutablePrefixPattern(prefixes: readonly string[]): string | undefined {
  return prefixes.length > 0 ? `^\\/(?:${prefixes.map(escapeRegExp).join('|')})` : undefined;
}

/** Manifest of one release, at `${SITE_MANIFESTS_PREFIX}<releaseId>.json`. */
export interface ReleaseManifest {
  readonly version: 1;
  readonly id: string;
  readonly sourceHash: string;
  readonly createdAt: string;
  /** By bucket-relative path (`assets/app.3f9a1c2b.js`). */
  readonly files: Record<string, ManifestFile>;
  /** Viewer paths of pool objects this release replaced with different bytes (names that were not content hashes). */
  readonly overwrittenPoolPaths?: string[];
}

export interface ManifestFile {
  readonly size: number;
  /** CRC-32 of the bytes, from the zip's central directory (checked on upload). */
  readonly crc32: number;
  /** true: stored under the pool, false: under the release prefix. */
  readonly pooled: boolean;
  /**
   * S3 ETag (without quotes) of the object holding these bytes when the release was uploaded: the MD5 of the
   * bytes, as the handler writes each file with one PutObject into an SSE-S3 bucket. A later release skips a pool
   * key only if its size and CRC-32 match a manifest's record and the key still has that record's ETag.
   * Absent in manifests written before cdk-rollback recorded it.
   */
  readonly etag?: string;
}
