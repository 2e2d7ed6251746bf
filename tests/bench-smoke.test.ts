// The benchmarks' smoke modes, so that they cannot rot: each runs for a few seconds and must
// produce its table and plausible numbers.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SMOKE, failureTable, runFailureDetection } from '../bench/failure-detection.ts';
import * as input from '../bench/input-latency.ts';

describe('benchmark smoke runs', () => {
  test('failure detection: SIGKILL is seen at once, SIGSTOP within the TTL', async () => {
    const result = await runFailureDetection(SMOKE, () => {});
    assert.equal(result.sigkillMs.length, SMOKE.trials);
    assert.equal(result.sigstopMs.length, SMOKE.trials);
    // Generous bounds: this checks the benchmark works, not the machine's speed.
    assert.ok(result.sigkill.max < 1000, `SIGKILL seen after ${result.sigkill.max}ms`);
    assert.ok(result.sigstop.max <= SMOKE.ttlMs + 500, `SIGSTOP seen after ${result.sigstop.max}ms with a ${SMOKE.ttlMs}ms TTL`);
    assert.match(failureTable(result), /\| SIGSTOP \| 2 \|/);
  });

  test('input latency: every input shows in a frame, and is timed', async () => {
    const result = await input.runInputLatency(input.SMOKE);
    assert.equal(result.samplesMs.length, input.SMOKE.trials);
    assert.ok(result.samplesMs.every((ms) => ms > 0 && ms < 5000), result.samplesMs.join(', '));
    assert.match(input.inputLatencyTable(result), /\| 3 \|/);
  });
});
