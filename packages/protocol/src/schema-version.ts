/** The schema version this build writes into every bus message. */
export const SCHEMA_VERSION = "1.2";

/** The major versions this build can read. */
export const SUPPORTED_MAJOR_VERSIONS: readonly number[] = [1];

/** Parses "MAJOR.MINOR" and returns MAJOR, or undefined when the text is not a version. */
export function majorOf(version: string): number | undefined {
  const match = /^(\d+)\.(\d+)$/.exec(version);
  return match ? Number(match[1]) : undefined;
}
