// An offscreen GL context (headless-gl) with regl and the scene: draws a pose and reads it back as
// top-down RGBA rows. Load it only once an X display is set (see xvfb.ts).

import createGL from 'gl';
import createREGL from 'regl';
import type { Camera } from '../common/protocol.ts';
import { createScene, type Pose } from './scene.ts';

export interface Renderer {
  size: number;
  /** Draws the pose as the camera sees it and returns its pixels, RGBA, first row at the top. */
  readFrame(pose: Pose, camera?: Camera): Buffer;
  destroy(): void;
}

/** GL reads rows bottom-up; images are stored top-down. */
export function flipRows(pixels: Uint8Array, width: number, height: number): Buffer {
  const stride = width * 4;
  const out = Buffer.allocUnsafe(pixels.length);
  const src = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  for (let row = 0; row < height; row++) {
    src.copy(out, (height - 1 - row) * stride, row * stride, (row + 1) * stride);
  }
  return out;
}

export function createRenderer(size: number): Renderer {
  const gl = createGL(size, size, { preserveDrawingBuffer: true, antialias: false });
  if (!gl) {
    throw new Error(`could not create a ${size}x${size} GL context (is the X display ${process.env.DISPLAY ?? '(unset)'} up, with GLX?)`);
  }
  const regl = createREGL({ gl });
  const draw = createScene(regl);
  const pixels = new Uint8Array(size * size * 4);

  return {
    size,
    readFrame(pose, camera) {
      draw(pose, camera);
      regl.read({ data: pixels });
      const error = gl.getError();
      if (error !== gl.NO_ERROR) throw new Error(`GL error 0x${error.toString(16)} while drawing`);
      return flipRows(pixels, size, size);
    },
    destroy() {
      regl.destroy();
      gl.getExtension('STACKGL_destroy_context')?.destroy();
    },
  };
}
