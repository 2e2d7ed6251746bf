import { describe, expect, test } from 'bun:test';
import { connect, createServer, type AddressInfo } from 'node:net';
import { ASKS_PER_TURN, createAdmission } from './admission.ts';
import { NONE, encode } from '../common/protocol.ts';
import { createDispatcher } from './dispatcher.ts';
import { openSqliteStore } from './sqlite/lease-store.ts';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('admission', () => {
  test('while servers are free, every ask runs at once', async () => {
    const admission = createAdmission(2);
    const ran: number[] = [];
    const asks = [1, 2, 3, 4, 5].map((n) => admission.admit(async () => ran.push(n)));
    expect(ran).toEqual([1, 2, 3, 4, 5]);
    await Promise.all(asks);
  });

  test('at a full fleet, asks are taken a few per turn, in the order they came', async () => {
    const admission = createAdmission(2);
    admission.found(true);
    const ran: number[] = [];
    const asks = [1, 2, 3, 4, 5].map((n) => admission.admit(async () => (ran.push(n), n)));
    expect([ran, admission.waiting()]).toEqual([[], 5]);
    await nextTurn();
    expect(ran).toEqual([1, 2]);
    await nextTurn();
    expect(ran).toEqual([1, 2, 3, 4]);
    await nextTurn();
    expect(ran).toEqual([1, 2, 3, 4, 5]);
    expect(await Promise.all(asks)).toEqual([1, 2, 3, 4, 5]);
  });

  test('a message read from a socket between turns is handled before the asks held for later turns', async () => {
    // A report arriving on a render server's socket as the pages' asks are held.
    const order: string[] = [];
    const server = createServer((socket) => socket.on('data', () => order.push('report')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    try {
      await new Promise((resolve) => client.once('connect', resolve));
      await new Promise((resolve) => setTimeout(resolve, 20));
      const admission = createAdmission(1);
      admission.found(true);
      client.write('gone');
      const until = performance.now() + 10;
      while (performance.now() < until); // the report is in the kernel's buffer before the asks come
      const asks = [1, 2, 3].map((n) => admission.admit(async () => void order.push(`ask ${n}`)));
      await Promise.all(asks);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(order.indexOf('report')).toBeGreaterThanOrEqual(0);
      expect(order.indexOf('report')).toBeLessThan(order.indexOf('ask 2'));
    } finally {
      client.destroy();
      server.close();
    }
  });

  test('once a server is found, later asks still queue behind the held ones, and run at once when none are held', async () => {
    const admission = createAdmission(2);
    admission.found(true);
    const ran: number[] = [];
    for (const n of [1, 2, 3]) void admission.admit(async () => ran.push(n));
    admission.found(false);
    void admission.admit(async () => ran.push(4));
    expect(ran).toEqual([]);
    await nextTurn();
    expect(ran).toEqual([1, 2]);
    await nextTurn();
    expect(ran).toEqual([1, 2, 3, 4]);
    void admission.admit(async () => ran.push(5));
    expect(ran).toEqual([1, 2, 3, 4, 5]);
  });

  test('an ask that throws before it returns fails alone, and the line goes on', async () => {
    const admission = createAdmission(1);
    admission.found(true);
    const throwing = admission.admit((): Promise<string> => {
      throw new Error('thrown at once');
    });
    const fine = admission.admit(async () => 'served');
    await expect(throwing).rejects.toThrow('thrown at once');
    expect(await fine).toBe('served');
  });

  test('an ask that fails fails alone', async () => {
    const admission = createAdmission(1);
    admission.found(true);
    const failing = admission.admit(async () => {
      throw new Error('store unavailable');
    });
    const fine = admission.admit(async () => 'served');
    await expect(failing).rejects.toThrow('store unavailable');
    expect(await fine).toBe('served');
  });
});

describe('admission in the dispatcher', () => {
  test('once a page is told none, a crowd asking at once is answered a few a turn, not all in one', async () => {
    const dispatcher = createDispatcher({ store: openSqliteStore(':memory:'), policy: { rateLimit: 0 } });
    const control = dispatcher.openControl({ send() {}, close() {} });
    await control.message(encode({ type: 'register', id: 'only', instance: 'instance-of-only-0123456789', url: 'ws://127.0.0.1:1/stream', client: 'connected', targetFps: 30 }));
    const pages = Array.from({ length: 24 }, () => {
      const answers: string[] = [];
      return { answers, session: dispatcher.openStream({ send: (text) => answers.push(text), close() {} }, { address: '127.0.0.1' }) };
    });
    // The one server is busy: the first ask finds the fleet full.
    await pages[0].session.message('get_server_url');
    expect(pages[0].answers).toEqual([NONE]);
    const asked = pages.slice(1).map((page) => page.session.message('get_server_url'));
    const answered = () => pages.slice(1).filter((page) => page.answers.length > 0).length;
    const counts: number[] = [];
    for (let turn = 0; turn < 100 && answered() < 23; turn++) {
      await nextTurn();
      counts.push(answered());
    }
    await Promise.all(asked);
    expect(answered()).toBe(23);
    const steps = counts.map((n, i) => n - (counts[i - 1] ?? 0));
    expect(Math.max(...steps)).toBeLessThanOrEqual(ASKS_PER_TURN);
    expect(steps.filter((step) => step > 0).length).toBeGreaterThanOrEqual(3);
    dispatcher.stop();
  });
});
