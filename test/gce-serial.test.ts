// Boot verification on GCE against a local HTTP server that plays the Compute Engine
// instances.getSerialPortOutput endpoint: a console that grows a little on every request, with
// the API's `{ contents, start, next }` answers (int64 fields as JSON strings).
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { parseInstance, SerialWaitError, waitForSerial } from "../provider/gcp/serial";
import { accessToken, TOKEN_VARIABLE } from "../provider/gcp/token";
import { provider } from "../provider/resources/gce-serial-wait";
import { engineProvider } from "../sdk/engine";
import { startDynamicProvider, UNKNOWN } from "./support/dynamic-provider";

/** How the fake API answers the next request. */
type Step =
  // The console grows by `append`, the buffer forgets its first `drop` bytes, then it answers.
  { append: string; drop?: number } | { status: number; body?: string }; // an HTTP error

interface Seen {
  path: string;
  start: number;
  port: string | null;
  auth: string | undefined;
}

class FakeSerialApi {
  server: Server;
  console = "";
  dropped = 0;
  steps: Step[] = [];
  seen: Seen[] = [];

  constructor() {
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const start = Number(url.searchParams.get("start") ?? "0");
      this.seen.push({
        path: url.pathname,
        start,
        port: url.searchParams.get("port"),
        auth: req.headers.authorization,
      });
      const step = this.steps.shift() ?? { append: "" };
      if ("status" in step) {
        res.writeHead(step.status, { "content-type": "application/json" });
        res.end(step.body ?? "{}");
        return;
      }
      this.console += step.append;
      this.dropped = step.drop ?? this.dropped;
      // Output before `dropped` is gone; a request for it is moved up, as the real API does.
      const from = Math.max(start, this.dropped);
      const bytes = Buffer.from(this.console);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "compute#serialPortOutput",
          contents: bytes.subarray(from).toString(),
          start: String(from),
          next: String(bytes.length),
        }),
      );
    });
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/compute/v1`;
  }
}

const api = new FakeSerialApi();
const instance = { project: "demo-project", zone: "europe-west1-b", name: "web-1a2b3c" };
const fast = { initialDelayMs: 2, maxDelayMs: 10, token: async () => "test-token" };

before(() => new Promise<void>((resolve) => api.server.listen(0, "127.0.0.1", resolve)));
after(() => new Promise<void>((resolve) => api.server.close(() => resolve())));
beforeEach(() => {
  api.console = "";
  api.dropped = 0;
  api.steps = [];
  api.seen = [];
});

describe("waitForSerial", () => {
  it("reads the console in chunks, continuing from `next`, until the pattern appears", async () => {
    api.steps = [
      { append: "SeaBIOS (version 1.16)\n" },
      { append: "" },
      { append: "Solo5: Bindings version v0.12.1\n" },
      { append: "Solo5: Memory map: 614 MB addressable\n" },
      { append: "2026-01-01T00:00:00-00:00: [INFO] [application] listening on 8080/TCP\n" },
      { append: "never read\n" },
    ];
    const result = await waitForSerial(instance, {
      ...fast,
      pattern: "listening on \\d+/TCP",
      timeoutMs: 10_000,
      endpoint: api.endpoint,
    });
    assert.equal(result.match, "listening on 8080/TCP");
    assert.match(result.output, /^SeaBIOS[\s\S]*Solo5: Bindings[\s\S]*listening on 8080/);
    assert.equal(api.seen.length, 5, "stops polling at the match");
    assert.deepEqual(
      api.seen.map((s) => s.path),
      Array(5).fill(
        "/compute/v1/projects/demo-project/zones/europe-west1-b/instances/web-1a2b3c/serialPort",
      ),
    );
    // Each request asks only for what it has not seen yet.
    const seaBios = Buffer.byteLength("SeaBIOS (version 1.16)\n");
    const banner = Buffer.byteLength("Solo5: Bindings version v0.12.1\n");
    assert.deepEqual(
      api.seen.map((s) => s.start),
      [0, seaBios, seaBios, seaBios + banner, api.seen[4].start],
    );
    assert.ok(api.seen.every((s) => s.port === "1" && s.auth === "Bearer test-token"));
  });

  it("matches text that straddles two polls", async () => {
    api.steps = [{ append: "Hello, Wo" }, { append: "rld\n" }];
    const result = await waitForSerial(instance, {
      ...fast,
      pattern: "Hello, World",
      timeoutMs: 10_000,
      endpoint: api.endpoint,
    });
    assert.equal(result.match, "Hello, World");
    assert.equal(api.seen.length, 2);
    assert.equal(api.seen[1].start, Buffer.byteLength("Hello, Wo"));
  });

  it("fails after the timeout showing the tail of the console and how to read all of it", async () => {
    const lines = Array.from({ length: 60 }, (_, i) => `line ${i}`);
    api.steps = [{ append: `${lines.join("\n")}\n` }, { append: "Solo5: solo5_exit(1) called\n" }];
    await assert.rejects(
      waitForSerial(instance, {
        ...fast,
        pattern: "listening on",
        timeoutMs: 300,
        endpoint: api.endpoint,
      }),
      (error: Error) => {
        assert.ok(error instanceof SerialWaitError);
        assert.match(error.message, /did not match \/listening on\/ within 0.3 s/);
        assert.match(
          error.message,
          /instance web-1a2b3c \(zone europe-west1-b, project demo-project\)/,
        );
        assert.match(error.message, /line 59\nSolo5: solo5_exit\(1\) called\n/);
        assert.doesNotMatch(error.message, /line 5\n/, "only the tail is shown");
        assert.match(
          error.message,
          /gcloud compute instances get-serial-port-output web-1a2b3c --zone europe-west1-b --project demo-project/,
        );
        return true;
      },
    );
    assert.ok(api.seen.length >= 2, "kept polling until the deadline");
  });

  it("says so when the console stayed empty until the timeout", async () => {
    await assert.rejects(
      waitForSerial(instance, { ...fast, pattern: "x", timeoutMs: 50, endpoint: api.endpoint }),
      /Last lines of output:\n\(no output yet\)/,
    );
  });

  it("fails at once on an HTTP error the API will not recover from, with its message", async () => {
    api.steps = [
      {
        status: 403,
        body: JSON.stringify({
          error: {
            code: 403,
            message: "Required 'compute.instances.getSerialPortOutput' permission",
          },
        }),
      },
      { append: "Hello, World\n" },
    ];
    await assert.rejects(
      waitForSerial(instance, {
        ...fast,
        pattern: "Hello",
        timeoutMs: 10_000,
        endpoint: api.endpoint,
      }),
      /serial port 1 of instance web-1a2b3c .* failed: HTTP 403: Required 'compute.instances.getSerialPortOutput' permission/,
    );
    assert.equal(api.seen.length, 1);
  });

  it("keeps trying through network errors, and says so when it gives up", async () => {
    // A port nobody listens on: every request is refused.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(
      waitForSerial(instance, {
        ...fast,
        pattern: "x",
        timeoutMs: 100,
        endpoint: `http://127.0.0.1:${port}/compute/v1`,
      }),
      /within 0.1 s \(last request: network error: fetch failed \(.*ECONNREFUSED.*\)\)/,
    );
  });

  it("retries overload and server errors", async () => {
    api.steps = [{ status: 503 }, { status: 429 }, { append: "Hello, World\n" }];
    const result = await waitForSerial(instance, {
      ...fast,
      pattern: "World",
      timeoutMs: 10_000,
      endpoint: api.endpoint,
    });
    assert.equal(result.match, "World");
    assert.equal(api.seen.length, 3);

    api.steps = Array(10_000).fill({ status: 503 });
    await assert.rejects(
      waitForSerial(instance, { ...fast, pattern: "x", timeoutMs: 100, endpoint: api.endpoint }),
      /within 0.1 s \(last request: HTTP 503\)/,
    );
  });

  it("fetches a fresh token once when the API says the token expired", async () => {
    const tokens = ["old", "new"];
    api.steps = [{ status: 401 }, { append: "Hello, World\n" }];
    await waitForSerial(instance, {
      ...fast,
      token: async () => tokens.shift() ?? "none",
      pattern: "Hello",
      timeoutMs: 10_000,
      endpoint: api.endpoint,
    });
    assert.deepEqual(
      api.seen.map((s) => s.auth),
      ["Bearer old", "Bearer new"],
    );
  });

  it("continues from the oldest output still kept when the buffer dropped what it asked for", async () => {
    // The third request asks for start=8, but bytes 0-11 are gone by then.
    api.steps = [{ append: "aaaa" }, { append: "bbbb" }, { append: "cccccc\nready\n", drop: 12 }];
    const result = await waitForSerial(instance, {
      ...fast,
      pattern: "^ready$",
      timeoutMs: 10_000,
      endpoint: api.endpoint,
    });
    assert.equal(result.match, "ready");
    assert.equal(
      result.output,
      "aaaabbbb\n[... output dropped by the 1 MB buffer ...]\ncc\nready\n",
    );
    assert.deepEqual(
      api.seen.map((s) => s.start),
      [0, 4, 8],
    );
  });
});

