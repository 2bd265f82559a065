// The engine side of `aws.Ec2ConsoleWait`: creating it waits until every listed instance's
// console output matches the pattern, so `pulumi up` succeeds only once the unikernels run. For
// an Auto Scaling group it first finds the group's instances of the current launch template
// version through the API. New instances, or a new version, replace it, and it waits again.
import type * as pulumi from "@pulumi/pulumi";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { isKnown } from "../../rules/values";
import { waitForConsole } from "../aws/console";
import { type GroupRef, groupInstances } from "../aws/group";
import { sha256 } from "../core/hash";
import { checkWaitInputs, waitDiff } from "./inputs";

export interface ConsoleWaitInputs {
  /** Instance ids (`i-...`); or give `group`. */
  instances?: string[];
  /** A group whose instances of a launch template version are watched, found through the API. */
  group?: GroupRef;
  pattern: string;
  timeoutSeconds: number;
  region?: string;
}

export interface ConsoleWaitOutputs extends ConsoleWaitInputs {
  /** What matched, per instance id. */
  matched: Record<string, string>;
  /** The instances waited for. */
  waited: string[];
}

function check(_olds: unknown, news: ConsoleWaitInputs): pulumi.dynamic.CheckResult {
  const failures: pulumi.dynamic.CheckFailure[] = checkWaitInputs(news);
  const ids = news.instances;
  if (ids === undefined && news.group === undefined) {
    failures.push({ property: "instances", reason: "give the instances to watch, or a group" });
  }
  if (
    ids !== undefined &&
    isKnown(ids) &&
    !(Array.isArray(ids) && ids.every((id) => !isKnown(id) || /^i-[0-9a-f]+$/.test(id)))
  ) {
    failures.push({ property: "instances", reason: "must be a list of EC2 instance ids (i-...)" });
  }
  if (news.group !== undefined && isKnown(news.group)) {
    const { size, version } = news.group;
    const sizeProblem = isKnown(size) && outOfBounds(size, BOUNDS.count);
    if (sizeProblem) failures.push({ property: "group.size", reason: sizeProblem });
    if (isKnown(version) && !(Number.isInteger(version) && version >= 1))
      failures.push({
        property: "group.version",
        reason: `must be a launch template version number, not ${JSON.stringify(version)}`,
      });
  }
  return { inputs: news, failures };
}

/** One error for every instance that failed, each with its own console tail. */
function bootFailure(ids: string[], failed: Error[]): Error {
  if (failed.length === 1 && ids.length === 1) return failed[0];
  return new Error(
    `${failed.length} of ${ids.length} instances did not boot:\n\n${failed.map((e) => e.message).join("\n\n")}`,
    { cause: failed[0] },
  );
}

export const provider = {
  check,
  diff: async (_id: string, olds: ConsoleWaitOutputs, news: ConsoleWaitInputs) =>
    waitDiff<ConsoleWaitInputs>(olds, news, {
      replace: ["instances", "group", "pattern", "region"],
      update: ["timeoutSeconds"],
    }),
  create: async (inputs: ConsoleWaitInputs): Promise<pulumi.dynamic.CreateResult> => {
    const timeoutMs = inputs.timeoutSeconds * 1000;
    const deadline = Date.now() + timeoutMs;
    const { region } = inputs;
    const ids = inputs.group
      ? await groupInstances(inputs.group, { region, deadline })
      : (inputs.instances ?? []);
    const results = await Promise.allSettled(
      ids.map((id) => waitForConsole(id, { pattern: inputs.pattern, timeoutMs, deadline, region })),
    );
    const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
    if (failed.length > 0) throw bootFailure(ids, failed);
    const matched = Object.fromEntries(
      ids.map((id, i) => [id, (results[i] as PromiseFulfilledResult<string>).value]),
    );
    const outs: ConsoleWaitOutputs = { ...inputs, matched, waited: ids };
    const key = inputs.group ?? inputs.instances;
    return { id: sha256(JSON.stringify([key, inputs.pattern])).slice(0, 16), outs };
  },
  read: async (id: string, props: ConsoleWaitOutputs): Promise<pulumi.dynamic.ReadResult> => ({
    id,
    props,
  }),
  // Only the timeout changed: the instances already proved they run.
  update: async (
    _id: string,
    olds: ConsoleWaitOutputs,
    news: ConsoleWaitInputs,
  ): Promise<pulumi.dynamic.UpdateResult> => ({
    // State written before `waited` existed holds only `instances`.
    outs: { ...news, matched: olds.matched, waited: olds.waited ?? olds.instances ?? [] },
  }),
  // Waiting leaves nothing behind to remove.
  delete: async (): Promise<void> => {},
};
