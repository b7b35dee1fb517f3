import type { Logger } from "pino";
import { httpRequest, jsonOf } from "../client/http.ts";
import { joinUrl } from "../client/url-join.ts";
import { prop, str } from "../client/wire-json.ts";
import { FeedSocket } from "./feed-socket.ts";
import type { FeedbackChannel } from "./feedback-channel.ts";
import type { JobLog, StepRecord, TaskResult } from "./job-log.ts";

/** The official runner's Results enums (Contracts.cs), sent as numbers. */
const STATUS = { pending: 5, inProgress: 3, completed: 6 } as const;
const CONCLUSION: Record<TaskResult, number> = {
  succeeded: 2,
  succeededWithIssues: 2,
  failed: 3,
  canceled: 4,
  skipped: 7,
  abandoned: 3,
};

/** Results wants millisecond timestamps. */
const ms = (date: Date | undefined) => (date ? date.toISOString() : null);

export interface ResultsChannelOptions {
  /** `system.github.results_endpoint`. */
  resultsUrl: string;
  jobToken: string;
  planId: string;
  jobId: string;
  feedStreamUrl: string;
  log: Logger;
}

/**
 * Broker jobs report only here, as the official runner does (`resultsServiceOnly`): step states
 * through WorkflowStepsUpdate, live lines through the FeedStreamUrl socket, logs as blobs.
 */
export class ResultsChannel implements FeedbackChannel {
  private changeOrder = 0;
  private readonly feed: FeedSocket;

  constructor(private readonly opts: ResultsChannelOptions) {
    this.feed = new FeedSocket(opts.feedStreamUrl, opts.jobToken, opts.log);
  }

  private async twirp(service: string, body: unknown): Promise<unknown> {
    const res = await httpRequest({
      method: "POST",
      url: joinUrl(this.opts.resultsUrl, `twirp/${service}`),
      headers: { Authorization: `Bearer ${this.opts.jobToken}`, "Content-Type": "application/json" },
      json: body,
      timeoutMs: 60_000,
    });
    return jsonOf(res);
  }

  private ids() {
    return { workflow_run_backend_id: this.opts.planId, workflow_job_run_backend_id: this.opts.jobId };
  }

  async updateRecords(log: JobLog): Promise<void> {
    this.changeOrder++;
    await this.twirp("github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate", {
      steps: log.records.map((r) => ({
        external_id: r.id,
        number: r.order,
        name: r.name,
        status: STATUS[r.state],
        started_at: ms(r.startTime),
        completed_at: ms(r.finishTime),
        conclusion: r.result ? CONCLUSION[r.result] : 0,
      })),
      change_order: this.changeOrder,
      ...this.ids(),
    });
  }

  sendLive(recordId: string, lines: string[], startLine: number): Promise<void> {
    return this.feed.send(recordId, lines, startLine);
  }

  private async upload(url: string, type: string, text: string): Promise<void> {
    const headers: Record<string, string> = type === "BLOB_STORAGE_TYPE_AZURE" ? { "x-ms-blob-type": "BlockBlob" } : {};
    await httpRequest({
      method: "PUT",
      url,
      headers: { ...headers, "Content-Type": "text/plain; charset=utf-8" },
      body: text,
      timeoutMs: 120_000,
    });
  }

  private async ok(service: string, body: unknown): Promise<void> {
    const res = await this.twirp(service, body);
    if (prop(res, "ok") !== true) throw new Error(`${service} did not answer ok`);
  }

  async uploadLogs(log: JobLog): Promise<void> {
    for (const record of log.records) {
      const text = log.logText(record.id);
      const signed = await this.twirp("results.services.receiver.Receiver/GetStepLogsSignedBlobURL", {
        ...this.ids(),
        step_backend_id: record.id,
      });
      await this.upload(str(prop(signed, "logs_url")) ?? "", str(prop(signed, "blob_storage_type")) ?? "", text);
      await this.ok("results.services.receiver.Receiver/CreateStepLogsMetadata", {
        ...this.ids(),
        step_backend_id: record.id,
        uploaded_at: new Date().toISOString(),
        line_count: record.lineCount,
      });
    }
    const job = log.jobLogText();
    const signed = await this.twirp("results.services.receiver.Receiver/GetJobLogsSignedBlobURL", this.ids());
    await this.upload(str(prop(signed, "logs_url")) ?? "", str(prop(signed, "blob_storage_type")) ?? "", job.text);
    await this.ok("results.services.receiver.Receiver/CreateJobLogsMetadata", {
      ...this.ids(),
      uploaded_at: new Date().toISOString(),
      line_count: job.lines,
    });
  }

  close(): void {
    this.feed.close();
  }
}

export function stepResultsOf(records: readonly StepRecord[]) {
  return records.map((r) => ({
    external_id: r.id,
    number: r.order,
    name: r.name,
    status: r.state,
    conclusion: r.result ?? "skipped",
    started_at: ms(r.startTime),
    completed_at: ms(r.finishTime),
    completed_log_lines: r.lineCount,
    annotations: [],
  }));
}
