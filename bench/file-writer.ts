// One of the processes of the workers benchmark's file test: from a given instant, runs the
// dispatch cycle's three write transactions (reserve a free server, its client connects, its
// client leaves) on a lease file for a given time, waiting for the lock as a dispatcher sharing
// the file would have to (busy_timeout), and prints its count and cycle latencies as JSON.
// Usage: bun bench/file-writer.ts FILE START_EPOCH_MS DURATION_MS

import { Database } from 'bun:sqlite';

const [path, startText, durationText] = process.argv.slice(2);
const db = new Database(path);
db.run('PRAGMA busy_timeout = 5000');
db.run('PRAGMA journal_mode = WAL');
db.run('PRAGMA synchronous = NORMAL');
const reserve = db.query<{ id: string }, { now: number }>(`
  UPDATE servers SET state = 'reserved', claim_expires = $now + 10000, handed_at = $now, updated_at = $now
  WHERE id = (SELECT id FROM servers WHERE state = 'ready' AND (SELECT lease_expires FROM leases WHERE leases.id = servers.id) > $now
    ORDER BY health DESC, handed_at, id LIMIT 1)
  RETURNING id`);
const setState = db.query<unknown, { id: string; state: string; now: number }>('UPDATE servers SET state = $state, updated_at = $now WHERE id = $id');
const reserveTx = db.transaction((now: number) => reserve.get({ now }));

await Bun.sleep(Math.max(0, Number(startText) - Date.now()));
const end = Date.now() + Number(durationText);
let cycles = 0;
let failed = 0;
const latencies: number[] = [];
while (Date.now() < end) {
  const t0 = performance.now();
  const now = Date.now();
  try {
    const row = reserveTx.immediate(now);
    if (!row) continue;
    setState.run({ id: row.id, state: 'busy', now });
    setState.run({ id: row.id, state: 'ready', now });
  } catch {
    failed++; // the lock not had within busy_timeout
    continue;
  }
  latencies.push(performance.now() - t0);
  cycles++;
}
latencies.sort((a, b) => a - b);
db.close();
console.log(JSON.stringify({ cycles, failed, p99Ms: latencies[Math.floor(latencies.length * 0.99)] ?? 0, maxMs: latencies.at(-1) ?? 0 }));
