/**
 * What every command shares: the I/O streams, output mode (human or --json), colours,
 * progress on stderr, the confirmation gate, AWS client settings and the audit trail.
 */
import { createColors } from 'picocolors';

/** Streams and environment of one CLI run (tests pass their own). */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly stdin: NodeJS.ReadableStream;
  /** Whether stdin and stdout are a terminal (confirmation prompts and colours need one). */
  readonly isTTY: boolean;
  readonly env: NodeJS.ProcessEnv;
  /** Asks a yes/no question on the terminal; defaults to @inquirer/confirm. */
  readonly confirm?: (message: string) => Promise<boolean>;
}

/** Exit codes (documented in README.md, "The `cdk-rollback` CLI"). */
export const EXIT = {
  OK: 0,
  /** An AWS call or an operation failed. */
  FAILED: 1,
  /** Bad flags, a missing or ambiguous target, or --yes needed without a terminal. */
  USAGE: 2,
  /** A safety check refused the change (already live, newer than stable, ...). Nothing was changed. */
  REFUSED: 3,
  /** The operator answered "no" at the prompt. Nothing was changed. */
  ABORTED: 4,
} as const;

/** An error with a one-line reason and the exit code it maps to. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT.FAILED) {
    super(message);
    this.name = 'CliError';
  }
}

export function usage(message: string): CliError {
  return new CliError(message, EXIT.USAGE);
}

export function refused(message: string): CliError {
  return new CliError(message, EXIT.REFUSED);
}

/** Options common to every command. */
export interface GlobalOptions {
  readonly stack?: string;
  readonly target?: string;
  readonly region?: string;
  readonly profile?: string;
  readonly json?: boolean;
  readonly yes?: boolean;
  readonly dryRun?: boolean;
  /** Overrides a safety check (mutating commands): a stack update in progress, an impossible in-flight check, ... */
  readonly force?: boolean;
}

/** An AWS region name: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`. */
export const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

/** Default and bounds of the poll interval of every wait. */
const DEFAULT_POLL_SECONDS = 15;

/** What a command hands back: one JSON document, or human lines. */
export interface CommandResult {
  readonly data: Record<string, unknown>;
  readonly lines: string[];
  /** Non-zero when part of the command failed (e.g. one `status` section); the output is still printed. */
  readonly exitCode?: number;
}

export type Colors = ReturnType<typeof createColors>;

export class Context {
  readonly color: Colors;
  /** Steps already carried out, so a failure can say what was done. */
  readonly done: string[] = [];
  private readonly started = Date.now();
  /** The region named by the target itself (a function ARN), when `--region` is not given. */
  private targetRegion?: string;

  /** `mutating`: the command changes resources (stack-state checks apply, `--force` overrides them). */
  constructor(readonly io: CliIo, readonly opts: GlobalOptions, readonly mutating = false) {
    const noColor = io.env.NO_COLOR !== undefined && io.env.NO_COLOR !== '';
    this.color = createColors(io.isTTY && !noColor);
  }

  /**
   * Checks what every command depends on before any AWS call: `--region` and `CDK_ROLLBACK_POLL_SECONDS`.
   * Throws a usage error naming the flag or variable, the rule and the value.
   */
  validate(): void {
    if (this.opts.region !== undefined && !REGION_PATTERN.test(this.opts.region)) {
      throw usage(`\`--region\` must be an AWS region name such as us-east-1 or eu-west-2, got: ${this.opts.region}`);
    }
    this.pollMs();
    this.waitCapSeconds();
  }

  /** CDK_ROLLBACK_WAIT_SECONDS: an upper bound on every wait (each has its own default deadline), a positive number. */
  waitCapSeconds(): number | undefined {
    const raw = this.io.env.CDK_ROLLBACK_WAIT_SECONDS;
    if (raw === undefined || raw === '') return undefined;
    const n = Number(raw.trim());
    if (raw.trim() === '' || !Number.isFinite(n) || n <= 0) {
      throw usage(`CDK_ROLLBACK_WAIT_SECONDS must be a positive number of seconds (such as 600), got: ${raw}`);
    }
    return n;
  }

  /** The poll interval of every wait, from CDK_ROLLBACK_POLL_SECONDS (default 15 s): a positive number. */
  pollMs(): number {
    const raw = this.io.env.CDK_ROLLBACK_POLL_SECONDS;
    if (raw === undefined || raw === '') return DEFAULT_POLL_SECONDS * 1000;
    const n = Number(raw.trim());
    if (raw.trim() === '' || !Number.isFinite(n) || n <= 0) {
      throw usage(`CDK_ROLLBACK_POLL_SECONDS must be a positive number of seconds (such as 15 or 0.5), got: ${raw}`);
    }
    return n * 1000;
  }

  /** Uses the region of the target (from its ARN); a `--region` that names another region is a usage error. */
  useTargetRegion(region: string, what: string): void {
    if (!REGION_PATTERN.test(region)) throw usage(`${what} names region ${region}, which is not an AWS region name`);
    if (this.opts.region !== undefined && this.opts.region !== region) {
      throw usage(`${what} is in region ${region} but \`--region\` is ${this.opts.region}: drop --region or make them agree`);
    }
    this.targetRegion = region;
  }

