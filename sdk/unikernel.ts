import * as pulumi from "@pulumi/pulumi";
import type { Device, Target } from "../rules/targets";
import { engineProvider } from "./engine";

export type { Device, Target } from "../rules/targets";

/** What every Unikernel takes, built from source or prebuilt. */
interface UnikernelCommonArgs {
  /**
   * Where built kernels and images are kept, by content. Default: `$PULUMI_MIRAGE_CACHE`, else
   * `$XDG_CACHE_HOME/pulumi-mirage`, else `~/.cache/pulumi-mirage`.
   */
  cacheDir?: pulumi.Input<string>;
}

/** A unikernel built from its source with the MirageOS toolchain. */
export interface UnikernelSourceArgs extends UnikernelCommonArgs {
  /** A directory holding the unikernel's `config.ml`; it is built with the MirageOS toolchain. */
  source: pulumi.Input<string>;
  /** Give `source` or `kernel`, not both. */
  kernel?: never;
  /** The MirageOS target to build for (`mirage configure -t`). */
  target: pulumi.Input<Target>;
  /**
   * Extra `mirage configure` arguments, e.g. `["--net=socket"]` for a unix build of a unikernel
   * whose config.ml declares a stack (`--net` and `--no-dhcp` exist only then: mirage refuses
   * them otherwise). Not `-t` (use `target`) nor `-f` (the source's config.ml is built); `-o NAME`
   * names the kernel. Default: none.
   */
  configureArgs?: pulumi.Input<pulumi.Input<string>[]>;
  /** The MirageOS toolchain command. Default: `mirage` on PATH. */
  mirage?: pulumi.Input<string>;
  /**
   * Whether `make depend` lets opam install the system packages the unikernel's libraries need
   * (opam's depexts, which run the system package manager, often through sudo). Set false where
   * those packages are preinstalled, such as CI: configure then gets `--no-depext`. A build never
   * waits for a password; a missing package fails it with the command to run by hand. Changing
   * it does not rebuild. Default: true (mirage's own default).
   */
  depexts?: pulumi.Input<boolean>;
  /**
   * How many minutes a build (configure, depend, build together) may take before it is killed
   * with every process it started: above 0, at most 35791 (the longest a Node timer waits).
   * Default: 30.
   */
  buildTimeoutMinutes?: pulumi.Input<number>;
}

/** A prebuilt unikernel binary, used as it is. */
export interface UnikernelKernelArgs extends UnikernelCommonArgs {
  /**
   * The unikernel binary (for example `dist/hello.virtio`), read by the provider: a relative path
   * is taken from the directory `pulumi` runs the program in (the project's), as every path
   * input is.
   */
  kernel: pulumi.Input<string>;
  /** Give `source` or `kernel`, not both. */
  source?: never;
  /**
   * The kernel's MirageOS target. Default: read from the kernel's Solo5 note (known at preview);
   * a unix build, which carries none, needs `"unix"`. Given, it must agree with the note.
   */
  target?: pulumi.Input<Target>;
  /** Builds from source only. */
  configureArgs?: never;
}

/**
 * A `Unikernel`'s arguments: a `source` to build, or a prebuilt `kernel` (exactly one of them;
 * TypeScript refuses neither or both, and so does `pulumi preview` for JavaScript programs).
 */
export type UnikernelArgs = UnikernelSourceArgs | UnikernelKernelArgs;

/**
 * A MirageOS unikernel, built from source with the MirageOS toolchain or taken prebuilt.
 *
 * `pulumi preview` computes the source fingerprint only (no build); `pulumi up` builds when the
 * fingerprint changed, in a scratch copy of the source (the source tree is left untouched), and
 * keeps the kernel in a content-addressed cache: a kernel already in the cache is served without
 * running any tool. Only a fingerprint change rebuilds. Deleting the resource leaves the cache
 * entry in place, since another resource or stack may use the same kernel; remove the cache
 * directory to reclaim the space.
 */
export class Unikernel extends pulumi.dynamic.Resource {
  /** The kernel binary, in the cache. */
  declare readonly kernelPath: pulumi.Output<string>;
  /** The kernel binary's sha256. */
  declare readonly sha256: pulumi.Output<string>;
  /** The kernel binary's size in bytes. */
  declare readonly size: pulumi.Output<number>;
  /** The MirageOS target: as given, or read from a prebuilt kernel (known at preview). */
  declare readonly target: pulumi.Output<Target>;
  /** The unikernel's name (`register "NAME"` in config.ml). */
  declare readonly name: pulumi.Output<string>;
  /** The devices the unikernel declares. */
  declare readonly manifest: pulumi.Output<Device[]>;
  /**
   * The architecture the kernel is built for, as its ELF header names it: `x86_64` or `aarch64`
   * (undefined for unix). Known at preview for a prebuilt kernel, else once it is built.
   */
  declare readonly architecture: pulumi.Output<string | undefined>;
  /**
   * What the build depends on: the source files (without mirage's generated files and build
   * directories), target, configure arguments, mirage's version and its switch's Solo5 and
   * ocaml-solo5 versions; for a prebuilt kernel, its
   * content and target. Known at preview; a change replaces the resource.
   */
  declare readonly fingerprint: pulumi.Output<string>;
  /** The toolchain's version (`mirage --version`), or `prebuilt`. */
  declare readonly mirageVersion: pulumi.Output<string>;
  /**
   * The Solo5 and ocaml-solo5 versions of the opam switch mirage belongs to (e.g.
   * `{ solo5: "0.12.1", "ocaml-solo5": "1.1.0" }`), part of the fingerprint; empty outside opam.
   */
  declare readonly switchVersions: pulumi.Output<Record<string, string> | undefined>;

  constructor(name: string, args: UnikernelArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      engineProvider("unikernel"),
      name,
      {
        ...args,
        // An output also when not given: a prebuilt kernel's is read from it.
        target: args.target,
        // Dynamic providers are not told which resource they work for: progress lines need it.
        resourceName: name,
        kernelPath: undefined,
        sha256: undefined,
        size: undefined,
        name: undefined,
        manifest: undefined,
        architecture: undefined,
        fingerprint: undefined,
        mirageVersion: undefined,
        switchVersions: undefined,
      },
      opts,
      "pulumi-mirage",
      "Unikernel",
    );
  }
}
