// Kernel → bootable, deterministic BIOS disk image (and GCE archive): what the rest of the package
// uses. make.ts checks once and builds in a private directory (DiskImage then stores the result
// in the cache); publish.ts puts a build into a directory a user names (the CLI, the tests).

export { checkPlatform, IMAGE_FORMATS, type ImageFormat } from "../../rules/platform";
export { checkBootArgs, MAX_BOOT_ARGS_BYTES } from "./bootargs";
export { ImageError } from "./errors";
export { IMAGE_LAYOUT_VERSION, makeImage, planImage } from "./make";
export { buildImage } from "./publish";
