// The startup-script of an spt unikernel's host VM on Compute Engine (sdk/host/script.ts with
// sdk/gcp/host-script.ts), run for real as root in network namespaces (test/support/host-lab.ts)
// against test/support/fake-gce-host.ts playing the metadata server, Cloud Storage and Secret
// Manager as strictly as Google: the tests every cloud's host script passes
// (test/support/host-script-suite.ts), and Compute Engine's own. GCE runs the startup-script at
// every boot, so the script itself brings the service back after a reboot, and run again in the
// same boot it keeps the service that runs.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { gcsObjectUrl, renderGceHostScript } from "../sdk/gcp/host-script";
import { HOST_SA, OTHER_SA } from "./support/fake-gce-host";
import { firstLine, tenders } from "./support/host-lab";
import { describeHostScript, type LabFiles, SECRET_VALUE } from "./support/host-script-suite";

const FAKE = join(__dirname, "support", "fake-gce-host.js");
const SECRET = "projects/demo-project/secrets/boot-args/versions/2";
const FORBIDDEN = "projects/demo-project/secrets/forbidden/versions/1";

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The fake's options: `files` in `bucket` for the host's service account (and `late-bucket`). */
const fakeOptions = (files: LabFiles) => ({
  serviceAccount: HOST_SA,
  buckets: {
    "uk-bucket": { objects: files, viewers: [HOST_SA] },
    // The host's grant reaches Cloud Storage 6 s after the VM first asks.
    "late-bucket": { objects: files, viewers: [HOST_SA], grantDelayMs: 6000 },
  },
  secrets: {
    "boot-args": { versions: { "2": SECRET_VALUE }, accessors: [HOST_SA] },
    forbidden: { versions: { "1": "0" }, accessors: [OTHER_SA] },
  },
});

/** The script against the fake at `base`: a 403 is final, unless a test waits for a grant. */
const render =
  (grantWaitSeconds: number) => (spec: Parameters<typeof renderGceHostScript>[0], base: string) =>
    renderGceHostScript(spec, { metadataUrl: base, secretManagerUrl: base, grantWaitSeconds });

describeHostScript(
  {
    name: "Compute Engine",
    fakeProgram: FAKE,
    fakeOptions,
    objectUrl: (base, object) => gcsObjectUrl("uk-bucket", object, base),
    render: render(0),
    secrets: { readable: SECRET, forbidden: FORBIDDEN },
    downloaded: (object) => `GET /storage/v1/b/uk-bucket/o/${object}?alt=media -> 200`,
    secretRead: `GET /v1/${SECRET}:access -> 200`,
    missingObject: (url) =>
      new RegExp(
        `^downloading gone\\.spt from ${literal(url)}: HTTP 404: .*No such object: uk-bucket/no-such-kernel`,
      ),
    // Google's JSON, its line breaks as spaces.
    forbiddenSecret: `HTTP 403: {   "error": {     "code": 403,     "message": "Permission 'secretmanager.versions.access' denied for resource '${FORBIDDEN}' (or it may not exist).",`,
    everyBoot: true,
  },
  ({ lab, service, base, web, fakeAnswered }) => {
    test("run again in the same boot, the script keeps the supervisor and the tender that run", async () => {
      const { path, dir, console } = web();
      const [running] = tenders(dir);
      assert.ok(running, "the tender runs");
      const offset = await console.length();
      await lab.runOnHost(path);
      await console.waitFor(
        "pulumi-mirage[web]: solo5-spt runs already under its supervisor",
        offset,
      );
      assert.deepEqual(tenders(dir), [running], "the same one tender");
      assert.ok(!(await console.text(offset)).includes("starting solo5-spt"));
    });

    test("a grant that reaches Cloud Storage after the VM asks: the 403 is waited out, saying so, and the service starts", async () => {
      const objectUrl = (root: string, object: string) => gcsObjectUrl("late-bucket", object, root);
      const { path, dir, console } = await service("late", {
        objectUrl,
        kernelObject: "plain-kernel",
        networks: [],
        ports: [],
        bootArgs: [],
        render: render(60),
      });
      await lab.runOnHost(path);
      await console.waitFor(
        `pulumi-mirage[late]: downloading late.spt from ${objectUrl(base(), "plain-kernel")}: HTTP 403: waiting up to 60 s for the service account's new grant to take effect`,
      );
      await console.waitFor(`solo5-spt stand-in: would run ${dir}/late.spt`);
      await fakeAnswered("GET /storage/v1/b/late-bucket/o/plain-kernel?alt=media -> 403 forbidden");
      await fakeAnswered("GET /storage/v1/b/late-bucket/o/plain-kernel?alt=media -> 200");
      assert.ok(!(await console.text()).includes("FATAL"), await console.text());
    });

    test("a VM without a service account: the console says which step failed and why", async () => {
      const alone = lab.startIn(lab.host, [
        process.execPath,
        FAKE,
        JSON.stringify({ buckets: {} }),
      ]);
      const other = `http://127.0.0.1:${Number(await firstLine(alone))}`;
      const { path, console } = await service("nosa", {
        render: (spec) => render(0)(spec, other),
      });
      await assert.rejects(lab.runOnHost(path), /exited with status 1/);
      assert.match(
        await console.text(),
        /pulumi-mirage\[nosa\]: FATAL: getting the service account's token from the metadata server \(is a service account attached\?\): HTTP 404: Not Found/,
      );
      lab.stop(alone);
    });
  },
);
