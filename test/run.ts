// `npm test`: runs the suite so that it cannot leave anything behind unnoticed. The run gets a
// private TMPDIR and a marker variable (PULUMI_MIRAGE_TEST_RUN=<random>) that every process the
// tests start inherits; afterwards every process still carrying the marker is listed and killed,
// every entry left in the TMPDIR is listed, and either fails the run. Runs by other people on the
// same machine have other markers and other directories, so they never see each other's leftovers.
//
// node build/test/run.js [NODE_TEST_OPTION=VALUE...] [build/test/FILE.test.js...]
// (default: every build/test/*.test.js).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { carries } from "./support/process";

export const RUN_MARKER = "PULUMI_MIRAGE_TEST_RUN";
/** How long processes get to finish exiting after the tests end before they count as left. */
const GRACE_MS = 3000;

interface Marked {
  pid: number;
  command: string;
}

/** The processes whose environment holds `RUN_MARKER=marker` (readable ones: ours). */
export function markedProcesses(marker: string): Marked[] {
  const entry = `${RUN_MARKER}=${marker}`;
  const found: Marked[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || !carries(Number(name), entry)) continue;
    try {
      const command = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ").trim();
      found.push({ pid: Number(name), command });
    } catch {
      // Gone since the listing.
    }
  }
  return found;
}

/** Kills the marked processes until none is left (a dying parent may start no more). */
async function killMarked(marker: string): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const left = markedProcesses(marker);
    if (left.length === 0) return;
    for (const { pid } of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await sleep(100);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What is left in `dir`: each entry, and how many files a directory holds. */
function leftovers(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).map((entry) => {
    if (!entry.isDirectory()) return `$TMPDIR/${entry.name}`;
    const inside = readdirSync(join(dir, entry.name), { recursive: true }).length;
    return `$TMPDIR/${entry.name}/ (${inside} entries inside)`;
  });
}

/** The node --test arguments: options as given, and the given test files or all of them. */
function testArguments(args: string[]): string[] {
  const files = args.filter((a) => !a.startsWith("-"));
  const all = readdirSync(__dirname)
    .filter((name) => name.endsWith(".test.js"))
    .sort()
    .map((name) => join(__dirname, name));
  return ["--test", "--test-concurrency=2", ...args, ...(files.length > 0 ? [] : all)];
}

async function main(args: string[]): Promise<number> {
  const marker = randomBytes(8).toString("hex");
  const base = mkdtempSync(join(tmpdir(), `pulumi-mirage-test-run-${marker}-`));
  const tmp = join(base, "tmp");
  const cache = join(base, "cache");
  mkdirSync(tmp);
  const child = spawn(process.execPath, testArguments(args), {
    stdio: "inherit",
    env: { ...process.env, TMPDIR: tmp, PULUMI_MIRAGE_CACHE: cache, [RUN_MARKER]: marker },
  });
  // Ctrl-C reaches the tests from the terminal; the runner stays to clean up after them.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const status = await new Promise<number>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))),
  );

  const deadline = Date.now() + GRACE_MS;
  while (markedProcesses(marker).length > 0 && Date.now() < deadline) await sleep(100);
  const processes = markedProcesses(marker);
  await killMarked(marker);
  const files = leftovers(tmp);
  rmSync(base, { recursive: true, force: true });

  const report: string[] = [];
  if (processes.length > 0) {
    report.push(
      `${processes.length} process(es) the tests started were still running (killed now):`,
    );
    for (const { pid, command } of processes) report.push(`  ${pid} ${command}`);
  }
  if (files.length > 0) {
    report.push(`${files.length} temporary file(s) or directories were left (removed now):`);
    for (const file of files) report.push(`  ${file}`);
  }
  if (report.length > 0) {
    process.stderr.write(`\nnpm test: the tests left things behind\n${report.join("\n")}\n`);
    return status === 0 ? 1 : status;
  }
  process.stderr.write("npm test: no process or temporary file left behind\n");
  return status;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((status) => {
    process.exitCode = status;
  });
}