describe("parseInstance", () => {
  it("reads selfLinks and short paths", () => {
    assert.deepEqual(
      parseInstance(
        "https://www.googleapis.com/compute/v1/projects/p-1/zones/us-central1-a/instances/web-0",
      ),
      { project: "p-1", zone: "us-central1-a", name: "web-0" },
    );
    assert.deepEqual(parseInstance("projects/p/zones/z/instances/n"), {
      project: "p",
      zone: "z",
      name: "n",
    });
    assert.throws(() => parseInstance("web-0"), /"web-0" is not an instance reference/);
  });
});

const link = (name: string) =>
  `https://www.googleapis.com/compute/v1/projects/demo-project/zones/europe-west1-b/instances/${name}`;

describe("GceSerialWait engine", () => {
  it("checks the pattern, timeout and instances, and lets unknown values through at preview", () => {
    const bad = provider.check(
      {},
      { instances: ["nope"], pattern: "(", timeoutSeconds: 0, endpoint: api.endpoint },
    );
    assert.deepEqual(
      bad.failures?.map((f) => f.property),
      ["pattern", "timeoutSeconds", "instances"],
    );
    assert.match(bad.failures?.[0].reason ?? "", /not a valid regular expression/);
    assert.deepEqual(
      provider
        .check({}, { instances: link("a"), pattern: "x", timeoutSeconds: 1 } as never)
        .failures?.map((f) => f.reason),
      ["must be a list of instance selfLinks"],
    );
    const preview = provider.check({}, {
      instances: [UNKNOWN],
      pattern: "Hello",
      timeoutSeconds: 60,
    } as never);
    assert.deepEqual(preview.failures, []);
  });

  it("is what the GceSerialWait resource's provider loads by package name", async () => {
    const checked = await engineProvider("gce-serial-wait").check?.(
      {},
      { instances: [link("web-0")], pattern: "(", timeoutSeconds: 60 },
    );
    assert.deepEqual(
      checked?.failures?.map((f) => f.property),
      ["pattern"],
    );
  });

  it("waits again when the instances change, and not when only the timeout does", () => {
    const olds = { instances: [link("a")], pattern: "x", timeoutSeconds: 60, matched: { a: "x" } };
    assert.deepEqual(
      provider.diff("id", olds, { instances: [link("b")], pattern: "x", timeoutSeconds: 60 })
        .replaces,
      ["instances"],
    );
    const timeoutOnly = provider.diff("id", olds, {
      instances: [link("a")],
      pattern: "x",
      timeoutSeconds: 90,
    });
    assert.deepEqual(timeoutOnly.replaces, []);
    assert.equal(timeoutOnly.changes, true);
    assert.equal(
      provider.diff("id", olds, { instances: [link("a")], pattern: "x", timeoutSeconds: 60 })
        .changes,
      false,
    );
  });

  it("creates by waiting for every instance's console, and fails with the tail when one never boots", async () => {
    const previous = process.env.GOOGLE_OAUTH_ACCESS_TOKEN;
    process.env.GOOGLE_OAUTH_ACCESS_TOKEN = "env-token";
    try {
      api.steps = [{ append: "Solo5: Bindings version v0.12.1\nlistening on 8080/TCP\n" }];
      const created = await provider.create({
        instances: [link("web-0"), link("web-1")],
        pattern: "listening on \\d+",
        timeoutSeconds: 5,
        endpoint: api.endpoint,
      });
      assert.deepEqual(created.outs.matched, {
        "web-0": "listening on 8080",
        "web-1": "listening on 8080",
      });
      assert.ok(api.seen.every((s) => s.auth === "Bearer env-token"));
      assert.deepEqual(
        new Set(api.seen.map((s) => s.path.split("/").at(-2))),
        new Set(["web-0", "web-1"]),
      );

      api.console = "Solo5: PCI enumeration failed\n";
      await assert.rejects(
        provider.create({
          instances: [link("web-2")],
          pattern: "listening on",
          timeoutSeconds: 1,
          endpoint: api.endpoint,
        }),
        /web-2 .* did not match \/listening on\/ within 1 s[\s\S]*Solo5: PCI enumeration failed/,
      );
    } finally {
      if (previous === undefined) delete process.env.GOOGLE_OAUTH_ACCESS_TOKEN;
      else process.env.GOOGLE_OAUTH_ACCESS_TOKEN = previous;
    }
  });
});

