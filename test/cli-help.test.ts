// The `pulumi-mirage` command's help and its answers to a wrong command line: every help wrapped
// at 80 columns, one line per flag with what it does, examples for each command, `--version`
// from package.json, and an unknown option named as such by every command.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, test } from "node:test";
import { CLI } from "./support/cli";

const COMMANDS = ["run", "boot", "image", "inspect", "doctor"];

function cli(...args: string[]) {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The lines of `text` longer than 80 columns. */
const overlong = (text: string) => text.split("\n").filter((line) => line.length > 80);

describe("pulumi-mirage help", () => {
  test("the overview lists every command, wrapped at 80 columns", () => {
    const help = cli("--help");
    assert.equal(help.status, 0);
    assert.deepEqual(overlong(help.stdout), []);
    for (const name of COMMANDS) assert.match(help.stdout, new RegExp(`^  ${name}\\b`, "m"));
    // Without a command, the overview goes to stderr with status 2.
    const none = cli();
    assert.equal(none.status, 2);
    assert.equal(none.stderr, help.stdout);
  });

  for (const name of COMMANDS) {
    test(`${name} --help: synopsis, one explained line per flag, examples, at most 80 columns`, () => {
      const help = cli(name, "--help");
      assert.equal(help.status, 0);
      assert.deepEqual(overlong(help.stdout), []);
      assert.match(help.stdout, new RegExp(`^usage: pulumi-mirage ${name}\\b`));
      const examples = help.stdout.split("\nExamples:\n")[1] ?? "";
      assert.match(examples, new RegExp(`^  \\$ pulumi-mirage ${name} `, "m"));
      const options = help.stdout.split("\nOptions:\n")[1]?.split("\n\n")[0] ?? "";
      // Each flag starts a line, and its explanation follows on the same line or the next.
      for (const line of options.split("\n").filter((l) => /^ {2}-/.test(l)))
        assert.match(line, /^ {2}(-\w, )?--[a-z]+( \S+)?( {2,}\S.*)?$/, line);
      const flags = [...options.matchAll(/^ {2}(?:-\w, )?--([a-z]+)/gm)].map((m) => m[1]);
      assert.equal(flags.length > 0, name !== "inspect", `${name}'s flags: ${flags}`);
      assert.equal(new Set(flags).size, flags.length);
    });
  }

  test("-h is --help, also after other arguments", () => {
    assert.equal(cli("run", "disk.raw", "-h").stdout, cli("run", "--help").stdout);
  });
});

describe("pulumi-mirage --version", () => {
  test("prints the package's version", () => {
    const manifest = JSON.parse(
      readFileSync(resolve(__dirname, "..", "..", "package.json"), "utf8"),
    );
    const result = cli("--version");
    assert.equal(result.status, 0);
    assert.equal(result.stdout, `pulumi-mirage ${manifest.version}\n`);
  });
});

describe("a wrong command line", () => {
  test("an unknown option is named as such by every command, with status 2", () => {
    for (const name of COMMANDS) {
      const result = cli(name, "--json", "x");
      assert.equal(result.status, 2, name);
      assert.match(result.stderr, new RegExp(`^pulumi-mirage ${name}: unknown option --json\\b`));
      assert.match(result.stderr, new RegExp(`^usage: pulumi-mirage ${name}`, "m"));
    }
    assert.match(cli("boot", "-x", "disk.raw").stderr, /unknown option -x/);
    assert.match(cli("--json").stderr, /^pulumi-mirage: unknown option --json/);
    assert.match(cli("frobnicate").stderr, /^pulumi-mirage: unknown command frobnicate/);
  });

  test("a missing value, a repeated flag and a stray argument are said as such", () => {
    assert.match(cli("boot", "disk.raw", "--timeout").stderr, /--timeout needs a value/);
    assert.match(
      cli("boot", "disk.raw", "--log", "a", "--log", "b").stderr,
      /--log is given twice: give it once/,
    );
    assert.match(cli("inspect", "a", "b").stderr, /inspect: give one KERNEL/);
    assert.match(cli("inspect").stderr, /inspect: KERNEL is missing/);
    assert.match(
      cli("boot", "disk.raw", "--", "x").stderr,
      /unexpected -- \(this command takes nothing after --\)/,
    );
  });
});
