// The frame loop for the render server's one client: draw, read, flip, encode, send, one complete
// JPEG per binary message (with its metadata in a comment segment). It runs only between the
// client slot's start and end (slot.ts decides who the client is), paces itself to the target fps,
// and skips frames instead of queueing them when the client reads slower than we draw. Drawing is
// on this thread and encoding on libvips' own, so the next frame is drawn while the last one
// encodes (two at most in flight, sent in order) except while the camera moves, and a camera
// message starts the frame that shows it at once instead of at the next tick. The client steers
// the camera with small JSON messages; a bad one is answered with an error and never touches the
// frame loop. Its stats are good to read from the moment it is created.

import type WebSocket from 'ws';
import { withFrameMeta } from '../common/frame-meta.ts';
import { DEFAULT_CAMERA, encode, parseBrowserToRender, type Camera, type ClientState, type RenderToBrowser } from '../common/protocol.ts';
import { encodeJpeg } from './encoder.ts';
import { NO_METER, type FrameMeter } from './metrics.ts';
import type { Renderer } from './renderer.ts';
import { poseAt } from './scene.ts';

export interface StreamOptions {
  id: string;
  renderer: Renderer;
  fps: number;
  quality: number;
  /** Speed of the torus's turning; 0 holds it still. */
  spin: number;
  /** Bytes the socket may hold unsent before frames are skipped. */
  maxBuffered?: number;
  /** Told of every frame drawn, encoded, sent or skipped (metrics.ts). */
  meter?: FrameMeter;
  log(message: string): void;
}

export interface StreamStats {
  /** Frames sent per second over the last measuring window. */
  fps: number;
  /** Mean time to draw, read and encode one frame, milliseconds. */
  frameMs: number;
  framesSent: number;
  framesSkipped: number;
  client: ClientState;
}

const STATS_WINDOW_MS = 1000;
/** Frames drawn and not yet sent: one encoding while the next is drawn, unless the camera moves. */
const MAX_IN_FLIGHT = 2;
/**
 * For this long after a camera message, a frame is drawn only once the last one is out: the frame
 * that shows an input then has the cores to itself instead of sharing them with the encoding of
 * the one before. Overlapped, input latency p50 was 42–46 ms against 34–38 ms drawing one at a
 * time, in alternating runs on two cores shared with the browser. Streaming without input, frames
 * overlap for the frame rate.
 */
const STEERING_MS = 1000;
/**
 * Frames past the last one a page said it showed: one being decoded, one on its way, one being
 * made. Two held the frame showing an input back for the page's word (input latency p50 44 and
 * 41 ms against 37 and 42 with three, in alternating runs).
 */
const MAX_UNSHOWN = 3;
/** A page silent this long about what it showed is paced by its socket alone again, until it speaks. */
const SHOWN_PATIENCE_MS = 1000;
// While idle, one frame is drawn and encoded this often (and thrown away) so that the frame time
// the dispatcher judges health by is current even when nobody watches.
const IDLE_PROBE_MS = 1000;
const PROBE_WEIGHT = 0.3;

