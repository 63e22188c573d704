/**
 * `cdk-rollback`: status and one-command rollback of what SafeLambdaApi, VersionedSite,
 * PreMigrationSnapshot and DatabaseMigrations deploy.
 *
 * `main(argv, io)` returns the exit code, so tests run the CLI in-process. Command modules (and
 * the AWS SDK clients they use) are loaded only when their command runs: start-up stays short.
 */
import { Command, CommanderError, Option } from 'commander';
import { CliError, CliIo, CommandResult, Context, EXIT, GlobalOptions, reasonOf } from './context';

export { EXIT } from './context';
export type { CliIo } from './context';

function defaultIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    isTTY: Boolean(process.stdin.isTTY && process.stdout.isTTY),
    env: process.env,
  };
}

type Mutating = 'mutating' | 'read-only';

/** The commands that change resources: stack-state checks apply to them and `--force` overrides those. */
const mutatingCommands = new WeakSet<Command>();

function withCommon(cmd: Command, mode: Mutating): Command {
  cmd
    .option('--stack <name>', 'deployed CloudFormation stack to find targets in')
    .option('--target <path>', 'construct path of the target when the stack has several of a kind')
    .option('--region <region>', 'AWS region (default: the SDK chain: AWS_REGION, profile)')
    .option('--profile <name>', 'AWS named profile (default: the SDK chain)')
    .option('--json', 'print one machine-readable JSON document on stdout');
  if (mode === 'mutating') {
    cmd
      .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
      .option('--dry-run', 'show what would change, change nothing')
      .option('--force', 'override the safety check a refusal names (a stack update in progress, an in-flight check that cannot be made, a version newer than `stable`, a promote the version alarms do not watch, another cluster\'s snapshot)');
    mutatingCommands.add(cmd);
  }
  return cmd;
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  let exitCode: number = EXIT.OK;

  const run = (handler: (ctx: Context, opts: Record<string, unknown>) => Promise<CommandResult>) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const opts = cmd.opts() as Record<string, unknown> & GlobalOptions;
      const ctx = new Context(io, opts, mutatingCommands.has(cmd));
      try {
        ctx.validate();
        const result = await handler(ctx, opts);
        if (ctx.json) io.stdout.write(`${JSON.stringify({ ok: (result.exitCode ?? 0) === 0, ...result.data }, null, 2)}\n`);
        else if (result.lines.length > 0) io.stdout.write(`${result.lines.join('\n')}\n`);
        exitCode = result.exitCode ?? EXIT.OK;
      } catch (err) {
        exitCode = err instanceof CliError ? err.exitCode : EXIT.FAILED;
        const reason = reasonOf(err);
        io.stderr.write(`${ctx.color.red('cdk-rollback: error:')} ${reason}\n`);
        if (ctx.done.length > 0) io.stderr.write(`done before the failure: ${ctx.done.join('; ')}\n`);
        if (ctx.json) io.stdout.write(`${JSON.stringify({ ok: false, error: reason, exitCode, done: ctx.done }, null, 2)}\n`);
      }
    };

  const program = new Command('cdk-rollback')
    .description('Status and one-command rollback of SafeLambdaApi, VersionedSite and database releases.')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });

  const siteFlags = (cmd: Command) => cmd
    .option('--kvs <arn>', 'KeyValueStore ARN (with --bucket and --distribution, instead of --stack)')
    .option('--bucket <name>', 'the site bucket')
    .option('--distribution <id>', 'the CloudFront distribution id');

  siteFlags(withCommon(program.command('status'), 'read-only'))
    .description('stack status, live/stable API versions, active site release, latest snapshots and migrations (no target: every stack with cdk-rollback constructs, one line each)')
    .option('--function <name>', 'a SafeLambdaApi function (instead of --stack)')
    .option('--cluster <id>', 'an Aurora cluster with pre-migration snapshots')
    .action(run(async (ctx, o) => (await import('./status')).status(ctx, o)));

  withCommon(program.command('rollback'), 'mutating')
    .description('the whole release back, one plan and one confirmation: site (previous release), then API (live -> stable); database options printed, not run')
    .action(run(async (ctx) => (await import('./rollback')).rollbackStack(ctx)));

  const api = program.command('api').description('SafeLambdaApi: roll back or promote the `live` alias');
  withCommon(api.command('rollback'), 'mutating')
    .description('stop an in-flight deployment (auto rollback), else point `live` at `stable` (or --to)')
    .option('--function <name>', 'the function (instead of --stack)')
    .option('--to <version>', 'roll back to this version (must be `stable` or older unless --force)')
    .action(run(async (ctx, o) => (await import('./api')).apiRollback(ctx, o as { function?: string; to?: string; force?: boolean })));
  withCommon(api.command('promote'), 'mutating')
    .description('CodeDeploy deployment (hooks, alarms) of `live` to a chosen version')
    .option('--function <name>', 'the function (instead of --stack)')
    .requiredOption('--to <version>', 'the version to deploy')
    .option('--wait', 'wait until the deployment ends, with progress')
    .action(run(async (ctx, o) => (await import('./api')).apiPromote(ctx, o as { function?: string; to: string; wait?: boolean; force?: boolean })));

  const site = program.command('site').description('VersionedSite: list releases, flip back to one');
  siteFlags(withCommon(site.command('releases'), 'read-only'))
    .description('releases with status and dates; the active one marked')
    .action(run(async (ctx, o) => (await import('./site')).siteReleases(ctx, o)));
  siteFlags(withCommon(site.command('rollback'), 'mutating'))
    .description('point the site at the previous release (or --to), then invalidate like a deploy')
    .option('--to <release>', 'a retained release id (default: the previous release)')
    .option('--wait', 'wait for the CloudFront invalidation to complete')
    .action(run(async (ctx, o) => (await import('./site')).siteRollback(ctx, o)));

  const db = program.command('db').description('Databases: snapshots, emergency snapshot, restore, restore drill, migrations');
  withCommon(db.command('snapshots'), 'read-only')
    .description('pre-migration snapshots of the cluster, newest first')
    .option('--cluster <id>', 'the Aurora cluster (instead of --stack)')
    .action(run(async (ctx, o) => (await import('./db')).dbSnapshots(ctx, o)));
  withCommon(db.command('restore'), 'mutating')
    .description('restore a snapshot into a NEW cluster shaped like the source, with a writer instance')
    .requiredOption('--snapshot <id>', 'the DB cluster snapshot to restore')
    .option('--cluster <id>', 'the source cluster (default: the snapshot\'s cluster)')
    .option('--new-cluster-id <id>', 'identifier of the new cluster (default: <source>-restored-<timestamp>)')
    .option('--instance-class <class>', 'writer instance class (default: the source writer\'s)')
    .action(run(async (ctx, o) => (await import('./db')).dbRestore(ctx, o)));
  withCommon(db.command('drill'), 'mutating')
    .description('restore the newest pre-migration snapshot into a temporary cluster, check it, delete it')
    .option('--cluster <id>', 'the Aurora cluster (instead of --stack)')
    .option('--check-sql <sql>', 'a query to run on the restored cluster through the RDS Data API')
    .option('--secret-arn <arn>', 'Secrets Manager secret for the Data API (default: the cluster\'s managed master secret)')
    .option('--database <name>', 'database for --check-sql')
    .option('--instance-class <class>', 'writer instance class (default: the source writer\'s)')
    .action(run(async (ctx, o) => (await import('./db')).dbDrill(ctx, o)));
  withCommon(db.command('snapshot'), 'mutating')
    .description('take an emergency manual snapshot of the cluster now (kept: retention never deletes it), wait until available')
    .option('--cluster <id>', 'the Aurora cluster (instead of --stack)')
    .option('--snapshot-id <id>', 'identifier of the snapshot (default: <cluster>-emergency-<timestamp>)')
    .option('--timeout <minutes>', 'stop waiting after this many minutes (the snapshot is kept)', '60')
    .action(run(async (ctx, o) => (await import('./db')).dbSnapshot(ctx, o)));
  const urlOpt = () => new Option('--database-url <url>', 'PostgreSQL connection string (or DATABASE_URL) of a database you reach yourself');
  const runnerOpt = () => new Option('--function <name>', 'the DatabaseMigrations runner Lambda (instead of --stack)');
  withCommon(db.command('migrate'), 'mutating')
    .description('apply pending migrations: the deployed ones through the runner (--stack/--function), or DIR to --database-url')
    .option('--dir <dir>', 'folder of NNNN_name.sql migrations (with --database-url)')
    .addOption(urlOpt())
    .addOption(runnerOpt())
    .action(run(async (ctx, o) => (await import('./migrate')).dbMigrate(ctx, o)));
  withCommon(db.command('down'), 'mutating')
    .description('revert migrations above VERSION with their .down.sql files (through the runner, or DIR on --database-url)')
    .option('--dir <dir>', 'folder of NNNN_name.sql and NNNN_name.down.sql migrations (with --database-url)')
    .requiredOption('--to <version>', 'the version to go back to (it stays applied)')
    .addOption(urlOpt())
    .addOption(runnerOpt())
    .action(run(async (ctx, o) => (await import('./migrate')).dbDown(ctx, o)));
  withCommon(db.command('history'), 'read-only')
    .description('migrations applied to the database (through the runner, or --database-url)')
    .addOption(urlOpt())
    .addOption(runnerOpt())
    .action(run(async (ctx, o) => (await import('./migrate')).dbHistory(ctx, o)));

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help / --version print and exit 0; every parse error is a usage error.
      if (err.exitCode === 0) return EXIT.OK;
      if (argv.includes('--json')) {
        io.stdout.write(`${JSON.stringify({ ok: false, error: err.message.replace(/^error: /, ''), exitCode: EXIT.USAGE, done: [] }, null, 2)}\n`);
      }
      return EXIT.USAGE;
    }
    io.stderr.write(`cdk-rollback: error: ${reasonOf(err)}\n`);
    return EXIT.FAILED;
  }
  return exitCode;
}
