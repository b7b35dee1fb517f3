export type DbErrorCode =
  | "invalid_schema_name"
  | "migration_lock_timeout"
  | "migration_failed"
  | "aborted"
  | "unknown_job";

/**
 * What went wrong with our PostgreSQL state, in words an operator can act on. Never carries the
 * database URL (it may hold a password).
 */
export class DbError extends Error {
  override readonly name = "DbError";
  readonly hint: string | undefined;
  constructor(
    readonly code: DbErrorCode,
    message: string,
    options?: { hint?: string; cause?: unknown },
  ) {
    super(`[${code}] ${message}`, { cause: options?.cause });
    this.hint = options?.hint;
  }
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Schema names go into `search_path` and connection options, so only plain identifiers pass. */
export function checkSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new DbError("invalid_schema_name", `"${schema}" is not a usable PostgreSQL schema name`, {
      hint: "use lower-case letters, digits and underscores, starting with a letter or underscore",
    });
  }
  return schema;
}