export function createFrameStream({ id, renderer, fps, quality, spin, maxBuffered = 4 * 1024 * 1024, meter = NO_METER, log }: StreamOptions) {
  const intervalMs = 1000 / fps;
  const epoch = Date.now();
  const pose = () => poseAt((Date.now() - epoch) / 1000, spin);
  // The client streamed to, between start and end.
  let client: WebSocket | null = null;
  let stats: StreamStats = { fps: 0, frameMs: 0, framesSent: 0, framesSkipped: 0, client: 'none' };
  let sample = { start: performance.now(), frames: 0, workMs: 0 };
  // The camera outlives a client of the same session: a page that reloads finds its view as it left it.
  let camera: Camera = DEFAULT_CAMERA;
  let cameraSession: string | null = null;
  let inputSeq = -1;
  let frameSeq = 0;
  // The last frame the client said is on screen; null while it has said nothing (then only the
  // socket's buffer paces the frames).
  let shownSeq: number | null = null;
  let shownAt = 0;
  // Whether the loop waits for the page's word: only then does a `shown` wake it.
  let heldBack = false;
  // When the last camera message came.
  let steeredAt = -Infinity;

  // Draw and read back, then encode: timed apart, as the two are slow for different reasons (the
  // GPU and the frame's size; the CPU and the quality). The loop encodes one frame while it draws
  // the next.
  function draw(): { rgba: Buffer; drawnMs: number } {
    const start = performance.now();
    const rgba = renderer.readFrame(pose(), camera);
    const drawnMs = performance.now() - start;
    meter.drawn(drawnMs / 1000);
    return { rgba, drawnMs };
  }

  /** The frame as JPEG, and the work it took: its draw and its encode. */
  async function toJpeg({ rgba, drawnMs }: { rgba: Buffer; drawnMs: number }): Promise<{ jpeg: Buffer; workMs: number }> {
    const start = performance.now();
    const jpeg = await encodeJpeg(rgba, renderer.size, quality);
    const encodeMs = performance.now() - start;
    meter.encoded(encodeMs / 1000);
    return { jpeg, workMs: drawnMs + encodeMs };
  }

  function measure(workMs: number | null): void {
    if (workMs === null) {
      stats.framesSkipped++;
      meter.skipped();
    } else {
      stats.framesSent++;
      sample.frames++;
      sample.workMs += workMs;
    }
    const now = performance.now();
    const elapsed = now - sample.start;
    if (elapsed >= STATS_WINDOW_MS) {
      stats.fps = (sample.frames * 1000) / elapsed;
      stats.frameMs = sample.frames ? sample.workMs / sample.frames : 0;
      sample = { start: now, frames: 0, workMs: 0 };
    }
  }

  // The loop's wait for its next frame, which a camera message may end early.
  let wake: (() => void) | null = null;

  function waitUntil(due: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (wake === done) wake = null;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, due - performance.now()));
      wake = done;
    });
  }

  async function run(ws: WebSocket): Promise<void> {
    const streaming = () => client === ws && ws.readyState === ws.OPEN;
    let due = performance.now();
    // The frames drawn and not yet sent, chained so that they go out in the order drawn.
    let sending: Promise<void> = Promise.resolve();
    let inFlight = 0;
    let failure: unknown = null;
    while (streaming()) {
      if (failure) throw failure;
      const start = performance.now();
      let shows: number | null = null;
      // Frames sent or being made that the client has not shown yet (a page whose frames stopped
      // showing, a decode that failed, is not waited for longer than SHOWN_PATIENCE_MS).
      const listening = shownSeq !== null && performance.now() - shownAt < SHOWN_PATIENCE_MS;
      const unshown = listening ? frameSeq + inFlight - 1 - shownSeq! : 0;
      heldBack = unshown >= MAX_UNSHOWN;
      if (ws.bufferedAmount > maxBuffered || heldBack) {
        measure(null);
      } else {
        const steering = performance.now() - steeredAt < STEERING_MS;
        if (inFlight >= (steering ? 1 : MAX_IN_FLIGHT)) await sending;
        if (!streaming()) break;
        const capturedAt = Date.now();
        shows = inputSeq;
        // Timed from here: the wait for the frame before is not this frame's work.
        const drawn = draw();
        inFlight++;
        const encoded = toJpeg(drawn);
        const input = shows;
        sending = Promise.all([sending, encoded])
          .then(([, { jpeg, workMs }]) => {
            if (!streaming()) return;
            const message = withFrameMeta(jpeg, { seq: frameSeq++, capturedAt, inputSeq: input, fps: Math.round(stats.fps * 10) / 10 });
            ws.send(message, { binary: true });
            meter.sent(message.length);
            measure(workMs);
          })
          .catch((error) => {
            failure ??= error;
          })
          .finally(() => inFlight--);
      }
      // Pace to the target; when behind, start the next frame at once but never try to catch up
      // with a burst of frames. A camera message the last frame does not show ends the wait, but
      // frames still start at least half an interval apart: moving the camera never more than
      // doubles the frame rate. The frame after an early one is due an interval after it.
      due = Math.max(due + intervalMs, performance.now());
      if (shows === null || inputSeq === shows) await waitUntil(due);
      const earliest = start + intervalMs / 2;
      if (performance.now() < earliest) await new Promise((resolve) => setTimeout(resolve, earliest - performance.now()));
      if (shows !== null && inputSeq !== shows) due = Math.min(due, performance.now());
    }
    await sending;
    if (failure) throw failure;
  }

  function onMessage(ws: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
    const reply = (message: RenderToBrowser) => ws.send(encode(message));
    if (isBinary) return reply({ type: 'error', error: 'binary messages are not understood; send JSON text' });
    const parsed = parseBrowserToRender(data.toString());
    if (!parsed.ok) return reply({ type: 'error', error: parsed.error, ...(parsed.field ? { field: parsed.field } : {}) });
    const msg = parsed.value;
    if (msg.type === 'ping') return reply({ type: 'pong', t: msg.t, serverTime: Date.now() });
    if (msg.type === 'shown') {
      // A frame it could not have been sent is a mistake, not a reason to send more.
      if (msg.seq >= frameSeq) return reply({ type: 'error', error: `no frame ${msg.seq} was sent (the last was ${frameSeq - 1})`, field: 'seq' });
      shownSeq = Math.max(shownSeq ?? -1, msg.seq);
      shownAt = performance.now();
      if (heldBack) wake?.();
      return;
    }
    // Yaw wraps, so that a page spinning the view for ever never reaches the bound.
    camera = { yaw: Math.atan2(Math.sin(msg.yaw), Math.cos(msg.yaw)), pitch: msg.pitch, distance: msg.distance };
    inputSeq = msg.seq;
    steeredAt = performance.now();
    wake?.();
  }

  const idleProbe = setInterval(() => {
    if (client) return;
    const start = performance.now();
    (async () => toJpeg(draw()))().then(
      () => {
        // Smoothed, so that one frame slowed by a passing load does not make the server look sick.
        const took = performance.now() - start;
        if (!client) stats.frameMs = stats.frameMs ? stats.frameMs * (1 - PROBE_WEIGHT) + took * PROBE_WEIGHT : took;
      },
      (error) => log(`idle probe frame failed: ${error instanceof Error ? error.message : error}`),
    );
  }, IDLE_PROBE_MS);

  return {
    /** Streams to the client the slot gives it until `end`; `session` is the page's session from its ticket. Rejects if drawing fails. */
    start(ws: WebSocket, session: string | null): Promise<void> {
      client = ws;
      if (session === null || session !== cameraSession) {
        camera = DEFAULT_CAMERA;
        inputSeq = -1;
      }
      cameraSession = session;
      frameSeq = 0;
      shownSeq = null;
      heldBack = false;
      stats = { ...stats, client: 'connected' };
      sample = { start: performance.now(), frames: 0, workMs: 0 };
      ws.on('message', (data, isBinary) => onMessage(ws, data, isBinary));
      ws.send(encode({ type: 'hello', id, size: renderer.size, targetFps: fps, camera }));
      return run(ws);
    },
    /** Stops streaming to a client that is gone. */
    end(ws: WebSocket): void {
      if (client !== ws) return;
      client = null;
      stats = { ...stats, fps: 0, client: 'none' };
    },
    /** A copy of the stats: zeros and client 'none' until there is something to measure. */
    stats: (): StreamStats => ({ ...stats }),
    stop(): void {
      clearInterval(idleProbe);
    },
  };
}

export type FrameStream = ReturnType<typeof createFrameStream>;
