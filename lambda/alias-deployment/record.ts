/**
 * The record a forward Update leaves on the function before it moves any traffic: what `live` and
 * `stable` served before the update began, the request that wrote it, and the deployment it started.
 * The rollback Update of that update reads it back to restore exactly that (which may be an operator's
 * manual choice rather than the template's old version), and a retried event finds its own work in it.
 *
 * It is a tag on the function (durable, readable with GetFunction, no extra store), one per function:
 * the next forward Update overwrites it. Tag values allow letters, digits, spaces and `_ . : / = + - @`,
 * so the value is `target=6 live=3 stable=4 request=<id> deployment=d-XXXX`.
 */

/** Tag key of the record. Part of the deployed contract: do not rename. */
export const TAG_UPDATE_RECORD = 'cdk-rollback:update-record';

export interface UpdateRecord {
  /** The version the update deploys (its TargetVersion). */
  readonly target: string;
  /** The version `live` served before the update began. */
  readonly live: string;
  /** The version `stable` named before the update began ('' when there was none). */
  readonly stable: string;
  /** The CloudFormation RequestId of the update (sanitized to tag characters). */
  readonly request: string;
  /** The CodeDeploy deployment the update started ('' until it started one). */
  readonly deployment: string;
}

/** A RequestId in tag characters (CloudFormation's are UUIDs, which pass unchanged). */
export function requestTag(requestId: string): string {
  return requestId.replace(/[^\p{L}\p{N}_.:/+\-@]/gu, '_').slice(0, 128);
}

export function formatRecord(r: UpdateRecord): string {
  return `target=${r.target} live=${r.live} stable=${r.stable} request=${r.request} deployment=${r.deployment}`;
}

/** The record in a tag value, or undefined when there is none or it is not one. */
export function parseRecord(value: string | undefined): UpdateRecord | undefined {
  if (!value) return undefined;
  const fields = Object.fromEntries(value.split(' ').map((kv) => {
    const i = kv.indexOf('=');
    return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
  }));
  if (!/^\d+$/.test(fields.target ?? '') || !/^\d+$/.test(fields.live ?? '')) return undefined;
  return {
    target: fields.target,
    live: fields.live,
    stable: fields.stable ?? '',
    request: fields.request ?? '',
    deployment: fields.deployment ?? '',
  };
}
