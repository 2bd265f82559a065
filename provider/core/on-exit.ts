// Cleanups that must run however this process ends: when it exits, and when SIGINT, SIGTERM or
// SIGHUP would kill it. One set of handlers serves every cleanup (tools to kill, scratch to
// remove), so there is no order between several handlers to get right.
//
// A signal that another listener handles (a command that stops its build and exits) is theirs:
// the cleanups then run at the exit that follows. Otherwise they run at once and the signal is
// raised again, so the process still dies of it (its parent sees the signal, not an exit status).

const SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
const cleanups = new Set<() => void>();

/**
 * Runs (synchronously: the process is on its way out) and forgets every cleanup, the latest first:
 * a tool goes before the scratch directory it works in.
 */
function runCleanups(): void {
  const pending = [...cleanups].reverse();
  cleanups.clear();
  for (const cleanup of pending) cleanup();
}

function onSignal(signal: NodeJS.Signals): void {
  if (process.listeners(signal).some((listener) => listener !== onSignal)) return;
  runCleanups();
  unhook();
  process.kill(process.pid, signal);
}

function hook(): void {
  if (process.listeners("exit").includes(runCleanups)) return;
  process.on("exit", runCleanups);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function unhook(): void {
  process.off("exit", runCleanups);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

/**
 * Runs `cleanup` (synchronous) if this process ends before the returned function is called; that
 * function forgets it once it is no longer needed.
 */
export function onExit(cleanup: () => void): () => void {
  cleanups.add(cleanup);
  hook();
  return () => {
    cleanups.delete(cleanup);
    if (cleanups.size === 0) unhook();
  };
}
