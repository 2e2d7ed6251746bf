// A socket's messages handled one at a time, in the order they came: with an asynchronous store, a
// client's arrival and departure written out of order would leave its server busy with nobody.
// A message that fails fails alone; the next one still runs.

export function inOrder(handle: (text: string) => Promise<void>): (text: string) => Promise<void> {
  let previous: Promise<void> = Promise.resolve();
  return (text) => {
    // One promise a message: this socket's heartbeats and requests are the dispatcher's most frequent.
    const run = () => handle(text);
    previous = previous.then(run, run);
    return previous;
  };
}
