// The glob semantics of hashFiles() are those of @actions/glob as the Actions runner calls it
// (facts taken from actions/toolkit packages/glob and actions/runner's hashFiles script):
// - one pattern per line (hashFiles joins its arguments with newlines); blank lines and lines
//   starting with `#` are skipped; each `!` in front toggles negation, and the last pattern that
//   matches a path decides whether it is in;
// - a relative pattern is rooted at GITHUB_WORKSPACE, `~` at HOME; `.` may only be the first
//   segment and `..` never appears;
// - minimatch with dot files matched like any other, no braces, no extglobs: `*` and `?` stay
//   inside one path segment, `[...]` is a character class, `\` escapes, and `**` as a whole
//   segment spans any number of directories;
// - a trailing `/` matches directories only, and every pattern also matches everything below what
//   it matches ("implicit descendants": `src` takes every file under src);
// - only the literal directories before the first glob segment are searched, in the order the
//   patterns name them, and a directory inside another searched one is not searched twice.

/** A hashFiles() pattern the runner would refuse. */
export class GlobPatternError extends Error {
  override name = "GlobPatternError";
  readonly code = "invalid_glob_pattern";
}

/** What the guest runs for a set of patterns: where to look, and what to keep. */
export interface CompiledGlobs {
  /** Absolute directories (or files) to walk, inside the workspace, in the order they are walked. */
  readonly searchPaths: readonly string[];
  /**
   * Per pattern, in order: an anchored POSIX extended regular expression over absolute file
   * paths, and whether a match excludes the file. The last matching entry decides.
   */
  readonly matchers: readonly { readonly regex: string; readonly negate: boolean }[];
}

interface Pattern {
  readonly negate: boolean;
  /** Absolute literal directory the glob segments hang off, without a trailing `/` ("" for `/`). */
  readonly root: string;
  readonly segments: readonly string[];
  /** Written with a trailing `/`: matches directories only, so never a file by itself. */
  readonly directoryOnly: boolean;
}

/**
 * Compiles hashFiles() patterns (one per line) against the guest's workspace and home. Throws
 * GlobPatternError for a pattern the runner refuses (`..`, a `.` segment after the first).
 */
export function compileGlobs(patterns: string, where: { workspace: string; home: string }): CompiledGlobs {
  const workspace = trimSlashes(where.workspace);
  const parsed: Pattern[] = [];
  for (const line of patterns.split("\n").map((l) => l.trim())) {
    if (line === "" || line.startsWith("#")) continue;
    const pattern = parsePattern(line, workspace, trimSlashes(where.home));
    parsed.push(pattern);
    // Implicit descendants: what lies below a match matches too.
    if (pattern.directoryOnly || pattern.segments.at(-1) !== "**") {
      parsed.push({ ...pattern, segments: [...pattern.segments, "**"], directoryOnly: false });
    }
  }
  return {
    searchPaths: insideWorkspace(searchPaths(parsed), workspace),
    // A directory-only pattern can add or remove no file; its descendant pattern does that.
    matchers: parsed.filter((p) => !p.directoryOnly).map((p) => ({ regex: patternRegex(p), negate: p.negate })),
  };
}

function trimSlashes(path: string): string {
  return path.replace(/\/+$/, "");
}

function parsePattern(line: string, workspace: string, home: string): Pattern {
  let text = line;
  let negate = false;
  while (text.startsWith("!")) {
    negate = !negate;
    text = text.slice(1).trim();
  }
  if (text === "") throw new GlobPatternError(`hashFiles pattern \`${line}\` is empty after its !`);
  const written = text.split("/").filter((s) => s !== "");
  if (written.some((s, i) => literalOf(s) === ".." || (literalOf(s) === "." && (i > 0 || text.startsWith("/"))))) {
    throw new GlobPatternError(
      `Invalid pattern '${text}'. Relative pathing '.' and '..' is not allowed (hashFiles takes paths inside GITHUB_WORKSPACE, e.g. '**/package-lock.json')`,
    );
  }
  const directoryOnly = text.endsWith("/");
  let root = workspace;
  let rest = text;
  if (text === "." || text.startsWith("./")) rest = text.slice(1);
  else if (text === "~" || text.startsWith("~/")) {
    root = home;
    rest = text.slice(1);
  } else if (text.startsWith("/")) root = "";
  return { negate, root, segments: rest.split("/").filter((s) => s !== ""), directoryOnly };
}

/**
 * The literal path a segment stands for, or undefined when it is a glob. As @actions/glob decides
 * it: `\` escapes, `*` and `?` make a glob, a closed class of one character is that character.
 */
function literalOf(segment: string): string | undefined {
  let literal = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i] ?? "";
    if (c === "\\" && i + 1 < segment.length) {
      literal += segment[++i];
      continue;
    }
    if (c === "*" || c === "?") return undefined;
    if (c === "[" && i + 1 < segment.length) {
      let set = "";
      let closed = -1;
      for (let j = i + 1; j < segment.length; j++) {
        const d = segment[j] ?? "";
        if (d === "\\" && j + 1 < segment.length) set += segment[++j];
        else if (d === "]") {
          closed = j;
          break;
        } else set += d;
      }
      if (closed >= 0 && set.length > 1) return undefined;
      if (closed >= 0 && set.length === 1) {
        literal += set;
        i = closed;
        continue;
      }
    }
    literal += c;
  }
  return literal;
}

