/**
 * Helpers for the users' own tests of their stacks: `import { snapshotSerializer } from 'cdk-rollback/testing'`.
 *
 * Not part of the jsii API (a jest serializer is a JavaScript object, meaningful in TypeScript and JavaScript
 * tests only): lib/index.ts does not export it.
 */

/** A 64-hex-digit asset hash (aws-cdk-lib's asset hashes are SHA-256): S3 keys, asset ids, asset paths. */
const ASSET_HASH = /[0-9a-f]{64}/g;
/** The fingerprint SafeLambdaApi writes into each published version's description. */
const VERSION_FINGERPRINT = /\bcdk-rollback [0-9a-f]{32}\b/g;
/** The first lines of VersionedSite's router (a CloudFront Function rendered from this library's code). */
const ROUTER_MARKER = '// cdk-rollback VersionedSite router';

/** What each masked part reads as in a snapshot. */
export const MASKED_ASSET_HASH = '[ASSET HASH]';
export const MASKED_VERSION_FINGERPRINT = 'cdk-rollback [VERSION FINGERPRINT]';
export const MASKED_ROUTER_CODE = '[cdk-rollback VersionedSite router code]';

/**
 * Masks, in one string of a synthesized template, what an upgrade of cdk-rollback changes although your stack
 * did not: the asset hashes of the prebundled handlers (and of every other asset: a hash is a hash), the version
 * fingerprints of SafeLambdaApi and the code of VersionedSite's router.
 */
export function maskTemplateString(value: string): string {
  if (value.includes(ROUTER_MARKER)) return MASKED_ROUTER_CODE;
  return value.replace(ASSET_HASH, MASKED_ASSET_HASH).replace(VERSION_FINGERPRINT, MASKED_VERSION_FINGERPRINT);
}

function needsMasking(value: string): boolean {
  ASSET_HASH.lastIndex = 0;
  VERSION_FINGERPRINT.lastIndex = 0;
  return value.includes(ROUTER_MARKER) || ASSET_HASH.test(value) || VERSION_FINGERPRINT.test(value);
}

/** The subset of jest's `NewPlugin` this serializer uses (so that this package needs no jest types). */
export interface SnapshotSerializer {
  test(value: unknown): boolean;
  serialize(value: unknown, config: unknown, indentation: string, depth: number, refs: unknown, printer: SnapshotPrinter): string;
}

/** jest's printer callback. */
export type SnapshotPrinter = (value: unknown, config: unknown, indentation: string, depth: number, refs: unknown) => string;

/**
 * A jest snapshot serializer for `Template.fromStack(stack).toJSON()`: every string that holds an asset hash, a
 * SafeLambdaApi version fingerprint or VersionedSite's router code is printed masked, so upgrading cdk-rollback
 * does not churn your snapshots; what you changed still shows.
 *
 * `expect.addSnapshotSerializer(snapshotSerializer)` in a test file, or `snapshotSerializers:
 * ['cdk-rollback/testing/jest-serializer']` in your jest config.
 */
export const snapshotSerializer: SnapshotSerializer = {
  test: (value) => typeof value === 'string' && needsMasking(value),
  serialize: (value, config, indentation, depth, refs, printer) =>
    printer(maskTemplateString(value as string), config, indentation, depth, refs),
};
