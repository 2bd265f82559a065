// ARCHITECTURE.md matches the code: every module of rules/, provider/ and sdk/ has its own line
// there, in the table under the heading that names its folder ("### provider/core/"), and every
// module named there exists; provider/'s folders import only rules/ and the folders its folder
// table lists before them, so resources/ (the Pulumi floor) is imported by none of them.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { describe, test } from "node:test";
import { repoRoot } from "./support/consumer";

const TOP = ["rules", "provider", "sdk"];
const architecture = readFileSync(join(repoRoot, "ARCHITECTURE.md"), "utf8");

/** The TypeScript modules under `dir` (relative to the repository), recursively. */
function modulesUnder(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return modulesUnder(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

const onDisk = TOP.flatMap(modulesUnder).sort();

/**
 * The tables of ARCHITECTURE.md, by the folder their heading names ("provider/core/"): each row's
 * first cell, when it is one name in backticks. A heading naming no folder ends the folder.
 */
function tables(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  let folder: string | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) {
      folder = /^#+\s+((?:rules|provider|sdk)\/(?:[a-z0-9-]+\/)*)/.exec(line)?.[1];
      continue;
    }
    const cell = /^\|\s*`([^`]+)`\s*\|/.exec(line)?.[1];
    if (folder !== undefined && cell !== undefined)
      rows.set(folder, [...(rows.get(folder) ?? []), cell]);
  }
  return rows;
}

const documented = tables(architecture);
/** Every module ARCHITECTURE.md names, with its folder: "provider/core/exec.ts". */
const named = [...documented].flatMap(([folder, cells]) =>
  cells.filter((cell) => cell.endsWith(".ts")).map((cell) => `${folder}${cell}`),
);

describe("ARCHITECTURE.md", () => {
  test("has one line for every module of rules/, provider/ and sdk/", () => {
    const missing = onDisk.filter((path) => !named.includes(path));
    assert.deepEqual(missing, [], `add a line for each to its folder's table in ARCHITECTURE.md`);
  });

  test("names no module that is gone, and each once", () => {
    const gone = named.filter((path) => !onDisk.includes(path));
    assert.deepEqual(gone, [], "ARCHITECTURE.md names modules that do not exist");
    const twice = named.filter((path, i) => named.indexOf(path) !== i);
    assert.deepEqual(twice, [], "ARCHITECTURE.md names these modules more than once");
  });
});

/** provider/'s folders as its table lists them, the floors each may import from first. */
const FLOORS = (documented.get("provider/") ?? [])
  .filter((cell) => cell.endsWith("/"))
  .map((cell) => cell.slice(0, -1));

/** The repository paths a module imports by relative path (without extension). */
function importsOf(path: string): string[] {
  const text = readFileSync(join(repoRoot, path), "utf8");
  const specifiers = [
    ...text.matchAll(/^(?:import|export)[^;]*?from\s+"(\.[^"]+)"/gms),
    ...text.matchAll(/\b(?:require|import)\("(\.[^"]+)"\)/g),
  ].map((match) => match[1]);
  return specifiers.map((spec) => normalize(join(dirname(path), spec)));
}

describe("provider/'s folders", () => {
  test("are the folders ARCHITECTURE.md lists, and provider/ holds no module of its own", () => {
    const folders = readdirSync(join(repoRoot, "provider"), { withFileTypes: true });
    assert.deepEqual(
      folders
        .filter((entry) => entry.isDirectory())
        .map((entry) => entry.name)
        .sort(),
      [...FLOORS].sort(),
    );
    assert.deepEqual(
      folders.filter((entry) => !entry.isDirectory()).map((entry) => entry.name),
      [],
    );
  });

  test("import only rules/ and the folders listed before their own", () => {
    const wrong: string[] = [];
    for (const path of onDisk.filter((p) => p.startsWith("provider/"))) {
      const own = FLOORS.indexOf(path.split("/")[1]);
      for (const target of importsOf(path)) {
        const [top, folder] = relative(repoRoot, join(repoRoot, target)).split("/");
        if (top === "rules") continue;
        if (top === "provider" && FLOORS.indexOf(folder) <= own) continue;
        wrong.push(`${path} imports ${target}`);
      }
    }
    assert.deepEqual(wrong, []);
  });
});
