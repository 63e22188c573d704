// What a release event means: the stack status (a forward update or CloudFormation's rollback) and the record of
// what served before each deploy, so the rollback Update restores exactly that. No CDK imports.
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { S3Client } from '@aws-sdk/client-s3';
import { getText, putJson } from './bucket';
import { isTransient, withRetry } from './retry';

/**
 * Bucket object holding the newest release events of this site, newest first, JSON `{ "deployments": [...] }`.
 * Written before the pointer moves, so a rollback Update (or a retry of the same request) knows what served before.
 */
export const SITE_DEPLOYMENTS_KEY = '_cdk-rollback/deployments.json';
/** How many deployment records the object keeps. */
export const MAX_DEPLOYMENT_RECORDS = 50;

export interface DeploymentRecord {
  /** CloudFormation RequestId of the event (a retried event carries the same one). */
  readonly requestId: string;
  /** `deploy`: Create or forward Update; `rollback`: the Update CloudFormation sends while rolling the stack back. */
  readonly kind: 'deploy' | 'rollback';
  readonly logicalResourceId: string;
  /** The template's release before the update (OldResourceProperties.ReleaseId); absent for a Create. */
  readonly templateFrom?: string;
  /** The release this event activates. */
  readonly to: string;
  /** What the KeyValueStore's `active` key held when the event began: what actually served. */
  readonly servedBefore?: string;
  readonly startedAt: string;
  /** Set once the pointer moved and the invalidations were created. */
  invalidationIds?: string[];
  completedAt?: string;
}

export async function readDeployments(s3: S3Client, bucketName: string): Promise<DeploymentRecord[]> {
  const text = await getText(s3, bucketName, SITE_DEPLOYMENTS_KEY);
  if (text === undefined) return [];
  try {
    const parsed = JSON.parse(text) as { deployments?: DeploymentRecord[] };
    return Array.isArray(parsed.deployments) ? parsed.deployments : [];
  } catch {
    // A damaged record file must not block every later release: it is rewritten with the next record.
    return [];
  }
}

/** Adds or replaces the record of `record.requestId`, newest first, keeping MAX_DEPLOYMENT_RECORDS. */
export async function saveDeployment(s3: S3Client, bucketName: string, record: DeploymentRecord): Promise<void> {
  const others = (await readDeployments(s3, bucketName)).filter((r) => r.requestId !== record.requestId);
  const all = [record, ...others]
    .sort((a, b) => (a.startedAt === b.startedAt ? 0 : a.startedAt < b.startedAt ? 1 : -1))
    .slice(0, MAX_DEPLOYMENT_RECORDS);
  await putJson(s3, bucketName, SITE_DEPLOYMENTS_KEY, { deployments: all });
}

/**
 * The forward deploy a rollback Update undoes: the newest record of the resource, when it is a `deploy` to the
 * release the rollback leaves (`OldResourceProperties.ReleaseId`). Anything else (a newer rollback, a deploy to
 * another release) means the failed update recorded nothing, so it never moved the pointer: undefined.
 */
export function deployToUndo(records: readonly DeploymentRecord[], logicalResourceId: string, leaving: string): DeploymentRecord | undefined {
  const newest = records.find((r) => r.logicalResourceId === logicalResourceId);
  return newest && newest.kind === 'deploy' && newest.to === leaving ? newest : undefined;
}

export type StackPhase = 'rollback' | 'forward' | 'unknown';

/**
 * The stack's phase, read with DescribeStacks from the event's StackId: `rollback` while CloudFormation rolls the
 * stack back (`UPDATE_ROLLBACK_IN_PROGRESS`: the Update then carries the old properties). Transient errors are
 * retried; anything else gives `unknown`.
 */
export async function stackPhase(cfn: CloudFormationClient, stackId: string, log: (line: string) => void): Promise<{ phase: StackPhase; status?: string }> {
  try {
    const out = await withRetry('DescribeStacks', () => cfn.send(new DescribeStacksCommand({ StackName: stackId })), isTransient, log);
    const status = out.Stacks?.[0]?.StackStatus ?? '';
    return { phase: status.endsWith('ROLLBACK_IN_PROGRESS') ? 'rollback' : 'forward', status };
  } catch (e) {
    log(`could not read the status of stack ${stackId}: ${String(e)}`);
    return { phase: 'unknown' };
  }
}
