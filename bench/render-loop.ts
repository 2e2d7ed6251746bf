// The frames benchmark's baseline: the render loop alone (draw, read, flip, encode; no network)
// as fast as it goes. `node --import tsx bench/render-loop.ts SIZE MS` prints one JSON line.

import { encodeJpeg } from '../render/encoder.ts';
import { openHeadlessRenderer } from '../render/headless.ts';
import { poseAt } from '../render/scene.ts';

const [size, durationMs] = [Number(process.argv[2] ?? 512), Number(process.argv[3] ?? 3000)];
const { renderer, close } = await openHeadlessRenderer(size);
// Warm up: the first frames compile shaders and load the encoder.
for (let i = 0; i < 5; i++) await encodeJpeg(renderer.readFrame(poseAt(i / 60)), size, 80);
let frames = 0;
let bytes = 0;
const start = performance.now();
while (performance.now() - start < durationMs) {
  const jpeg = await encodeJpeg(renderer.readFrame(poseAt(frames / 60)), size, 80);
  bytes += jpeg.length;
  frames++;
}
const elapsed = performance.now() - start;
close();
console.log(JSON.stringify({ size, fps: (frames * 1000) / elapsed, frameBytes: bytes / frames }));
