import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { readElf } from "../provider/kernel/elf";
import { inspectKernel, KernelFormatError, type KernelInfo } from "../provider/kernel/inspect";
import { CLI } from "./support/cli";
import { type TestKernelName, testKernel, testUnixProgram } from "./support/kernels";
import { Scratch } from "./support/scratch";

const exec = promisify(execFile);

const scratch = Scratch.forThisFile("inspect-test-");

/** A symbol's address as the kernel's own symbol table (nm) gives it, in our hex format. */
async function symbol(path: string, name: string): Promise<string> {
  const { stdout } = await exec("nm", [path]);
  const line = stdout.split("\n").find((l) => l.endsWith(` ${name}`));
  assert.ok(line, `${name} not in nm output of ${path}`);
  return `0x${BigInt(`0x${line.split(" ")[0]}`).toString(16)}`;
}

const DEVICES: KernelInfo["manifest"]["devices"] = [
  { name: "service", type: "net" },
  { name: "storage", type: "block" },
];

/** What each test kernel declares (test/support/kernels.ts builds them so). */
const EXPECTED: Record<
  TestKernelName,
  Pick<KernelInfo["solo5"], "target" | "abiVersion"> & {
    devices: KernelInfo["manifest"]["devices"];
  }
> = {
  virtio: { target: "virtio", abiVersion: 1, devices: [] },
  "virtio-net": { target: "virtio", abiVersion: 1, devices: [{ name: "service", type: "net" }] },
  "virtio-block": {
    target: "virtio",
    abiVersion: 1,
    devices: [{ name: "storage", type: "block" }],
  },
  "virtio-nomb": { target: "virtio", abiVersion: 1, devices: [] },
  "virtio-net-exit83": {
    target: "virtio",
    abiVersion: 1,
    devices: [{ name: "service", type: "net" }],
  },
  xen: { target: "xen", abiVersion: 1, devices: [] },
  "xen-net": { target: "xen", abiVersion: 1, devices: [{ name: "service", type: "net" }] },
  xenpv: { target: "xen", abiVersion: 1, devices: [] },
  hvt: { target: "hvt", abiVersion: 2, devices: [] },
  spt: { target: "spt", abiVersion: 2, devices: [] },
  "hvt-devices": { target: "hvt", abiVersion: 2, devices: DEVICES },
  "spt-devices": { target: "spt", abiVersion: 2, devices: DEVICES },
  "spt-net": { target: "spt", abiVersion: 2, devices: [{ name: "service", type: "net" }] },
  muen: { target: "muen", abiVersion: 4, devices: [] },
  genode: { target: "genode", abiVersion: 1, devices: [] },
};
const NAMES = Object.keys(EXPECTED) as TestKernelName[];
const WITH_MULTIBOOT = new Set<TestKernelName>([
  "virtio",
  "virtio-net",
  "virtio-block",
  "virtio-net-exit83",
  "xen",
  "xen-net",
  "xenpv",
]);

describe("inspectKernel on the test kernels", () => {
  for (const name of NAMES) {
    test(name, async () => {
      const path = await testKernel(name);
      const info = await inspectKernel(path);
      assert.equal(info.path, path);
      assert.equal(info.elf.class, "ELF64");
      assert.equal(info.elf.machine, "x86_64");
      assert.equal(info.elf.entry, await symbol(path, "_start"));
      const { target, abiVersion, devices } = EXPECTED[name];
      assert.deepEqual(info.solo5, { target, abiVersion });
      assert.deepEqual(info.manifest, { version: 1, devices });

      if (WITH_MULTIBOOT.has(name)) {
        assert.ok(info.multiboot, "multiboot header found");
        const bytes = await readFile(path);
        assert.equal(bytes.readUInt32LE(info.multiboot.offset), 0x1badb002);
        assert.ok(info.multiboot.offset < 8192 && info.multiboot.offset % 4 === 0);
        assert.equal(info.multiboot.flags, bytes.readUInt32LE(info.multiboot.offset + 4));
        assert.equal(info.multiboot.aout, true);
        assert.equal(info.multiboot.entry, await symbol(path, "multiboot_entry"));
        assert.notEqual(info.multiboot.entry, info.elf.entry);
      } else {
        assert.equal(info.multiboot, null);
      }

      if (target === "xen") {
        assert.deepEqual(info.xenPvh, { entry: await symbol(path, "pvh_entry") });
      } else {
        assert.equal(info.xenPvh, null);
      }
    });
  }
});

