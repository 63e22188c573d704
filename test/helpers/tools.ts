import { spawnSync } from 'child_process';

const INSTALL_HINT = 'Install it with: pip install "moto[server]" cfn-lint';

/**
 * Fails fast, with an install hint, when a required external tool is missing.
 * Tests never skip silently because a tool is absent.
 */
export function requireTool(command: string, versionArgs: string[] = ['--version']): void {
  const res = spawnSync(command, versionArgs, { encoding: 'utf8', timeout: 60_000 });
  if (res.error || res.status !== 0) {
    const why = res.error ? res.error.message : `exit ${res.status}: ${(res.stderr || '').trim().split('\n').pop()}`;
    throw new Error(`\`${command}\` is required by the tests but is not usable (${why}). ${INSTALL_HINT}`);
  }
}
