import * as pulumi from "@pulumi/pulumi";
import { engineProvider } from "../engine";

export interface GceSerialWaitArgs {
  /** Instance selfLinks (or `projects/P/zones/Z/instances/N` paths) to watch. */
  instances: pulumi.Input<pulumi.Input<string>[]>;
  /** A regular expression (its source text) each instance's serial port 1 output must match. */
  pattern: pulumi.Input<string>;
  /** How long each instance may take to print it. */
  timeoutSeconds: pulumi.Input<number>;
  /** The Compute Engine API root. Default: `https://compute.googleapis.com/compute/v1`. */
  endpoint?: pulumi.Input<string>;
}

/**
 * Waits, when created, until every listed Compute Engine instance's serial console matches a
 * pattern; fails with the console's last lines otherwise. Other instances replace it, and it
 * waits again. The Compute Engine API is called with `GOOGLE_OAUTH_ACCESS_TOKEN`, else the
 * token of `gcloud auth print-access-token`.
 */
export class GceSerialWait extends pulumi.dynamic.Resource {
  /** The matched text, per instance name. */
  declare readonly matched: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: GceSerialWaitArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      engineProvider("gce-serial-wait"),
      name,
      { ...args, matched: undefined },
      opts,
      "pulumi-mirage",
      "GceSerialWait",
    );
  }
}