  /** The region the AWS calls go to, when known without the SDK chain (flag or target). */
  get explicitRegion(): string | undefined {
    return this.opts.region ?? this.targetRegion;
  }

  get json(): boolean {
    return this.opts.json === true;
  }

  /** AWS SDK client settings: region and profile flags; everything else is the SDK default chain. */
  get clientConfig(): { region?: string; profile?: string } {
    const cfg: { region?: string; profile?: string } = {};
    const region = this.explicitRegion;
    if (region) cfg.region = region;
    if (this.opts.profile) cfg.profile = this.opts.profile;
    return cfg;
  }

  /** A progress line on stderr (never on stdout, which stays clean for --json). */
  progress(message: string): void {
    const secs = ((Date.now() - this.started) / 1000).toFixed(1).padStart(5);
    this.io.stderr.write(`${this.color.dim(`[${secs}s]`)} ${message}\n`);
  }

  warn(message: string): void {
    this.io.stderr.write(`${this.color.yellow(this.color.bold('warning:'))} ${message}\n`);
  }

  /** Records a completed step (reported if a later step fails). */
  step(description: string): void {
    this.done.push(description);
    this.progress(description);
  }

  /**
   * The confirmation gate of every state-changing command. `plan` lists what will change
   * (from -> to). Returns false for --dry-run (the caller prints the plan and stops).
   */
  async confirm(question: string, plan: string[]): Promise<boolean> {
    if (this.opts.dryRun) return false;
    if (this.opts.yes) return true;
    if (!this.io.isTTY) {
      throw usage('this command changes resources and there is no terminal to confirm on: pass --yes (or --dry-run to see the plan)');
    }
    for (const line of plan) this.io.stderr.write(`  ${line}\n`);
    const ask = this.io.confirm ?? defaultConfirm(this.io);
    let ok: boolean;
    try {
      ok = await ask(question);
    } catch (err) {
      // Ctrl-C / Ctrl-D at the prompt.
      if ((err as Error).name === 'ExitPromptError' || (err as Error).name === 'AbortPromptError') ok = false;
      else throw err;
    }
    if (!ok) throw new CliError('aborted at the prompt: nothing was changed', EXIT.ABORTED);
    return true;
  }

  /** Polls `check` until it returns a value, printing progress; `every` from CDK_ROLLBACK_POLL_SECONDS. */
  async waitFor<T>(what: string, check: () => Promise<{ done: true; value: T } | { done: false; state: string }>, timeoutSeconds: number): Promise<T> {
    const every = this.pollMs();
    const limit = Math.min(timeoutSeconds, this.waitCapSeconds() ?? timeoutSeconds);
    const deadline = Date.now() + limit * 1000;
    const t0 = Date.now();
    for (;;) {
      const r = await check();
      if (r.done) return r.value;
      const waited = Math.round((Date.now() - t0) / 1000);
      this.progress(`waiting for ${what}: ${r.state} (${waited} s)`);
      if (Date.now() + every > deadline) {
        throw new CliError(`timed out after ${waited} s waiting for ${what} (last state: ${r.state})`);
      }
      await new Promise((res) => setTimeout(res, every));
    }
  }
}

/**
 * A real `import()`: TypeScript compiles `import()` to `require()` for CommonJS output, and @inquirer/confirm is
 * an ES module, which `require()` cannot load before Node 20.19.
 */
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

function defaultConfirm(io: CliIo): (message: string) => Promise<boolean> {
  return async (message) => {
    // Loaded only when a prompt is really shown.
    // The prebundled CLI (scripts/bundle-cli.mjs defines CDK_ROLLBACK_BUNDLED) carries the prompt in a chunk of its own.
    const mod = (process.env.CDK_ROLLBACK_BUNDLED === 'true'
      ? await import('@inquirer/confirm')
      : await importEsm('@inquirer/confirm')) as typeof import('@inquirer/confirm');
    return mod.default({ message, default: false }, { input: io.stdin, output: io.stderr });
  };
}

/**
 * Resolves once the event loop has gone through its I/O phase twice: requests already started are on the wire.
 * Modules needed only later (a second round trip, the audit) are loaded after it, while the first requests are in
 * flight, instead of delaying them (loading an AWS SDK client is CPU time, not I/O).
 */
export function afterIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/** Formats a date as ISO-8601 without milliseconds, or '-' when absent. */
export function iso(d: Date | string | undefined): string {
  if (!d) return '-';
  const date = typeof d === 'string' ? new Date(d) : d;
  return Number.isNaN(date.getTime()) ? String(d) : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A one-line reason from any thrown value. */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const name = err.name && err.name !== 'Error' && err.name !== 'CliError' ? `${err.name}: ` : '';
    return `${name}${err.message}`.split('\n')[0];
  }
  return String(err);
}
