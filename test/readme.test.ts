// The README's TypeScript is what users copy: every ```ts block type-checks against the packed
// package installed as a user installs it (all three peers), with `pulumi new typescript`'s strict
// tsconfig, on TypeScript 5.9 and 6. A block that is a fragment on purpose says so on the line
// before its fence: `<!-- not type-checked: REASON -->`. Errors are reported at README lines.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { run, ToolError } from "../provider/core/exec";
import { consumerProject, pulumiTemplate, repoRoot, typescripts } from "./support/consumer";

/** A ```ts block: the README line of its fence, its code, and why it is not checked, if it is not. */
interface Snippet {
  fence: number;
  code: string;
  fragment?: string;
}

const FRAGMENT = /^<!-- not type-checked: (\S.*) -->$/;

/** The TypeScript blocks of `markdown`, in order; a fragment marker on no such block is an error. */
function snippets(markdown: string): Snippet[] {
  const lines = markdown.split("\n");
  const found: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]);
    const marker = FRAGMENT.exec(lines[i]);
    if (marker && !/^```(ts|typescript)\s*$/.test(lines[i + 1] ?? ""))
      throw new Error(
        `README.md:${i + 1}: a not-type-checked marker must precede a \`\`\`ts fence`,
      );
    if (!open) continue;
    const close = lines.findIndex((line, j) => j > i && /^```\s*$/.test(line));
    if (close < 0) throw new Error(`README.md:${i + 1}: a code block is never closed`);
    if (open[1] === "ts" || open[1] === "typescript") {
      const code = lines.slice(i + 1, close).join("\n");
      found.push({ fence: i + 1, code, fragment: FRAGMENT.exec(lines[i - 1] ?? "")?.[1] });
    }
    i = close;
  }
  return found;
}

const readme = async () => snippets(await readFile(join(repoRoot, "README.md"), "utf8"));

/**
 * Type-checks each snippet as a program of its own (a module: names do not leak between blocks)
 * in a consumer project, and returns tsc's errors at their README lines (none: it passed).
 */
async function typeCheck(blocks: Snippet[], compiler: string): Promise<string[]> {
  const dir = await consumerProject("all-peers");
  const work = await mkdtemp(join(dir, `.readme-${process.pid}-`));
  try {
    const files = blocks.map((block) => `readme-${block.fence}.ts`);
    // Line 1 of each file is the line after its fence: README line = fence + line.
    await Promise.all(
      blocks.map((block, i) => writeFile(join(work, files[i]), `${block.code}\nexport {};\n`)),
    );
    const config = pulumiTemplate("nodenext", files);
    // One error per line, to map back to the README (the template's `pretty` spreads them out).
    Object.assign(config.compilerOptions, { pretty: false });
    await writeFile(join(work, "tsconfig.json"), JSON.stringify(config, null, 2));
    const tsc = join(repoRoot, "node_modules", compiler, "bin", "tsc");
    try {
      // From `work`, tsc names the files as written: readme-FENCE.ts(LINE,COLUMN).
      await run(process.execPath, [tsc, "--noEmit", "-p", work], { cwd: work });
      return [];
    } catch (error) {
      if (!(error instanceof ToolError)) throw error;
      const errors = error.tail.flatMap((line) => {
        const at = /^readme-(\d+)\.ts\((\d+),(\d+)\): (.*)$/.exec(line);
        return at ? [`README.md:${Number(at[1]) + Number(at[2])}:${at[3]}: ${at[4]}`] : [];
      });
      // A failure that names no snippet line (a bad tsconfig, a missing package) shows as it is.
      return errors.length > 0 ? errors : [error.message];
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

describe("the README's TypeScript", { timeout: 10 * 60_000 }, () => {
  it("is found: every block is a program to check, or says why it is a fragment", async () => {
    const blocks = await readme();
    const programs = blocks.filter((block) => block.fragment === undefined);
    // The quick start, building, local runs and each cloud show complete programs.
    assert.ok(programs.length >= 8, `only ${programs.length} checked blocks`);
    for (const program of programs)
      assert.match(
        program.code,
        /from "pulumi-mirage(\/(gcp|aws))?";/,
        `README.md:${program.fence}`,
      );
  });

  for (const { version, compiler } of typescripts) {
    it(`type-checks against the packed package on TypeScript ${version}`, async () => {
      const programs = (await readme()).filter((block) => block.fragment === undefined);
      assert.deepEqual(await typeCheck(programs, compiler), []);
    });
  }

  it("fails on a property the package does not have, at its README line", async () => {
    const programs = (await readme()).filter((block) => block.fragment === undefined);
    // The first checked line that gives a Unikernel its target.
    const targeted = /new Unikernel\(.*\btarget:/;
    const block = programs.find((candidate) => targeted.test(candidate.code));
    assert.ok(block, "a checked block gives a Unikernel its target on one line");
    const lines = block.code.split("\n");
    const line = lines.findIndex((text) => targeted.test(text));
    lines[line] = lines[line].replace(/\btarget:/, "targte:");
    const wrong = { ...block, code: lines.join("\n") };
    const errors = await typeCheck([wrong], typescripts[0].compiler);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(
      errors[0],
      new RegExp(`^README\\.md:${block.fence + line + 1}:\\d+: error TS\\d+: .*'targte'`),
    );
  });
});
