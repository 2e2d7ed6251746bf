// The render server's flags: defaults, the checks across flags, and a help generated from the same
// table as the parsing (a flag the program takes is a flag its --help lists).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../common/flags.ts';
import { RENDER_FLAGS, RENDER_USAGE, parseRenderArgs } from './config.ts';

const SECRET = 'a-secret-from-the-per-user-file';
const parse = (argv: string[]) => parseRenderArgs(argv, { RENDER_DISPATCH_HOME: '/home/op/.rd' }, () => SECRET);

describe('render server flags', () => {
  test('defaults: port 16000, the dispatcher on 18000, one server, the per-user secret, text logs', () => {
    assert.deepEqual(parse([]), {
      host: '127.0.0.1', port: 16000, dispatchers: ['ws://127.0.0.1:18000'], size: 512, fps: 60, quality: 80, spin: 1, publicUrl: null, count: 1,
      secret: SECRET, secretSource: '/home/op/.rd/secret', logFormat: 'text',
    });
    assert.equal(parse(['--log-format', 'json'])?.logFormat, 'json');
    assert.equal(parse(['--help']), null);
    assert.deepEqual(parse(['--dispatcher', 'ws://a:1, ws://b:2/'])?.dispatchers, ['ws://a:1', 'ws://b:2']);
  });

  for (const [argv, message] of [
    [['--count', '2', '--port', '0'], '--count runs servers on consecutive ports from --port: give a port, not 0'],
    [['--count', '2', '--public-url', 'ws://example.com/stream'], '--public-url names one server: it cannot be given with --count'],
    [['--count', '3', '--port', '65534'], '--count 3 from --port 65534 runs past port 65535'],
    [['--count', '0'], '--count must be auto or a whole number from 1 to 64, got "0"'],
    [['--size', '8'], '--size must be a whole number from 16 to 2048, got "8"'],
    [['--spin', '11'], '--spin must be a number from 0 to 10, got "11"'],
    [['--dispatcher', 'http://x'], '--dispatcher must be a ws:// or wss:// URL, got "http://x"'],
    [['--log-format', 'yaml'], '--log-format must be text or json, got "yaml"'],
  ] as [string[], string][]) {
    test(`${argv.join(' ')} is refused: ${message}`, () => {
      assert.throws(() => parse(argv), (error: unknown) => error instanceof UsageError && error.message === message);
    });
  }

  test('--help lists every flag the program takes, --secret among them', () => {
    for (const name of Object.keys(RENDER_FLAGS)) assert.match(RENDER_USAGE, new RegExp(`^  --${name}\\b`, 'm'));
    assert.match(RENDER_USAGE, /--secret S/);
  });
});
