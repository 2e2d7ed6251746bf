// The whole system as a person sees it: the demo (a dispatcher and three render servers, as
// processes) and pages opened from disk in Debian's Chromium, driven by playwright-core.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, sampleCanvas, viewOf, type CanvasSample } from './browser-helpers.ts';
import { ROOT, childPids, freePort, freePortRun, servers, startProcess, waitFor, type Proc } from './helpers.ts';

describe('pages in Chromium against the demo', () => {
  let demo: Proc;
  let browser: Browser;
  let dispatcherPort: number;
  let pageUrl: string;
  const dir = mkdtempSync(join(tmpdir(), 'render-dispatch-browser-'));

  before(async () => {
    dispatcherPort = await freePort();
    const renderPort = await freePortRun(3);
    demo = startProcess('bun', ['scripts/demo.ts', '--dispatcher-port', String(dispatcherPort), '--render-port', String(renderPort), '--db', ':memory:', '--size', '128']);
    await demo.waitForOutput(/demo: ready/, 60_000);
    pageUrl = `file://${join(ROOT, 'client', 'index.html')}?dispatcher=ws://127.0.0.1:${dispatcherPort}/stream`;
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await demo?.stop('SIGINT');
    rmSync(dir, { recursive: true, force: true });
  });

  async function openPage(url = pageUrl): Promise<Page> {
    const page = await browser.newPage();
    await page.goto(url);
    return page;
  }

  async function streaming(page: Page): Promise<CanvasSample> {
    await waitFor('the page to show frames', async () => (await viewOf(page)).framesShown >= 3, 20_000).catch(async (error) => {
      throw new Error(`${error.message}; the page: ${JSON.stringify(await viewOf(page))}; the servers: ${JSON.stringify(await servers(dispatcherPort))}`);
    });
    const first = await sampleCanvas(page);
    const later = await waitFor('the picture to change', async () => {
      const sample = await sampleCanvas(page);
      return sample.hash !== first.hash ? sample : null;
    }, 10_000);
    assert.ok(later.torusShare > 0.1 && later.torusShare < 0.9, `a torus fills part of the frame (${later.torusShare})`);
    assert.ok(later.brightest > 600, 'with a specular highlight');
    return later;
  }

  const pages: Page[] = [];

  test('three pages from disk each stream their own torus', async () => {
    for (let i = 0; i < 3; i++) pages.push(await openPage());
    for (const page of pages) await streaming(page);
    const used = await Promise.all(pages.map(async (page) => (await viewOf(page)).server));
    assert.equal(new Set(used).size, 3, `three different render servers: ${used.join(', ')}`);
    assert.match(await pages[0].locator('#status').innerText(), /^Streaming, \d+ fps$/);
  });

  test('a fourth page says that no render server is available', async () => {
    const fourth = await openPage();
    await waitFor('the none state', async () => (await viewOf(fourth)).state === 'none');
    const status = fourth.locator('#status');
    assert.equal(await status.isVisible(), true);
    assert.equal(await status.innerText(), 'No render server available.');
    assert.equal(await fourth.locator('#retry').isVisible(), true);
    assert.equal(await fourth.locator('#wait').isVisible(), true, 'it offers to wait');
    pages.push(fourth);
  });

  test('closing a page frees its server, and a new page then streams', async () => {
    const closing = pages.shift()!;
    const freed = (await viewOf(closing)).server;
    await closing.close();
    await waitFor('the server to be free', async () => (await servers(dispatcherPort)).some((s) => s.url === freed && s.state === 'ready'));
    // The waiting page tries again, as a person would.
    const waiting = pages.at(-1)!;
    await waiting.locator('#retry').click();
    await streaming(waiting);
    assert.equal((await viewOf(waiting)).server, freed);
  });

  test("the tutorial's own page code works against the dispatcher unchanged", async () => {
    const tutorial = readFileSync(join(ROOT, 'tests', 'fixtures', 'rednet-tutorial.html'), 'utf8')
      .replace('url_dispatcher = "ws://localhost:18000/stream";', `url_dispatcher = "ws://127.0.0.1:${dispatcherPort}/stream";`);
    const path = join(dir, 'tutorial.html');
    writeFileSync(path, tutorial);

    // Every server is busy: the tutorial's alert() fires.
    const refused = await browser.newPage();
    const alert = new Promise<string>((resolve) => refused.once('dialog', (dialog) => {
      resolve(dialog.message());
      void dialog.dismiss();
    }));
    await refused.goto(`file://${path}`);
    assert.equal(await alert, 'No rendering server available. Please, try again later.');
    await refused.close();

    await pages.shift()!.close();
    await waitFor('a server to be free', async () => (await servers(dispatcherPort)).some((s) => s.state === 'ready'));
    const page = await browser.newPage();
    await page.goto(`file://${path}`);
    const srcs = new Set<string>();
    await waitFor('the <img> to show several frames', async () => {
      const { src, width } = await page.evaluate(() => {
        const img = document.getElementById('img') as HTMLImageElement;
        return { src: img.src, width: img.naturalWidth };
      });
      if (src.startsWith('blob:') && width === 128) srcs.add(src);
      return srcs.size >= 3;
    });
    await page.close();
  });

  test('Ctrl-C on the demo stops every process it started', async () => {
    const command = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      } catch {
        return ''; // gone meanwhile
      }
    };
    const children = childPids(demo.child.pid!);
    const grandchildren = children.flatMap(childPids);
    const below = grandchildren.flatMap(childPids);
    assert.equal(children.length, 2, 'a dispatcher and a render host');
    // Node with tsx also runs esbuild's service beside each program: count what is asserted by name.
    assert.equal(grandchildren.filter((pid) => command(pid).includes('render/main.ts')).length, 3, "the render host's three render servers");
    assert.equal(below.filter((pid) => command(pid).startsWith('Xvfb')).length, 3, 'each render server started its own Xvfb');
    assert.equal(await demo.stop('SIGINT'), 0);
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        // A zombie has exited; only its parent's reaping is left.
        return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
      } catch {
        return false;
      }
    };
    await waitFor('every child to be gone', () => [...children, ...grandchildren, ...below].every((pid) => !alive(pid)), 10_000);
  });
});
