// QEMU's run state, read from QEMU itself through its QMP monitor (a JSON line protocol on a unix
// socket) rather than guessed from stderr text: whether the guest runs, or why it stopped
// (`internal-error` when KVM could not run it, `guest-panicked`, `shutdown`), and the events
// (SHUTDOWN, RESET, STOP, GUEST_PANICKED) as they happen.
import { connect, type Socket } from "node:net";
import { join } from "node:path";

/** The socket's name inside the directory QEMU runs in (see qmpArgs). */
export const QMP_SOCKET = "qmp.sock";

/**
 * QEMU's options for a QMP monitor on `QMP_SOCKET`, relative to QEMU's working directory: a unix
 * socket path must fit in 107 bytes, and a state directory's full path may not.
 */
export function qmpArgs(): string[] {
  return ["-qmp", `unix:${QMP_SOCKET},server=on,wait=off`];
}

/**
 * The path to connect to the QMP socket of QEMU process `pid` running in `dir`: the socket's own
 * path when it fits a unix socket address, else the same file through /proc/PID/cwd.
 */
export function qmpPath(dir: string, pid: number): string {
  const direct = join(dir, QMP_SOCKET);
  return Buffer.byteLength(direct) < 108 ? direct : `/proc/${pid}/cwd/${QMP_SOCKET}`;
}

/** The run states in which the guest cannot go on by itself (QAPI RunState). */
const STOPPED_STATES: Record<string, string> = {
  "internal-error": "QEMU stopped the guest on an internal error (KVM could not run its code)",
  "guest-panicked": "the guest panicked",
  shutdown: "the guest shut down or reset",
  "io-error": "the guest stopped on a disk I/O error",
};

/** How often a watch asks for the run state, besides the STOP events. */
const POLL_MS = 500;

/** What `query-status` answered. */
export interface RunStatus {
  status: string;
  running: boolean;
}

/** Why a guest in `status` cannot go on, or undefined when it can (running, paused by someone, ...). */
export function stoppedBecause(status: string): string | undefined {
  const why = STOPPED_STATES[status];
  return why && `${why} (QMP run state ${status})`;
}

interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

/**
 * A QMP session: connects (retrying until QEMU has made the socket), negotiates capabilities,
 * then keeps the last run state it learnt, from the events QEMU sends and the `query-status`
 * answers to `refresh()`.
 */
export class QmpSession {
  /** Why the guest cannot go on, once QEMU said so (an event or a status); undefined before. */
  stopped: string | undefined;
  private buffer = "";
  private lastAsked = 0;
  private pending: ((reply: { return?: unknown; error?: { desc?: string } }) => void)[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.receive(chunk));
    // A closed monitor answers nothing more: what QEMU said last stands.
    socket.on("error", () => {});
    socket.on("close", () => {
      for (const resolve of this.pending.splice(0)) resolve({ error: { desc: "QMP closed" } });
    });
  }

  /** Connects to `path`, retrying for `timeoutMs` while `alive()` (QEMU may not have made it yet). */
  static async open(path: string, timeoutMs: number, alive: () => boolean): Promise<QmpSession> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const socket = connect(path);
          socket.once("connect", () => resolve(socket));
          socket.once("error", reject);
        });
        const session = new QmpSession(socket);
        // The greeting comes first; the first command's reply follows it.
        await session.command("qmp_capabilities");
        return session;
      } catch (error) {
        if (!alive() || Date.now() >= deadline)
          throw new Error(`could not open QEMU's QMP monitor ${path}: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  /** Sends a command; resolves with its `return`, rejects with QEMU's error. */
  command(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.pending.push((reply) =>
        reply.error ? reject(new Error(reply.error.desc ?? "QMP error")) : resolve(reply.return),
      );
      this.socket.write(`${JSON.stringify(args ? { execute, arguments: args } : { execute })}\n`);
    });
  }

  /** Asks QEMU for the run state now, and remembers why the guest stopped if it did. */
  async refresh(): Promise<RunStatus> {
    this.lastAsked = Date.now();
    const status = (await this.command("query-status")) as RunStatus;
    this.stopped ??= stoppedBecause(status.status);
    return status;
  }

  /** Asks for the run state in the background, at most every POLL_MS: for a watch loop. */
  poll(): void {
    if (Date.now() - this.lastAsked >= POLL_MS) this.refresh().catch(() => {});
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    for (let end = this.buffer.indexOf("\n"); end >= 0; end = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, end).trim();
      this.buffer = this.buffer.slice(end + 1);
      if (line === "") continue;
      const message = JSON.parse(line) as Record<string, unknown>;
      if ("QMP" in message) continue; // the greeting
      if ("event" in message) this.onEvent(message as unknown as QmpEvent);
      else this.pending.shift()?.(message);
    }
  }

  private onEvent(event: QmpEvent): void {
    // KVM's internal error stops the VM with a STOP event and no event of its own: ask why. (A
    // reset or power-off under -no-reboot ends QEMU itself, which its exit tells.)
    if (event.event === "STOP") this.refresh().catch(() => {});
  }
}

/** One `query-status` of the QEMU whose monitor is at `path`; undefined when it does not answer. */
export async function queryStatus(path: string): Promise<RunStatus | undefined> {
  const session = await QmpSession.open(path, 0, () => false).catch(() => undefined);
  if (!session) return undefined;
  try {
    return await session.refresh();
  } catch {
    return undefined;
  } finally {
    session.close();
  }
}
