// The allocation statement alone, in process on a lease file, against tables of different sizes:
// part of `bun run bench dispatch`, which prints its table first.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../app/sqlite/lease-store.ts';
import { markdownTable } from './stats.ts';

export interface AllocationCost {
  servers: number;
  /** Microseconds for one allocation plus its release, one at a time: each waits for its own commit. */
  microseconds: number;
  /** The same, 64 pages at once: their writes share a commit, as under load. */
  groupedMicroseconds: number;
}

/** Pages allocating at once in the grouped measure. */
const GROUP = 64;

/**
 * The allocation statement, in this process, against tables of different sizes: the cost must
 * not grow with the number of servers (the query walks an index and stops at the first free
 * row). One at a time, each allocation and release waits for its commit; 64 at a time, the writes
 * of one turn share it.
 */
export async function allocationCost(serverCounts: number[], iterations: number): Promise<AllocationCost[]> {
  const costs: AllocationCost[] = [];
  for (const count of serverCounts) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-allocation-'));
    const store = openSqliteStore(join(dir, 'dispatcher.db'));
    try {
      for (let i = 0; i < count; i++) {
        await store.register({ id: `s${i}`, url: `ws://127.0.0.1:1/s${i}`, conn: `c${i}`, instanceHash: `h${i}`, client: 'none', targetFps: 60, newKey: 'k', ttlMs: 3_600_000 });
      }
      const timed = async (together: number) => {
        const start = performance.now();
        for (let i = 0; i < iterations; i += together) {
          const claims = await Promise.all(Array.from({ length: Math.min(together, count) }, () => store.allocate(10_000, 0.1)));
          await Promise.all(claims.map((claim) => store.release(claim!.id)));
        }
        return ((performance.now() - start) * 1000) / iterations;
      };
      costs.push({ servers: count, microseconds: await timed(1), groupedMicroseconds: await timed(GROUP) });
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return costs;
}

export function allocationTable(costs: AllocationCost[]): string {
  return [
    'Allocation statement (in-process, lease file): one allocation plus its release, µs each',
    '',
    markdownTable(
      ['registered servers', 'one at a time', `${GROUP} at once (one commit)`],
      costs.map((c) => [c.servers, c.microseconds.toFixed(1), c.groupedMicroseconds.toFixed(1)]),
    ),
  ].join('\n');
}
