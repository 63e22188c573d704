/**
 * Audit trail of every rollback / restore / promote: one line printed (who, what, from, to, when)
 * and the same entry recorded in an SSM parameter per target, where `status` shows the last ones.
 *
 * Parameter: `/cdk-rollback/audit/<kind>/<target>` (String, JSON array, newest first, at most 10 entries).
 */
import { GetParameterCommand, ParameterNotFound, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { Context, iso, reasonOf } from './context';

export type AuditKind = 'api' | 'site' | 'db';

export interface AuditEntry {
  readonly at: string;
  readonly who: string;
  readonly action: string;
  readonly target: string;
  readonly from: string;
  readonly to: string;
}

const MAX_ENTRIES = 10;
/** SSM standard parameters hold 4 KB. */
const MAX_VALUE_CHARS = 4000;

export function auditParameterName(kind: AuditKind, target: string): string {
  return `/cdk-rollback/audit/${kind}/${target.replace(/[^a-zA-Z0-9_.-]/g, '_')}`;
}

export function formatAudit(e: AuditEntry): string {
  return `AUDIT ${e.at} who=${e.who} action="${e.action}" target=${e.target} from=${e.from} to=${e.to}`;
}

/** The caller identity (STS GetCallerIdentity), or 'unknown' with a warning. */
export async function callerIdentity(ctx: Context): Promise<string> {
  try {
    const out = await new STSClient(ctx.clientConfig).send(new GetCallerIdentityCommand({}));
    return out.Arn ?? 'unknown';
  } catch (err) {
    ctx.warn(`could not read the caller identity (${reasonOf(err)})`);
    return 'unknown';
  }
}

export async function readAudit(ctx: Context, kind: AuditKind, target: string): Promise<AuditEntry[]> {
  try {
    const out = await new SSMClient(ctx.clientConfig).send(new GetParameterCommand({ Name: auditParameterName(kind, target) }));
    const parsed: unknown = JSON.parse(out.Parameter?.Value ?? '[]');
    return Array.isArray(parsed) ? (parsed as AuditEntry[]) : [];
  } catch (err) {
    if (err instanceof ParameterNotFound || (err as Error).name === 'ParameterNotFound') return [];
    ctx.warn(`could not read the audit record ${auditParameterName(kind, target)} (${reasonOf(err)})`);
    return [];
  }
}

/**
 * Prints nothing itself: returns the entry and its line; records it in SSM (a failure to record is a
 * warning, never a failure: the change has already been made).
 */
export async function audit(ctx: Context, kind: AuditKind, target: string, action: string, from: string, to: string):
Promise<{ entry: AuditEntry; line: string; recordedIn?: string }> {
  const entry: AuditEntry = { at: iso(new Date()), who: await callerIdentity(ctx), action, target, from, to };
  const line = formatAudit(entry);
  const name = auditParameterName(kind, target);
  try {
    const previous = await readAudit(ctx, kind, target);
    let entries = [entry, ...previous].slice(0, MAX_ENTRIES);
    while (entries.length > 1 && JSON.stringify(entries).length > MAX_VALUE_CHARS) entries = entries.slice(0, -1);
    await new SSMClient(ctx.clientConfig).send(new PutParameterCommand({
      Name: name,
      Type: 'String',
      Overwrite: true,
      Value: JSON.stringify(entries),
      Description: 'cdk-rollback audit trail (newest first)',
    }));
    return { entry, line, recordedIn: name };
  } catch (err) {
    ctx.warn(`the change was made but the audit record ${name} could not be written (${reasonOf(err)})`);
    return { entry, line };
  }
}
