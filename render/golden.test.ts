// Golden images: the torus drawn at fixed poses must match the PNGs in tests/golden/ (pixelmatch,
// per-pixel threshold plus a bound on mismatched pixels). UPDATE_GOLDEN=1 rewrites them.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pixelmatch from 'pixelmatch';
import { PNG } from 'pngjs';
import sharp from 'sharp';
import { encodeJpeg } from './encoder.ts';
import { flipRows, type Renderer } from './renderer.ts';
import type { Camera } from '../common/protocol.ts';
import type { Pose } from './scene.ts';
import { openHeadlessRenderer, type HeadlessRenderer } from './headless.ts';

const SIZE = 128;
const GOLDEN_DIR = join(import.meta.dirname, '..', 'tests', 'golden');
const OUTPUT_DIR = join(import.meta.dirname, '..', 'tests', 'output');
/** Per-pixel colour distance (pixelmatch's threshold, 0-1) and the share of pixels allowed to differ. */
const THRESHOLD = 0.1;
const MAX_MISMATCHED = 0.005;

const POSES: Record<string, Pose> = {
  'torus-front': { x: 0, y: 0 },
  'torus-tilted': { x: 0.6, y: 0.9 },
  'torus-edge': { x: 1.5, y: 0.2 },
};

/** Each golden image: a pose, and the camera (the default unless given). */
const GOLDENS: Record<string, { pose: Pose; camera?: Camera }> = {
  'torus-front': { pose: POSES['torus-front'] },
  'torus-tilted': { pose: POSES['torus-tilted'] },
  'torus-edge': { pose: POSES['torus-edge'] },
  // The front pose seen by a camera moved off the default: orbited, raised and drawn back.
  'torus-orbit': { pose: POSES['torus-front'], camera: { yaw: 0.8, pitch: 0.5, distance: 6 } },
};

let headless: HeadlessRenderer;
let renderer: Renderer;

before(async () => {
  headless = await openHeadlessRenderer(SIZE);
  renderer = headless.renderer;
});
after(() => headless?.close());

/** Mismatched pixels between a frame and a golden PNG; writes a diff PNG when over the bound. */
function compare(name: string, frame: Buffer, goldenName = name): { mismatched: number; bound: number } {
  const golden = PNG.sync.read(readFileSync(join(GOLDEN_DIR, `${goldenName}.png`)));
  assert.equal(golden.width, SIZE);
  const diff = new PNG({ width: SIZE, height: SIZE });
  const mismatched = pixelmatch(frame, golden.data, diff.data, SIZE, SIZE, { threshold: THRESHOLD });
  const bound = Math.floor(SIZE * SIZE * MAX_MISMATCHED);
  if (mismatched > bound) {
    mkdirSync(OUTPUT_DIR, { recursive: true });
    writeFileSync(join(OUTPUT_DIR, `${name}-vs-${goldenName}.diff.png`), PNG.sync.write(diff));
  }
  return { mismatched, bound };
}

describe('golden images', () => {
  for (const [name, { pose, camera }] of Object.entries(GOLDENS)) {
    test(`${name} matches tests/golden/${name}.png`, () => {
      const frame = renderer.readFrame(pose, camera);
      const path = join(GOLDEN_DIR, `${name}.png`);
      if (process.env.UPDATE_GOLDEN) {
        const png = new PNG({ width: SIZE, height: SIZE });
        frame.copy(png.data);
        writeFileSync(path, PNG.sync.write(png));
      }
      assert.ok(existsSync(path), `${path} is missing: run UPDATE_GOLDEN=1 on this test to write it`);
      const { mismatched, bound } = compare(name, frame);
      assert.ok(mismatched <= bound, `${mismatched} pixels differ (bound ${bound}); diff written to tests/output/`);
    });
  }

  test('the camera changes the picture: the orbited view is not the front view', () => {
    const frame = renderer.readFrame(GOLDENS['torus-orbit'].pose, GOLDENS['torus-orbit'].camera);
    const { mismatched, bound } = compare('torus-orbit-vs-front', frame, 'torus-front');
    assert.ok(mismatched > bound * 4, `only ${mismatched} pixels differ`);
  });

  test('the check can fail: a frame at a different angle does not pass', () => {
    const frame = renderer.readFrame({ x: 0.6 + 0.15, y: 0.9 });
    const { mismatched, bound } = compare('torus-tilted-turned', frame, 'torus-tilted');
    assert.ok(mismatched > bound * 4, `only ${mismatched} pixels differ (bound ${bound})`);
  });

  test('the frame is lit: the torus has a dark side, a diffuse middle and a specular highlight', () => {
    const frame = renderer.readFrame(POSES['torus-tilted']);
    const luma: number[] = [];
    for (let i = 0; i < frame.length; i += 4) luma.push(0.299 * frame[i] + 0.587 * frame[i + 1] + 0.114 * frame[i + 2]);
    const background = luma[0];
    const torus = luma.filter((l) => Math.abs(l - background) > 4);
    assert.ok(torus.length > SIZE * SIZE * 0.15, 'the torus covers a good part of the frame');
    assert.ok(Math.max(...torus) > 200, 'a specular highlight near white');
    assert.ok(Math.min(...torus) < 60, 'a side turned away from the light');
  });

  test('the JPEG sent to clients is the same picture, upright', async () => {
    const frame = renderer.readFrame(POSES['torus-tilted']);
    const jpeg = await encodeJpeg(frame, SIZE, 90);
    assert.deepEqual([...jpeg.subarray(0, 2)], [0xff, 0xd8], 'a JPEG stream');
    const decoded = await sharp(jpeg).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.equal(decoded.info.width, SIZE);
    const { mismatched, bound } = compare('torus-tilted-jpeg', decoded.data, 'torus-tilted');
    assert.ok(mismatched <= bound * 4, `${mismatched} pixels differ after JPEG (bound ${bound * 4})`);
  });
});

describe('row flip', () => {
  test('turns GL bottom-up rows into top-down rows', () => {
    const rows = new Uint8Array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    assert.deepEqual([...flipRows(rows, 1, 3)], [3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1]);
  });
});
