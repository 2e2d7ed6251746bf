// `bun run bench [name] [--smoke]`: runs the named benchmark (or all), prints a markdown table and
// writes the raw results as JSON to bench/results/. --smoke runs each in a second or two, as the
// tests do, so that the benchmarks cannot rot.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseFlags, configFromArgv, UsageError } from '../common/cli.ts';
import * as failure from './failure-detection.ts';
import * as input from './input-latency.ts';

interface Bench {
  run(smoke: boolean): Promise<{ table: string; raw: unknown }>;
}

const BENCHES: Record<string, Bench> = {
  'failure-detection': {
    async run(smoke) {
      const result = await failure.runFailureDetection(smoke ? failure.SMOKE : failure.FULL);
      return { table: failure.failureTable(result), raw: result };
    },
  },
  'input-latency': {
    async run(smoke) {
      const result = await input.runInputLatency(smoke ? input.SMOKE : input.FULL);
      return { table: input.inputLatencyTable(result), raw: result };
    },
  },
};

const USAGE = `usage: bun run bench [${Object.keys(BENCHES).join(' | ')}] [--smoke]`;

const options = configFromArgv('bench', USAGE, (argv) => {
  const names = argv.filter((a) => !a.startsWith('--'));
  const values = parseFlags(argv.filter((a) => a.startsWith('--')), { smoke: { type: 'boolean' }, help: { type: 'boolean' } });
  if (values.help) return null;
  for (const name of names) if (!BENCHES[name]) throw new UsageError(`no benchmark named ${name}`);
  return { names: names.length ? names : Object.keys(BENCHES), smoke: values.smoke ?? false };
});

const resultsDir = join(import.meta.dir, 'results');
mkdirSync(resultsDir, { recursive: true });
for (const name of options.names) {
  const { table, raw } = await BENCHES[name].run(options.smoke);
  const file = join(resultsDir, `${name}${options.smoke ? '.smoke' : ''}.json`);
  writeFileSync(file, `${JSON.stringify({ name, at: new Date().toISOString(), smoke: options.smoke, result: raw }, null, 2)}\n`);
  console.log(`\n${table}\n\nraw results: ${file}`);
}
