import { describe, expect, test } from 'bun:test';
import { UsageError } from '../common/flags.ts';
import { parseDispatcherArgs } from './config.ts';

const FILE_SECRET = 'from-the-secret-file-0123';
/** Reads no file: the secret file's content, and which file was asked for. */
const asked: string[] = [];
const fakeFile = (file: string) => {
  asked.push(file);
  return FILE_SECRET;
};
const parse = (argv: string[], env: Record<string, string | undefined> = { RENDER_DISPATCH_HOME: '/home/op/.rd' }) => parseDispatcherArgs(argv, env, fakeFile);

describe('dispatcher flags', () => {
  test('defaults follow the tutorial: port 18000 on loopback, the secret from the per-user file', () => {
    expect(parse([])).toEqual({
      host: '127.0.0.1', port: 18000, db: 'dispatcher.db', timings: { heartbeatMs: 1000, ttlMs: 3000, claimMs: 10_000 },
      policy: { minHealth: 0.1, graceMs: 15_000, maxQueue: 100, maxWaitingPerAddress: 50, rateLimit: 20, retentionMs: 600_000, messageRate: 10 },
      secret: FILE_SECRET, secretSource: '/home/op/.rd/secret', allowOrigins: null, trustProxy: false, verbose: false, workers: 1,
      links: [], maxHops: 8, noEvents: false, metrics: true, logFormat: 'text',
    });
    expect(asked.at(-1)).toBe('/home/op/.rd/secret');
    expect(parse(['--local'])?.host).toBe('127.0.0.1');
    expect(parse(['--help'])).toBeNull();
  });

  test('durations take ms, s or min', () => {
    expect(parse(['--heartbeat', '250ms', '--ttl', '1s', '--claim-timeout', '2500'])?.timings).toEqual({ heartbeatMs: 250, ttlMs: 1000, claimMs: 2500 });
    expect(parse(['--retention', '2min'])?.policy.retentionMs).toBe(120_000);
  });

  test('limits and origins', () => {
    const config = parse(['--rate-limit', '0', '--max-queue', '9', '--allow-origin', 'https://app.example', '--allow-origin', 'null', '--trust-proxy']);
    expect(config?.policy).toMatchObject({ rateLimit: 0, maxQueue: 9, maxWaitingPerAddress: 5 });
    expect(config?.allowOrigins).toEqual(['https://app.example', 'null']);
    expect(config?.trustProxy).toBe(true);
    expect(parse(['--max-waiting-per-address', '7'])?.policy.maxWaitingPerAddress).toBe(7);
  });

  test('links to other dispatchers: ws:// URLs, dialled on /v1/link', () => {
    const config = parse(['--link', 'ws://10.0.0.2:18000', '--link', 'wss://east.example/', '--link', 'ws://127.0.0.1:9000/v1/link', '--max-hops', '3']);
    expect(config?.links).toEqual(['ws://10.0.0.2:18000/v1/link', 'wss://east.example/v1/link', 'ws://127.0.0.1:9000/v1/link']);
    expect(config?.maxHops).toBe(3);
    expect(parse(['--no-events', '--message-rate', '0'])).toMatchObject({ noEvents: true, policy: { messageRate: 0 } });
  });

  test.each([
    [['--link', 'http://10.0.0.2:18000'], `--link must be a dispatcher's ws:// or wss:// URL (ws://host:port), got "http://10.0.0.2:18000"`],
    [['--link', 'ws://10.0.0.2:18000/stream'], `--link must be a dispatcher's ws:// or wss:// URL (ws://host:port), got "ws://10.0.0.2:18000/stream"`],
    [['--max-hops', '65'], '--max-hops must be a whole number from 1 to 64, got "65"'],
    [['--log-format', 'yaml'], '--log-format must be text or json, got "yaml"'],
    [['--port', 'abc'], '--port must be a port number 0-65535, got "abc"'],
    [['--ttl', 'soon'], '--ttl must be a duration such as 500ms, 3s or 10min, got "soon"'],
    [['--ttl', '1s', '--heartbeat', '2s'], '--ttl (1000ms) must be longer than --heartbeat (2000ms), or every lease lapses between beats'],
    [['--local', '--host', '0.0.0.0'], '--local listens on loopback only; it conflicts with --host 0.0.0.0'],
    [['--colour'], 'unknown option --colour'],
    [['--workers', '0'], '--workers must be auto or a whole number from 1 to 256, got "0"'],
    [['--port'], '--port needs a value (N)'],
    [['--min-health', '2'], '--min-health must be a number from 0 to 1, got "2"'],
    [['--max-queue', '0'], '--max-queue must be a whole number from 1 to 1000000, got "0"'],
    [['--grace', 'long'], '--grace must be a duration such as 500ms, 3s or 10min, got "long"'],
    [['--rate-limit', '1.5'], '--rate-limit must be a whole number from 0 to 1000000, got "1.5"'],
    [['--max-waiting-per-address', '0'], '--max-waiting-per-address must be a whole number from 1 to 1000000, got "0"'],
    [['--allow-origin', 'https://app.example/path'], '--allow-origin must be "*", "null" or scheme://host[:port] with no path'],
    [['--allow-origin', 'app.example'], '--allow-origin must be "*", "null" or scheme://host[:port] with no path'],
    [['--secret', 'short'], 'the shared secret must be at least 16 characters'],
  ])('%p is refused with a message naming the flag', (argv, message) => {
    expect(() => parse(argv)).toThrow(UsageError);
    expect(() => parse(argv)).toThrow(message);
  });

  test('--secret, then the environment, then the file', () => {
    const secret = 's3cret-s3cret-s3cret';
    expect(parse(['--host', '0.0.0.0', '--secret', secret])?.secret).toBe(secret);
    expect(parse(['--host', '0.0.0.0'], { RENDER_DISPATCH_SECRET: secret })).toMatchObject({ secret, secretSource: 'the environment' });
    expect(parse(['--secret-file', '/etc/rd/secret'])).toMatchObject({ secret: FILE_SECRET, secretSource: '/etc/rd/secret' });
  });
});