describe("accessToken", () => {
  /** Runs `body` with a stand-in `gcloud` (a shell script with this body) alone on PATH. */
  async function withGcloud(script: string, body: () => Promise<void>) {
    const dir = await mkdtemp(join(tmpdir(), "gcloud-standin-"));
    const saved = { path: process.env.PATH, token: process.env[TOKEN_VARIABLE] };
    try {
      // Stand-in for the gcloud CLI: no Google login exists on this machine.
      await writeFile(join(dir, "gcloud"), `#!/bin/sh\n${script}\n`);
      await chmod(join(dir, "gcloud"), 0o755);
      process.env.PATH = `${dir}:/usr/bin:/bin`;
      delete process.env[TOKEN_VARIABLE];
      await body();
    } finally {
      process.env.PATH = saved.path;
      if (saved.token === undefined) delete process.env[TOKEN_VARIABLE];
      else process.env[TOKEN_VARIABLE] = saved.token;
      await rm(dir, { recursive: true, force: true });
    }
  }

  it("prefers GOOGLE_OAUTH_ACCESS_TOKEN, else asks gcloud", async () => {
    await withGcloud(
      '[ "$1 $2" = "auth print-access-token" ] && echo ya29.from-gcloud',
      async () => {
        assert.equal(await accessToken(), "ya29.from-gcloud");
        process.env[TOKEN_VARIABLE] = "ya29.from-env";
        assert.equal(await accessToken(), "ya29.from-env");
      },
    );
  });

  it("says how to get a token when gcloud has no login", async () => {
    await withGcloud(
      'echo "ERROR: (gcloud.auth.print-access-token) You do not currently have an active account selected." >&2; exit 1',
      () =>
        assert.rejects(
          accessToken(),
          /set GOOGLE_OAUTH_ACCESS_TOKEN, or install the gcloud CLI and run `gcloud auth login`[\s\S]*You do not currently have an active account/,
        ),
    );
  });
});

