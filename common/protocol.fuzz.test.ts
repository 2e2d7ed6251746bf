// Property-based checks of every inbound parser (fast-check): whatever arrives, a parser returns
// either a value that meets every rule of its message type or an error that names what is wrong;
// it never throws, and what it accepts survives a round trip unchanged.

import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { CONTROL_TEMPLATES, RENDER_TEMPLATES, STREAM_TEMPLATES, mutated, random } from '../tests/fuzz-messages.ts';
import { CAMERA_LIMITS, LIMITS, encode, parseBrowserToRender, parseRenderMessage, parseStreamRequest, serverUrlProblem, type Parsed } from './protocol.ts';

const RUNS = 3000;

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
      fc.property(inputs(STREAM_TEMPLATES), (text) => {
        const parsed = parseStreamRequest(text);
        if (!parsed.ok) return expect(parsed.error.length).toBeGreaterThan(0);
        expect(parsed.value.type).toBe('get_server_url');
        if (parsed.value.requestId !== undefined) expect(parsed.value.requestId).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
        if (parsed.value.session !== undefined) expect(parsed.value.session).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
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
