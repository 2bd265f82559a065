// scripts/setup (`npm run setup`), the user's one command before `pulumi up`: it installs the
// missing Debian packages with apt-get (through sudo unless it runs as root), then runs `npm ci`
// and installs examples/local's dependencies, and says where the Pulumi CLI comes from when it is
// missing. Run here with a PATH of its own: stand-ins for apt-get, sudo and npm (written below,
// each recording its arguments), and the real bash, coreutils and node.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { describe, test } from "node:test";
import { findExecutable } from "../provider/core/exec";
import { Scratch } from "./support/scratch";

const ROOT = resolve(__dirname, "..", "..");
const SCRIPT = join(ROOT, "scripts", "setup");

const scratch = Scratch.forThisFile("setup-script-test-");

/** A stand-in: logs `NAME ARGS` to $SETUP_LOG and exits 0 (sudo then runs its command). */
const standin = (name: string, then = "") =>
  `#!/bin/sh\n# A stand-in for ${name} (test/setup-script.test.ts): it records its arguments.\necho "${name} $*" >> "$SETUP_LOG"\n${then}`;

/** A directory to be the script's whole PATH, and the log its stand-ins write. */
async function tools(): Promise<{ path: string; log: string }> {
  const dir = await scratch.fresh();
  const bin = join(dir, "bin");
  await mkdir(bin);
  for (const tool of ["bash", "dirname", "id", "env"]) {
    const found = findExecutable(tool);
    assert.ok(found, `${tool} is not on PATH`);
    await symlink(found, join(bin, tool));
  }
  await symlink(process.execPath, join(bin, "node"));
  await writeFile(join(bin, "apt-get"), standin("apt-get"), { mode: 0o755 });
  await writeFile(join(bin, "npm"), standin("npm"), { mode: 0o755 });
  await writeFile(join(bin, "sudo"), standin("sudo", 'exec "$@"\n'), { mode: 0o755 });
  const log = join(dir, "calls.log");
  await writeFile(log, "", { mode: 0o666 });
  // Writable by nobody too (the test that runs the script as a user).
  await chmod(log, 0o666);
  return { path: bin, log };
}

/** Runs the script with `path` as its PATH, as this user. */
function setup(path: string, log: string, args: string[]) {
  return spawnSync(join(path, "bash"), [SCRIPT, ...args], {
    encoding: "utf8",
    env: { PATH: path, SETUP_LOG: log },
  });
}

/**
 * Runs the script as nobody (needs root): the tools' directory is bound onto /mnt in a private
 * mount namespace, so the private directories above it (the test run's TMPDIR) do not stop nobody.
 */
function setupAsNobody(path: string, args: string[]) {
  const [unshare, mount, setpriv] = ["unshare", "mount", "setpriv"].map((tool) => {
    const found = findExecutable(tool);
    assert.ok(found, `${tool} is not on PATH`);
    return found;
  });
  const script =
    `${mount} --bind "$1" /mnt; shift; ` +
    `exec ${setpriv} --reuid=nobody --regid=nogroup --clear-groups /mnt/bin/bash "$@"`;
  return spawnSync(
    unshare,
    ["-m", "/bin/sh", "-ec", script, "sh", dirname(path), SCRIPT, ...args],
    {
      encoding: "utf8",
      env: { PATH: "/mnt/bin", SETUP_LOG: "/mnt/calls.log" },
    },
  );
}

describe("scripts/setup", () => {
  test("installs only the missing packages, then npm ci and examples/local's dependencies", async () => {
    const { path, log } = await tools();
    const result = setup(path, log, ["demo-missing-package=/nonexistent/pulumi-mirage-test"]);
    assert.equal(result.status, 0, result.stderr);
    const calls = (await readFile(log, "utf8")).trim().split("\n");
    const installs = calls.filter((c) => c.startsWith("apt-get install"));
    assert.equal(installs.length, 1, calls.join("\n"));
    // What this machine has already (QEMU and the image tools, which the tests need) is not asked for.
    assert.match(installs[0], /--no-install-recommends demo-missing-package$/);
    assert.deepEqual(
      calls.filter((c) => !c.startsWith("apt-get") && !c.startsWith("sudo")),
      ["npm ci --no-audit --no-fund", "npm install --prefix examples/local --no-audit --no-fund"],
    );
    assert.ok(calls.includes("apt-get update -qq"), calls.join("\n"));
    assert.match(result.stdout, /installing: demo-missing-package\n/);
    assert.match(
      result.stdout,
      /install it \(https:\/\/www\.pulumi\.com\/docs\/iac\/download-install\/\), then pulumi stack init dev && pulumi up/,
    );
  });

  test("asks sudo for apt-get when it does not run as root", async (t) => {
    if (process.getuid?.() !== 0) return t.skip("needs root, to run the script as nobody");
    const { path, log } = await tools();
    const result = setupAsNobody(path, ["demo-missing-package=/nonexistent/x"]);
    assert.equal(result.status, 0, result.stderr);
    const calls = (await readFile(log, "utf8")).trim().split("\n");
    assert.ok(
      calls.includes(
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends demo-missing-package",
      ),
      calls.join("\n"),
    );
  });

  test("refuses an extra that is not PACKAGE=/PATH, before installing anything", async () => {
    const { path, log } = await tools();
    const result = setup(path, log, ["grub-pc-bin"]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /'grub-pc-bin' is not PACKAGE=\/PATH/);
    assert.equal(await readFile(log, "utf8"), "");
  });
});
