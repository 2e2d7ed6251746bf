// Property-based checks of every inbound parser (fast-check): whatever arrives, a parser returns
// either a value that meets every rule of its message type or an error that names what is wrong;
// it never throws, and what it accepts survives a round trip unchanged.

import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { CONTROL_TEMPLATES, RENDER_TEMPLATES, STREAM_TEMPLATES, mutated, random } from '../tests/fuzz-messages.ts';
import {
  CAMERA_LIMITS, LIMITS, MAX_HOPS_LIMIT, MAX_PAGE_MESSAGE, encode, parseBrowserToRender, parseLinkFrame, parseRenderMessage, parseStreamRequest, serverUrlProblem,
  type Parsed,
} from './protocol.ts';

const RUNS = 3000;

/** Pages' messages to the flock, beside the get_server_url of the socket suites' templates. */
const PAGE_TEMPLATES = [{ type: 'message', event: 'chat', user: 'hank', data: { text: 'hi', n: [1, 2] } }, { type: 'subscribe' }];
const MEMBER = '0123456789abcdef';
const LINK_TEMPLATES = [
  { type: 'link_challenge', member: MEMBER, nonce: 'n'.repeat(32) },
  { type: 'link_hello', member: MEMBER, nonce: 'm'.repeat(32), proof: 'ab'.repeat(32) },
  { type: 'link_welcome', member: MEMBER, proof: 'cd'.repeat(32) },
  { type: 'relay', origin: MEMBER, seq: 7, hops: 2, body: { kind: 'message', event: 'chat', data: [1] } },
  { type: 'relay', origin: MEMBER, seq: 8, hops: 1, body: { kind: 'capacity', free: 3 } },
  { type: 'relay', origin: MEMBER, seq: 9, hops: 1, to: MEMBER, body: { kind: 'borrow', call: 1, holder: 'conn-1', requestId: 'r-1' } },
  { type: 'relay', origin: MEMBER, seq: 10, hops: 3, to: MEMBER, body: { kind: 'lent', call: 1, url: 'ws://h:1/s?ticket=x', serverId: 'srv' } },
  { type: 'relay', origin: MEMBER, seq: 11, hops: 1, to: MEMBER, body: { kind: 'return', serverId: 'srv' } },
];

/** Any text: arbitrary strings, arbitrary JSON, and the suites' mutations of valid messages. */
function inputs(templates: readonly Record<string, unknown>[]) {
  return fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.json({ maxDepth: 4 }),
    fc.integer().map((seed) => mutated(random(seed), templates)),
    fc.record({ type: fc.constantFrom(...templates.map((t) => t.type as string)) }, { requiredKeys: [] }).chain((base) =>
      fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 })).map((extra) => JSON.stringify({ ...extra, ...base })),
    ),
  );
}

/** The shape every failure has, and the round trip every success survives. */
function wellBehaved<T>(parse: (text: string) => Parsed<T>, text: string, accept: (value: T) => void): void {
  const parsed = parse(text);
  if (!parsed.ok) {
    expect(typeof parsed.error).toBe('string');
    expect(parsed.error.length).toBeGreaterThan(0);
    if (parsed.field !== undefined) expect(parsed.error).toContain(parsed.field);
    return;
  }
  accept(parsed.value);
  expect(parse(encode(parsed.value as never))).toEqual(parsed);
}

describe('inbound parsers under random input', () => {
  test('render server → dispatcher', () => {
    fc.assert(
      fc.property(inputs(CONTROL_TEMPLATES), (text) => {
        wellBehaved(parseRenderMessage, text, (msg) => {
          if (msg.type === 'register') {
            expect(msg.id).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
            expect(serverUrlProblem(msg.url)).toBeNull();
            expect(msg.targetFps).toBeLessThanOrEqual(LIMITS.fps);
          }
          if (msg.type === 'heartbeat') expect(msg.frameMs).toBeLessThanOrEqual(LIMITS.frameMs);
        });
      }),
      { numRuns: RUNS },
    );
  });

  test('browser → dispatcher', () => {
    fc.assert(
      fc.property(inputs([...STREAM_TEMPLATES, ...PAGE_TEMPLATES]), (text) => {
        const parsed = parseStreamRequest(text);
        if (!parsed.ok) return expect(parsed.error.length).toBeGreaterThan(0);
        const msg = parsed.value;
        if (msg.type === 'get_server_url') {
          if (msg.requestId !== undefined) expect(msg.requestId).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
          if (msg.session !== undefined) expect(msg.session).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
          return;
        }
        expect(['message', 'subscribe']).toContain(msg.type);
        expect(text.length).toBeLessThanOrEqual(MAX_PAGE_MESSAGE);
        if (msg.type === 'message' && msg.event !== undefined) expect(msg.event).toMatch(/^[A-Za-z0-9_.:-]{1,64}$/);
        if (msg.type === 'message' && msg.user !== undefined) expect(typeof msg.user).toBe('string');
      }),
      { numRuns: RUNS },
    );
  });

  test('dispatcher ↔ dispatcher (flock links)', () => {
    fc.assert(
      fc.property(inputs(LINK_TEMPLATES), (text) => {
        wellBehaved(parseLinkFrame, text, (frame) => {
          if (frame.type !== 'relay') return;
          expect(frame.origin).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
          expect(Number.isInteger(frame.seq) && frame.seq >= 1).toBe(true);
          expect(frame.hops >= 1 && frame.hops <= MAX_HOPS_LIMIT).toBe(true);
          expect(['message', 'capacity', 'borrow', 'lent', 'return']).toContain(frame.body.kind);
          if (frame.body.kind === 'capacity') expect(Number.isInteger(frame.body.free) && frame.body.free >= 0).toBe(true);
        });
      }),
      { numRuns: RUNS },
    );
  });

  test('browser → render server', () => {
    fc.assert(
      fc.property(inputs(RENDER_TEMPLATES), (text) => {
        wellBehaved(parseBrowserToRender, text, (msg) => {
          if (msg.type !== 'camera') return;
          expect(Math.abs(msg.pitch)).toBeLessThanOrEqual(CAMERA_LIMITS.pitch);
          expect(msg.distance).toBeGreaterThanOrEqual(CAMERA_LIMITS.distanceMin);
          expect(msg.distance).toBeLessThanOrEqual(CAMERA_LIMITS.distanceMax);
        });
      }),
      { numRuns: RUNS },
    );
  });

  test('no prototype is polluted by what parsers read', () => {
    fc.assert(
      fc.property(inputs(CONTROL_TEMPLATES), (text) => {
        parseRenderMessage(text);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: 500, examples: [['{"type":"drain","__proto__":{"polluted":1}}'], ['{"__proto__":{"polluted":1},"type":"heartbeat"}']] },
    );
  });
});
