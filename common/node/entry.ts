// An entry file's first step, for both programs: the config from process.argv, or the usage on
// stdout and exit 0 for --help, or the message and usage on stderr and exit 2 for a bad flag.
// Node's process object, which Bun provides as well; the flag tables themselves are in
// ../flags.ts, with no runtime.

import { UsageError } from '../flags.ts';

/** `parse` returns null for --help and throws UsageError for a bad flag. */
export function configFromArgv<C>(program: string, usage: string, parse: (argv: string[]) => C | null): C {
  let config: C | null;
  try {
    config = parse(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${program}: ${error.message}\n\n${usage}`);
    process.exit(2);
  }
  if (config === null) {
    console.log(usage);
    process.exit(0);
  }
  return config;
}
