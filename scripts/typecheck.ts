// `bun run typecheck`: every layer checked against its own runtime, so that the compiler keeps them
// apart. common/ has none (platform.d.ts lists the little it assumes), common/node/ has Node's
// built-ins (which Bun provides too), the dispatcher has Bun's, the render server Node's, the page
// the browser's; the tests, scripts and benchmarks (the root project) see both programs.

import { join } from 'node:path';

export const PROJECTS = ['common', 'common/node', 'app', 'render', 'client', '.'];

const root = join(import.meta.dir, '..');
let failed = 0;
for (const project of PROJECTS) {
  const proc = Bun.spawnSync([join(root, 'node_modules/.bin/tsc'), '--noEmit', '-p', project], { cwd: root, stdout: 'inherit', stderr: 'inherit' });
  console.log(`typecheck ${project}: ${proc.exitCode === 0 ? 'ok' : 'errors'}`);
  if (proc.exitCode !== 0) failed++;
}
process.exit(failed ? 1 : 0);
