// A QMP client for tests: connects to a QEMU monitor socket, negotiates, runs commands and keeps
// the events it receives.
import { connect, type Socket } from "node:net";

export interface QmpMessage {
  QMP?: unknown;
  return?: unknown;
  error?: { class: string; desc: string };
  event?: string;
  data?: Record<string, unknown>;
}

export class TestQmp {
  readonly events: QmpMessage[] = [];
  private readonly waiting: ((message: QmpMessage) => void)[] = [];
  private buffer = "";

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      let end = this.buffer.indexOf("\n");
      while (end >= 0) {
        const line = this.buffer.slice(0, end).trim();
        this.buffer = this.buffer.slice(end + 1);
        if (line !== "") this.receive(JSON.parse(line));
        end = this.buffer.indexOf("\n");
      }
    });
    // A QEMU that went away answers nothing: what waits gets that, not a hang.
    socket.on("close", () => {
      for (const waiter of this.waiting.splice(0))
        waiter({ error: { class: "closed", desc: "QMP connection closed" } });
    });
  }

  private receive(message: QmpMessage): void {
    if (message.event !== undefined) this.events.push(message);
    else this.waiting.shift()?.(message);
  }

  /** Connects to `path` (retrying while QEMU starts), reads the greeting; `negotiate` says qmp_capabilities. */
  static async open(path: string, negotiate = true): Promise<TestQmp> {
    let socket: Socket | undefined;
    for (let attempt = 0; socket === undefined; attempt++) {
      socket = await new Promise<Socket | undefined>((resolve) => {
        const candidate = connect(path, () => resolve(candidate));
        candidate.once("error", () => resolve(undefined));
      });
      if (socket === undefined) {
        if (attempt > 200) throw new Error(`no QMP at ${path}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const qmp = new TestQmp(socket);
    await new Promise((resolve) => qmp.waiting.push(resolve));
    if (negotiate) await qmp.execute("qmp_capabilities");
    return qmp;
  }

  execute(command: string, args?: Record<string, unknown>): Promise<QmpMessage> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.write(`${JSON.stringify({ execute: command, arguments: args })}\n`);
    });
  }

  async hmp(commandLine: string): Promise<string> {
    const answer = await this.execute("human-monitor-command", { "command-line": commandLine });
    return answer.return as string;
  }

  close(): void {
    this.socket.destroy();
  }
}
