// The render server's Prometheus metrics (GET /metrics), in a registry of its own: two servers in
// one process (the in-process tests) never share a count, and nothing another library registers
// globally leaks into a scrape. What happens (a frame drawn, encoded, sent or skipped; a ticket
// refused) is counted by the frame loop and the upgrade gate as it happens, through the small
// FrameMeter the loop is given; what is a state (fps, the client, the registration) is read from its
// owner at each scrape, so the figure cannot drift from what /about and the dispatcher are told.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REFUSALS, type Refusal } from './tickets.ts';

/** What the frame loop reports of each frame (stream.ts). */
export interface FrameMeter {
  /** A frame drawn and read back (idle probes too), in seconds. */
  drawn(seconds: number): void;
  /** A frame encoded as JPEG, in seconds. */
  encoded(seconds: number): void;
  /** A frame sent to the client, its bytes as sent (JPEG and metadata). */
  sent(bytes: number): void;
  /** A frame not drawn because the client had not read the ones before. */
  skipped(): void;
}

export const NO_METER: FrameMeter = { drawn() {}, encoded() {}, sent() {}, skipped() {} };

/** The states a scrape reports, as they are at that moment. */
export interface RenderState {
  fps: number;
  clientConnected: boolean;
  registered: boolean;
}

const PREFIX = 'render_dispatch_render_';
// From a small frame on a fast machine (about a millisecond) to a large one on a slow one.
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export function createRenderMetrics() {
  const registry = new Registry();
  const registers = [registry];
  // The process's own (CPU, memory, event loop lag, GC) under their usual names, which the usual
  // dashboards expect; each render server is its own process, so they are this server's.
  collectDefaultMetrics({ register: registry });

  const rendered = new Counter({ name: `${PREFIX}frames_rendered_total`, help: 'Frames drawn and read back, idle probes included.', registers });
  const sent = new Counter({ name: `${PREFIX}frames_sent_total`, help: 'Frames sent to the client.', registers });
  const skipped = new Counter({ name: `${PREFIX}frames_skipped_total`, help: 'Frames skipped because the client had not read the ones before.', registers });
  const bytes = new Counter({ name: `${PREFIX}sent_bytes_total`, help: 'Bytes of frames sent to the client (JPEG and metadata).', registers });
  const frameSeconds = new Histogram({ name: `${PREFIX}frame_seconds`, help: 'Time to draw one frame and read it back.', buckets: SECONDS_BUCKETS, registers });
  const encodeSeconds = new Histogram({ name: `${PREFIX}encode_seconds`, help: 'Time to encode one frame as JPEG.', buckets: SECONDS_BUCKETS, registers });
  const fps = new Gauge({ name: `${PREFIX}fps`, help: 'Frames sent per second over the last second, as the server measures it (0 without a client).', registers });
  const clients = new Gauge({ name: `${PREFIX}clients_connected`, help: 'Whether a client is streaming (a render server has one at most).', registers });
  const registered = new Gauge({ name: `${PREFIX}registered`, help: 'Whether a dispatcher has this server registered now.', registers });
  const refused = new Counter({ name: `${PREFIX}tickets_refused_total`, help: 'Stream upgrades refused at the ticket gate, by kind.', labelNames: ['reason'] as const, registers });
  // Every kind at 0 from the start, so that a rate over a fresh server is 0 rather than absent.
  for (const reason of REFUSALS) refused.inc({ reason }, 0);

  const meter: FrameMeter = {
    drawn(seconds) {
      rendered.inc();
      frameSeconds.observe(seconds);
    },
    encoded: (seconds) => encodeSeconds.observe(seconds),
    sent(size) {
      sent.inc();
      bytes.inc(size);
    },
    skipped: () => skipped.inc(),
  };

  return {
    meter,
    refused: (reason: Refusal) => refused.inc({ reason }),
    contentType: registry.contentType,
    /** The exposition text, with the states as they are now. */
    async scrape(state: RenderState): Promise<string> {
      fps.set(state.fps);
      clients.set(state.clientConnected ? 1 : 0);
      registered.set(state.registered ? 1 : 0);
      return registry.metrics();
    },
  };
}

export type RenderMetrics = ReturnType<typeof createRenderMetrics>;
