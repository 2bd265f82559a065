// Putting values into the POSIX shell scripts a host runs. Every value is one single-quoted word
// (or a word of characters the shell gives no meaning to): inside single quotes nothing but a
// single quote has a meaning, and each one is closed, escaped and reopened, so no value can end
// its quoting, whatever it holds. Files are written the same way (one quoted word, not a heredoc,
// whose end a line of the content could fake).

/** One shell word, quoted so the shell passes it on unchanged. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Shell that writes `content` to `path` with mode `mode`, atomically (a temporary file, renamed). */
export function writeFile(path: string, content: string, mode: "0444" | "0555" | "0644" | "0755") {
  const temporary = shellQuote(`${path}.new`);
  return [
    `printf '%s' ${shellQuote(content)} > ${temporary}`,
    `chmod ${mode} ${temporary}`,
    `mv -f ${temporary} ${shellQuote(path)}`,
  ].join("\n");
}

/** Throws unless `url` (the option `what`) is a service's root URL: scheme, host and port only. */
export function checkServiceUrl(what: string, url: string | undefined): void {
  if (url !== undefined && !/^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(url)) {
    throw new Error(`${what} ${JSON.stringify(url)}: give scheme, host and port only`);
  }
}
