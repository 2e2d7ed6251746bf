import { describe, expect, test } from 'bun:test';
import { UsageError } from '../common/cli.ts';
import { parseDispatcherArgs } from './config.ts';

describe('dispatcher flags', () => {
  test('defaults follow the tutorial: port 18000 on loopback', () => {
    expect(parseDispatcherArgs([])).toEqual({
      host: '127.0.0.1', port: 18000, db: 'dispatcher.db', timings: { heartbeatMs: 1000, ttlMs: 3000, claimMs: 10_000 },
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
  ])('%p is refused with a message naming the flag', (argv, message) => {
    expect(() => parseDispatcherArgs(argv)).toThrow(UsageError);
    expect(() => parseDispatcherArgs(argv)).toThrow(message);
  });
});
