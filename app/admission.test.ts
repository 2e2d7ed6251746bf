import { describe, expect, test } from 'bun:test';
import { connect, createServer, type AddressInfo } from 'node:net';
import { createAdmission } from './admission.ts';

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
      const until = performance.now() + 5;
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

  test('an ask that fails fails alone', async () => {
    const admission = createAdmission(1);
    admission.found(true);
    const failing = admission.admit(async () => {
      throw new Error('store unavailable');
    });
    const fine = admission.admit(async () => 'served');
    expect(failing).rejects.toThrow('store unavailable');
    expect(await fine).toBe('served');
  });
});
