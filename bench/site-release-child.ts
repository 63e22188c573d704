/**
 * Bench only, run as its own Node process by bench/site-upload.ts: loads the prebundled VersionedSite release
 * handler (dist/handlers/site-release/index.js, exactly what Lambda runs) and times one `onEvent`, the whole
 * handler: upload, manifest, history, activation (KeyValueStore), invalidation, prune. It loads nothing else,
 * so the peak RSS it reports (VmHWM) is the handler's own.
 *
 * argv: <handler index.js> <event JSON>. Prints one line `BENCH-RESULT {...}` on stdout.
 */
import * as fs from 'fs';

function peakRssKb(): number {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
  if (!line) throw new Error('no VmHWM in /proc/self/status');
  return Number(line.split(/\s+/)[1]);
}

async function main(): Promise<void> {
  const [handlerFile, eventJson] = process.argv.slice(2);
  const event = JSON.parse(eventJson) as unknown;
  const t0 = process.hrtime.bigint();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const handler = require(handlerFile) as { onEvent(e: unknown): Promise<{ PhysicalResourceId: string; Data?: Record<string, string> }> };
  const t1 = process.hrtime.bigint();
  const res = await handler.onEvent(event);
  const t2 = process.hrtime.bigint();
  const out = {
    ms: Number(t2 - t1) / 1e6,
    loadMs: Number(t1 - t0) / 1e6,
    maxRssMb: peakRssKb() / 1024,
    detail: `invalidations ${res.Data?.InvalidationIds || '(none)'}`,
  };
  process.stdout.write(`BENCH-RESULT ${JSON.stringify(out)}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
