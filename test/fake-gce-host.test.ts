// The stand-ins for the metadata server, Cloud Storage and Secret Manager
// (test/support/fake-gce-host.ts) refuse what the real services refuse: a test passing against
// them means something only if they do. Requests come from curl (what the host script uses) and
// from fetch, on loopback.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { findExecutable, run } from "../provider/core/exec";
import { FakeGceHost, HOST_SA, OTHER_SA, OTHER_TOKEN } from "./support/fake-gce-host";
import { Scratch } from "./support/scratch";

const OBJECT = "the kernel's bytes";
const scratch = Scratch.forThisFile("fake-gce-host-test-");
const fakes: FakeGceHost[] = [];

/** A fake serving `kernels/web.spt` in `bucket` to the host's service account; its root URL. */
async function startFake(change: { serviceAccount?: string; tokenSeconds?: number } = {}) {
  const file = join(scratch.path, "kernel");
  await writeFile(file, OBJECT);
  const fake = new FakeGceHost({
    serviceAccount: HOST_SA,
    buckets: {
      bucket: { objects: { "kernels/web.spt": file }, viewers: [HOST_SA] },
      "others-bucket": { objects: { "kernels/web.spt": file }, viewers: [OTHER_SA] },
    },
    secrets: {
      "boot-args": { versions: { "1": "1 --old", "2": "1 --token=x" }, accessors: [HOST_SA] },
    },
    ...change,
  });
  fakes.push(fake);
  return `http://127.0.0.1:${await fake.start()}`;
}

