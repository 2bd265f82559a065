// The host script's renderer (sdk/host/script.ts, with the AWS and GCE modules): the same inputs
// give the same script; every value is refused or quoted so that none can end its quoting; what a
// boot argument may hold is DiskImage's rule, in DiskImage's words. (test/aws-host.test.ts and
// test/gce-host.test.ts run it.)
import assert from "node:assert/strict";
import { readFile, writeFile as writeFileAsync } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { run } from "../provider/core/exec";
import { checkBootArgs } from "../provider/image/bootargs";
import { EMPTY_SHA256, renderAwsHostScript } from "../sdk/aws/host-script";
import { gceHost, gcsObjectUrl, renderGceHostScript } from "../sdk/gcp/host-script";
import { encodeSecretBootArgs, type HostScriptSpec } from "../sdk/host/script";
import { shellQuote, writeFile } from "../sdk/host/shell";
import { Scratch } from "./support/scratch";

const scratch = Scratch.forThisFile("host-script-test-");

const spec: HostScriptSpec = {
  name: "web",
  target: "spt",
  kernelName: "web.spt",
  kernel: { url: "https://b.s3.eu-west-1.amazonaws.com/k", sha256: "a".repeat(64) },
  tender: { url: "https://b.s3.eu-west-1.amazonaws.com/t", sha256: "b".repeat(64) },
  networks: ["service"],
  ports: [
    { port: 80, protocol: "tcp" },
    { port: 53, protocol: "udp" },
  ],
  bootArgs: ["--hello=$(id)"],
};
const render = (change: Partial<HostScriptSpec> = {}) =>
  renderAwsHostScript({ ...spec, ...change }, { region: "eu-west-1" });

/** What `sh` makes of `script`'s output (it prints on stdout). */
async function sh(script: string): Promise<string> {
  return (await run("sh", ["-c", script], { timeoutMs: 10_000 })).stdout;
}

