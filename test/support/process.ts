// Watching processes from tests: whether one is still there, and waiting for a condition.

/** Whether a process is still there. */
export { processAlive as alive } from "../../provider/lock";

/** Polls `condition` every 50 ms until it holds; fails naming `what` after `ms`. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
