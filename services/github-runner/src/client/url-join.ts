/**
 * `base` + `relative` the way .NET's `new Uri(base, relative)` joins them for the official
 * runner when the service hands out base URLs ending in "/": the base path is kept.
 */
export function joinUrl(base: string, relative: string): string {
  return `${base.endsWith("/") ? base : `${base}/`}${relative.replace(/^\/+/, "")}`;
}
