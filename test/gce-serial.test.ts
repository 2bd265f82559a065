// Boot verification on GCE against a local HTTP server that plays the Compute Engine
// instances.getSerialPortOutput endpoint: a console that grows a little on every request, with
// the API's `{ contents, start, next }` answers (int64 fields as JSON strings).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { generateKeyPairSync, verify } from "node:crypto";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { promisify } from "node:util";
import type { GivenCredentials } from "../provider/gcp/auth";
import { newInstances, parseGroup } from "../provider/gcp/group";
import { parseInstance, SerialWaitError, waitForSerial } from "../provider/gcp/serial";
import { provider } from "../provider/resources/gce-serial-wait";
import { engineProvider } from "../sdk/engine";
import { consumerProject } from "./support/consumer";
import { startDynamicProvider, UNKNOWN } from "./support/dynamic-provider";
import { Scratch } from "./support/scratch";

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
  /** Fixed consoles of named instances (for a group's VMs), instead of `console`/`steps`. */
  consoles: Record<string, string> = {};
  /** What successive listManagedInstances calls answer; the last one repeats. */
  managed: object[][] = [];
  lastManaged: object[] = [];
  listed: string[] = [];

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
      if (req.method === "POST" && url.pathname.endsWith("/listManagedInstances")) {
        this.listManaged(url, res);
        return;
      }
      const instanceName = url.pathname.split("/").at(-2) ?? "";
      if (instanceName in this.consoles) {
        res.writeHead(200, { "content-type": "application/json" });
        const text = this.consoles[instanceName];
        res.end(
          JSON.stringify({ contents: text.slice(start), start: "0", next: String(text.length) }),
        );
        return;
      }
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

  /** listManagedInstances, two per page, each call taking the next of `managed`'s answers. */
  private listManaged(url: URL, res: ServerResponse): void {
    const page = Number(url.searchParams.get("pageToken") ?? "0");
    const all = page === 0 ? (this.managed.shift() ?? this.lastManaged) : this.lastManaged;
    this.lastManaged = all;
    this.listed.push(url.pathname);
    const next = page + 2 < all.length ? { nextPageToken: String(page + 2) } : {};
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ managedInstances: all.slice(page, page + 2), ...next }));
  }
}

const api = new FakeSerialApi();
const instance = { project: "demo-project", zone: "europe-west1-b", name: "web-1a2b3c" };
const fast = {
  initialDelayMs: 2,
  maxDelayMs: 10,
  authorize: async () => ({ authorization: "Bearer test-token" }),
};

before(() => new Promise<void>((resolve) => api.server.listen(0, "127.0.0.1", resolve)));
after(() => new Promise<void>((resolve) => api.server.close(() => resolve())));
beforeEach(() => {
  api.console = "";
  api.dropped = 0;
  api.steps = [];
  api.seen = [];
  api.consoles = {};
  api.managed = [];
  api.lastManaged = [];
  api.listed = [];
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
      authorize: async () => ({ authorization: `Bearer ${tokens.shift() ?? "none"}` }),
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
    const olds = {
      instances: [link("a")],
      pattern: "x",
      timeoutSeconds: 60,
      matched: { a: "x" },
      waited: [link("a")],
    };
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
      assert.equal("accessToken" in created.outs, false);
      assert.deepEqual(
        new Set(api.seen.map((s) => s.path.split("/").at(-2))),
        new Set(["web-0", "web-1"]),
      );

      api.seen = [];
      const explicit = await provider.create({
        instances: [link("web-0")],
        pattern: "listening on \\d+",
        timeoutSeconds: 5,
        endpoint: api.endpoint,
        accessToken: "ya29.provider",
        credentials: "{}",
      });
      assert.ok(
        api.seen.every((s) => s.auth === "Bearer ya29.provider"),
        "the provider's token first",
      );
      assert.deepEqual(Object.keys(explicit.outs).sort(), [
        "endpoint",
        "instances",
        "matched",
        "pattern",
        "timeoutSeconds",
        "waited",
      ]);

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

/**
 * A stand-in for Google's token endpoints on loopback: the OAuth token endpoint (refresh-token
 * grant, as an authorized_user login uses) and the metadata server (GCE_METADATA_HOST).
 */
class FakeTokenEndpoints {
  server: Server;
  requests: { method: string; path: string; flavor: string | undefined; form: URLSearchParams }[] =
    [];

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const url = new URL(req.url ?? "/", "http://localhost");
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        const flavor = req.headers["metadata-flavor"] as string | undefined;
        this.requests.push({ method: req.method ?? "", path: url.pathname, flavor, form });
        const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
          res.writeHead(status, { "content-type": "application/json", ...headers });
          res.end(JSON.stringify(body));
        };
        const google = { "metadata-flavor": "Google" };
        if (req.method === "POST" && url.pathname === "/token") {
          const ok =
            form.get("grant_type") === "refresh_token" &&
            form.get("refresh_token") === USER.refresh_token &&
            form.get("client_id") === USER.client_id &&
            form.get("client_secret") === USER.client_secret;
          if (ok) json(200, { access_token: "ya29.user", expires_in: 3600, token_type: "Bearer" });
          else json(400, { error: "invalid_grant" });
        } else if (url.pathname === "/computeMetadata/v1/instance" && flavor === "Google") {
          res.writeHead(200, google);
          res.end("");
        } else if (
          url.pathname === "/computeMetadata/v1/instance/service-accounts/default/token" &&
          flavor === "Google"
        ) {
          json(
            200,
            { access_token: "ya29.metadata", expires_in: 3600, token_type: "Bearer" },
            google,
          );
        } else {
          json(404, { error: "not found" });
        }
      });
    });
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
}

