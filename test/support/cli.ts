// How tests and benchmarks run the `pulumi-mirage` command: the compiled provider/cli/main.js.
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";

/** The compiled command, run with `node CLI ...`. */
export const CLI = resolve(__dirname, "..", "..", "provider", "cli", "main.js");

/** The arguments of `pulumi-mirage image KERNEL --out DIR ...` after `node`. */
export function imageArgv(kernel: string, outDir: string, ...rest: string[]): string[] {
  return [CLI, "image", kernel, "--out", outDir, ...rest];
}

/** How a command ended, and everything it printed. */
export interface Ended {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A command started in the background: the child, what it printed so far, and its end. */
export interface CliRun {
  child: ChildProcess;
  output: () => { stdout: string; stderr: string };
  ended: Promise<Ended>;
}

/** Starts `node ARGV...` (the command and its arguments), with `env` over this environment. */
export function startCli(argv: string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const child = spawn(process.execPath, argv, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const ended = new Promise<Ended>((resolve) =>
    child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr })),
  );
  return { child, output: () => ({ stdout, stderr }), ended };
}
