// Time as the dispatcher sees it: injected, so that tests can move it instead of sleeping.

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
