// The error of a build the user can fix (wrong kernel, bad argument, kernel too big): its message
// says what was wrong and what to do. Tool failures stay ToolErrors from core/exec.ts.
export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageError";
  }
}
