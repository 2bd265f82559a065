// Boot arguments: which ones reach the kernel exactly as given through both bootloaders.
//
// syslinux (virtio) puts them on an APPEND line; mboot.c32 splits that line at spaces, treats an
// argument `---` as the start of a module, and joins the rest back with single spaces. GRUB (xen)
// gets each argument single-quoted on its `multiboot` line, so `$ ; # { } * ? [ ]` and the like are
// literal, but GRUB rebuilds the kernel command line escaping `\ ' "` with a backslash and quoting
// any argument holding a space. Both were checked by booting test kernels and reading what they
// printed. What neither passes verbatim is refused here; nothing is ever rewritten.
import { ImageError } from "./errors";

/**
 * Longest command line (the arguments joined by single spaces, in bytes) we accept: syslinux
 * refuses a line of about 2 KiB ("cmdline too long") and stops at its boot prompt; 2000 bytes of
 * arguments were booted and printed back in full.
 */
export const MAX_BOOT_ARGS_BYTES = 2000;

const HOW =
  "Boot arguments must be non-empty words of printable ASCII without spaces, quotes or backslashes " +
  "(e.g. --ipv4=10.0.0.2/24); pass a value that needs them some other way, such as a configuration " +
  "built into the unikernel.";

/** Why `char` cannot be passed, or undefined if both bootloaders pass it verbatim. */
function refusal(char: string): string | undefined {
  const code = char.codePointAt(0) ?? 0;
  if (char === " " || char === "\t") return "the bootloaders split the command line at whitespace";
  if (char === "\n" || char === "\r")
    return "a line break ends the bootloader's configuration line, and the rest would be read as configuration";
  if (code < 0x20 || code === 0x7f)
    return "control characters can change how the bootloaders read their configuration";
  if (code > 0x7f)
    return "only printable ASCII is known to reach the kernel verbatim through both bootloaders";
  if (char === "'" || char === '"' || char === "\\")
    return "GRUB re-escapes quotes and backslashes in the command line it gives the kernel";
  return undefined;
}

/**
 * Throws an ImageError naming the first argument that would not reach the kernel exactly as given
 * (by its index and the position of the offending character, never the character itself: the
 * argument may be secret), and saying how to pass it instead.
 */
export function checkBootArgs(args: readonly string[]): void {
  args.forEach((arg, index) => {
    // By position only: a boot argument may be secret, and errors end up in logs.
    const name = `boot argument ${index}`;
    if (arg === "") throw new ImageError(`${name} is empty: the bootloader would drop it. ${HOW}`);
    if (arg === "---")
      throw new ImageError(
        `${name} is syslinux mboot.c32's module separator (three dashes alone), which starts a boot module, not an argument. ${HOW}`,
      );
    // The position and the rule, never the character: it is a piece of the value.
    [...arg].forEach((char, position) => {
      const why = refusal(char);
      if (why)
        throw new ImageError(
          `${name} is refused at character ${position + 1} of ${[...arg].length}: ${why}. ${HOW}`,
        );
    });
  });
  const bytes = Buffer.byteLength(args.join(" "));
  if (bytes > MAX_BOOT_ARGS_BYTES)
    throw new ImageError(
      `boot arguments are ${bytes} bytes long (joined by spaces), over the ${MAX_BOOT_ARGS_BYTES} bytes syslinux accepts on its command line: shorten them.`,
    );
}
