// Ctrl-C during fit(): the first SIGINT asks the loop to finish its step, write a checkpoint and stop; a second
// one exits at once (status 130). Installed for the length of one fit() and removed after it.

/** Calls `first` on the first SIGINT and exits on the second; returns the function that removes the handler. */
export function catchInterrupts(first: () => void): () => void {
  let count = 0;
  const handler = (): void => {
    count++;
    if (count === 1) first();
    else process.exit(130);
  };
  process.on('SIGINT', handler);
  return () => { process.off('SIGINT', handler); };
}
