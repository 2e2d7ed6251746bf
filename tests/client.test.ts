// What a person using the farm sees, in Chromium against real dispatcher and render processes:
// waiting in line, being moved when a server dies or drains, getting the same server back after
// a reload, steering the camera, the stats overlay and the link to its server's /about.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import pixelmatch from 'pixelmatch';
import type { Browser, Page } from 'playwright-core';
import { DEFAULT_CAMERA, type Camera } from '../common/protocol.ts';
import { openHeadlessRenderer, type HeadlessRenderer } from '../render/headless.ts';
import { canvasPixels, launchChromium, viewOf } from './browser-helpers.ts';
import { ROOT, freePort, servers, startDispatcher, startRender, waitFor, type Proc } from './helpers.ts';

const SIZE = 128;

describe('the page a user wants', () => {
  let browser: Browser;
  let dispatcherPort: number;
  let dispatcher: Proc;
  const renders: Proc[] = [];
  let pageUrl: string;

  before(async () => {
    dispatcherPort = await freePort();
    dispatcher = startDispatcher(dispatcherPort);
    await dispatcher.waitForOutput(/listening/);
    pageUrl = `file://${join(ROOT, 'client', 'index.html')}?dispatcher=ws://127.0.0.1:${dispatcherPort}/stream`;
    browser = await launchChromium();
  });

  const pages: Page[] = [];

  // Whatever a test left, pass or fail: a page left open would join the line and take the next
  // test's servers.
  afterEach(async () => {
    for (const page of pages.splice(0)) if (!page.isClosed()) await page.close();
    await stopAll();
  });

  after(async () => {
    await browser?.close();
    await dispatcher?.stop();
  });

  /** Starts render servers (still torus, so frames differ only by the camera) and waits until all can be handed out. */
  async function addServers(count: number): Promise<{ proc: Proc; url: string }[]> {
    const added: { proc: Proc; url: string }[] = [];
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const proc = startRender(port, dispatcherPort, ['--spin', '0', '--fps', '30']);
      renders.push(proc);
      added.push({ proc, url: `ws://127.0.0.1:${port}/stream` });
    }
    await waitFor('the new servers to be ready', async () => {
      const rows = await servers(dispatcherPort);
      return added.every((a) => rows.some((r) => r.url === a.url && r.state === 'ready'));
    }, 30_000);
    return added;
  }

  async function stopAll(): Promise<void> {
    while (renders.length) await renders.pop()!.stop();
  }

  async function open(query = ''): Promise<Page> {
    const page = await browser.newPage();
    pages.push(page);
    await page.goto(pageUrl + query);
    return page;
  }

  const streaming = (page: Page, atLeast = 3) =>
    waitFor('the page to stream', async () => {
      const view = await viewOf(page);
      return view.state === 'streaming' && view.framesShown >= atLeast ? view : null;
    }, 20_000);

  test('with no server free a page offers to wait, and gets one the moment another page closes', async () => {
    await addServers(1);
    const first = await open();
    const { server } = await streaming(first);
    const second = await open();
    await waitFor('the offer to wait', async () => (await viewOf(second)).state === 'none');
    await second.locator('#wait').click();
    await waitFor('a place in line', async () => (await viewOf(second)).position === 1);
    assert.match(await second.locator('#status').innerText(), /^Waiting for a render server: you are next/);

    await first.close();
    const view = await streaming(second);
    assert.equal(view.server, server);
  });

  test('queue positions move up as pages ahead leave', async () => {
    await addServers(1);
    const streamer = await open();
    await streaming(streamer);
    const waiting = [await open('&wait=1'), await open('&wait=1'), await open('&wait=1'), await open('&wait=1')];
    await waitFor('four places in line', async () => {
      const positions = await Promise.all(waiting.map(async (p) => (await viewOf(p)).position));
      return positions.join() === '1,2,3,4';
    });
    await waiting[1].close();
    await waitFor('the line to close up', async () => (await Promise.all([waiting[0], waiting[2], waiting[3]].map(async (p) => (await viewOf(p)).position))).join() === '1,2,3');
    await waiting[0].close();
    await waitFor('the line to close up again', async () => (await Promise.all([waiting[2], waiting[3]].map(async (p) => (await viewOf(p)).position))).join() === '1,2');
    assert.match(await waiting[3].locator('#status').innerText(), /1 ahead of you/);
    await streamer.close();
    await streaming(waiting[2]);
    assert.equal((await viewOf(waiting[3])).position, 1);
  });

  test('when its server is killed with SIGKILL the page says so and streams from another within 2 s', async (t) => {
    const [a, b] = await addServers(2);
    const page = await open();
    const before = await streaming(page);
    const victim = before.server === a.url ? a : b;
    const framesBefore = before.framesShown;
    const killedAt = Date.now();
    victim.proc.child.kill('SIGKILL');
    const moved = await waitFor('frames from the other server', async () => {
      const view = await viewOf(page);
      return view.server !== victim.url && view.state === 'streaming' && view.framesShown > framesBefore ? view : null;
    }, 2000, 20);
    t.diagnostic(`streaming from the other server ${Date.now() - killedAt}ms after SIGKILL`);
    assert.equal(moved.server, (victim === a ? b : a).url);
    assert.ok(moved.history.some((h) => h.state === 'reconnecting' && /went away: the connection was lost/.test(h.message)), 'the page said what happened');
  });

  test('a draining server closes cleanly and the page moves on, saying why', async () => {
    const [a, b] = await addServers(2);
    const page = await open();
    const before = await streaming(page);
    const draining = before.server === a.url ? a : b;
    assert.equal(await draining.proc.stop('SIGTERM'), 0);
    const moved = await waitFor('the other server', async () => {
      const view = await viewOf(page);
      return view.server !== draining.url && view.state === 'streaming' ? view : null;
    }, 5000);
    assert.equal(moved.server, (draining === a ? b : a).url);
    assert.ok(moved.history.some((h) => /went away: it is shutting down \(render server shutting down\)/.test(h.message)), 'the page said why');
  });

  test('a reload gets the same server back, camera and all', async () => {
    await addServers(3);
    const page = await open();
    const first = await streaming(page);
    await dragBy(page, 60, -30);
    const steered = await waitFor('the drag to show', async () => {
      const view = await viewOf(page);
      return view.inputShown >= 0 && view.inputShown === view.inputSent ? view : null;
    });
    await page.reload();
    const again = await streaming(page);
    assert.equal(again.session, first.session);
    assert.equal(again.server, first.server);
    assert.deepEqual(again.camera, steered.camera, 'the server kept the camera for this session');
  });

  describe('camera control', () => {
    let headless: HeadlessRenderer;

    before(async () => {
      headless = await openHeadlessRenderer(SIZE);
    });
    after(() => headless?.close());

    /** Pixels differing between the page's canvas and the torus drawn here through `camera`. */
    async function mismatchWith(page: Page, camera: Camera): Promise<number> {
      const shown = await canvasPixels(page);
      assert.deepEqual([shown.width, shown.height], [SIZE, SIZE]);
      const expected = headless.renderer.readFrame({ x: 0, y: 0 }, camera);
      return pixelmatch(shown.data, expected, undefined, SIZE, SIZE, { threshold: 0.1 });
    }

    test('dragging orbits the camera and the wheel zooms: the frames show exactly that view', async (t) => {
      await addServers(1);
      const page = await open();
      await streaming(page);
      // Frames are JPEG: allow 3% of the pixels to differ from the exact render; a real change of
      // view moves far more than that.
      const bound = SIZE * SIZE * 0.03;
      const atStart = await mismatchWith(page, DEFAULT_CAMERA);
      assert.ok(atStart <= bound, `the first frames show the default camera (${atStart} pixels differ)`);

      const sentAt = Date.now();
      await dragBy(page, 80, 40);
      const dragged = await waitFor('the drag to show', async () => {
        const view = await viewOf(page);
        return view.inputShown >= 0 && view.inputShown === view.inputSent ? view : null;
      });
      t.diagnostic(`the first frame showing the drag was on screen ${Date.now() - sentAt}ms after the drag began`);
      assert.ok(dragged.camera!.yaw < -0.5 && dragged.camera!.pitch > 0.2, `the drag turned and raised the camera: ${JSON.stringify(dragged.camera)}`);
      await waitFor('a later frame', async () => (await viewOf(page)).framesShown > dragged.framesShown + 1);
      const matched = await mismatchWith(page, dragged.camera!);
      const unmoved = await mismatchWith(page, DEFAULT_CAMERA);
      assert.ok(matched <= bound, `the frame is the dragged view (${matched} pixels differ)`);
      assert.ok(unmoved > bound * 4, `and not the old one (${unmoved} pixels differ)`);

      const box = (await page.locator('#frame').boundingBox())!;
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.wheel(0, 400);
      const zoomed = await waitFor('the zoom to show', async () => {
        const view = await viewOf(page);
        return view.camera!.distance > dragged.camera!.distance && view.inputShown === view.inputSent ? view : null;
      });
      await waitFor('a later frame', async () => (await viewOf(page)).framesShown > zoomed.framesShown + 1);
      assert.ok((await mismatchWith(page, zoomed.camera!)) <= bound, 'the frame is the zoomed view');
    });

    test("while streaming, 'About this server' links to its server's /about, which says what it is", async () => {
      const [{ proc, url }] = await addServers(1);
      const page = await open();
      const link = page.locator('#about');
      await streaming(page);
      assert.equal(await link.isVisible(), true);
      const href = await link.getAttribute('href');
      assert.equal(href, url.replace(/^ws:/, 'http:').replace(/\/stream$/, '/about'));
      const about = await (await fetch(href!)).json();
      assert.deepEqual(about, { ...about, id: (await servers(dispatcherPort)).find((s) => s.url === url)!.id, size: SIZE, client: 'connected', registered: true });
      await proc.stop();
      await waitFor('the page to leave the stream', async () => (await viewOf(page)).state !== 'streaming');
      assert.equal(await link.isVisible(), false, 'hidden once the server is gone');
    });

    test('a frame still decoding when its stream ends is dropped: the page does not claim to stream again', async () => {
      const [{ proc }] = await addServers(1);
      const page = await open();
      await streaming(page);
      // Decoding slowed, so that frames are still in hand when the server goes.
      await page.evaluate(() => {
        const decode = window.createImageBitmap.bind(window);
        window.createImageBitmap = ((blob: Blob) => new Promise((resolve) => setTimeout(resolve, 300)).then(() => decode(blob))) as typeof window.createImageBitmap;
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const shownBefore = (await viewOf(page)).framesShown;
      await proc.stop();
      await waitFor('the page to leave the stream', async () => (await viewOf(page)).state !== 'streaming');
      await new Promise((resolve) => setTimeout(resolve, 800));
      const view = await viewOf(page);
      const left = view.history.findLastIndex((h) => h.state !== 'streaming');
      assert.ok(left >= 0 && view.history.slice(left).every((h) => h.state !== 'streaming'), JSON.stringify(view.history.slice(-4)));
      assert.notEqual(view.state, 'streaming');
      assert.equal(view.framesShown, shownBefore, 'no frame of the ended stream drawn after it');
      assert.equal(await page.locator('#about').isVisible(), false);
    });

    test('the stats overlay toggles and shows the stream in numbers', async () => {
      await addServers(1);
      const page = await open();
      await streaming(page, 10);
      const overlay = page.locator('#stats');
      assert.equal(await overlay.isVisible(), false);
      await page.keyboard.press('s');
      await waitFor('numbers in the overlay', async () => /received\s+\d+ fps/.test(await overlay.innerText()) && /latency\s+\d+ ms/.test(await overlay.innerText()));
      const text = await overlay.innerText();
      for (const line of [/server\s+ws:\/\/127\.0\.0\.1:\d+\/stream/, /server fps\s+[\d.]+/, /frame\s+[\d.]+ KiB/, /throughput\s+[\d.]+ KiB\/s/]) {
        assert.match(text, line);
      }
      const { stats } = await viewOf(page);
      assert.ok(stats!.fps > 0 && stats!.frameBytes > 500 && stats!.latencyMs! >= 0, JSON.stringify(stats));
      await page.locator('#stats-toggle').click();
      assert.equal(await overlay.isVisible(), false);
    });
  });
});

/** Drags across the canvas from its centre, in small steps as a hand would. */
async function dragBy(page: Page, dx: number, dy: number): Promise<void> {
  const box = (await page.locator('#frame').boundingBox())!;
  const [x, y] = [box.x + box.width / 2, box.y + box.height / 2];
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x + dx, y + dy, { steps: 8 });
  await page.mouse.up();
}
