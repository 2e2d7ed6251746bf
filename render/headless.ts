// A renderer with the X display it needs: starts Xvfb when DISPLAY is unset, and only then loads
// headless-gl, which opens the display when it makes a context.

import type { Renderer } from './renderer.ts';
import { ensureDisplay, type Display } from './xvfb.ts';

export interface HeadlessRenderer {
  renderer: Renderer;
  display: Display;
  close(): void;
}

export async function openHeadlessRenderer(size: number): Promise<HeadlessRenderer> {
  const display = await ensureDisplay();
  try {
    const { createRenderer } = await import('./renderer.ts');
    const renderer = createRenderer(size);
    return {
      renderer,
      display,
      close() {
        renderer.destroy();
        display.stop();
      },
    };
  } catch (error) {
    display.stop();
    throw error;
  }
}
