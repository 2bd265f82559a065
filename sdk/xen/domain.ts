import * as pulumi from "@pulumi/pulumi";
import { engineProvider } from "../engine";
import type { Unikernel } from "../unikernel";

/** How to reach the Xen host (dom0). */
export interface DomainConnection {
  /** The host name or IP address of the Xen host. */
  host: pulumi.Input<string>;
  /** The SSH port. Default: 22. */
  port?: pulumi.Input<number>;
  /** The user to log in as; it must be able to run `xl` (on its PATH). Default: `root`. */
  user?: pulumi.Input<string>;
  /**
   * The private key's contents (OpenSSH or PEM), not its path: e.g.
   * `config.requireSecret("sshKey")`. Always kept secret; never logged.
   */
  privateKey: pulumi.Input<string>;
  /**
   * The host's public SSH key(s), e.g. `"ssh-ed25519 AAAA..."` or `ssh-keyscan` output, checked on
   * every connection. Default: trust on first use: the keys the host presents at creation are
   * recorded in the `hostKey` output and required from then on. Host keys are never unchecked.
   */
  hostKey?: pulumi.Input<string>;
}

export interface DomainArgs {
  connection: DomainConnection;
  /** The unikernel: a `Unikernel` resource built for `target: "xen"`, or the path of a `.xen` binary. */
  kernel: Unikernel | pulumi.Input<string>;
  /**
   * The Xen domain name, also the name of its directory on the host. Letters, digits, `_`, `.`
   * and `-`. Default: the resource name.
   */
  name?: pulumi.Input<string>;
  /** Memory in MiB. Default: 64. */
  memory?: pulumi.Input<number>;
  /** Virtual CPUs (Solo5 uses one). Default: 1. */
  vcpus?: pulumi.Input<number>;
  /** The bridge in dom0 the domain's network interface is attached to. Default: `xenbr0`. */
  bridge?: pulumi.Input<string>;
  /**
   * Arguments the unikernel receives at boot, e.g. `["--ipv4=10.0.0.2/24"]`, passed as the PVH
   * command line. Spaces, quotes, backslashes and control characters are refused. Default: none.
   */
  bootArgs?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * The directory on the host holding one directory per domain (its kernel, named by sha256, and
   * its xl config). Default: `/var/lib/pulumi-mirage`.
   */
  remoteDir?: pulumi.Input<string>;
}

/**
 * A MirageOS unikernel running as a PVH domain on a Xen host, managed over SSH with `xl`.
 *
 * Creating copies the kernel and an xl config (`type = 'pvh'`) to the host and runs `xl create`;
 * refresh asks `xl list` and forgets a domain that is no longer there; deleting runs
 * `xl destroy` and removes the domain's files. Changing the kernel, boot arguments, memory, vcpus,
 * bridge, name, host or remoteDir replaces the domain; changing only how to connect (port, user,
 * key, hostKey) is checked by connecting and updated in place. The commands a create or delete
 * runs on the host, and their output, are logged in the cache's `logs/` directory.
 */
export class Domain extends pulumi.dynamic.Resource {
  /** The Xen domain name. */
  declare readonly name: pulumi.Output<string>;
  /** xl's domain id, as of creation or the last refresh; -1 if the unikernel had already exited. */
  declare readonly domainId: pulumi.Output<number>;
  /** The host keys every connection checks (`TYPE KEY` lines): pinned, or recorded at creation. */
  declare readonly hostKey: pulumi.Output<string>;
  /** The kernel's sha256; the kernel on the host is named after it. */
  declare readonly kernelSha256: pulumi.Output<string>;
  /** The domain's directory on the host. */
  declare readonly domainDir: pulumi.Output<string>;
  /** The xl config on the host. */
  declare readonly configPath: pulumi.Output<string>;
  /** The kernel on the host. */
  declare readonly kernelRemotePath: pulumi.Output<string>;
  /**
   * The domain's console lines, read at creation and at each refresh from xenconsoled's guest log
   * (`/var/log/xen/console/guest-NAME.log`, kept when xenconsoled runs with `--log=guest`; on
   * Debian `XENCONSOLED_ARGS="--log=guest"` in /etc/default/xen); empty without that log. Secret
   * when the boot arguments are (the unikernel may print them).
   */
  declare readonly console: pulumi.Output<string[]>;
  /** The boot arguments (secret when any input was). */
  declare readonly bootArgs: pulumi.Output<string[]>;

  constructor(name: string, args: DomainArgs, opts?: pulumi.CustomResourceOptions) {
    const kernel = args.kernel;
    const fromResource = kernel instanceof pulumi.Resource;
    const connection = args.connection;
    super(
      engineProvider("xen-domain"),
      name,
      {
        host: connection.host,
        port: connection.port,
        user: connection.user,
        privateKey: pulumi.secret(connection.privateKey),
        hostKey: connection.hostKey,
        kernelPath: fromResource ? kernel.kernelPath : kernel,
        kernelSha256: fromResource ? kernel.sha256 : undefined,
        target: fromResource ? kernel.target : undefined,
        name: args.name ?? name,
        memory: args.memory,
        vcpus: args.vcpus,
        bridge: args.bridge,
        bootArgs: args.bootArgs,
        remoteDir: args.remoteDir,
        domainId: undefined,
        domainDir: undefined,
        configPath: undefined,
        kernelRemotePath: undefined,
        // The console may show the command line: as secret as the boot arguments.
        console: args.bootArgs ? pulumi.output(args.bootArgs).apply((): string[] => []) : undefined,
      },
      {
        ...opts,
        additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "privateKey"],
      },
      "pulumi-mirage",
      "Domain",
    );
  }
}
