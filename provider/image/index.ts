// Kernel → bootable, deterministic BIOS disk image (and GCE archive): what the CLI and the
// DiskImage resource use. make.ts checks and builds in a private directory (the resource then
// stores the result in the cache); publish.ts puts a build into a directory the user names.
export { checkBootArgs, MAX_BOOT_ARGS_BYTES } from "./bootargs";
export { ImageError } from "./errors";
export {
  ARCHIVE_NAME,
  type ArchiveFile,
  type DiskFile,
  IMAGE_LAYOUT_VERSION,
  type ImagePlan,
  inspectImageKernel,
  type MadeImage,
  makeImage,
  planImage,
} from "./make";
export { checkPlatform, IMAGE_FORMATS, type ImageFormat } from "./platform";
export {
  type BuildImageOptions,
  type BuildImageResult,
  buildImage,
  publishImage,
} from "./publish";
