import { z } from "zod";

/** The daemon's settings, from SOLSTICE_* variables (see loadConfig) or flags. */
export const forgejoRunnerConfigSchema = z.object({
  /** The `.runner` file written by `register`. */
  runnerFile: z.string().min(1).default(".runner"),
  amqpUrl: z.string().min(1).default("amqp://guest:guest@127.0.0.1:5672"),
  namespace: z.string().min(1).default("solstice"),
  /** Tasks run at once. Default 1, as the official runners. */
  capacity: z.coerce.number().int().min(1).max(1000).default(1),
  /** Pause between FetchTask calls. Default 2000, as the Forgejo runner. */
  fetchIntervalMs: z.coerce.number().int().min(50).default(2000),
  /** Deadline of one FetchTask call. Default 5000. */
  fetchTimeoutMs: z.coerce.number().int().min(100).default(5000),
  /** How often logs and state go to the forge while a task runs. Default 1000. */
  reportIntervalMs: z.coerce.number().int().min(50).default(1000),
  /** Longest wait between retries of a failing forge. Default 60000. */
  maxBackoffMs: z.coerce.number().int().min(100).default(60_000),
  /** The owner name of this runner's jobs (its event queue); default forgejo-<runner uuid>. */
  owner: z.string().min(1).optional(),
});
export type ForgejoRunnerConfig = z.infer<typeof forgejoRunnerConfigSchema>;
