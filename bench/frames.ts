// Frames: frames per second delivered to a client and decoded, for one render server and for
// three at once on this machine, at several sizes; bytes per frame; latency from capture to the
// client having decoded the frame. Baseline in the same run: the render loop alone.

import sharp from 'sharp';
import { readFrameMeta } from '../common/frame-meta.ts';
import { askDispatcher, freePort, servers, startDispatcher, startProcess, startRender, waitFor, type Proc } from '../tests/helpers.ts';
import { lineChart } from './chart.ts';
import { markdownTable, percentile } from './stats.ts';

export interface FramesOptions {
  sizes: number[];
  measureMs: number;
}

export const FULL: FramesOptions = { sizes: [256, 512, 1024], measureMs: 5000 };
export const SMOKE: FramesOptions = { sizes: [64], measureMs: 800 };

export interface ClientMeasure {
  fps: number;
  frameBytes: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

export interface FramesRow {
  size: number;
  /** The render loop alone, run before and after the streamed runs (the machine is noisy). */
  baselineRuns: [number, number];
  baselineFps: number;
  one: ClientMeasure;
  three: ClientMeasure[];
}

/** Streams from a handed-out URL, decoding each frame, for `ms` after a second's warm-up. */
async function receive(url: string, ms: number): Promise<ClientMeasure> {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  let measuring = false;
  let frames = 0;
  let bytes = 0;
  const latencies: number[] = [];
  const decodes: Promise<unknown>[] = [];
  ws.onmessage = (event) => {
    if (!measuring || typeof event.data === 'string') return;
    const jpeg = Buffer.from(event.data as ArrayBuffer);
    const meta = readFrameMeta(jpeg);
    decodes.push(
      sharp(jpeg).raw().toBuffer().then(() => {
        frames++;
        bytes += jpeg.length;
        if (meta) latencies.push(Date.now() - meta.capturedAt);
      }),
    );
  };
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`could not open ${url}`));
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  measuring = true;
  const start = performance.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  measuring = false;
  const elapsed = performance.now() - start;
  ws.close();
  await Promise.all(decodes);
  return { fps: (frames * 1000) / elapsed, frameBytes: bytes / Math.max(1, frames), latencyP50Ms: percentile(latencies, 50), latencyP99Ms: percentile(latencies, 99) };
}

async function baseline(size: number, ms: number): Promise<number> {
  const proc = startProcess('node', ['--import', 'tsx', 'bench/render-loop.ts', String(size), String(ms)]);
  const code = await proc.exited;
  if (code !== 0) throw new Error(`the render loop failed: ${proc.output()}`);
  return JSON.parse(proc.output().trim().split('\n').at(-1)!).fps;
}

/** `count` render servers at `size`, as fast as they go, each streaming to one decoding client. */
async function streamed(size: number, count: number, ms: number): Promise<ClientMeasure[]> {
  const dispatcherPort = await freePort();
  const dispatcher = startDispatcher(dispatcherPort);
  const renders: Proc[] = [];
  try {
    await dispatcher.waitForOutput(/listening/);
    for (let i = 0; i < count; i++) renders.push(startRender(await freePort(), dispatcherPort, ['--size', String(size), '--fps', '240']));
    await waitFor('the render servers', async () => (await servers(dispatcherPort)).filter((s) => s.state === 'ready').length === count, 30_000);
    const urls = [];
    for (let i = 0; i < count; i++) urls.push(await askDispatcher(dispatcherPort));
    return await Promise.all(urls.map((url) => receive(url, ms)));
  } finally {
    for (const proc of renders) await proc.stop();
    await dispatcher.stop();
  }
}

export async function runFrames(options: FramesOptions, log = console.error): Promise<FramesRow[]> {
  const rows: FramesRow[] = [];
  for (const size of options.sizes) {
    const before = await baseline(size, options.measureMs);
    const [one] = await streamed(size, 1, options.measureMs);
    const three = await streamed(size, 3, options.measureMs);
    const after = await baseline(size, options.measureMs);
    const baselineFps = (before + after) / 2;
    rows.push({ size, baselineRuns: [before, after], baselineFps, one, three });
    log(`${size}²: loop alone ${baselineFps.toFixed(1)} fps, one server ${one.fps.toFixed(1)}, three ${three.map((m) => m.fps.toFixed(1)).join(' / ')}`);
  }
  return rows;
}

const f1 = (n: number) => n.toFixed(1);

/** How far the furthest of several rates is from their mean, as a share of it. */
export function spread(fps: number[]): number {
  const mean = fps.reduce((a, b) => a + b, 0) / fps.length;
  return Math.max(...fps.map((x) => Math.abs(x - mean))) / mean;
}

export function framesTable(rows: FramesRow[]): string {
  return [
    'Frames: fps decoded by a client; baseline = the render loop alone (draw, read, encode) in a tight loop, the mean of a run before and one after the streamed runs',
    '',
    markdownTable(
      ['size', 'loop alone fps (before, after)', 'one server fps', 'one / alone', 'three servers fps each', 'spread from mean', 'KiB per frame', 'capture→decoded p50 / p99 ms (one)', '(three)'],
      rows.map((r) => [
        `${r.size}²`, `${f1(r.baselineFps)} (${r.baselineRuns.map(f1).join(', ')})`, f1(r.one.fps), `${Math.round((r.one.fps / r.baselineFps) * 100)}%`,
        r.three.map((m) => f1(m.fps)).join(' / '), `±${Math.round(spread(r.three.map((m) => m.fps)) * 100)}%`,
        f1(r.one.frameBytes / 1024), `${r.one.latencyP50Ms} / ${r.one.latencyP99Ms}`,
        `${percentile(r.three.map((m) => m.latencyP50Ms), 50)} / ${Math.max(...r.three.map((m) => m.latencyP99Ms))}`,
      ]),
    ),
  ].join('\n');
}

export function framesChart(rows: FramesRow[]): string {
  return lineChart({
    title: 'Frames per second by frame size',
    xLabel: 'frame size (pixels per side)',
    yLabel: 'frames per second',
    series: [
      { name: 'render loop alone', points: rows.map((r) => [r.size, r.baselineFps]) },
      { name: 'one server, decoded', points: rows.map((r) => [r.size, r.one.fps]) },
      { name: 'three servers, each (mean)', points: rows.map((r) => [r.size, r.three.reduce((a, m) => a + m.fps, 0) / r.three.length]) },
      { name: 'three servers, total', points: rows.map((r) => [r.size, r.three.reduce((a, m) => a + m.fps, 0)]) },
    ],
  });
}
