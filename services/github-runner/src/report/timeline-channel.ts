import { randomUUID } from "node:crypto";
import { jsonOf } from "../client/http.ts";
import { fixedBearer, LOCATIONS, VssClient } from "../client/vss-client.ts";
import { num, prop } from "../client/wire-json.ts";
import type { FeedbackChannel } from "./feedback-channel.ts";
import type { JobLog, StepRecord } from "./job-log.ts";

export interface TimelineChannelOptions {
  systemVssUrl: string;
  jobToken: string;
  scopeIdentifier: string;
  hubName: string;
  planId: string;
  timelineId: string;
  jobId: string;
}

/** Classic jobs report to the pipelines service: timeline records, the record feed and uploaded logs. */
export class TimelineChannel implements FeedbackChannel {
  private readonly vss: VssClient;

  constructor(private readonly opts: TimelineChannelOptions) {
    this.vss = new VssClient(opts.systemVssUrl, fixedBearer(opts.jobToken));
  }

  private route(extra: Record<string, string | number> = {}) {
    return {
      scopeIdentifier: this.opts.scopeIdentifier,
      hubName: this.opts.hubName,
      planId: this.opts.planId,
      timelineId: this.opts.timelineId,
      ...extra,
    };
  }

  private record(r: StepRecord) {
    return {
      id: r.id,
      parentId: this.opts.jobId,
      type: "Task",
      name: r.name,
      refName: r.refName,
      order: r.order,
      state: r.state,
      result: r.result ?? null,
      startTime: r.startTime?.toISOString() ?? null,
      finishTime: r.finishTime?.toISOString() ?? null,
      percentComplete: r.state === "completed" ? 100 : 0,
      workerName: "solstice",
      errorCount: r.result === "failed" ? 1 : 0,
      warningCount: 0,
      ...(r.logId !== undefined ? { log: { id: r.logId } } : {}),
      lastModified: new Date().toISOString(),
    };
  }

  private jobRecord(log: JobLog, logId?: number) {
    return {
      id: log.job.id,
      type: "Job",
      name: log.job.name,
      state: log.job.state,
      result: log.job.result ?? null,
      startTime: log.job.startTime.toISOString(),
      finishTime: log.job.finishTime?.toISOString() ?? null,
      workerName: "solstice",
      ...(logId !== undefined ? { log: { id: logId } } : {}),
      lastModified: new Date().toISOString(),
    };
  }

  private patch(records: unknown[]): Promise<unknown> {
    return this.vss.call({
      method: "PATCH",
      location: LOCATIONS.timelineRecords,
      apiVersion: "5.1-preview.1",
      route: this.route(),
      json: { count: records.length, value: records },
    });
  }

  async updateRecords(log: JobLog, changed: readonly StepRecord[]): Promise<void> {
    await this.patch([this.jobRecord(log), ...changed.map((r) => this.record(r))]);
  }

  async sendLive(recordId: string, lines: string[], startLine: number): Promise<void> {
    await this.vss.call({
      method: "POST",
      location: LOCATIONS.recordFeed,
      apiVersion: "5.1-preview.1",
      route: this.route({ recordId }),
      json: { stepId: recordId, value: lines, count: lines.length, startLine },
    });
  }

  private async uploadLog(text: string): Promise<number> {
    const now = new Date().toISOString();
    const created = jsonOf(
      await this.vss.call({
        method: "POST",
        location: LOCATIONS.logs,
        apiVersion: "5.1-preview.1",
        route: { scopeIdentifier: this.opts.scopeIdentifier, hubName: this.opts.hubName, planId: this.opts.planId },
        json: { path: `logs/${randomUUID()}`, createdOn: now, lastChangedOn: now },
      }),
    );
    const logId = num(prop(created, "id"));
    if (logId === undefined) throw new Error("the pipelines service created a log without an id");
    await this.vss.call({
      method: "POST",
      location: LOCATIONS.logs,
      apiVersion: "5.1-preview.1",
      route: {
        scopeIdentifier: this.opts.scopeIdentifier,
        hubName: this.opts.hubName,
        planId: this.opts.planId,
        logId,
      },
      body: Buffer.from(text, "utf8"),
      timeoutMs: 120_000,
    });
    return logId;
  }

  async uploadLogs(log: JobLog): Promise<void> {
    for (const record of log.records) {
      if (record.logId === undefined) record.logId = await this.uploadLog(log.logText(record.id));
    }
    const jobLogId = await this.uploadLog(log.jobLogText().text);
    await this.patch([this.jobRecord(log, jobLogId), ...log.records.map((r) => this.record(r))]);
  }

  close(): void {}
}
