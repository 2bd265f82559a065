// The engine side of `GceSerialWait`: creating it waits until every listed instance's serial
// console matches the pattern, so `pulumi up` only succeeds once the unikernels have booted.
// For a managed instance group it first finds the group's new VMs (those of the current
// template) through the API. A new instance or template replaces the resource, which waits again.
import type * as pulumi from "@pulumi/pulumi";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { isKnown } from "../../rules/values";
import { sha256 } from "../core/hash";
import { authorizer } from "../gcp/auth";
import { newInstances, parseGroup } from "../gcp/group";
import {
  DEFAULT_ENDPOINT,
  type InstanceRef,
  parseInstance,
  SerialWaitError,
  waitForSerial,
} from "../gcp/serial";
import { checkWaitInputs, waitDiff } from "./inputs";

/** A regional managed instance group whose new VMs to watch. */
export interface GroupInput {
  /** The group manager's selfLink (or `projects/P/regions/R/instanceGroupManagers/N`). */
  manager: string;
  /** The selfLink of the template its new VMs are made from. */
  template: string;
  /** How many new VMs it runs. */
  size: number;
}

export interface SerialWaitInputs {
  /** Instance selfLinks (or `projects/P/zones/Z/instances/N` paths); or give `group`. */
  instances?: string[];
  /** A group whose VMs of `template` are watched, found through the API. */
  group?: GroupInput;
  /** A regular expression, as source text. */
  pattern: string;
  timeoutSeconds: number;
  /** The Compute Engine API root. Default: the public endpoint. */
  endpoint?: string;
  /** The gcp provider's access token, when the component was given one (secret). */
  accessToken?: string;
  /** The gcp provider's credentials JSON or file path, when given (secret). */
  credentials?: string;
}

/** Credentials are used, never kept: outputs leave them out. */
export interface SerialWaitOutputs extends Omit<SerialWaitInputs, "accessToken" | "credentials"> {
  /** What matched, per instance name. */
  matched: Record<string, string>;
  /** The selfLinks of the instances waited for. */
  waited: string[];
}

function check(_olds: unknown, news: SerialWaitInputs): pulumi.dynamic.CheckResult {
  const failures: pulumi.dynamic.CheckFailure[] = checkWaitInputs(news);
  if (news.instances === undefined && news.group === undefined) {
    failures.push({ property: "instances", reason: "give the instances to watch, or a group" });
  }
  if (news.instances !== undefined && isKnown(news.instances) && !Array.isArray(news.instances)) {
    failures.push({ property: "instances", reason: "must be a list of instance selfLinks" });
  } else if (news.instances !== undefined && isKnown(news.instances)) {
    for (const ref of news.instances) {
      if (!isKnown(ref)) continue;
      try {
        parseInstance(ref);
      } catch (error) {
        failures.push({ property: "instances", reason: (error as Error).message });
      }
    }
  }
  if (news.group !== undefined && isKnown(news.group)) {
    const { manager, size } = news.group;
    if (isKnown(manager)) {
      try {
        parseGroup(manager);
      } catch (error) {
        failures.push({ property: "group.manager", reason: (error as Error).message });
      }
    }
    const sizeProblem = isKnown(size) && outOfBounds(size, BOUNDS.count);
    if (sizeProblem) failures.push({ property: "group.size", reason: sizeProblem });
  }
  return { inputs: news, failures };
}

function diff(_id: string, olds: SerialWaitOutputs, news: SerialWaitInputs) {
  return waitDiff<SerialWaitInputs>(olds, news, {
    replace: ["instances", "group", "pattern"],
    update: ["timeoutSeconds", "endpoint"],
  });
}

/** What the resource keeps: its inputs without the credentials. */
function kept(inputs: SerialWaitInputs): SerialWaitOutputs {
  const { accessToken: _token, credentials: _credentials, ...rest } = inputs;
  return { ...rest, matched: {}, waited: [] };
}

/** The project the calls bill and authorize against. */
function projectOf(inputs: SerialWaitInputs): string | undefined {
  if (inputs.group) return parseGroup(inputs.group.manager).project;
  return inputs.instances?.[0] && parseInstance(inputs.instances[0]).project;
}

async function create(inputs: SerialWaitInputs): Promise<pulumi.dynamic.CreateResult> {
  const deadline = Date.now() + inputs.timeoutSeconds * 1000;
  const endpoint = (inputs.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
  const authorize = await authorizer(
    { accessToken: inputs.accessToken, credentials: inputs.credentials },
    projectOf(inputs),
  );
  const links = inputs.group
    ? await newInstances(parseGroup(inputs.group.manager), {
        endpoint,
        authorize,
        template: inputs.group.template,
        size: inputs.group.size,
        deadline,
      })
    : (inputs.instances ?? []);
  const refs = links.map(parseInstance);
  const results = await Promise.allSettled(
    refs.map((ref) =>
      waitForSerial(ref, {
        pattern: inputs.pattern,
        timeoutMs: inputs.timeoutSeconds * 1000,
        deadline,
        endpoint,
        authorize,
      }),
    ),
  );
  const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
  if (failed.length > 0) throw bootFailure(refs, failed);
  const matched: Record<string, string> = {};
  refs.forEach((ref, i) => {
    matched[ref.name] = (results[i] as PromiseFulfilledResult<{ match: string }>).value.match;
  });
  const outs: SerialWaitOutputs = { ...kept(inputs), matched, waited: links };
  const key = inputs.group ?? inputs.instances;
  return { id: sha256(JSON.stringify([key, inputs.pattern])).slice(0, 16), outs };
}

/** One error for every instance that failed, each with its own console tail. */
function bootFailure(refs: InstanceRef[], failed: Error[]): Error {
  if (failed.length === 1 && refs.length === 1) return failed[0];
  return new SerialWaitError(
    `${failed.length} of ${refs.length} instances did not boot:\n\n${failed.map((e) => e.message).join("\n\n")}`,
    { cause: failed[0] },
  );
}

export const provider = {
  check,
  diff,
  create,
  read: async (id: string, props: SerialWaitOutputs): Promise<pulumi.dynamic.ReadResult> => ({
    id,
    props,
  }),
  // Only the timeout or endpoint changed: the instances already proved they boot.
  update: async (
    _id: string,
    olds: SerialWaitOutputs,
    news: SerialWaitInputs,
  ): Promise<pulumi.dynamic.UpdateResult> => ({
    // State written before `waited` existed holds only `instances`.
    outs: { ...kept(news), matched: olds.matched, waited: olds.waited ?? olds.instances ?? [] },
  }),
  // Waiting leaves nothing behind to remove.
  delete: async (): Promise<void> => {},
};
