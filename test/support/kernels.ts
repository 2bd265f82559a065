// Test unikernels: tiny kernels of our own (kernels/kernel.S, whose DEMO variant is the demo
// unikernel the package ships) that look, to our code, like Solo5 binaries of each target, one
// (test/kernels/xen.S) that really runs under Xen, and a unix-target stand-in program (test/kernels/unix.c). They
// are built at test time with binutils and gcc, once, under build/test-kernels/<source hash>/;
// each file appears by rename, so concurrent test processes can build them side by side safely.
import { mkdir, readFile, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { produceAtomically } from "../../provider/core/atomic";
import { run } from "../../provider/core/exec";
import { sha256 } from "../../provider/core/hash";
import { withScratch } from "../../provider/core/scratch";

export type TestKernelName =
  | "virtio"
  | "virtio-net"
  | "virtio-block"
  | "virtio-nomb"
  | "virtio-net-exit83"
  | "xen"
  | "xen-net"
  | "xenpv"
  | "hvt"
  | "hvt-devices"
  | "spt"
  | "spt-devices"
  | "spt-net"
  | "muen"
  | "genode";

type Target = "hvt" | "spt" | "virtio" | "muen" | "genode" | "xen";

interface Variant {
  target: Target;
  /** The source: kernels/kernel.S (default), or test/kernels/xen.S, which speaks to a real Xen. */
  source?: "xen.S";
  multiboot?: boolean;
  net?: boolean;
  block?: boolean;
  /** Exit as Solo5 virtio does, writing 41 to isa-debug-exit (QEMU exits 83); default: 0 (1). */
  solo5Exit?: boolean;
}

/**
 * The ABI1 note's target numbers, and the ABI versions real Solo5 binaries declare (as
 * ocaml-solo5-elftool's test binaries show, and Solo5 v0.12.1's bindings/muen/start.c for muen;
 * genode's is not known to us).
 */
const ABI: Record<Target, { number: number; version: number }> = {
  hvt: { number: 1, version: 2 },
  spt: { number: 2, version: 2 },
  virtio: { number: 3, version: 1 },
  muen: { number: 4, version: 4 },
  genode: { number: 5, version: 1 },
  xen: { number: 6, version: 1 },
};

const VARIANTS: Record<TestKernelName, Variant> = {
  virtio: { target: "virtio", multiboot: true },
  "virtio-net": { target: "virtio", multiboot: true, net: true },
  "virtio-block": { target: "virtio", multiboot: true, block: true },
  "virtio-nomb": { target: "virtio" },
  "virtio-net-exit83": { target: "virtio", multiboot: true, net: true, solo5Exit: true },
  xen: { target: "xen", multiboot: true },
  "xen-net": { target: "xen", multiboot: true, net: true },
  xenpv: { target: "xen", multiboot: true, source: "xen.S" },
  hvt: { target: "hvt" },
  "hvt-devices": { target: "hvt", net: true, block: true },
  spt: { target: "spt" },
  "spt-devices": { target: "spt", net: true, block: true },
  "spt-net": { target: "spt", net: true },
  muen: { target: "muen" },
  genode: { target: "genode" },
};

/** build/test/support/kernels.js → the repository root. */
const ROOT = resolve(__dirname, "..", "..", "..");
/** What the package's demo unikernel is made of too: kernel.S, notes.S, kernel.ld. */
const SHARED = join(ROOT, "kernels");
const SOURCES = join(ROOT, "test", "kernels");
const OUT = join(ROOT, "build", "test-kernels");
const TOOL_TIMEOUT_MS = 60_000;

/** Placeholders in a recipe's arguments for the output's temporary path and a scratch dir. */
const TEMP = "{temp}";
const SCRATCH = "{scratch}";

interface Step {
  tool: string;
  args: string[];
}

let sourcesHash: Promise<string> | undefined;
const built = new Map<string, Promise<string>>();

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Runs `steps` to make `fileName`, unless done before: the result lives in
 * build/test-kernels/<hash of the sources and the steps>/, so changing either rebuilds.
 */
async function build(fileName: string, steps: Step[]): Promise<string> {
  sourcesHash ??= Promise.all([
    ...["kernel.S", "notes.S", "kernel.ld"].map((file) => readFile(join(SHARED, file))),
    ...["xen.S", "unix.c", "tap-echo.c", "tapwire.c"].map((file) => readFile(join(SOURCES, file))),
  ]).then((parts) => sha256(Buffer.concat(parts)));
  const key = sha256(`${await sourcesHash}\n${JSON.stringify(steps)}`).slice(0, 16);
  const path = join(OUT, key, fileName);
  let result = built.get(path);
  if (!result) {
    result = (async () => {
      if (!(await exists(path))) {
        await mkdir(dirname(path), { recursive: true });
        await withScratch({ name: "kernel", parent: OUT }, (scratch) =>
          produceAtomically(path, async (temp) => {
            for (const { tool, args } of steps) {
              const actual = args.map((a) => a.replace(TEMP, temp).replace(SCRATCH, scratch));
              await run(tool, actual, { timeoutMs: TOOL_TIMEOUT_MS });
            }
          }),
        );
      }
      return path;
    })();
    built.set(path, result);
  }
  return result;
}

/**
 * The test kernel `name`, built if needed; its file is named like mirage's output,
 * `NAME.TARGET` (e.g. `virtio-net.virtio`). Booted by a multiboot loader, a virtio kernel drops
 * the first word of its command line and a xen kernel keeps it as given, as Solo5's do.
 */
export async function testKernel(name: TestKernelName): Promise<string> {
  const variant = VARIANTS[name];
  const abi = ABI[variant.target];
  const flag = (on: boolean | undefined) => (on ? "1" : "0");
  const defines = {
    TARGET: String(abi.number),
    ABI_VERSION: String(abi.version),
    MULTIBOOT: flag(variant.multiboot),
    PVH: flag(variant.target === "xen"),
    NET: flag(variant.net),
    BLOCK: flag(variant.block),
    DEMO: "0",
    EXIT: variant.solo5Exit ? "41" : "0",
  };
  const object = join(SCRATCH, "kernel.o");
  return build(`${name}.${variant.target}`, [
    {
      tool: "as",
      args: [
        "--64",
        ...Object.entries(defines).flatMap(([key, value]) => ["--defsym", `${key}=${value}`]),
        ...["-I", SHARED, "-o", object],
        variant.source ? join(SOURCES, variant.source) : join(SHARED, "kernel.S"),
      ],
    },
    {
      tool: "ld",
      args: [
        ...["-m", "elf_x86_64", "-z", "max-page-size=0x1000", "--no-warn-rwx-segments"],
        ...["-T", join(SHARED, "kernel.ld"), "-o", TEMP, object],
      ],
    },
  ]);
}

/**
 * A unix-target stand-in: a static x86_64 Linux executable printing the same three lines as the
 * test kernels (command line = its arguments joined by spaces); with `--serve` as its first
 * argument it then sleeps until killed, otherwise it exits 0.
 */
export async function testUnixProgram(): Promise<string> {
  return build("hello", [
    {
      tool: "gcc",
      args: [
        ...["-O1", "-ffreestanding", "-fno-builtin", "-fno-stack-protector"],
        ...["-fno-pie", "-no-pie", "-nostdlib", "-static"],
        ...["-o", TEMP, join(SOURCES, "unix.c")],
      ],
    },
  ]);
}

/**
 * test/kernels/tap-echo.c built: attached to a tap, it answers ARP for an IPv4 address and echoes
 * UDP sent to it, standing in for a networked unikernel behind the stand-in tenders.
 */
export async function testTapEcho(): Promise<string> {
  return build("tap-echo", [
    { tool: "gcc", args: ["-O1", "-Wall", "-o", TEMP, join(SOURCES, "tap-echo.c")] },
  ]);
}

/** test/kernels/tapwire.c: a cable between two taps in two network namespaces. */
export async function testTapWire(): Promise<string> {
  return build("tapwire", [
    { tool: "gcc", args: ["-O1", "-Wall", "-o", TEMP, join(SOURCES, "tapwire.c")] },
  ]);
}
