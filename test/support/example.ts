// The examples' Pulumi programs run in the test process, under whatever mocks the test set, and
// their outputs read with a bound on the wait.
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as vm from "node:vm";
import type * as pulumi from "@pulumi/pulumi";
import ts from "typescript";
import * as gcp from "../../sdk/gcp";
import * as sdk from "../../sdk/index";

/**
 * Runs examples/NAME/index.ts as `pulumi up` would, with `pulumi-mirage` being this package: its
 * exports.
 */
export function runExample(name: string): Record<string, pulumi.Output<unknown>> {
  const file = path.join(__dirname, "..", "..", "..", "examples", name, "index.ts");
  const js = ts.transpileModule(readFileSync(file, "utf8"), {
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
    },
  }).outputText;
  const load = (id: string) => (id === "pulumi-mirage" ? { ...sdk, gcp } : require(id));
  const module = { exports: {} as Record<string, pulumi.Output<unknown>> };
  vm.runInThisContext(`(function (exports, require, module, __filename, __dirname) {${js}\n})`)(
    module.exports,
    load,
    module,
    file,
    path.dirname(file),
  );
  return module.exports;
}

/**
 * The value of `output`, or an error naming `what` after `ms`. Under mocks, an output that never
 * resolves means its resource failed (or its provider could not be serialized): `why` says more.
 */
export async function settled<T>(
  output: pulumi.Output<T>,
  what: string,
  ms = 20_000,
  why: () => string = () => "under mocks this means the dynamic provider could not be serialized",
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const value = new Promise<T>((resolve) => output.apply((v) => resolve(v)));
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not resolve within ${ms} ms: ${why()}`)),
      ms,
    );
  });
  try {
    return await Promise.race([value, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
