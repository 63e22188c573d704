import { spawnSync } from 'child_process';
import * as path from 'path';
import { App, Stage, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks } from 'cdk-nag';
import { requireTool } from './tools';

/**
 * cfn-lint rules ignored for every template, each with the reason. Keep this list
 * short: a finding in our own templates is a bug to fix, not to ignore.
 */
export const CFN_LINT_IGNORES: ReadonlyArray<{ rule: string; reason: string }> = [];

export interface ValidatedAssembly {
  readonly assembly: CloudAssembly;
  /** Templates by stack artifact id (nested stages included, as `Stage/Stack`). */
  readonly templates: Record<string, Template>;
}

const withNag = new WeakSet<Stage>();

/**
 * Synthesizes `app` with cdk-nag AwsSolutionsChecks registered through
 * `Validations.of(app).addPlugins(...)` (synth throws on an unacknowledged error),
 * then runs cfn-lint over every synthesized template, requiring 0 errors and
 * 0 warnings.
 */
export function synthAndValidate(app: App | Stage): ValidatedAssembly {
  if (!withNag.has(app)) {
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    withNag.add(app);
  }
  const assembly = app.synth({ force: true });

  const files: string[] = [];
  const templates: Record<string, Template> = {};
  for (const stack of assembly.stacksRecursively) {
    files.push(path.join(stack.assembly.directory, stack.templateFile));
    templates[stack.hierarchicalId] = Template.fromJSON(stack.template);
  }
  if (files.length === 0) {
    throw new Error('synthAndValidate: the app synthesized no stack');
  }
  runCfnLint(files);
  return { assembly, templates };
}

interface CfnLintMatch {
  Rule: { Id: string };
  Level: string;
  Message: string;
  Filename: string;
  Location: { Path?: Array<string | number> };
}

/** Runs cfn-lint on `files`; throws listing every error and warning. */
export function runCfnLint(files: string[]): void {
  requireTool('cfn-lint');
  const args = ['--format', 'json'];
  for (const { rule } of CFN_LINT_IGNORES) args.push('--ignore-checks', rule);
  const res = spawnSync('cfn-lint', [...args, '--', ...files], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (res.error) throw res.error;
  let matches: CfnLintMatch[];
  try {
    matches = JSON.parse(res.stdout || '[]');
  } catch {
    throw new Error(`cfn-lint printed no JSON (exit ${res.status}): ${res.stdout}\n${res.stderr}`);
  }
  const findings = matches.filter((m) => m.Level === 'Error' || m.Level === 'Warning');
  if (findings.length > 0) {
    const lines = findings.map((m) =>
      `${m.Level} ${m.Rule.Id} ${path.basename(m.Filename)} ${(m.Location.Path ?? []).join('/')}: ${m.Message}`);
    throw new Error(`cfn-lint found ${findings.length} problem(s):\n${lines.join('\n')}`);
  }
  if (res.status !== 0 && matches.length === 0) {
    throw new Error(`cfn-lint failed (exit ${res.status}): ${res.stderr}`);
  }
}
