// What the stand-ins for cloud services share: one local HTTP server that reads a request whole,
// answers what the stand-in decides, and logs one line per request (method, path, status and
// the service's error code), which tests read to see what the host script asked for. Run as a
// program (inside a test's network namespace), a stand-in prints its port, then its log lines.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** What the server answers; `code` names the error, for the request log. */
export interface Reply {
  status: number;
  body: string | Buffer;
  type: string;
  code?: string;
  headers?: Record<string, string>;
}

export const text = (status: number, body = ""): Reply => ({ status, body, type: "text/plain" });

export abstract class FakeHttpServer {
  private readonly server: Server;
  /** One line per request: method, path, status and error code. */
  readonly log: string[] = [];

  constructor(private readonly onLog: (line: string) => void = () => {}) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", async () => {
        const reply = await this.handle(req, Buffer.concat(chunks)).catch((error) =>
          text(500, String(error)),
        );
        const line = `${req.method} ${req.url} -> ${reply.status}${reply.code ? ` ${reply.code}` : ""}`;
        this.log.push(line);
        this.onLog(line);
        res.writeHead(reply.status, { "content-type": reply.type, ...reply.headers });
        res.end(reply.body);
      });
    });
  }

  /** The answer to one request. */
  protected abstract handle(req: IncomingMessage, body: Buffer): Promise<Reply>;

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Runs a stand-in as a program: `make` gets the JSON options of argv[2] and a log printer; the
 * port goes out first, then every log line.
 */
export function runAsProgram(
  make: (options: never, onLog: (line: string) => void) => FakeHttpServer,
) {
  const fake = make(JSON.parse(process.argv[2]) as never, (line) => console.log(line));
  fake.start().then((port) => console.log(port));
  process.on("SIGTERM", () => process.exit(0));
}