const tokens = new FakeTokenEndpoints();
const scratch = Scratch.forThisFile("gce-credentials-");
/** A loopback address nobody listens on: ADC's metadata probe fails there at once. */
let closedHost = "";

before(async () => {
  await new Promise<void>((resolve) => tokens.server.listen(0, "127.0.0.1", resolve));
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  closedHost = `127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
});
after(() => new Promise<void>((resolve) => tokens.server.close(() => resolve())));
beforeEach(() => {
  tokens.requests = [];
});

const USER = {
  type: "authorized_user",
  client_id: "764086051850-test.apps.googleusercontent.com",
  client_secret: "d-FL95Q19q7MQmFpd7hHD0Ty",
  refresh_token: "1//0refresh-test",
};

const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const SERVICE_ACCOUNT = {
  type: "service_account",
  project_id: "demo-project",
  private_key_id: "k1",
  private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  client_email: "deployer@demo-project.iam.gserviceaccount.com",
  client_id: "1234567890",
};

/**
 * Runs waitForSerial against the fake serial API in a fresh Node process of a consumer project
 * (the package as a user installs it), with only `env` (plus PATH, a scratch HOME and a closed
 * metadata host) in its environment, so nothing can reach a real Google host.
 */
async function waitInFreshProcess(
  env: Record<string, string>,
  given: GivenCredentials = {},
): Promise<{ match?: string; error?: string }> {
  const script = `
    const { authorizer } = require("pulumi-mirage/provider/gcp/auth");
    const { waitForSerial } = require("pulumi-mirage/provider/gcp/serial");
    const [given, endpoint] = [JSON.parse(process.argv[1]), process.argv[2]];
    (async () => {
      const authorize = await authorizer(given, "demo-project");
      const { match } = await waitForSerial(
        { project: "demo-project", zone: "europe-west1-b", name: "web-auth" },
        { pattern: "Hello", timeoutMs: 30000, initialDelayMs: 2, endpoint, authorize },
      );
      return { match };
    })().then(
      (result) => process.stdout.write(JSON.stringify(result)),
      (error) => process.stdout.write(JSON.stringify({ error: error.message })),
    );`;
  const home = await mkdtemp(join(scratch.path, "home-"));
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["-e", script, JSON.stringify(given), api.endpoint],
    {
      cwd: await consumerProject(),
      env: { PATH: process.env.PATH ?? "", HOME: home, GCE_METADATA_HOST: closedHost, ...env },
    },
  );
  return JSON.parse(stdout);
}

/** Writes a credentials file in the scratch directory and returns its path. */
async function credentialsFile(name: string, json: object): Promise<string> {
  const file = join(scratch.path, name);
  await writeFile(file, JSON.stringify(json));
  return file;
}

/** The bearer token the serial API saw on its first request. */
function bearerSeen(): string {
  assert.ok(api.seen.length > 0, "the serial API was reached");
  const auth = api.seen[0].auth ?? "";
  assert.match(auth, /^Bearer /);
  return auth.slice("Bearer ".length);
}

const GROUP =
  "https://www.googleapis.com/compute/v1/projects/demo-project/regions/europe-west1/instanceGroupManagers/fleet-group";
const templateLink = (name: string) =>
  `https://www.googleapis.com/compute/v1/projects/demo-project/global/instanceTemplates/${name}`;
const zoneLink = (zone: string, name: string) =>
  `https://www.googleapis.com/compute/v1/projects/demo-project/zones/${zone}/instances/${name}`;

/** A managed instance as listManagedInstances describes it. */
function managedVm(name: string, template: string, status = "RUNNING", action = "NONE") {
  return {
    instance: zoneLink(`europe-west1-${"bcd"[name.charCodeAt(name.length - 1) % 3]}`, name),
    instanceStatus: status,
    currentAction: action,
    version: { instanceTemplate: templateLink(template), name: "primary" },
  };
}

describe("the boot wait of a managed instance group", () => {
  const OLD = ["fleet-o1", "fleet-o2", "fleet-o3"].map((n) => managedVm(n, "fleet-template-old"));
  const NEW = ["fleet-n1", "fleet-n2", "fleet-n3"];
  const serving = "Solo5: Bindings version v0.12.1\nserving HTTP on port 8080\n";
  const inputs = (timeoutSeconds: number) => ({
    group: {
      manager: GROUP,
      // The group names its version by selfLinkUnique; listManagedInstances by selfLink.
      template: `${templateLink("fleet-template-new")}?uniqueId=42`,
      size: 3,
    },
    pattern: "serving HTTP on port \\d+",
    timeoutSeconds,
    endpoint: api.endpoint,
    accessToken: "ya29.group",
  });

  it("finds the new VMs through the API, across pages, and waits for each one's console", async () => {
    api.managed = [[...OLD, ...NEW.map((n) => managedVm(n, "fleet-template-new"))]];
    for (const n of NEW) api.consoles[n] = serving;
    const created = await provider.create(inputs(30));
    assert.deepEqual(created.outs.matched, {
      "fleet-n1": "serving HTTP on port 8080",
      "fleet-n2": "serving HTTP on port 8080",
      "fleet-n3": "serving HTTP on port 8080",
    });
    assert.deepEqual((created.outs.waited as string[]).map((l) => parseInstance(l).name).sort(), [
      "fleet-n1",
      "fleet-n2",
      "fleet-n3",
    ]);
    // Three pages of two; old VMs are never read.
    assert.equal(api.listed.length, 3);
    assert.ok(
      api.listed.every(
        (p) =>
          p ===
          "/compute/v1/projects/demo-project/regions/europe-west1/instanceGroupManagers/fleet-group/listManagedInstances",
      ),
    );
    assert.deepEqual(
      new Set(
        api.seen.filter((s) => s.path.endsWith("/serialPort")).map((s) => s.path.split("/").at(-2)),
      ),
      new Set(NEW),
      "only the new VMs' consoles",
    );
    assert.ok(api.seen.every((s) => s.auth === "Bearer ya29.group"));
  });

  it("fails naming the one new VM of three that never prints the pattern, with its console tail", async () => {
    api.managed = [[...OLD, ...NEW.map((n) => managedVm(n, "fleet-template-new"))]];
    api.consoles["fleet-n1"] = serving;
    api.consoles["fleet-n2"] = "SeaBIOS (version 1.16)\nSolo5: PCI enumeration failed\n";
    api.consoles["fleet-n3"] = serving;
    await assert.rejects(provider.create(inputs(2)), (error: Error) => {
      assert.match(error.message, /^1 of 3 instances did not boot/);
      assert.match(
        error.message,
        /serial port 1 of instance fleet-n2 \(zone europe-west1-[bcd], project demo-project\) did not match/,
      );
      assert.match(
        error.message,
        /Last lines of output:\nSeaBIOS \(version 1.16\)\nSolo5: PCI enumeration failed/,
      );
      assert.match(error.message, /get-serial-port-output fleet-n2/);
      assert.doesNotMatch(error.message, /instance fleet-n1|instance fleet-n3/);
      return true;
    });
  });

  it("waits for the group to start its new VMs, and says which are missing and why", async () => {
    const group = parseGroup(GROUP);
    const authorize = async () => ({ authorization: "Bearer t" });
    api.managed = [
      [...OLD, managedVm("fleet-n1", "fleet-template-new", "STAGING", "CREATING")],
      [...OLD, ...NEW.map((n) => managedVm(n, "fleet-template-new"))],
    ];
    const found = await newInstances(group, {
      endpoint: api.endpoint,
      authorize,
      template: templateLink("fleet-template-new"),
      size: 3,
      deadline: Date.now() + 30_000,
      pollMs: 5,
    });
    assert.deepEqual(found.map((l) => parseInstance(l).name).sort(), NEW);

    const refused = {
      ...managedVm("fleet-n1", "fleet-template-new", "", "CREATING"),
      instanceStatus: undefined,
      lastAttempt: {
        errors: {
          errors: [
            {
              message:
                "Constraint constraints/compute.vmExternalIpAccess violated for project demo-project.",
            },
          ],
        },
      },
    };
    api.managed = [[...OLD, refused]];
    await assert.rejects(
      newInstances(group, {
        endpoint: api.endpoint,
        authorize,
        template: templateLink("fleet-template-new"),
        size: 3,
        deadline: Date.now() + 50,
        pollMs: 5,
      }),
      /group fleet-group \(region europe-west1, project demo-project\) has 0 of 3 VMs of template fleet-template-new running:\n {2}fleet-n1: no status, CREATING \(Constraint constraints\/compute.vmExternalIpAccess violated/,
    );
  });

  it("checks the group it is given, and waits again for a new template", () => {
    const bad = provider.check(
      {},
      {
        group: { manager: "fleet-group", template: templateLink("t"), size: 0 },
        pattern: "x",
        timeoutSeconds: 60,
      },
    );
    assert.deepEqual(
      bad.failures?.map((f) => f.property),
      ["group.manager", "group.size"],
    );
    assert.deepEqual(
      provider.check({}, { pattern: "x", timeoutSeconds: 60 }).failures?.map((f) => f.reason),
      ["give the instances to watch, or a group"],
    );
    const group = { manager: GROUP, template: templateLink("t1"), size: 3 };
    const olds = { group, pattern: "x", timeoutSeconds: 60, matched: {}, waited: [] };
    assert.deepEqual(
      provider.diff("id", olds, {
        group: { ...group, template: templateLink("t2") },
        pattern: "x",
        timeoutSeconds: 60,
      }).replaces,
      ["group"],
    );
    assert.equal(
      provider.diff("id", olds, { group, pattern: "x", timeoutSeconds: 60 }).changes,
      false,
    );
  });
});

describe("credentials for the Compute Engine API", () => {
  beforeEach(() => {
    api.console = "Hello, World\n";
  });

  it("uses the gcp provider's own access token first, then GOOGLE_OAUTH_ACCESS_TOKEN", async () => {
    const env = {
      GOOGLE_OAUTH_ACCESS_TOKEN: "ya29.env",
      GOOGLE_CREDENTIALS: JSON.stringify(USER),
    };
    assert.deepEqual(await waitInFreshProcess(env, { accessToken: "ya29.provider" }), {
      match: "Hello",
    });
    assert.equal(bearerSeen(), "ya29.provider");
    api.seen = [];
    assert.deepEqual(await waitInFreshProcess(env), { match: "Hello" });
    assert.equal(bearerSeen(), "ya29.env");
    assert.equal(tokens.requests.length, 0, "no token endpoint asked");
  });

  it("signs its own token with a service-account key (GOOGLE_APPLICATION_CREDENTIALS)", async () => {
    const key = await credentialsFile("sa.json", {
      ...SERVICE_ACCOUNT,
      token_uri: `http://${tokens.host}/token`,
    });
    assert.deepEqual(await waitInFreshProcess({ GOOGLE_APPLICATION_CREDENTIALS: key }), {
      match: "Hello",
    });
    // A self-signed JWT, as Google's client libraries send: signed by the key, with the scope.
    const [header, payload, signature] = bearerSeen().split(".");
    assert.ok(
      verify(
        "RSA-SHA256",
        Buffer.from(`${header}.${payload}`),
        publicKey,
        Buffer.from(signature, "base64url"),
      ),
      "signed with the service account's key",
    );
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    assert.equal(claims.iss, SERVICE_ACCOUNT.client_email);
    assert.equal(claims.scope, "https://www.googleapis.com/auth/cloud-platform");
    assert.equal(JSON.parse(Buffer.from(header, "base64url").toString()).kid, "k1");
    assert.deepEqual(tokens.requests, [], "no token endpoint needed");
  });

  it("refreshes an authorized_user login (gcloud's ADC file) at the token endpoint it names", async () => {
    const home = await mkdtemp(join(scratch.path, "adc-home-"));
    await mkdir(join(home, ".config", "gcloud"), { recursive: true });
    await writeFile(
      join(home, ".config", "gcloud", "application_default_credentials.json"),
      JSON.stringify({ ...USER, token_uri: `http://${tokens.host}/token` }),
    );
    assert.deepEqual(await waitInFreshProcess({ HOME: home }), { match: "Hello" });
    assert.equal(bearerSeen(), "ya29.user");
    assert.deepEqual(
      tokens.requests.map((r) => [r.method, r.path, r.form.get("grant_type")]),
      [["POST", "/token", "refresh_token"]],
    );
  });

  it("takes GOOGLE_CREDENTIALS and the provider's credentials as JSON or as a file", async () => {
    const user = { ...USER, token_uri: `http://${tokens.host}/token` };
    assert.deepEqual(await waitInFreshProcess({ GOOGLE_CREDENTIALS: JSON.stringify(user) }), {
      match: "Hello",
    });
    assert.equal(bearerSeen(), "ya29.user");
    api.seen = [];
    const file = await credentialsFile("user.json", user);
    assert.deepEqual(
      await waitInFreshProcess({ GOOGLE_CREDENTIALS: "{ not json" }, { credentials: file }),
      { match: "Hello" },
      "the provider's credentials come before GOOGLE_CREDENTIALS",
    );
    assert.equal(bearerSeen(), "ya29.user");
  });

  it("asks the metadata server (GCE_METADATA_HOST) when nothing else is set", async () => {
    assert.deepEqual(await waitInFreshProcess({ GCE_METADATA_HOST: tokens.host }), {
      match: "Hello",
    });
    assert.equal(bearerSeen(), "ya29.metadata");
    assert.ok(
      tokens.requests.some(
        (r) => r.path === "/computeMetadata/v1/instance/service-accounts/default/token",
      ),
    );
    assert.ok(tokens.requests.every((r) => r.flavor === "Google"));
  });

  it("names every place it looked when there are no credentials, and never echoes a secret", async () => {
    const { error } = await waitInFreshProcess({});
    assert.ok(error, "fails");
    for (const place of [
      /the gcp provider given to the component: no accessToken or credentials/,
      /GOOGLE_OAUTH_ACCESS_TOKEN: not set/,
      /GOOGLE_CREDENTIALS: not set/,
      /GOOGLE_APPLICATION_CREDENTIALS: not set/,
      /gcloud's Application Default Credentials file .*\/\.config\/gcloud\/application_default_credentials\.json: none/,
      new RegExp(`the metadata server \\(${closedHost}\\): not reachable`),
      /gcloud auth application-default login/,
    ]) {
      assert.match(error, place);
    }
    assert.equal(api.seen.length, 0, "no API request without credentials");

    const bad = await waitInFreshProcess({ GOOGLE_CREDENTIALS: '{"private_key": "SECRET-KEY"' });
    assert.match(bad.error ?? "", /GOOGLE_CREDENTIALS does not hold a credentials JSON object/);
    assert.doesNotMatch(bad.error ?? "", /SECRET-KEY/);
  });
});

describe("GceSerialWait in the dynamic-provider process", () => {
  it("waits through the packed package with Application Default Credentials only, and fails with the tail", async () => {
    const adc = await credentialsFile("adc-user.json", {
      ...USER,
      token_uri: `http://${tokens.host}/token`,
    });
    const p = await startDynamicProvider({
      env: {
        // Nothing but ADC: the variables the provider process would inherit are emptied.
        GOOGLE_OAUTH_ACCESS_TOKEN: "",
        GOOGLE_CREDENTIALS: "",
        GOOGLE_APPLICATION_CREDENTIALS: adc,
        HOME: await mkdtemp(join(scratch.path, "home-")),
        CLOUDSDK_CONFIG: "",
        GCE_METADATA_HOST: closedHost,
      },
    });
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
      assert.ok(api.seen.every((s) => s.auth === "Bearer ya29.user"));

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
