// Boot verification on Compute Engine: poll an instance's serial port output through the API
// (instances.getSerialPortOutput) until it matches a pattern. A unikernel has no agent and no
// guest attributes; its console is the only sign of life GCE offers.
//
// The API returns `{ contents, start, next }`: the bytes from `start` (raised when older output
// was dropped from the 1 MB buffer) up to `next`, which the following request passes as `start`.
import { TAIL_LINES } from "../core/exec";
import { apiMessage, apiRequest } from "./api";
import { type Authorize, authorizer } from "./auth";

/** The Compute Engine API root; a private endpoint can replace it. */
export const DEFAULT_ENDPOINT = "https://compute.googleapis.com/compute/v1";

/** The instance a serial port belongs to. */
export interface InstanceRef {
  project: string;
  zone: string;
  name: string;
}

export interface WaitOptions {
  /** A regular expression (its source text) the serial output must match. */
  pattern: string;
  /** How long the instance may take, as the error reports it. */
  timeoutMs: number;
  /** When to give up (ms since the epoch), if the wait began earlier. Default: now + timeoutMs. */
  deadline?: number;
  /** Which serial port; Solo5 writes to COM1. Default: 1. */
  port?: number;
  /** Default: {@link DEFAULT_ENDPOINT}. */
  endpoint?: string;
  /** Authorizes each request. Default: {@link authorizer} with no credentials given. */
  authorize?: Authorize;
  /** First pause between polls; it doubles while nothing new arrives. Default: 1000. */
  initialDelayMs?: number;
  /** Longest pause between polls. Default: 10000. */
  maxDelayMs?: number;
  signal?: AbortSignal;
}

export interface WaitResult {
  /** The text that matched. */
  match: string;
  /** Serial output read up to the match. */
  output: string;
}

/** Serial output no longer than this is kept for matching (the API keeps 1 MB too). */
const MAX_KEPT = 1024 * 1024;

/** What the serial port API returned in one answer. */
interface Chunk {
  contents: string;
  start: number;
  next: number;
}

/** A serial-port request the API refused, or an instance that never printed the pattern. */
export class SerialWaitError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SerialWaitError";
  }
}

/** Parses an instance reference: a selfLink URL, a `projects/P/zones/Z/instances/N` path. */
export function parseInstance(ref: string): InstanceRef {
  const m = /(?:^|\/)projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/?#]+)$/.exec(ref);
  if (!m) {
    throw new SerialWaitError(
      `"${ref}" is not an instance reference: expected a selfLink or projects/P/zones/Z/instances/N`,
    );
  }
  return { project: m[1], zone: m[2], name: m[3] };
}

/** The command a user runs to read the console themselves. */
export function serialCommand(i: InstanceRef): string {
  return `gcloud compute instances get-serial-port-output ${i.name} --zone ${i.zone} --project ${i.project}`;
}

/** Statuses worth retrying: the API is overloaded or briefly unavailable. */
function transient(status: number): boolean {
  return status === 429 || status >= 500;
}

function parseChunk(body: string, requested: number): Chunk {
  const json = JSON.parse(body) as {
    contents?: string;
    start?: string | number;
    next?: string | number;
  };
  // int64 fields arrive as JSON strings.
  const start = Number(json.start ?? requested);
  const contents = json.contents ?? "";
  const next = json.next === undefined ? start + Buffer.byteLength(contents) : Number(json.next);
  if (!Number.isFinite(start) || !Number.isFinite(next)) {
    throw new Error(`unexpected answer: ${body.slice(0, 200)}`);
  }
  return { contents, start, next };
}

function tail(text: string): string {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.slice(-TAIL_LINES).join("\n");
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", done);
      clearTimeout(timer);
      if (signal?.aborted) reject(signal.reason);
      else resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Polls the serial port of `instance` until its output matches `options.pattern`, which may span
 * any number of polls. Fails after the timeout with the last lines of output, or at once when the
 * API refuses the request (wrong project, instance gone, no permission).
 */
export async function waitForSerial(
  instance: InstanceRef,
  options: WaitOptions,
): Promise<WaitResult> {
  const pattern = new RegExp(options.pattern, "m");
  const port = options.port ?? 1;
  const endpoint = (options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
  const authorize = options.authorize ?? (await authorizer({}, instance.project));
  const initialDelay = options.initialDelayMs ?? 1000;
  const maxDelay = options.maxDelayMs ?? 10_000;
  const deadline = options.deadline ?? Date.now() + options.timeoutMs;
  const base = `${endpoint}/projects/${encodeURIComponent(instance.project)}/zones/${encodeURIComponent(instance.zone)}/instances/${encodeURIComponent(instance.name)}/serialPort`;
  const where = `serial port ${port} of instance ${instance.name} (zone ${instance.zone}, project ${instance.project})`;

  let refreshed = false;
  let output = "";
  let next = 0;
  let delay = initialDelay;
  for (;;) {
    const url = `${base}?port=${port}&start=${next}`;
    let answer: { status: number; body: string } | undefined;
    // Why the last request brought nothing, for the timeout message.
    let problem: string | undefined;
    try {
      answer = await apiRequest(url, authorize, { signal: options.signal });
      if (answer.status !== 200) problem = `HTTP ${answer.status}`;
    } catch (error) {
      if (options.signal?.aborted) throw error;
      // A network hiccup: try again until the deadline.
      const cause = (error as Error & { cause?: Error }).cause?.message;
      problem = `network error: ${(error as Error).message}${cause ? ` (${cause})` : ""}`;
    }
    if (answer && answer.status === 401 && !refreshed) {
      // The token expired during a long wait: the next request asks for a fresh one. Once.
      refreshed = true;
      continue;
    }
    let grew = false;
    if (answer && answer.status === 200) {
      const chunk = parseChunk(answer.body, next);
      if (chunk.start > next && output !== "")
        output += "\n[... output dropped by the 1 MB buffer ...]\n";
      output = (output + chunk.contents).slice(-MAX_KEPT);
      grew = chunk.contents !== "";
      next = chunk.next;
      const m = pattern.exec(output);
      if (m) return { match: m[0], output };
    } else if (answer && !transient(answer.status)) {
      throw new SerialWaitError(
        `reading ${where} failed: HTTP ${answer.status}: ${apiMessage(answer.body)}`,
      );
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const shown = output === "" ? "(no output yet)" : tail(output);
      throw new SerialWaitError(
        `${where} did not match /${options.pattern}/ within ${options.timeoutMs / 1000} s` +
          `${problem ? ` (last request: ${problem})` : ""}.\n` +
          `Last lines of output:\n${shown}\n` +
          `Read the whole console with: ${serialCommand(instance)}`,
      );
    }
    if (grew) delay = initialDelay;
    await sleep(Math.min(delay, left), options.signal);
    delay = Math.min(delay * 2, maxDelay);
  }
}
