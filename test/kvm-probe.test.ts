// The KVM probe's firmware: its embedded bytes are what test/kernels/kvm-probe.S assembles to (so
// the listing in its comments can be trusted), and it runs to its end under TCG: what a working
// KVM must do with it too. How `auto` uses the probe is in accel.test.ts.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { describe, test } from "node:test";
import { findExecutable, run, type ToolError } from "../provider/core/exec";
import { PROBE_STATUS, probeArgs, probeFirmware } from "../provider/local/kvm-probe";
import { QEMU } from "../provider/local/qemu";
import { Scratch } from "./support/scratch";

const SOURCE = resolve(__dirname, "..", "..", "test", "kernels", "kvm-probe.S");
const scratch = Scratch.forThisFile("kvm-probe-test-");

/** Assembles one part of kvm-probe.S, linked at `address`, to flat binary. */
async function assemble(part: number, address: number): Promise<Buffer> {
  const object = join(scratch.path, `part${part}.o`);
  const binary = join(scratch.path, `part${part}.bin`);
  await run("as", ["--defsym", `PART=${part}`, "-o", object, SOURCE]);
  await run("ld", [
    `-Ttext=0x${address.toString(16)}`,
    "--oformat",
    "binary",
    "-e",
    "0",
    "-o",
    binary,
    object,
  ]);
  return readFile(binary);
}

describe("the KVM probe firmware", () => {
  test("is the source in test/kernels/kvm-probe.S, assembled", async () => {
    const firmware = await assemble(1, 0);
    const payload = await assemble(2, 0x7c00);
    assert.equal(firmware.length, 0x10000);
    payload.copy(firmware, 0x100);
    assert.ok(probeFirmware().equals(firmware), "the embedded bytes differ from the source's");
  });

  const qemu = findExecutable(QEMU);
  test("runs to its end under TCG: QEMU exits with the probe's status", {
    skip: !qemu && "no QEMU",
  }, async () => {
    const rom = join(scratch.path, "probe.rom");
    await writeFile(rom, probeFirmware());
    const status = await run(qemu as string, probeArgs(rom, "tcg"), { timeoutMs: 30_000 }).then(
      () => 0,
      (error: ToolError) => (error.cause as { exitCode?: number }).exitCode,
    );
    assert.equal(status, PROBE_STATUS);
  });
});
