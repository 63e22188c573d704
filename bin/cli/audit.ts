/**
 * Audit trail of every rollback / restore / promote: one line printed (who, what, from, to, when)
 * and the same entry recorded in an SSM parameter per target, where `status` shows the last ones.
 *
 * Parameter: `/cdk-rollback/audit/<kind>/<target>` (String, JSON array, newest first, at most 10 entries).
 */
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
    const { GetCallerIdentityCommand, STSClient } = await import('@aws-sdk/client-sts');
    const out = await new STSClient(ctx.clientConfig).send(new GetCallerIdentityCommand({}));
    return out.Arn ?? 'unknown';
  } catch (err) {
    ctx.warn(`could not read the caller identity (${reasonOf(err)})`);
    return 'unknown';
  }
}

type TrailRead = { ok: true; entries: AuditEntry[] } | { ok: false; reason: string };

/** Reads the trail; a missing parameter is an empty trail, any other failure (or a value that is not a list) is not. */
async function readTrail(ctx: Context, name: string): Promise<TrailRead> {
  let value: string | undefined;
  try {
    const { GetParameterCommand, SSMClient } = await import('@aws-sdk/client-ssm');
    value = (await new SSMClient(ctx.clientConfig).send(new GetParameterCommand({ Name: name }))).Parameter?.Value;
  } catch (err) {
    if ((err as Error).name === 'ParameterNotFound') return { ok: true, entries: [] };
    return { ok: false, reason: reasonOf(err) };
  }
  try {
    const parsed: unknown = JSON.parse(value ?? '[]');
    if (!Array.isArray(parsed)) return { ok: false, reason: 'its value is not a JSON list' };
    return { ok: true, entries: parsed as AuditEntry[] };
  } catch {
    return { ok: false, reason: 'its value is not JSON' };
  }
}

/** The trail for `status`; a read failure is a warning and an empty list. */
export async function readAudit(ctx: Context, kind: AuditKind, target: string): Promise<AuditEntry[]> {
  const name = auditParameterName(kind, target);
  const r = await readTrail(ctx, name);
  if (r.ok) return r.entries;
  ctx.warn(`could not read the audit record ${name} (${r.reason})`);
  return [];
}

export interface AuditRecord { entry: AuditEntry; line: string; recordedIn?: string }

/** An audit record being prepared: its reads run alongside the command's own reads, its write after the change. */
export interface PendingAudit {
  /** Prints nothing itself: returns the entry and its line, and records it in SSM when that is safe. */
  record(action: string, from: string, to: string): Promise<AuditRecord>;
}

/**
 * Starts the audit reads (STS GetCallerIdentity, SSM GetParameter) now, in parallel with the command's plan, so
 * they add no round trip before the change; the write (PutParameter) comes after the change.
 * The trail is rewritten only when it was read: a failed read leaves the parameter (and its earlier entries)
 * untouched and the entry is only printed, with a warning. A failed write is a warning too: the change stands.
 */
export function startAudit(ctx: Context, kind: AuditKind, target: string): PendingAudit {
  const name = auditParameterName(kind, target);
  // Sent with the command's first requests (independent of them), awaited only after the change.
  const who = callerIdentity(ctx);
  const trail = readTrail(ctx, name);
  return {
    async record(action, from, to) {
      const entry: AuditEntry = { at: iso(new Date()), who: await who, action, target, from, to };
      const line = formatAudit(entry);
      const previous = await trail;
      if (!previous.ok) {
        ctx.warn(`the change was made, but the audit record ${name} could not be read (${previous.reason}): it was not rewritten, ` +
          'so its earlier entries are kept; this entry is only printed');
        return { entry, line };
      }
      try {
        let entries = [entry, ...previous.entries].slice(0, MAX_ENTRIES);
        while (entries.length > 1 && JSON.stringify(entries).length > MAX_VALUE_CHARS) entries = entries.slice(0, -1);
        const { PutParameterCommand, SSMClient } = await import('@aws-sdk/client-ssm');
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
    },
  };
}

/** Reads then records in one go (for commands whose change takes long anyway). */
export async function audit(ctx: Context, kind: AuditKind, target: string, action: string, from: string, to: string): Promise<AuditRecord> {
  return startAudit(ctx, kind, target).record(action, from, to);
}
