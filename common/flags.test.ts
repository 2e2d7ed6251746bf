import { describe, expect, test } from 'bun:test';
import { UsageError, flagTable, parsePort, positive, processCount, readFlags, usageOf } from './flags.ts';

const TABLE = flagTable({
  port: { value: 'N', help: 'port to listen on', parse: parsePort, default: 18000 },
  name: { value: 'S', help: 'a name', default: (env: Record<string, string | undefined>) => env.NAME ?? 'anon', shown: '$NAME or anon' },
  origin: { value: 'O', help: 'an origin (repeatable)', multiple: true, parse: (text: string) => text.toLowerCase(), shown: null },
  count: { value: 'N|auto', help: 'how many', parse: processCount(4, 8), default: 1 },
  limit: { value: 'N', help: 'at most this many', parse: positive({ max: 10 }) },
  verbose: { help: 'say more' },
});

describe('flag tables', () => {
  test('defaults, --name value, --name=value, the last of a repeated flag, repeatable flags in order, switches', () => {
    expect(readFlags([], TABLE, {})).toEqual({ port: 18000, name: 'anon', origin: undefined, count: 1, limit: undefined, verbose: false });
    expect(readFlags(['--port', '1', '--port=2', '--origin', 'A', '--origin=b', '--verbose', '--count', 'auto'], TABLE, { NAME: 'env' })).toEqual({
      port: 2, name: 'env', origin: ['a', 'b'], count: 4, limit: undefined, verbose: true,
    });
  });

  test.each([
    [['--nope'], 'unknown option --nope'],
    [['--constructor'], 'unknown option --constructor'],
    [['--__proto__'], 'unknown option --__proto__'],
    [['port'], 'unexpected argument "port"'],
    [['--port'], '--port needs a value (N)'],
    [['--port', '--verbose'], '--port needs a value (N)'],
    [['--verbose=yes'], '--verbose takes no value'],
    [['--port', '70000'], '--port must be a port number 0-65535, got "70000"'],
    [['--count', '9'], '--count must be auto or a whole number from 1 to 8, got "9"'],
    [['--limit', '0'], '--limit must be a whole number from 1 to 10, got "0"'],
  ])('%p is refused: %s', (argv, message) => {
    expect(() => readFlags(argv, TABLE)).toThrow(new UsageError(message));
  });

  test('the help has a line for every flag, with its default as the table gives it', () => {
    const usage = usageOf('usage: x [options]', TABLE, 'A note.');
    expect(usage).toStartWith('usage: x [options]\n\n');
    expect(usage).toEndWith('\n\nA note.');
    expect(usage).toContain('  --port N            port to listen on (default 18000)');
    expect(usage).toContain('  --name S            a name (default $NAME or anon)');
    expect(usage).toContain('  --origin O          an origin (repeatable)\n');
    expect(usage).toContain('  --count N|auto      how many (default 1)');
    expect(usage).toContain('  --limit N           at most this many\n');
    expect(usage).toContain('  --verbose           say more');
  });

  test('long help wraps under its column', () => {
    const usage = usageOf('u', flagTable({ 'a-very-long-flag-name': { value: 'VALUE', help: 'word '.repeat(40).trim() } }));
    const lines = usage.split('\n').slice(2);
    expect(lines[0]).toBe('  --a-very-long-flag-name VALUE');
    expect(lines.slice(1).every((line) => line.startsWith(' '.repeat(22)) && line.length <= 98)).toBe(true);
  });
});