/** The search paths of the including patterns, without duplicates and without paths inside another. */
function searchPaths(patterns: readonly Pattern[]): string[] {
  const candidates: string[] = [];
  for (const pattern of patterns) {
    if (pattern.negate) continue;
    let path = pattern.root;
    for (const segment of pattern.segments) {
      const literal = literalOf(segment);
      if (literal === undefined) break;
      path += `/${literal}`;
    }
    candidates.push(path === "" ? "/" : path);
  }
  const result: string[] = [];
  for (const path of candidates) {
    if (result.includes(path)) continue;
    if (candidates.some((other) => other !== path && isInside(path, other))) continue;
    result.push(path);
  }
  return result;
}

function isInside(path: string, directory: string): boolean {
  return directory === "/" ? path !== "/" : path.startsWith(`${directory}/`);
}

/**
 * Only files inside the workspace are hashed. A search path above the workspace is walked from the
 * workspace (the same files, in the same order); one outside it is dropped.
 */
function insideWorkspace(paths: readonly string[], workspace: string): string[] {
  const result: string[] = [];
  for (const path of paths) {
    const walked = path === workspace || isInside(workspace, path) ? workspace : path;
    if ((walked === workspace || isInside(walked, workspace)) && !result.includes(walked)) result.push(walked);
  }
  return result;
}

const ERE_SPECIAL = /[.[\\()*+?{|^$]/g;

function literalRegex(text: string): string {
  return text.replace(ERE_SPECIAL, "\\$&");
}

function patternRegex(pattern: Pattern): string {
  let regex = `^${literalRegex(pattern.root)}`;
  pattern.segments.forEach((segment, i) => {
    if (segment !== "**") regex += `/${segmentRegex(segment)}`;
    // The last `**` also matches the directory it hangs off; one in the middle, zero or more directories.
    else regex += i === pattern.segments.length - 1 ? "(/.*)?" : "(/[^/]+)*";
  });
  return `${regex}$`;
}

/** One path segment of a glob as an ERE that cannot match `/`. */
function segmentRegex(segment: string): string {
  let regex = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i] ?? "";
    if (c === "\\" && i + 1 < segment.length) regex += literalRegex(segment[++i] ?? "");
    else if (c === "*") regex += "[^/]*";
    else if (c === "?") regex += "[^/]";
    else if (c === "[") {
      const parsed = characterClass(segment, i);
      if (parsed === undefined) regex += "\\[";
      else {
        regex += parsed.regex;
        i = parsed.end;
      }
    } else regex += literalRegex(c);
  }
  return regex;
}

const POSIX_CLASSES = new Set([
  "alnum",
  "alpha",
  "blank",
  "cntrl",
  "digit",
  "graph",
  "lower",
  "print",
  "punct",
  "space",
  "upper",
  "xdigit",
]);

/**
 * A glob character class starting at `segment[start]` (`[`), as minimatch reads it: `!` or `^`
 * first negates, a `]` first is a member, `\` escapes, `a-z` ranges and `[:alpha:]` names.
 * Returns its ERE (members reordered so the ERE reads them the same way) and the index of its `]`,
 * or undefined when it is not closed (then `[` is literal).
 */
function characterClass(segment: string, start: number): { regex: string; end: number } | undefined {
  let i = start + 1;
  const negated = segment[i] === "!" || segment[i] === "^";
  if (negated) i++;
  const chars = new Set<string>();
  const ranges: string[] = [];
  const names: string[] = [];
  let first = true;
  for (; i < segment.length; i++) {
    let c = segment[i] ?? "";
    if (c === "]" && !first) break;
    first = false;
    if (c === "[" && segment[i + 1] === ":") {
      const close = segment.indexOf(":]", i + 2);
      const name = close < 0 ? "" : segment.slice(i + 2, close);
      if (POSIX_CLASSES.has(name)) {
        names.push(`[:${name}:]`);
        i = close + 1;
        continue;
      }
    }
    if (c === "\\" && i + 1 < segment.length) c = segment[++i] ?? "";
    const next = segment[i + 1];
    const last = segment[i + 2];
    if (next === "-" && last !== undefined && last !== "]") {
      let high = last;
      i += 2;
      if (high === "\\" && i + 1 < segment.length) high = segment[++i] ?? "";
      ranges.push(`${bracketMember(c)}-${bracketMember(high)}`);
      continue;
    }
    chars.add(c);
  }
  if (i >= segment.length) return undefined;
  const special = ["]", "^", "-"].filter((c) => chars.delete(c));
  // A negated class must not match `/` either: a glob class never spans segments.
  const body = [...chars].map(bracketMember).join("") + ranges.join("") + names.join("") + (negated ? "/" : "");
  if (!negated && body === "" && special.length === 1 && special[0] === "^") return { regex: "\\^", end: i };
  // `]` first, `^` anywhere but first, `-` last: where a bracket expression reads them literally.
  const dash = special.includes("-") ? "-" : "";
  const caret = special.includes("^") ? "^" : "";
  const bracket = special.includes("]") ? "]" : "";
  const members = body === "" && bracket === "" ? `${dash}${caret}` : `${bracket}${body}${caret}${dash}`;
  return { regex: negated ? `[^${members}]` : `[${members}]`, end: i };
}

/** A backslash is literal in a POSIX bracket expression; doubling it also reads as one in awks that escape there. */
function bracketMember(c: string): string {
  return c === "\\" ? "\\\\" : c;
}
