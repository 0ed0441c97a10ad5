/**
 * Servers still open when the process ends are closed, so that their
 * sockets do not outlive it.
 *
 * @packageDocumentation
 */

/** What is closed at exit. */
interface Closable {
  close(): Promise<void>;
}

const openServers = new Set<Closable>();
let exitHookInstalled = false;

/** Signals whose default action ends the process without an 'exit' event. */
const ENDING_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function closeAllOnExit(): void {
  for (const server of [...openServers]) {
    void server.close();
  }
}

/**
 * Runs first for an ending signal. If the program has no handler of its own
 * for it, closes the servers and raises the signal again, so the process
 * still ends by it; a program that handles the signal decides itself.
 */
function closeAllOnSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) {
    return;
  }
  closeAllOnExit();
  process.removeListener(signal, closeAllOnSignal);
  process.kill(process.pid, signal);
}

/** Closes `server` when the process exits or an ending signal arrives, until {@link forgetOpenServer}. */
export function trackOpenServer(server: Closable): void {
  openServers.add(server);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', closeAllOnExit);
    for (const signal of ENDING_SIGNALS) {
      process.prependListener(signal, closeAllOnSignal);
    }
  }
}

/** `server` closed: nothing to do for it at exit. */
export function forgetOpenServer(server: Closable): void {
  openServers.delete(server);
}
