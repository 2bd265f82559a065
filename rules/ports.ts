// A port a service opens (gcp firewalls, aws security groups): its number and protocol.
import { BOUNDS, outOfBounds } from "./bounds";
import { type Problem, problemIf } from "./problem";

export type Protocol = "tcp" | "udp";

/** What is wrong with the port at `property` (e.g. `ports[1]`) and its protocol. */
export function servicePortProblems(property: string, port: unknown, protocol: unknown): Problem[] {
  return [
    ...problemIf(property, outOfBounds(port, BOUNDS.port)),
    ...(protocol === "tcp" || protocol === "udp"
      ? []
      : [
          {
            property: `${property}.protocol`,
            reason: `must be "tcp" or "udp", not ${JSON.stringify(protocol)}`,
          },
        ]),
  ];
}
