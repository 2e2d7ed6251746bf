// Pages' asks at a full fleet are taken a few per turn of the event loop; render servers' messages
// are never held. When every server is busy, pages asking again as soon as they are told `none`
// fill each turn with asks, and the report that frees a server waits behind all of them: with 10
// servers and 256 pages asking in a loop, a server completed one cycle per turn of hundreds of
// asks, a seventh of the cycles 16 pages got. Holding the asks lets each turn read the reports
// first. While servers are free and none wait, asks are taken at once, as many as come.
// Asks are taken in the order they came: once any wait, later ones wait behind them, until the
// line is gone.

/** Asks taken in one turn while any wait: 4 held a crowd of none answers to 54 % of the bare server, 8 to 76 % with the same cycles at 256 pages (README, "What limits dispatch"). */
export const ASKS_PER_TURN = 8;

export interface Admission {
  /** Runs `ask` now, or in a later turn when the fleet is full or earlier asks wait. */
  admit<T>(ask: () => Promise<T>): Promise<T>;
  /** What the last ask found: no server free (true) or one handed out (false). */
  found(full: boolean): void;
  /** Asks waiting for their turn. */
  waiting(): number;
}

export function createAdmission(perTurn = ASKS_PER_TURN): Admission {
  const queue: (() => void)[] = [];
  let full = false;
  let scheduled = false;

  function takeTurn(): void {
    scheduled = false;
    // A few even when the last ask found a server: the rest of a crowd let go at once would fill
    // the turn again.
    for (let i = 0; i < perTurn && queue.length > 0; i++) queue.shift()!();
    if (queue.length > 0) schedule();
  }

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    // After this turn's input is read: a report that came with the asks is handled first.
    setImmediate(takeTurn);
  }

  return {
    admit(ask) {
      if (!full && queue.length === 0) return ask();
      return new Promise((resolve, reject) => {
        queue.push(() => {
          try {
            ask().then(resolve, reject);
          } catch (error) {
            reject(error);
          }
        });
        schedule();
      });
    },
    found(isFull) {
      full = isFull;
    },
    waiting: () => queue.length,
  };
}