describe("GceSerialWait in the dynamic-provider process", () => {
  it("waits through the packed package, with the token from the environment, and fails with the tail", async () => {
    const p = await startDynamicProvider({ env: { GOOGLE_OAUTH_ACCESS_TOKEN: "packed-token" } });
    try {
      const preview = await p.check(
        "gce-serial-wait",
        {},
        { instances: UNKNOWN, pattern: "serving HTTP on port \\d+", timeoutSeconds: 60 },
      );
      assert.deepEqual(preview.failures, []);

      api.steps = [
        { append: "Solo5: Bindings version v0.12.1\n" },
        { append: "[INFO] [application] serving HTTP on port 8080\n" },
      ];
      const news = {
        instances: [link("web-0")],
        pattern: "serving HTTP on port \\d+",
        timeoutSeconds: 60,
        endpoint: api.endpoint,
      };
      const { inputs, failures } = await p.check("gce-serial-wait", {}, news);
      assert.deepEqual(failures, []);
      const { outs } = await p.create("gce-serial-wait", inputs);
      assert.deepEqual(outs.matched, { "web-0": "serving HTTP on port 8080" });
      assert.ok(api.seen.length >= 2);
      assert.ok(api.seen.every((s) => s.auth === "Bearer packed-token"));

      api.console = "Solo5: PCI enumeration failed\n";
      await assert.rejects(
        p.create("gce-serial-wait", { ...inputs, instances: [link("web-1")], timeoutSeconds: 1 }),
        /web-1 .* did not match \/serving HTTP on port \\d\+\/ within 1 s[\s\S]*Solo5: PCI enumeration failed[\s\S]*gcloud compute instances get-serial-port-output web-1/,
      );
    } finally {
      await p.stop();
    }
  });
});
