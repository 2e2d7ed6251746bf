// `bun run test`: the one gate. Typecheck, then every suite — bun's (dispatcher, protocol), node's
// (render server, cross-process, browser) — then one closing line `N passed, N failed`.

import { join } from 'node:path';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { HOME_ENV } from '../common/node/secret-file.ts';

const root = join(import.meta.dir, '..');
const testsIn = (dir: string): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true })
    .flatMap((entry) => (entry.isDirectory() ? testsIn(`${dir}/${entry.name}`) : entry.name.endsWith('.test.ts') ? [`${dir}/${entry.name}`] : []))
    .sort();

interface Step {
  name: string;
  cmd: string[];
  /** Reads the passed and failed counts from the step's output; null when it printed none. */
  count(output: string): { passed: number; failed: number } | null;
}

const lastNumber = (output: string, pattern: RegExp): number | null => {
  const all = [...output.matchAll(pattern)];
  return all.length ? Number(all.at(-1)![1]) : null;
};

const steps: Step[] = [
  {
    name: 'typecheck (each layer on its runtime)',
    cmd: ['bun', 'scripts/typecheck.ts'],
    count: () => null,
  },
  {
    name: 'bun test (dispatcher, protocol)',
    cmd: ['bun', 'test', ...testsIn('app').map((f) => `./${f}`), ...testsIn('common').map((f) => `./${f}`)],
    count: (out) => {
      const passed = lastNumber(out, /^\s*(\d+) pass$/gm);
      const failed = lastNumber(out, /^\s*(\d+) fail$/gm);
      return passed === null || failed === null ? null : { passed, failed };
    },
  },
  {
    name: 'node --test (render server, cross-process, browser)',
    cmd: ['node', '--import', 'tsx', '--test', '--test-reporter=tap', '--test-concurrency=1', ...testsIn('render'), ...testsIn('tests')],
    count: (out) => {
      const passed = lastNumber(out, /^# pass (\d+)$/gm);
      const failed = lastNumber(out, /^# fail (\d+)$/gm);
      const cancelled = lastNumber(out, /^# cancelled (\d+)$/gm) ?? 0;
      return passed === null || failed === null ? null : { passed, failed: failed + cancelled };
    },
  },
];

// Every dispatcher and render server the suites start finds its shared secret in the per-user
// file, as with no flags; pointed at a folder of the run's own, the user's real one is never read.
const home = mkdtempSync(join(tmpdir(), 'render-dispatch-test-home-'));
process.on('exit', () => rmSync(home, { recursive: true, force: true }));

let passed = 0;
let failed = 0;
for (const step of steps) {
  console.log(`\n=== ${step.name}`);
  const proc = Bun.spawn(step.cmd, { cwd: root, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, FORCE_COLOR: '0', [HOME_ENV]: home } });
  let output = '';
  const pump = async (stream: ReadableStream<Uint8Array>, sink: NodeJS.WriteStream) => {
    const decoder = new TextDecoder();
    const reader = stream.getReader();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      const text = decoder.decode(chunk.value, { stream: true });
      output += text;
      sink.write(text);
    }
  };
  await Promise.all([pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr)]);
  const code = await proc.exited;
  const counted = step.count(output);
  if (counted) {
    passed += counted.passed;
    failed += counted.failed;
  } else {
    // A step without counts (the typecheck) is one check of its own.
    code === 0 ? passed++ : failed++;
  }
  // A runner that exits non-zero with nothing counted as failed (a crash, a file that would not
  // load) still fails the gate.
  if (code !== 0 && (!counted || counted.failed === 0)) {
    if (counted) failed++;
    console.log(`=== ${step.name} exited ${code}`);
  }
}

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
