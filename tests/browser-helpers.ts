// Driving Debian's Chromium with playwright-core, and reading what the page shows.

import { chromium, type Browser, type Page } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// As root in a sandbox with no network: no sandbox, no GPU, and none of Chromium's own traffic.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** window.renderDispatch: what the page shows, as client/globals.d.ts types it for the page itself. */
export type PageView = RenderDispatch.PageView;

export const viewOf = (page: Page): Promise<PageView> =>
  page.evaluate(() => (window as unknown as { renderDispatch: PageView }).renderDispatch);

export interface CanvasSample {
  hash: number;
  torusShare: number;
  brightest: number;
}

/** A fingerprint of the page's canvas, and how much of it is torus rather than background. */
export function sampleCanvas(page: Page): Promise<CanvasSample> {
  return page.evaluate(() => {
    const canvas = document.getElementById('frame') as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let hash = 2166136261;
    let torus = 0;
    let brightest = 0;
    const [r0, g0, b0] = [data[0], data[1], data[2]];
    for (let i = 0; i < data.length; i += 4) {
      hash = Math.imul(hash ^ data[i] ^ (data[i + 1] << 8) ^ (data[i + 2] << 16), 16777619);
      if (Math.abs(data[i] - r0) + Math.abs(data[i + 1] - g0) + Math.abs(data[i + 2] - b0) > 24) torus++;
      brightest = Math.max(brightest, data[i] + data[i + 1] + data[i + 2]);
    }
    return { hash, torusShare: torus / (data.length / 4), brightest };
  });
}

/** The canvas's pixels, RGBA, top row first. */
export async function canvasPixels(page: Page): Promise<{ width: number; height: number; data: Buffer }> {
  const { width, height, data } = await page.evaluate(() => {
    const canvas = document.getElementById('frame') as HTMLCanvasElement;
    return { width: canvas.width, height: canvas.height, data: Array.from(canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data) };
  });
  return { width, height, data: Buffer.from(data) };
}
