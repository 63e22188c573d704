/**
 * `npm run bench`: runs every benchmark side by side in this one process and writes
 * bench/RESULTS.md with the machine and the date. Figures are ratios measured in the same run.
 *
 * For development, `BENCH_ONLY=VersionedSite,...` (names as in BENCHES) runs only those and prints their
 * sections to stdout instead of writing RESULTS.md, which always holds one whole run.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

interface Bench { readonly name: string; run(): Promise<string> }

const BENCHES: ReadonlyArray<{ name: string; module: string }> = [
  { name: 'SafeLambdaApi', module: './safe-lambda-api' },
  { name: 'DatabaseMigrations', module: './migrations' },
  { name: 'VersionedSite', module: './site-upload' },
  { name: 'cdk-rollback CLI', module: './cli' },
  { name: 'cdk-rollback CLI latency', module: './cli-latency' },
];

async function main(): Promise<void> {
  const sections: string[] = [];
  const loadAtStart = os.loadavg();
  const t0 = Date.now();
  const only = process.env.BENCH_ONLY?.split(',').map((n) => n.trim()).filter((n) => n !== '');
  const unknown = only?.filter((n) => !BENCHES.some((b) => b.name === n)) ?? [];
  if (unknown.length > 0) throw new Error(`BENCH_ONLY names ${unknown.join(', ')}: the benchmarks are ${BENCHES.map((b) => b.name).join(', ')}`);
  for (const { name, module } of BENCHES) {
    if (only && !only.includes(name)) continue;
    process.stderr.write(`bench: ${name}...\n`);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const bench = require(module) as Bench;
    sections.push((await bench.run()).trimEnd() + '\n');
  }
  if (only) {
    process.stdout.write(sections.join('\n'));
    return;
  }
  const cpus = os.cpus();
  const header = [
    '# Benchmark results',
    '',
    `Written by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}.`,
    `Machine: ${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ` +
      `${os.type()} ${os.release()}, Node.js ${process.version}.`,
    `Load average (1 min) at the start ${loadAtStart[0].toFixed(1)}, at the end ${os.loadavg()[0].toFixed(1)} ` +
      `(other work on the machine shifts absolute times; the side-by-side ratios are interleaved); the whole run took ` +
      `${Math.round((Date.now() - t0) / 60_000)} min.`,
    '',
  ];
  const file = path.join(__dirname, '..', '..', 'bench', 'RESULTS.md');
  fs.writeFileSync(file, [...header, ...sections].join('\n'));
  process.stderr.write(`bench: wrote ${file}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
