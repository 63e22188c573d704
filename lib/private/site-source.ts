import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

/** Relative paths (with `/`) of every file under `dir`, sorted. Symbolic links are followed. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.statSync(path.join(dir, r));
      if (st.isDirectory()) walk(r);
      else if (st.isFile()) out.push(r);
    }
  };
  walk('');
  return out.sort();
}

/**
 * Content hash of a build folder: SHA-256 over every file's relative path and SHA-256. Independent of the
 * checkout path, timestamps and file modes, so the same build gives the same hash on every machine.
 */
export function hashFolder(dir: string): string {
  const h = crypto.createHash('sha256');
  for (const rel of listFiles(dir)) {
    const fileHash = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, rel))).digest('hex');
    h.update(`${rel}\0${fileHash}\n`);
  }
  return h.digest('hex');
}

/** Release id: the source hash combined with the layout rules (a new rule means a new release). 20 hex chars. */
export function releaseIdOf(sourceHash: string, layout: string): string {
  return crypto.createHash('sha256').update(`${sourceHash}\n${layout}`).digest('hex').slice(0, 20);
}
