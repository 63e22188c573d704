/**
 * Names shared by the constructs (lib/), their handlers (lambda/) and the CLI (bin/).
 *
 * This module imports nothing, so handlers can bundle it without pulling in CDK code.
 * Every value here is part of the deployed contract: changing one strands resources
 * that were deployed with the old value.
 */

/** CloudFormation resource Metadata key that marks resources for the CLI. */
export const CLI_METADATA_KEY = 'cdk-rollback';

/** The constructs the CLI knows. */
export type ConstructKind = 'SafeLambdaApi' | 'VersionedSite' | 'PreMigrationSnapshot' | 'DatabaseMigrations';

/**
 * The value of the `cdk-rollback` metadata entry on a marked resource.
 *
 * Roles by kind:
 * - SafeLambdaApi: `function` (AWS::Lambda::Function), `application` (AWS::CodeDeploy::Application),
 *   `deployment-group` (AWS::CodeDeploy::DeploymentGroup), `api` (the REST or HTTP API).
 * - VersionedSite: `bucket`, `distribution`, `key-value-store`.
 * - PreMigrationSnapshot: `snapshot` (the custom resource; its `ClusterIdentifier` property names the cluster).
 * - DatabaseMigrations: `migrations` (the custom resource).
 */
export interface CliMetadata {
  readonly version: 1;
  readonly kind: ConstructKind;
  readonly role: string;
  /** Construct path of the owning construct, as accepted by the CLI's `--target`. */
  readonly path: string;
}

/**
 * The value of the `cdk-rollback` entry of a stack's template-level `Metadata`: the constructs it holds, sorted by
 * path. `cdk-rollback status` (no `--stack`) lists the stacks that carry it (GetTemplateSummary).
 */
export interface CliStackMetadata {
  readonly version: 1;
  readonly constructs: ReadonlyArray<{ readonly kind: ConstructKind; readonly path: string }>;
}

/** SafeLambdaApi: the alias that serves traffic (API Gateway invokes it). */
export const LIVE_ALIAS = 'live';
/** SafeLambdaApi: the alias that points at the last version that passed a deployment. */
export const STABLE_ALIAS = 'stable';

/**
 * SafeLambdaApi: tags its deployment custom resource writes on the user's function at deploy time, so the CLI
 * finds the CodeDeploy application/group and the hook functions from `--function NAME` alone.
 */
export const TAG_CODEDEPLOY_APPLICATION = 'cdk-rollback:codedeploy-application';
export const TAG_CODEDEPLOY_GROUP = 'cdk-rollback:codedeploy-deployment-group';
export const TAG_PRE_TRAFFIC_HOOK = 'cdk-rollback:pre-traffic-hook';
export const TAG_POST_TRAFFIC_HOOK = 'cdk-rollback:post-traffic-hook';
/**
 * SafeLambdaApi: the version the deployment group's version alarms (error rate, p99 latency, throttles) watch,
 * i.e. the stack's TargetVersion. `cdk-rollback api promote` to any other version is watched by the hooks and
 * the API 5XX alarm only, so it asks for `--force`.
 */
export const TAG_ALARMED_VERSION = 'cdk-rollback:alarmed-version';

/** Tag keys written on resources the constructs create at deploy time (snapshots, functions). */
export const TAG_MANAGED_BY = 'cdk-rollback:managed-by';
export const TAG_STACK = 'cdk-rollback:stack';
export const TAG_CONSTRUCT_PATH = 'cdk-rollback:construct-path';
export const TAG_FINGERPRINT = 'cdk-rollback:fingerprint';
/** Value of TAG_MANAGED_BY. */
export const MANAGED_BY_VALUE = 'cdk-rollback';

// ---------------------------------------------------------------------------
// VersionedSite
// ---------------------------------------------------------------------------
/** KeyValueStore key holding the active release id (read by the viewer-request router function). */
export const SITE_KVS_ACTIVE_KEY = 'active';
/** KeyValueStore key holding the release id that was active before `active`. */
export const SITE_KVS_PREVIOUS_KEY = 'previous';
/** Bucket prefix of release files: `releases/<releaseId>/<path>`. */
export const SITE_RELEASES_PREFIX = 'releases/';
/**
 * Bucket object holding the release history, JSON:
 * `{ "releases": [{ "id", "createdAt", "sourceHash", "status", "activatedAt"? }] }`, newest first,
 * status one of `active` | `previous` | `retained` | `pruned` | `failed`.
 * Written by the release handler and by `cdk-rollback site rollback`.
 */
export const SITE_HISTORY_KEY = '_cdk-rollback/releases.json';

// ---------------------------------------------------------------------------
// PreMigrationSnapshot / DatabaseMigrations
// ---------------------------------------------------------------------------
/** Postgres schema and table of the migration history. */
export const MIGRATIONS_SCHEMA = 'cdk_rollback';
export const MIGRATIONS_TABLE = 'schema_migrations';