/** curl, as the host script runs it; prints the status after the body. */
async function curl(...args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run("curl", ["-sS", "-w", "\n%{http_code}", ...args], {
    timeoutMs: 30_000,
  });
  const cut = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

const TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token";

/** A token from the metadata server at `base`, asked for as the host script asks. */
async function token(base: string): Promise<string> {
  const { status, body } = await curl("-H", "Metadata-Flavor: Google", `${base}${TOKEN_PATH}`);
  assert.equal(status, 200, body);
  return JSON.parse(body).access_token;
}

/** A GET with `bearer` (none: no Authorization header). */
async function get(url: string, bearer?: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, {
    headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` },
  });
  return { status: response.status, body: await response.text() };
}

const withCurl = { skip: findExecutable("curl") ? false : "needs curl" };
const OBJECT_URL = "/storage/v1/b/bucket/o/kernels%2Fweb.spt";
const SECRET_URL = "/v1/projects/demo-project/secrets/boot-args/versions/2:access";

describe("the fakes of what a Compute Engine host talks to", () => {
  let base = "";
  before(async () => {
    base = await startFake();
  });
  after(async () => {
    for (const fake of fakes) await fake.stop();
  });

  describe("the fake metadata server", () => {
    test("gives the VM's service account's token, as the server prints it", withCurl, async () => {
      const { status, body } = await curl("-H", "Metadata-Flavor: Google", `${base}${TOKEN_PATH}`);
      assert.equal(status, 200);
      const answer = JSON.parse(body);
      assert.deepEqual(Object.keys(answer).sort(), ["access_token", "expires_in", "token_type"]);
      assert.match(answer.access_token, /^ya29\.[A-Za-z0-9._-]+$/);
      assert.equal(answer.token_type, "Bearer");
      assert.equal(answer.expires_in, 3599);
    });

    test(
      "refuses a request without Metadata-Flavor: Google, or with X-Forwarded-For",
      withCurl,
      async () => {
        const bare = await curl(`${base}${TOKEN_PATH}`);
        assert.equal(bare.status, 403);
        assert.match(bare.body, /Missing Metadata-Flavor:Google header/);
        assert.equal(
          (await curl("-H", "Metadata-Flavor: Gogle", `${base}${TOKEN_PATH}`)).status,
          403,
        );
        const forwarded = await curl(
          "-H",
          "Metadata-Flavor: Google",
          "-H",
          "X-Forwarded-For: 10.0.0.9",
          `${base}${TOKEN_PATH}`,
        );
        assert.equal(forwarded.status, 403);
        assert.equal(
          (await curl("-H", "Metadata-Flavor: Google", `${base}/computeMetadata/v1/nothing`))
            .status,
          404,
        );
      },
    );

    test("has no token for a VM without a service account", withCurl, async () => {
      const alone = await startFake({ serviceAccount: undefined });
      const { status } = await curl("-H", "Metadata-Flavor: Google", `${alone}${TOKEN_PATH}`);
      assert.equal(status, 404);
    });
  });

  describe("the fake Cloud Storage", () => {
    test(
      "gives an object's bytes with alt=media, and its metadata without, to a viewer's token",
      withCurl,
      async () => {
        const bearer = await token(base);
        const media = await curl(
          "-H",
          `Authorization: Bearer ${bearer}`,
          `${base}${OBJECT_URL}?alt=media`,
        );
        assert.deepEqual(media, { status: 200, body: OBJECT });
        const resource = await get(`${base}${OBJECT_URL}`, bearer);
        assert.equal(resource.status, 200);
        assert.equal(JSON.parse(resource.body).name, "kernels/web.spt");
        assert.notEqual(resource.body, OBJECT);
      },
    );

    test("refuses no token (401), a token the metadata server did not give (401), and an expired one (401)", async () => {
      const anonymous = await get(`${base}${OBJECT_URL}?alt=media`);
      assert.equal(anonymous.status, 401);
      assert.match(anonymous.body, /Anonymous caller does not have storage\.objects\.get access/);
      const madeUp = await get(`${base}${OBJECT_URL}?alt=media`, "ya29.made-up");
      assert.equal(madeUp.status, 401);
      assert.match(madeUp.body, /Invalid Credentials/);

      const shortLived = await startFake({ tokenSeconds: 1 });
      const bearer = await token(shortLived);
      assert.equal((await get(`${shortLived}${OBJECT_URL}?alt=media`, bearer)).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      assert.equal((await get(`${shortLived}${OBJECT_URL}?alt=media`, bearer)).status, 401);
    });

    test("refuses a service account without objectViewer on the bucket (403), whatever it holds elsewhere", async () => {
      const theirs = await get(`${base}${OBJECT_URL}?alt=media`, OTHER_TOKEN);
      assert.equal(theirs.status, 403);
      assert.match(
        theirs.body,
        new RegExp(`${OTHER_SA} does not have storage\\.objects\\.get access`),
      );
      const bearer = await token(base);
      const elsewhere = await get(
        `${base}/storage/v1/b/others-bucket/o/kernels%2Fweb.spt?alt=media`,
        bearer,
      );
      assert.equal(elsewhere.status, 403);
      assert.equal(
        (await get(`${base}/storage/v1/b/no-bucket/o/kernels%2Fweb.spt?alt=media`, bearer)).status,
        403,
      );
    });

    test("answers 404 for an unencoded object name and a missing object", async () => {
      const bearer = await token(base);
      const unencoded = await get(
        `${base}/storage/v1/b/bucket/o/kernels/web.spt?alt=media`,
        bearer,
      );
      assert.equal(unencoded.status, 404);
      const missing = await get(`${base}/storage/v1/b/bucket/o/kernels%2Fnone?alt=media`, bearer);
      assert.equal(missing.status, 404);
      assert.match(missing.body, /No such object: bucket\/kernels\/none/);
    });
  });

  describe("the fake Secret Manager", () => {
    test("gives an accessor the version's payload in base64, by number or latest", async () => {
      const bearer = await token(base);
      const answer = await get(`${base}${SECRET_URL}`, bearer);
      assert.equal(answer.status, 200);
      const { name, payload } = JSON.parse(answer.body);
      assert.equal(name, "projects/123456789012/secrets/boot-args/versions/2");
      assert.equal(Buffer.from(payload.data, "base64").toString(), "1 --token=x");
      const latest = await get(
        `${base}/v1/projects/123456789012/secrets/boot-args/versions/latest:access`,
        bearer,
      );
      assert.equal(
        Buffer.from(JSON.parse(latest.body).payload.data, "base64").toString(),
        "1 --token=x",
      );
    });

    test("refuses no token or a bad one (401), another service account (403), and a missing version (404)", async () => {
      const anonymous = await get(`${base}${SECRET_URL}`);
      assert.equal(anonymous.status, 401);
      assert.equal(JSON.parse(anonymous.body).error.status, "UNAUTHENTICATED");
      assert.equal((await get(`${base}${SECRET_URL}`, "ya29.made-up")).status, 401);
      const theirs = await get(`${base}${SECRET_URL}`, OTHER_TOKEN);
      assert.equal(theirs.status, 403);
      assert.match(
        JSON.parse(theirs.body).error.message,
        /^Permission 'secretmanager\.versions\.access' denied for resource 'projects\/demo-project\/secrets\/boot-args\/versions\/2' \(or it may not exist\)\.$/,
      );
      const bearer = await token(base);
      const missing = await get(
        `${base}/v1/projects/demo-project/secrets/boot-args/versions/9:access`,
        bearer,
      );
      assert.equal(missing.status, 404);
      // A secret the caller may not read is not told apart from one that does not exist.
      assert.equal(
        (await get(`${base}/v1/projects/demo-project/secrets/nothing/versions/1:access`, bearer))
          .status,
        403,
      );
    });
  });
});