/** The message `f` throws. */
function thrown(f: () => unknown): string {
  try {
    f();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("it did not throw");
}

describe("renderHostScript on AWS", () => {
  test("is the same script for the same inputs, and another for another kernel", () => {
    assert.equal(render(), render());
    assert.notEqual(render(), render({ kernel: { ...spec.kernel, sha256: "c".repeat(64) } }));
    const script = render();
    assert.match(
      script,
      /tcp dport \{ 80 \} dnat to 10\.81\.0\.2\n.*udp dport \{ 53 \} dnat to 10\.81\.0\.2/s,
    );
    assert.ok(script.includes(`x-amz-content-sha256: ${EMPTY_SHA256}`), "S3 wants it signed");
  });

  test("is valid sh", async () => {
    const path = join(scratch.path, "user-data.sh");
    await writeFileAsync(path, render());
    await run("sh", ["-n", path], { timeoutMs: 10_000 });
  });

  test("refuses a boot argument that could end a quoted region, in DiskImage's words", () => {
    const injections = [
      "a\nPULUMI_MIRAGE_EOF\necho INJECTED",
      "it's",
      'say "hi"',
      "back\\slash",
      "tab\there",
      "",
    ];
    for (const arg of injections) {
      const message = thrown(() => render({ bootArgs: ["--ok", arg] }));
      assert.equal(message, `bootArgs: ${thrown(() => checkBootArgs(["--ok", arg]))}`);
      assert.match(message, /^bootArgs: boot argument 1 /);
      if (arg !== "")
        assert.ok(!message.includes(arg), "the argument is not quoted (it may be secret)");
    }
  });

  test("refuses what the host sets itself, ports with nowhere to go, and values with no place in a script", () => {
    assert.match(
      thrown(() => render({ bootArgs: ["--ipv4=10.0.0.2/24"] })),
      /bootArgs: boot argument 0 sets --ipv4, which the host sets/,
    );
    assert.match(
      thrown(() => render({ networks: [] })),
      /ports: the unikernel declares no network device/,
    );
    const refusals: [Partial<HostScriptSpec>, RegExp][] = [
      [{ name: "Web" }, /^name "Web"/],
      [{ name: "a\nb" }, /^name /],
      [{ kernelName: "../x" }, /kernelName "..\/x" is not a plain file name/],
      [{ kernel: { url: "https://b/k'; reboot; '", sha256: "a".repeat(64) } }, /^kernel\.url /],
      [
        { tender: { url: "https://b/t", sha256: "B".repeat(64) } },
        /tender\.sha256 is not a sha256/,
      ],
      [{ networks: ["a b"] }, /networks: "a b" is not a device name/],
      [{ stateDir: "/var/lib/my state" }, /^stateDir /],
      [{ stateDir: "/var/../etc" }, /^stateDir /],
      [{ console: "relative" }, /^console /],
      [{ bootArgs: { secret: "/p'$(id)':1" } }, /is not an SSM parameter name with its version/],
      [{ bootArgs: { secret: "/p" } }, /is not an SSM parameter name with its version/],
    ];
    for (const [change, expected] of refusals)
      assert.match(
        thrown(() => render(change)),
        expected,
      );
    assert.match(
      thrown(() => renderAwsHostScript(spec, { region: "eu-west-1'" })),
      /region "eu-west-1'" is not an AWS region name/,
    );
    assert.match(
      thrown(() => renderAwsHostScript(spec, { region: "eu-west-1", ssmUrl: "http://x/$(id)" })),
      /ssmUrl/,
    );
  });

  test("secret boot arguments: the script holds the parameter's name, never a value", () => {
    const script = render({ bootArgs: { secret: "/pulumi-mirage/web/boot-args:3" } });
    assert.ok(script.includes("/pulumi-mirage/web/boot-args:3"));
    assert.ok(!script.includes("--hello"));
    assert.equal(encodeSecretBootArgs(["--a=1", "--b"]), "2 --a=1 --b");
    assert.equal(encodeSecretBootArgs([]), "0");
  });
});

describe("renderHostScript on Compute Engine", () => {
  const gce = (change: Partial<HostScriptSpec> = {}) =>
    renderGceHostScript({
      ...spec,
      kernel: { url: gcsObjectUrl("b", "kernels/ab/web.spt"), sha256: "a".repeat(64) },
      tender: { url: gcsObjectUrl("b", "tenders/cd/solo5-spt"), sha256: "b".repeat(64) },
      ...change,
    });

  test("is valid sh, the same for the same inputs, and reads objects' content with the metadata server's token", async () => {
    assert.equal(gce(), gce());
    const script = gce();
    const path = join(scratch.path, "startup-script.sh");
    await writeFileAsync(path, script);
    await run("sh", ["-n", path], { timeoutMs: 10_000 });
    assert.ok(
      script.includes("https://storage.googleapis.com/storage/v1/b/b/o/kernels%2Fab%2Fweb.spt"),
      "an object's name is one encoded path segment",
    );
    const { library } = gceHost();
    assert.ok(library.includes(`"$2?alt=media"`), "the content, not the object's metadata");
    assert.ok(library.includes("-H 'Metadata-Flavor: Google'"));
    assert.ok(library.includes('-K - "$3" <<EOF'), "the token on stdin, never in argv");
    assert.ok(!script.includes("per-boot"), "GCE runs the startup-script at every boot");
  });

  test("refuses what has no place in its script", () => {
    assert.match(
      thrown(() => gce({ bootArgs: { secret: "projects/p/secrets/s'$(id)'/versions/1" } })),
      /is not a Secret Manager version \(projects\/PROJECT\/secrets\/SECRET\/versions\/VERSION\)/,
    );
    assert.match(
      thrown(() => gce({ bootArgs: { secret: "projects/p/secrets/s/versions/latest" } })),
      /is not a Secret Manager version/,
    );
    assert.match(
      thrown(() => gce({ perBootDir: "/var/lib/cloud/scripts/per-boot" })),
      /perBootDir: Google Compute Engine runs the script at every boot, which needs no hook/,
    );
    assert.match(
      thrown(() => renderGceHostScript(spec, { metadataUrl: "http://x/'$(id)'" })),
      /metadataUrl "http:\/\/x\/'\$\(id\)'": give scheme, host and port only/,
    );
    assert.match(
      thrown(() => renderGceHostScript(spec, { grantWaitSeconds: 1.5 })),
      /grantWaitSeconds 1.5: give a whole number from 0 to 3600/,
    );
    for (const arg of ["a\nPULUMI_MIRAGE_EOF\necho INJECTED", "it's", 'say "hi"']) {
      assert.equal(
        thrown(() => gce({ bootArgs: ["--ok", arg] })),
        `bootArgs: ${thrown(() => checkBootArgs(["--ok", arg]))}`,
      );
    }
  });
});

describe("shell quoting", () => {
  test("any word, however hostile, reaches a command unchanged", async () => {
    const words = [
      "plain",
      "it's",
      "'",
      "''",
      "a\nPULUMI_MIRAGE_EOF\necho INJECTED",
      "$(echo INJECTED)",
      "`echo INJECTED`",
      "; echo INJECTED",
      "\\",
      '"\'"',
      "*",
      "",
      "tab\tand\r\nbreak",
    ];
    for (const word of words) {
      assert.equal(await sh(`printf '%s' ${shellQuote(word)}`), word);
    }
  });

  test("a file's content, however hostile, is written as it is, and nothing in it runs", async () => {
    const path = join(scratch.path, "written");
    const content =
      "line 1\n'\nEOF\nPULUMI_MIRAGE_EOF\n$(echo INJECTED)\n`echo INJECTED`\n' ; echo INJECTED ; '\n";
    assert.equal(await sh(writeFile(path, content, "0644")), "");
    assert.equal(await readFile(path, "utf8"), content);
  });
});
