// Random and mutated messages for the fuzz suites: valid messages of each channel taken apart the
// ways a buggy or hostile peer would (fields dropped, retyped, oversized, control characters,
// prototype keys, deep nesting, truncated JSON, bytes that are not JSON at all). Seeded, so a
// failure can be replayed.

/** A small seeded PRNG (mulberry32). */
export function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  return { next, int, pick };
}

export type Random = ReturnType<typeof random>;

function text(r: Random): string {
  const alphabets = ['abcXYZ019_-', '\u0000\u0007\n\r\t"\\', '<>&\'/;{}[]', 'é漢字🙂\u202e', '%00%ff'];
  const length = r.pick([0, 1, 8, 64, 300, 3000]);
  let out = '';
  for (let i = 0; i < length; i++) out += r.pick(r.pick(alphabets).split(''));
  return out;
}

function value(r: Random, depth = 0): unknown {
  switch (r.int(depth > 3 ? 6 : 9)) {
    case 0: return text(r);
    case 1: return r.pick([0, -1, 1e308, -1e308, 2 ** 53 + 1, 0.5, 1e-320, 16000, 60]);
    case 2: return r.pick([true, false, null]);
    case 3: return r.pick(['NaN', 'Infinity', '', 'none', 'connected', 'ws://127.0.0.1:1/x', 'http://x/', 'wss://u:p@h/#f']);
    case 4: return r.pick([[], {}, '__proto__']);
    case 5: return r.int(1000);
    case 6: return [value(r, depth + 1), value(r, depth + 1)];
    case 7: return { [r.pick(['a', '__proto__', 'constructor', 'type'])]: value(r, depth + 1) };
    default: {
      let nested: unknown = 1;
      for (let i = 0; i < 50; i++) nested = [nested];
      return nested;
    }
  }
}

/** One message for a channel: a valid template mutated, or JSON broken, or not JSON at all. */
export function mutated(r: Random, templates: readonly Record<string, unknown>[]): string {
  const kind = r.int(10);
  if (kind === 0) return text(r);
  const message: Record<string, unknown> = { ...r.pick(templates) };
  const keys = Object.keys(message);
  const mutations = 1 + r.int(3);
  for (let i = 0; i < mutations; i++) {
    const key = r.next() < 0.8 && keys.length ? r.pick(keys) : r.pick(['extra', '__proto__', 'constructor', 'prototype']);
    if (r.next() < 0.2) delete message[key];
    else message[key] = value(r);
  }
  const json = JSON.stringify(message);
  if (kind === 1) return json.slice(0, r.int(json.length));
  if (kind === 2) return json.replace(/"/, "'");
  return json;
}

export const STREAM_TEMPLATES = [
  { type: 'get_server_url' },
  { type: 'get_server_url', requestId: 'req-1', session: 'session-12345678' },
] as const;

export const CONTROL_TEMPLATES = [
  { type: 'register', id: 'fuzz-1', instance: 'fuzz-instance-0123456789', url: 'ws://127.0.0.1:1/fuzz', client: 'none', targetFps: 60 },
  { type: 'heartbeat', fps: 60, frameMs: 4, client: 'none' },
  { type: 'client', event: 'connected' },
  { type: 'drain' },
] as const;

export const RENDER_TEMPLATES = [
  { type: 'camera', seq: 1, yaw: 0.5, pitch: 0.2, distance: 4 },
  { type: 'ping', t: 1 },
  { type: 'shown', seq: 0 },
] as const;
