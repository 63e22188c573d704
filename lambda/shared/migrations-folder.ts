/**
 * Reads a migrations folder: `NNNN_name.sql` (up) and optional `NNNN_name.down.sql` (down) files.
 * Shared by the construct (synth-time checks, fingerprint), the runner Lambda and the CLI. No CDK imports.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

export const MIGRATION_FILE_PATTERN = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_-]*?)(\.down)?\.sql$/;
const PATTERN_TEXT = 'NNNN_name.sql or NNNN_name.down.sql (digits, underscore, letters/digits/_/-)';

export interface MigrationFile {
  /** The version as written in the file name, e.g. `0003`. */
  readonly version: string;
  /** The name part, e.g. `add_orders`. */
  readonly name: string;
  /** File name of the up migration, e.g. `0003_add_orders.sql`. */
  readonly file: string;
  readonly sql: string;
  /** sha256 (hex) of the up file's bytes. */
  readonly checksum: string;
  /** File name of the down migration, when there is one. */
  readonly downFile?: string;
  readonly downSql?: string;
}

/** Compares two versions numerically ('0010' > '9'). */
export function compareVersions(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Reads and checks `dir`; throws a one-line error naming the problem: a missing folder, no migration, a file that
 * does not match the pattern, two files with the same version, a down file without its up file.
 * Hidden files (starting with `.`, e.g. `.gitkeep`) and sub-folders are ignored.
 */
export function readMigrations(dir: string, what = 'migrations folder'): MigrationFile[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new Error(`${what} does not exist or is not a folder: ${dir}`);
  }
  const names = fs.readdirSync(dir).filter((f) => !f.startsWith('.') && fs.statSync(path.join(dir, f)).isFile()).sort();
  const ups = new Map<string, { version: string; name: string; file: string }>();
  const downs = new Map<string, { version: string; name: string; file: string }>();
  for (const file of names) {
    const m = MIGRATION_FILE_PATTERN.exec(file);
    if (!m) {
      throw new Error(`${what} ${dir}: file '${file}' does not match ${PATTERN_TEXT}`);
    }
    const [, version, name, down] = m;
    const key = BigInt(version).toString();
    const map = down ? downs : ups;
    const seen = map.get(key);
    if (seen) {
      throw new Error(`${what} ${dir}: duplicate version ${version}: '${seen.file}' and '${file}'`);
    }
    map.set(key, { version, name, file });
  }
  for (const [key, d] of downs) {
    const up = ups.get(key);
    if (!up) throw new Error(`${what} ${dir}: down file '${d.file}' has no up file ${d.version}_${d.name}.sql`);
    if (up.name !== d.name || up.version !== d.version) {
      throw new Error(`${what} ${dir}: down file '${d.file}' does not match its up file '${up.file}' (expected ${up.version}_${up.name}.down.sql)`);
    }
  }
  if (ups.size === 0) {
    throw new Error(`${what} ${dir} holds no migration (${PATTERN_TEXT})`);
  }
  return [...ups.entries()]
    .sort(([a], [b]) => compareVersions(a, b))
    .map(([key, up]) => {
      const bytes = fs.readFileSync(path.join(dir, up.file));
      const down = downs.get(key);
      return {
        version: up.version,
        name: up.name,
        file: up.file,
        sql: bytes.toString('utf8'),
        checksum: sha256(bytes),
        ...(down ? { downFile: down.file, downSql: fs.readFileSync(path.join(dir, down.file), 'utf8') } : {}),
      };
    });
}

/** Hash of every migration file (names and bytes, up and down): changes whenever a migration changes. */
export function migrationsFingerprint(files: MigrationFile[]): string {
  const h = createHash('sha256');
  for (const f of files) {
    h.update(`${f.file}\0${f.checksum}\0`);
    if (f.downFile !== undefined) h.update(`${f.downFile}\0${sha256(f.downSql ?? '')}\0`);
  }
  return h.digest('hex');
}
