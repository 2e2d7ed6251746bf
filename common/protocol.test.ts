import { describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDispatcherMessage, parseRenderMessage, streamErrorReply, ticketUrl } from './protocol.ts';

/** A register message, good but for what `change` says. */
const register = (change: Record<string, unknown>) =>
  JSON.stringify({ type: 'register', id: 'a', instance: 'instance-0123456789', url: 'ws://h/s', client: 'none', targetFps: 1, ...change });

describe('control message validation', () => {
  test('accepts each well-formed message and drops unknown fields', () => {
    const parsed = parseRenderMessage('{"type":"heartbeat","fps":30,"frameMs":4.5,"client":"connected","extra":1}');
    expect(parsed).toEqual({ ok: true, value: { type: 'heartbeat', fps: 30, frameMs: 4.5, client: 'connected' } });
    expect(parseDispatcherMessage('{"type":"lease","expiresAt":5}').ok).toBe(true);
  });

  test.each([
    ['[]', undefined, 'message must be a JSON object'],
    [register({ id: '' }), 'id', 'register.id must be a string of 1 to 64 characters'],
    [register({ id: 'a<script>' }), 'id', 'register.id must be letters, digits, . _ and -'],
    [register({ id: 'a\u0007b' }), 'id', 'register.id must be letters, digits, . _ and -'],
    [register({ instance: 'short' }), 'instance', 'register.instance must be a string of 16 to 128 characters'],
    [register({ url: 'http://h/s' }), 'url', 'register.url must be a ws:// or wss:// URL'],
    [register({ url: 'wss://user:pw@host/x' }), 'url', 'register.url must not carry a user name or password'],
    [register({ url: 'wss://host/x#frag' }), 'url', 'register.url must not have a fragment (#…)'],
    [register({ url: 'wss://host/x?ticket=forged' }), 'url', 'register.url must not carry a ticket parameter: the dispatcher adds it'],
    [register({ url: `ws://h/${'x'.repeat(1100)}` }), 'url', 'register.url must be at most 1024 characters'],
    [register({ targetFps: 1e9 }), 'targetFps', 'register.targetFps must be a finite number from 0 to 1000'],
    ['{"type":"heartbeat","fps":-1,"frameMs":1,"client":"none"}', 'fps', 'heartbeat.fps must be a finite number from 0 to 1000'],
    ['{"type":"heartbeat","fps":1,"frameMs":1e12,"client":"none"}', 'frameMs', 'heartbeat.frameMs must be a finite number from 0 to 60000'],
    ['{"type":"heartbeat","fps":1,"frameMs":1,"client":"maybe"}', 'client', 'heartbeat.client must be "none" or "connected"'],
    ['{"type":"client","event":"left"}', 'event', 'client.event must be "connected" or "gone"'],
  ])('refuses %s naming the field', (text, field, error) => {
    expect(parseRenderMessage(text)).toEqual(field ? { ok: false, field, error } : { ok: false, error });
  });

  test('a string field has a length bound', () => {
    expect(parseRenderMessage(register({ id: 'x'.repeat(5000) }))).toMatchObject({ ok: false, field: 'id' });
    expect(parseRenderMessage(register({}))).toMatchObject({ ok: true });
  });
});

describe('URLs and replies', () => {
  test('the ticket is added as a query parameter', () => {
    expect(ticketUrl('ws://127.0.0.1:16000/stream', 'a.b.c')).toBe('ws://127.0.0.1:16000/stream?ticket=a.b.c');
  });

  test('the error reply shortens long input', () => {
    expect(streamErrorReply('x'.repeat(100))).toBe(`error: unknown request "${'x'.repeat(64)}…"; send "get_server_url"`);
  });
});

describe('client/protocol.js', () => {
  test('is the current build of common/browser.ts (run bun run build:client after editing the protocol)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bundle-'));
    try {
      const root = join(import.meta.dir, '..');
      const script = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts['build:client'] as string;
      const proc = Bun.spawnSync(['sh', '-c', script.replace('client/protocol.js', join(dir, 'protocol.js'))], { cwd: root });
      expect(proc.exitCode).toBe(0);
      expect(readFileSync(join(dir, 'protocol.js'), 'utf8')).toBe(readFileSync(join(root, 'client', 'protocol.js'), 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
