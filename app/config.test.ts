import { describe, expect, test } from 'bun:test';
import { UsageError } from '../common/cli.ts';
import { parseDispatcherArgs } from './config.ts';

describe('dispatcher flags', () => {
  test('defaults follow the tutorial: port 18000 on loopback', () => {
    expect(parseDispatcherArgs([], {})).toEqual({
      host: '127.0.0.1', port: 18000, db: 'dispatcher.db', timings: { heartbeatMs: 1000, ttlMs: 3000, claimMs: 10_000 },
      policy: { minHealth: 0.1, graceMs: 15_000, maxQueue: 100 }, secret: null, verbose: false,
    });
    expect(parseDispatcherArgs(['--local'])?.host).toBe('127.0.0.1');
    expect(parseDispatcherArgs(['--help'])).toBeNull();
  });

  test('durations take ms or s', () => {
    expect(parseDispatcherArgs(['--heartbeat', '250ms', '--ttl', '1s', '--claim-timeout', '2500'])?.timings).toEqual({ heartbeatMs: 250, ttlMs: 1000, claimMs: 2500 });
  });

  test.each([
    [['--port', 'abc'], '--port must be a port number 0-65535, got "abc"'],
    [['--ttl', 'soon'], '--ttl must be a duration such as 500ms or 3s, got "soon"'],
    [['--ttl', '1s', '--heartbeat', '2s'], '--ttl (1000ms) must be longer than --heartbeat (2000ms), or every lease lapses between beats'],
    [['--local', '--host', '0.0.0.0'], '--local listens on loopback only; it conflicts with --host 0.0.0.0'],
    [['--colour'], "Unknown option '--colour'"],
    [['--min-health', '2'], '--min-health must be a number from 0 to 1, got "2"'],
    [['--max-queue', '0'], '--max-queue must be a whole number from 1 to 1000000, got "0"'],
    [['--grace', 'long'], '--grace must be a duration such as 500ms or 3s, got "long"'],
    [['--host', '0.0.0.0'], 'listening on 0.0.0.0 needs a shared secret (--secret or RENDER_DISPATCH_SECRET)'],
    [['--secret', 'short'], 'the shared secret must be at least 16 characters'],
  ])('%p is refused with a message naming the flag', (argv, message) => {
    expect(() => parseDispatcherArgs(argv, {})).toThrow(UsageError);
    expect(() => parseDispatcherArgs(argv, {})).toThrow(message);
  });

  test('off loopback the secret may come from the environment', () => {
    const secret = 's3cret-s3cret-s3cret';
    expect(parseDispatcherArgs(['--host', '0.0.0.0'], { RENDER_DISPATCH_SECRET: secret })?.secret).toBe(secret);
    expect(parseDispatcherArgs(['--host', '0.0.0.0', '--secret', secret], {})?.secret).toBe(secret);
  });
});
