import * as pulumi from "@pulumi/pulumi";
import type { ImageFormat } from "../rules/platform";
import type { Device, Target } from "../rules/targets";
import { engineProvider } from "./engine";
import type { Unikernel } from "./unikernel";

export type { ImageFormat } from "../rules/platform";

export interface DiskImageArgs {
  /** The unikernel to boot: a `Unikernel` resource, or the path of a prebuilt kernel binary. */
  kernel: Unikernel | pulumi.Input<string>;
  /**
   * The image format. virtio kernels take `gce` or `raw`; xen kernels take `aws` or `raw`.
   * Default: `raw`.
   */
  format?: pulumi.Input<ImageFormat>;
  /**
   * Arguments the unikernel receives at boot, e.g. `["--ipv4=10.0.0.2/24"]`. Each must reach the
   * kernel exactly as given, so spaces, quotes and control characters are refused. Secret values
   * stay secret in every output that reveals them. Default: none.
   */
  bootArgs?: pulumi.Input<pulumi.Input<string>[]>;
  /** Where images are kept, by content. Default: the same cache as `Unikernel`. */
  cacheDir?: pulumi.Input<string>;
}

/** The `Unikernel` outputs a DiskImage's engine needs. */
type KernelOutputs = "kernelPath" | "sha256" | "fingerprint" | "name" | "target" | "manifest";

/**
 * The DiskImage inputs that carry a Unikernel's outputs: the contract between this class and
 * provider/resources/disk-image.ts (the fingerprint makes `objectName` known at preview, before
 * the kernel is built). Generic so that tests feed the engine exactly what the SDK sends.
 */
export function unikernelInputs<K extends Partial<Record<KernelOutputs, unknown>>>(kernel: K) {
  return {
    kernelPath: kernel.kernelPath,
    kernelSha256: kernel.sha256,
    kernelId: kernel.fingerprint,
    unikernelName: kernel.name,
    target: kernel.target,
    manifest: kernel.manifest,
  };
}

/**
 * A bootable disk image of a unikernel: a BIOS disk (syslinux for virtio, GRUB for xen), as a
 * bare disk.raw or packed for a cloud. The same kernel and boot arguments always give the same
 * bytes and the same `objectName`, so redeploying an unchanged stack uploads nothing.
 *
 * `pulumi preview` checks that the kernel can boot in the chosen format (virtio → gce or raw,
 * xen → aws or raw; for gce, exactly one network device) and computes `objectName`; `pulumi up`
 * builds the image, or takes it from the cache. Boot arguments never appear in progress lines or
 * error messages. Deleting the resource leaves the cached image in place, since another resource
 * or stack may use the same one.
 */
export class DiskImage extends pulumi.dynamic.Resource {
  /** The image file in the cache (named by `objectName`: a raw disk, or a tar.gz for `gce`). */
  declare readonly path: pulumi.Output<string>;
  /**
   * The image file's sha256 (secret when a boot argument is: the image holds them): for `gce`
   * the archive's, for `raw` and `aws` the disk's, hashed once when the image is built.
   */
  declare readonly sha256: pulumi.Output<string>;
  /** The image file's size in bytes. */
  declare readonly size: pulumi.Output<number>;
  declare readonly format: pulumi.Output<ImageFormat>;
  /** The kernel's target. */
  declare readonly target: pulumi.Output<Target>;
  /** The unikernel's name. */
  declare readonly name: pulumi.Output<string>;
  /** The kernel binary's sha256 (its Unikernel's, or read from the file given by path). */
  declare readonly kernelSha256: pulumi.Output<string>;
  /** The devices the unikernel declares. */
  declare readonly manifest: pulumi.Output<Device[]>;
  /** The boot arguments (secret when any input was). */
  declare readonly bootArgs: pulumi.Output<string[]>;
  /**
   * A content-addressed object name such as `hello-0123456789ab.tar.gz`, known at preview: upload
   * the image under this name and dependent resources change only when the image does. When any
   * boot argument is secret, the name also covers a random salt kept secret in this resource's
   * state, so that it reveals nothing about the secret; it is stable across updates of the same
   * stack, but a first preview shows a name that `up` replaces.
   */
  declare readonly objectName: pulumi.Output<string>;

  constructor(name: string, args: DiskImageArgs, opts?: pulumi.CustomResourceOptions) {
    const kernel = args.kernel;
    const bootArgs = args.bootArgs ?? [];
    super(
      engineProvider("disk-image"),
      name,
      {
        // Every key is present even for a path: only the keys given here become outputs.
        ...unikernelInputs(kernel instanceof pulumi.Resource ? kernel : { kernelPath: kernel }),
        format: args.format ?? "raw",
        bootArgs,
        // Secret boot arguments make the engine salt objectName (see nameSalt): a content hash
        // of them, public, would let anyone check a guess offline.
        bootArgsSecret: pulumi.isSecret(pulumi.output(bootArgs)),
        // The salt the engine picks: a secret input, so that it stays secret in the state.
        nameSalt: pulumi.secret(""),
        cacheDir: args.cacheDir,
        // Dynamic providers are not told which resource they work for: progress lines need it.
        resourceName: name,
        path: undefined,
        // The image holds the boot arguments, so its hash would let a guess of a secret one be
        // checked by rebuilding: an input of the same name, secret exactly when a boot argument
        // is, makes the engine keep the output secret (docs/platforms.md, Pulumi dynamic
        // providers). Unknown at preview like the hash itself; create replaces the "".
        sha256: pulumi
          .output(bootArgs)
          .apply(() => (pulumi.runtime.isDryRun() ? (pulumi.unknown as string) : "")),
        size: undefined,
        name: undefined,
        objectName: undefined,
      },
      opts,
      "pulumi-mirage",
      "DiskImage",
    );
  }
}
