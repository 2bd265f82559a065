// Boot arguments that would end a quoted region of a host's script (or a bootloader's
// configuration line) were they not refused, and the words DiskImage's rule refuses each with:
// every place that takes boot arguments must refuse them in those words.
import { checkBootArgs } from "../../provider/image/bootargs";

export const INJECTIONS = ["a\nPULUMI_MIRAGE_EOF\necho INJECTED", "it's", 'say"hi"'];

/** What DiskImage's rule says of `arg` as a boot argument (the first). */
export function bootArgRefusal(arg: string): string {
  try {
    checkBootArgs([arg]);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`${JSON.stringify(arg)} is accepted`);
}
