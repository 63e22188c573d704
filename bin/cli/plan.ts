/**
 * A planned change: read and checked first, shown as from -> to lines, confirmed once (alone, or with the other
 * steps of `rollback --stack`), then executed.
 */
import { CommandResult, Context } from './context';

/** A planned change, confirmed once (alone, or with the other steps of `rollback --stack`), then executed. */
export interface StepPlan {
  readonly kind: 'site' | 'api';
  readonly label: string;
  readonly question: string;
  /** What will change (from -> to), shown before the confirmation. */
  readonly lines: string[];
  readonly data: Record<string, unknown>;
  readonly dryRunVerb: string;
  execute(): Promise<CommandResult>;
}

/** Confirms one plan and executes it (or prints it for --dry-run). */
export async function runPlan(ctx: Context, plan: StepPlan): Promise<CommandResult> {
  if (!(await ctx.confirm(plan.question, plan.lines))) {
    return { data: { dryRun: true, ...plan.data, plan: plan.lines }, lines: ['dry run: nothing was changed', ...plan.lines.map((p) => `  would ${plan.dryRunVerb}${p}`)] };
  }
  return plan.execute();
}