/** Asserts that inspecting `path` fails with a KernelFormatError whose message matches. */
async function rejects(path: string, pattern: RegExp): Promise<KernelFormatError> {
  const error = await inspectKernel(path).then(
    () => assert.fail(`inspecting ${path} should fail`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof KernelFormatError, `a KernelFormatError, got ${error}`);
  assert.ok(error.message.includes(path), `the message names the file: ${error.message}`);
  assert.match(error.message, pattern);
  return error;
}

describe("inspectKernel refuses what is not a Solo5 unikernel", () => {
  test("a text file", async () => {
    const path = join(scratch.path, "config.ml");
    await writeFile(path, 'open Mirage\nlet () = register "hello" [ main ]\n');
    await rejects(path, /is not an ELF file: .*dist\/NAME\.virtio/);
  });

  test("an empty file", async () => {
    const path = join(scratch.path, "empty");
    await writeFile(path, "");
    await rejects(path, /is not an ELF file/);
  });

  test("an ELF file cut short anywhere is reported as truncated", async () => {
    const whole = await readFile(await testKernel("xen-net"));
    const elf = await readElf(await testKernel("xen-net"));
    const notes = elf.notes.map((n) => n.offset);
    // Inside the ELF header, the program headers, the notes, the code, the section headers.
    const cuts = [5, 40, 64 + 20, Math.min(...notes) + 6, Math.max(...notes) + 30, 4100];
    cuts.push(whole.length - 1);
    for (const cut of cuts) {
      assert.ok(cut < whole.length);
      const path = join(scratch.path, `cut-${cut}.xen`);
      await writeFile(path, whole.subarray(0, cut));
      await rejects(path, /is truncated: .*extends? past the end of the file.*rebuild/);
    }
  });

  test("native executables and objects without Solo5 notes", async () => {
    const object = join(scratch.path, "main.o");
    await writeFile(join(scratch.path, "main.c"), "int main(void) { return 0; }\n");
    await exec("gcc", ["-c", "-o", object, join(scratch.path, "main.c")]);
    for (const path of ["/bin/true", object, await testUnixProgram()]) {
      await rejects(path, /not a Solo5 unikernel.*unix builds are native executables.*-t virtio/);
    }
  });

  /** A copy of the virtio-net kernel with `patch` applied to its bytes. */
  async function patched(name: string, patch: (bytes: Buffer) => void): Promise<string> {
    const bytes = await readFile(await testKernel("virtio-net"));
    patch(bytes);
    const path = join(scratch.path, name);
    await writeFile(path, bytes);
    return path;
  }
  /** Offset of the note header whose type field holds the 4 ASCII bytes `tag`. */
  const noteAt = (bytes: Buffer, tag: string) => {
    const at = bytes.indexOf(Buffer.from(tag, "latin1"));
    assert.ok(at > 0, `${tag} note present`);
    return at - 8;
  };

  test("malformed notes", async () => {
    const cases: [string, (b: Buffer) => void, RegExp][] = [
      [
        "unknown target",
        (b) => b.writeUInt32LE(9, noteAt(b, "ABI1") + 20),
        /malformed Solo5 ABI1 note \(unknown target number 9\)/,
      ],
      [
        "manifest entries beyond its note",
        (b) => b.writeUInt32LE(3, noteAt(b, "MFT1") + 20 + 4 + 4),
        /malformed Solo5 manifest \(3 entries do not fit/,
      ],
      [
        "manifest version",
        (b) => b.writeUInt32LE(7, noteAt(b, "MFT1") + 20 + 4),
        /malformed Solo5 manifest \(version 7, expected 1\)/,
      ],
      [
        "device of unknown type",
        (b) => b.writeUInt32LE(5, noteAt(b, "MFT1") + 20 + 4 + 8 + 104 + 68),
        /device service has unknown type 5/,
      ],
      [
        "note larger than its segment",
        (b) => b.writeUInt32LE(0x10000, noteAt(b, "MFT1") + 4),
        /claims .* more than its .*note area holds.*not a valid ELF binary/,
      ],
      [
        "no manifest",
        (b) => b.write("XXXX", noteAt(b, "MFT1") + 8, "latin1"),
        /ABI1 note but no MFT1 manifest note/,
      ],
    ];
    for (const [name, patch, pattern] of cases) {
      const path = await patched(name.replace(/ /g, "-"), patch);
      await rejects(path, pattern);
    }
  });
});

describe("readElf", () => {
  test("reads ELF32 and ELF64 files and their notes from sections when there are no segments", async () => {
    const source = join(scratch.path, "note.s");
    await writeFile(
      source,
      [
        '.section .note.test, "a", @note',
        ".balign 4",
        ".long 5, 8, 0x1234",
        '.asciz "Test"',
        ".balign 4",
        ".long 0xdeadbeef, 42",
        "",
      ].join("\n"),
    );
    for (const bits of ["32", "64"]) {
      const object = join(scratch.path, `note${bits}.o`);
      await exec("as", [`--${bits}`, "-o", object, source]);
      const elf = await readElf(object);
      assert.equal(elf.header.class, `ELF${bits}`);
      assert.equal(elf.programHeaders.length, 0);
      assert.ok(elf.sectionHeaders.length > 0);
      const note = elf.notes.find((n) => n.owner === "Test");
      assert.ok(note, "the note is found");
      assert.equal(note.type, 0x1234);
      assert.equal(note.desc.readUInt32LE(0), 0xdeadbeef);
      assert.equal(note.desc.readUInt32LE(4), 42);
    }
  });
});

describe("pulumi-mirage inspect", () => {
  test("prints the kernel's description as JSON", async () => {
    const path = await testKernel("virtio-block");
    const { stdout } = await exec("node", [CLI, "inspect", path]);
    assert.deepEqual(JSON.parse(stdout), await inspectKernel(path));
  });

  test("reports a bad file on stderr with status 1", async () => {
    const path = join(scratch.path, "not-a-kernel.txt");
    await writeFile(path, "hello\n");
    const error = await exec("node", [CLI, "inspect", path]).then(
      () => assert.fail("should fail"),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.equal(error.code, 1);
    assert.equal(error.stdout, "");
    assert.match(error.stderr, /not-a-kernel\.txt is not an ELF file/);
  });

  test("usage errors exit with status 2, --help with 0", async () => {
    for (const args of [[], ["frobnicate"], ["inspect"], ["inspect", "a", "b"]]) {
      const error = await exec("node", [CLI, ...args]).then(
        () => assert.fail(`${args.join(" ")} should fail`),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(error.code, 2, args.join(" "));
      assert.match(error.stderr, /usage: pulumi-mirage/);
    }
    const { stdout } = await exec("node", [CLI, "--help"]);
    assert.match(stdout, /inspect KERNEL/);
    // npm runs the bin file directly: it must name its interpreter.
    assert.equal((await readFile(CLI, "utf8")).split("\n")[0], "#!/usr/bin/env node");
  });
});
