import * as pulumi from "@pulumi/pulumi";
import { engineProvider } from "../engine";

export interface GceSerialWaitArgs {
  /** Instance selfLinks (or `projects/P/zones/Z/instances/N` paths) to watch; or give `group`. */
  instances?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * A regional managed instance group: its VMs of `template` (`size` of them) are found through
   * the Compute Engine API once they run, and each one's console is watched. Default: none.
   */
  group?: {
    /** The group manager's selfLink. */
    manager: pulumi.Input<string>;
    /** The selfLink of the template of its new VMs. */
    template: pulumi.Input<string>;
    /** How many VMs the group runs. */
    size: number;
  };
  /** A regular expression (its source text) each instance's serial port 1 output must match. */
  pattern: pulumi.Input<string>;
  /** How long each instance may take to print it. */
  timeoutSeconds: pulumi.Input<number>;
  /** The Compute Engine API root. Default: `https://compute.googleapis.com/compute/v1`. */
  endpoint?: pulumi.Input<string>;
  /**
   * An OAuth access token to call the API with, e.g. the gcp provider's `accessToken`. Kept
   * secret, never stored in outputs. Default: the credentials described on the class.
   */
  accessToken?: pulumi.Input<string>;
  /**
   * A credentials JSON document (or its path) to call the API with, e.g. the gcp provider's
   * `credentials`. Kept secret, never stored in outputs. Default: as described on the class.
   */
  credentials?: pulumi.Input<string>;
}

/**
 * Waits, when created, until every listed Compute Engine instance's serial console matches a
 * pattern; fails with the console's last lines otherwise. Other instances replace it, and it
 * waits again. The Compute Engine API is called with the first credentials found, in the gcp
 * provider's order: `accessToken`, `credentials`, GOOGLE_OAUTH_ACCESS_TOKEN, GOOGLE_CREDENTIALS,
 * then Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth
 * application-default login`, the metadata server, workload identity federation).
 */
export class GceSerialWait extends pulumi.dynamic.Resource {
  /** The matched text, per instance name. */
  declare readonly matched: pulumi.Output<Record<string, string>>;
  /** The selfLinks of the instances that booted (a group's new VMs). */
  declare readonly waited: pulumi.Output<string[]>;

  constructor(name: string, args: GceSerialWaitArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      engineProvider("gce-serial-wait"),
      name,
      {
        ...args,
        accessToken: args.accessToken && pulumi.secret(args.accessToken),
        credentials: args.credentials && pulumi.secret(args.credentials),
        matched: undefined,
        waited: undefined,
      },
      opts,
      "pulumi-mirage",
      "GceSerialWait",
    );
  }
}
