import { ensureLocalImage, type LocalImage } from "@solstice/images";
import { pino } from "pino";

/** The tiny test guest from the project's own builder, cached like any image. */
export function tinyImage(): Promise<LocalImage> {
  return ensureLocalImage("tiny", { log: pino({ level: "warn" }) });
}
