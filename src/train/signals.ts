// Ctrl-C during fit(): the first SIGINT asks the loop to finish its step, write a checkpoint and stop; a second
// one exits at once (status 130). Installed for the length of one fit() and removed after it.

/**
 * Calls `first` on the first SIGINT and exits on the second; returns the function that removes the handler.
 * With sigterm (under mpirun, which passes a Ctrl-C or a job stop to every rank as SIGTERM) SIGTERM counts too.
 */
export function catchInterrupts(first: () => void, options: { sigterm?: boolean } = {}): () => void {
  let count = 0;
  const handler = (): void => {
    count++;
    if (count === 1) first();
    else process.exit(130);
  };
  const signals: NodeJS.Signals[] = options.sigterm ? ['SIGINT', 'SIGTERM'] : ['SIGINT'];
  for (const s of signals) process.on(s, handler);
  return () => { for (const s of signals) process.off(s, handler); };
}
