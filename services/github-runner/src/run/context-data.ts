import { isRecord, list, num, prop, str } from "../client/wire-json.ts";

/**
 * PipelineContextData (a job message's `contextData`) as plain JSON: bare strings, numbers and
 * booleans stay; `{"t":1,"a":[…]}` is an array; `{"t":2|5,"d":[{"k","v"}]}` a dictionary;
 * `{"t":0,"s"}`, `{"t":3,"b"}`, `{"t":4,"n"}` the typed scalars some encoders write.
 */
export function contextDataToJson(data: unknown): unknown {
  if (data === null || data === undefined) return null;
  if (typeof data !== "object") return data;
  if (Array.isArray(data)) return data.map(contextDataToJson);
  const type = prop(data, "t");
  switch (type) {
    case 0:
      return prop(data, "s") ?? "";
    case 1:
      return list(prop(data, "a")).map(contextDataToJson);
    case 2:
    case 5:
      return Object.fromEntries(
        list(prop(data, "d"))
          .filter(isRecord)
          .map((pair) => [str(prop(pair, "k")) ?? "", contextDataToJson(prop(pair, "v"))]),
      );
    case 3:
      return prop(data, "b") === true;
    case 4:
      return num(prop(data, "n")) ?? 0;
    default:
      return null;
  }
}
