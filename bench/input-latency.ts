// Input latency: from a camera input leaving the page to the first frame on screen that shows it
// (the page times both ends with its own clock), in Chromium against a real dispatcher and render
// server. One input at a time, each sent after the previous one showed.

import { join } from 'node:path';
import { launchChromium, viewOf } from '../tests/browser-helpers.ts';
import { ROOT, freePort, servers, startDispatcher, startRender, waitFor } from '../tests/helpers.ts';
import { markdownTable, summarize, type Summary } from './stats.ts';

export interface InputLatencyOptions {
  trials: number;
  size: number;
}

export const FULL: InputLatencyOptions = { trials: 40, size: 512 };
export const SMOKE: InputLatencyOptions = { trials: 3, size: 128 };

export interface InputLatencyResult {
  options: InputLatencyOptions;
  samplesMs: number[];
  summary: Summary;
  fps: number;
}

export async function runInputLatency(options: InputLatencyOptions): Promise<InputLatencyResult> {
  const dispatcherPort = await freePort();
  const renderPort = await freePort();
  const dispatcher = startDispatcher(dispatcherPort);
  const render = startRender(renderPort, dispatcherPort, ['--size', String(options.size)]);
  const browser = await launchChromium();
  try {
    await waitFor('the render server', async () => (await servers(dispatcherPort)).some((s) => s.state === 'ready'), 30_000);
    const page = await browser.newPage();
    await page.goto(`file://${join(ROOT, 'client', 'index.html')}?dispatcher=ws://127.0.0.1:${dispatcherPort}/stream`);
    await waitFor('frames', async () => (await viewOf(page)).framesShown >= 10, 20_000);
    const box = (await page.locator('#frame').boundingBox())!;
    const [x, y] = [box.x + box.width / 2, box.y + box.height / 2];
    await page.mouse.move(x, y);
    await page.mouse.down();
    const samplesMs: number[] = [];
    for (let i = 0; i < options.trials; i++) {
      const sentBefore = (await viewOf(page)).inputSent;
      // Back and forth, one pointer move per trial.
      await page.mouse.move(x + (i % 2 ? 0 : 12), y);
      const shown = await waitFor('the input to show', async () => {
        const v = await viewOf(page);
        return v.inputSent > sentBefore && v.inputShown === v.inputSent && v.stats?.inputLatencyMs != null ? v : null;
      }, 5000, 5);
      samplesMs.push(shown.stats!.inputLatencyMs!);
    }
    await page.mouse.up();
    const fps = (await viewOf(page)).fps;
    return { options, samplesMs, summary: summarize(samplesMs), fps };
  } finally {
    await browser.close();
    await render.stop();
    await dispatcher.stop();
  }
}

export function inputLatencyTable(result: InputLatencyResult): string {
  const s = result.summary;
  return [
    `Input latency (${result.options.size}², ${result.options.trials} inputs; ms from a camera input leaving the page to the first frame on screen showing it; stream at ${result.fps} fps)`,
    '',
    markdownTable(['inputs', 'min', 'p50', 'p99', 'max'], [[s.n, s.min, s.p50, s.p99, s.max]]),
  ].join('\n');
}
