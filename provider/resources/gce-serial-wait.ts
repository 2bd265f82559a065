// The engine side of `GceSerialWait`: creating it waits until every listed instance's serial
// console matches the pattern, so `pulumi up` only succeeds once the unikernels have booted.
// A new instance (a new image, a rolled group) replaces the resource, which waits again.
import type * as pulumi from "@pulumi/pulumi";
import { DEFAULT_ENDPOINT, parseInstance, waitForSerial } from "../gcp/serial";
import { sha256 } from "../hash";
import { BOUNDS, outOfBounds } from "./bounds";

/** What Pulumi sends for a value it does not know yet (preview). */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export interface SerialWaitInputs {
  /** Instance selfLinks (or `projects/P/zones/Z/instances/N` paths). */
  instances: string[];
  /** A regular expression, as source text. */
  pattern: string;
  timeoutSeconds: number;
  /** The Compute Engine API root. Default: the public endpoint. */
  endpoint?: string;
}

export interface SerialWaitOutputs extends SerialWaitInputs {
  /** What matched, per instance name. */
  matched: Record<string, string>;
}

const known = (v: unknown) => v !== UNKNOWN;

function check(_olds: unknown, news: SerialWaitInputs): pulumi.dynamic.CheckResult {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  if (known(news.pattern)) {
    if (typeof news.pattern !== "string" || news.pattern === "") {
      failures.push({ property: "pattern", reason: "must be a non-empty regular expression" });
    } else {
      try {
        new RegExp(news.pattern, "m");
      } catch (error) {
        failures.push({
          property: "pattern",
          reason: `is not a valid regular expression: ${(error as Error).message}`,
        });
      }
    }
  }
  const timeoutProblem =
    known(news.timeoutSeconds) && outOfBounds(news.timeoutSeconds, BOUNDS.timeoutSeconds);
  if (timeoutProblem) failures.push({ property: "timeoutSeconds", reason: timeoutProblem });
  if (known(news.instances) && !Array.isArray(news.instances)) {
    failures.push({ property: "instances", reason: "must be a list of instance selfLinks" });
  } else if (known(news.instances)) {
    for (const ref of news.instances) {
      if (!known(ref)) continue;
      try {
        parseInstance(ref);
      } catch (error) {
        failures.push({ property: "instances", reason: (error as Error).message });
      }
    }
  }
  return { inputs: news, failures };
}

function diff(
  _id: string,
  olds: SerialWaitOutputs,
  news: SerialWaitInputs,
): pulumi.dynamic.DiffResult {
  const replaces: string[] = [];
  if (JSON.stringify(olds.instances) !== JSON.stringify(news.instances)) replaces.push("instances");
  if (olds.pattern !== news.pattern) replaces.push("pattern");
  const changes =
    replaces.length > 0 ||
    olds.timeoutSeconds !== news.timeoutSeconds ||
    olds.endpoint !== news.endpoint;
  return { changes, replaces, deleteBeforeReplace: false };
}

async function create(inputs: SerialWaitInputs): Promise<pulumi.dynamic.CreateResult> {
  const refs = inputs.instances.map(parseInstance);
  const results = await Promise.all(
    refs.map((ref) =>
      waitForSerial(ref, {
        pattern: inputs.pattern,
        timeoutMs: inputs.timeoutSeconds * 1000,
        endpoint: inputs.endpoint ?? DEFAULT_ENDPOINT,
      }),
    ),
  );
  const matched: Record<string, string> = {};
  refs.forEach((ref, i) => {
    matched[ref.name] = results[i].match;
  });
  const outs: SerialWaitOutputs = { ...inputs, matched };
  return { id: sha256(JSON.stringify([inputs.instances, inputs.pattern])).slice(0, 16), outs };
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
  ): Promise<pulumi.dynamic.UpdateResult> => ({ outs: { ...news, matched: olds.matched } }),
  // Waiting leaves nothing behind to remove.
  delete: async (): Promise<void> => {},
};
