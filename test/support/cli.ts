// How tests and benchmarks run the `pulumi-mirage` command: the compiled provider/cli.js.
import { resolve } from "node:path";

/** The compiled command, run with `node CLI ...`. */
export const CLI = resolve(__dirname, "..", "..", "provider", "cli.js");

/** The arguments of `pulumi-mirage image KERNEL --out DIR ...` after `node`. */
export function imageArgv(kernel: string, outDir: string, ...rest: string[]): string[] {
  return [CLI, "image", kernel, "--out", outDir, ...rest];
}
