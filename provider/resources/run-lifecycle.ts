// diff, read, update and delete, the same for every local run (local.Vm, local.Process): the
// Pulumi side of local/run.ts's steps.
import type * as pulumi from "@pulumi/pulumi";
import { deleteRun, type RunOutputs, runStillThere } from "../local/run";
import { changedKeys, definedOnly } from "./inputs";

/** read: the resource as recorded while its process runs; gone (no id) once it has died. */
export async function readRun<O extends RunOutputs>(
  id: string,
  props: O,
): Promise<pulumi.dynamic.ReadResult<O>> {
  return (await runStillThere(props)) ? { id, props } : { id: "" };
}

/**
 * A running process cannot be changed, so any input in `replacing` replaces it, the old one first
 * (it may hold host ports the new one needs); `waitFor` alone concerns a start that already
 * happened and updates in place. A refresh finds a process that has died gone (no id).
 */
export function runLifecycle<I extends { waitFor?: unknown }, O extends I & RunOutputs>(
  replacing: readonly (keyof I & string)[],
) {
  return {
    async diff(_id: string, olds: I, news: I): Promise<pulumi.dynamic.DiffResult> {
      const replaces = changedKeys({ ...olds }, { ...news }, replacing);
      const waitFor = changedKeys({ ...olds }, { ...news }, ["waitFor"]);
      return {
        changes: replaces.length > 0 || waitFor.length > 0,
        replaces,
        deleteBeforeReplace: true,
      };
    },
    read: (id: string, props: O) => readRun(id, props),
    async update(_id: string, olds: O, news: I) {
      return { outs: definedOnly({ ...olds, waitFor: news.waitFor }) };
    },
    delete: (_id: string, props: O) => deleteRun(props),
  };
}
