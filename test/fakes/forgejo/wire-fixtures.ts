// Requests and responses as the real Forgejo/Gitea servers and runners exchange them, written down
// from the official projects' tests and sources (facts only: procedures, field values, JSON shapes).
// Each fixture names where its facts come from. JSON is the proto3 JSON mapping that the Connect
// protocol uses (int64 as strings, enums by name, default values left out); the replaying tests
// send and read the binary encoding, as the official runners do.
//
// Matchers in expected responses:
//   "$any"            any value, or the field absent
//   "$capture:NAME"   any value, remembered as NAME
//   "$NAME"           (also in requests) the value captured or set up as NAME
//   { "$unordered": [...] }  the same items in any order
//   { "$partial": true, ... } only the listed fields are compared

export interface FixtureSource {
  repo: string;
  path: string;
  /** The commit the file was read at. */
  commit: string;
  /** What was taken from it. */
  facts: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface WireExchange {
  procedure:
    | "/ping.v1.PingService/Ping"
    | "/runner.v1.RunnerService/Register"
    | "/runner.v1.RunnerService/Declare"
    | "/runner.v1.RunnerService/FetchTask"
    | "/runner.v1.RunnerService/UpdateTask"
    | "/runner.v1.RunnerService/UpdateLog";
  /** none: no runner headers; runner: x-runner-uuid/x-runner-token of $uuid/$token; wrong-token: $uuid with a bad token. */
  auth: "none" | "runner" | "wrong-token";
  request: Json;
  response?: Json;
  /** An error instead of a response: the Connect code (any of `codes`; servers differ by version) and message. */
  error?: { codes: string[]; message: string };
}

/** The server side: a conversation a runner has with the forge, replayed against the fake. */
export interface ServerConversation {
  name: string;
  sources: FixtureSource[];
  setup: {
    /** A registration token the admin took from the UI, known as $registrationToken. */
    registrationToken?: string;
    /** A job queued before the conversation (its single-job payload). */
    workflow?: string;
    /** `forgejo forgejo-cli actions register` run on the server before the runner calls. */
    offline?: { secret: string; name: string; labels: string[]; version: string; uuid: string };
  };
  exchanges: WireExchange[];
  /** The stored log of $taskId afterwards, as the server writes it to storage. */
  storedLog?: string;
}

const GITEA_MOCK_RUNNER: FixtureSource = {
  repo: "go-gitea/gitea",
  path: "tests/integration/actions_runner_test.go",
  commit: "012cb9eab82ba9dc35ecdf38cc8b668a4fa52243",
  facts:
    "mockRunner: Ping data mock-runner → Hello, mock-runner!; Register name/token/version mock-runner-version/labels; FetchTask TasksVersion 0; execTask: one UpdateLog per row with index idx, NoMore on the last, AckIndex idx+1; one UpdateTask per output with Result UNSPECIFIED, SentOutputs = every key sent so far; final UpdateTask with result and StoppedAt answers the same result",
};
const FORGEJO_MOCK_RUNNER: FixtureSource = {
  repo: "offsoc/forgejo",
  path: "tests/integration/actions_runner_test.go",
  commit: "8e482dc35d5f756d1cfd9e600b0ef86a70d24557",
  facts: "the same mockRunner conversation in Forgejo's integration tests (Register without agent_labels)",
};
const GITEA_LOG_TEST: FixtureSource = {
  repo: "go-gitea/gitea",
  path: "tests/integration/actions_log_test.go",
  commit: "0f55b922467423427be3124ea0b8d693685be129",
  facts:
    "the log rows (docker create image, job1 zstd disabled, Job succeeded) and the stored line format `<time 2006-01-02T15:04:05.0000000Z07:00> <content>`",
};
const LOG_TIME = (second: number) => `2024-05-01T10:00:0${second}Z`;
const STORED_TIME = (second: number) => `2024-05-01T10:00:0${second}.0000000Z`;

const REGISTER_AND_FETCH: WireExchange[] = [
  {
    procedure: "/runner.v1.RunnerService/Register",
    auth: "none",
    request: {
      name: "mock-runner",
      token: "$registrationToken",
      version: "mock-runner-version",
      labels: ["ubuntu-latest"],
    },
    response: {
      runner: {
        id: "$any",
        uuid: "$capture:uuid",
        token: "$capture:token",
        name: "mock-runner",
        version: "mock-runner-version",
        labels: ["ubuntu-latest"],
      },
    },
  },
  {
    procedure: "/runner.v1.RunnerService/FetchTask",
    auth: "runner",
    request: { tasksVersion: "0" },
    response: { task: { $partial: true, id: "$capture:taskId" }, tasksVersion: "$any" },
  },
];
const ONE_JOB = `name: download-task-logs-no-zstd
jobs:
  job1:
    name: job1
    runs-on: ubuntu-latest
    steps:
      - run: echo job1 with zstd disabled
`;

export const SERVER_CONVERSATIONS: ServerConversation[] = [
  {
    name: "a runner registers, takes a task, sends its rows one at a time, two outputs and the result",
    sources: [GITEA_MOCK_RUNNER, FORGEJO_MOCK_RUNNER, GITEA_LOG_TEST],
    setup: { registrationToken: "regtoken-0123456789", workflow: ONE_JOB },
    exchanges: [
      {
        procedure: "/ping.v1.PingService/Ping",
        auth: "none",
        request: { data: "mock-runner" },
        response: { data: "Hello, mock-runner!" },
      },
      ...REGISTER_AND_FETCH,
      {
        procedure: "/runner.v1.RunnerService/UpdateLog",
        auth: "runner",
        request: {
          taskId: "$taskId",
          index: "0",
          rows: [{ time: LOG_TIME(4), content: "  \u{1F433}  docker create image" }],
        },
        response: { ackIndex: "1" },
      },
      {
        procedure: "/runner.v1.RunnerService/UpdateLog",
        auth: "runner",
        request: { taskId: "$taskId", index: "1", rows: [{ time: LOG_TIME(5), content: "job1 zstd disabled" }] },
        response: { ackIndex: "2" },
      },
      {
        procedure: "/runner.v1.RunnerService/UpdateLog",
        auth: "runner",
        request: {
          taskId: "$taskId",
          index: "2",
          rows: [{ time: LOG_TIME(6), content: "\u{1F3C1}  Job succeeded" }],
          noMore: true,
        },
        response: { ackIndex: "3" },
      },
      {
        procedure: "/runner.v1.RunnerService/UpdateTask",
        auth: "runner",
        request: { state: { id: "$taskId" }, outputs: { output_a: "abc" } },
        response: { state: { id: "$taskId" }, sentOutputs: ["output_a"] },
      },
      {
        procedure: "/runner.v1.RunnerService/UpdateTask",
        auth: "runner",
        request: { state: { id: "$taskId" }, outputs: { output_b: "bbb" } },
        response: { state: { id: "$taskId" }, sentOutputs: { $unordered: ["output_a", "output_b"] } },
      },
      {
        procedure: "/runner.v1.RunnerService/UpdateTask",
        auth: "runner",
        request: { state: { id: "$taskId", result: "RESULT_SUCCESS", stoppedAt: LOG_TIME(7) } },
        response: {
          state: { id: "$taskId", result: "RESULT_SUCCESS" },
          sentOutputs: { $unordered: ["output_a", "output_b"] },
        },
      },
    ],
    storedLog: [
      `${STORED_TIME(4)}   \u{1F433}  docker create image`,
      `${STORED_TIME(5)} job1 zstd disabled`,
      `${STORED_TIME(6)} \u{1F3C1}  Job succeeded`,
      "",
    ].join("\n"),
  },
  {
    name: "calls without the runner's credentials are refused as an unregistered runner",
    sources: [
      {
        repo: "go-gitea/gitea",
        path: "routers/api/actions/runner/interceptor_test.go",
        commit: "580cfce88ff8705f436c73051ad86dcb58dbdf73",
        facts: "unregisteredRunnerError: connect.CodeUnauthenticated, message `unregistered runner`",
      },
    ],
    setup: { registrationToken: "regtoken-auth" },
    exchanges: [
      {
        procedure: "/runner.v1.RunnerService/Declare",
        auth: "none",
        request: { version: "v1", labels: ["ubuntu-latest"] },
        error: { codes: ["unauthenticated"], message: "unregistered runner" },
      },
      {
        procedure: "/runner.v1.RunnerService/Register",
        auth: "none",
        request: { name: "r", token: "$registrationToken", version: "v1", labels: ["ubuntu-latest"] },
        response: { runner: { $partial: true, uuid: "$capture:uuid", token: "$capture:token" } },
      },
      {
        procedure: "/runner.v1.RunnerService/FetchTask",
        auth: "wrong-token",
        request: { tasksVersion: "0" },
        error: { codes: ["unauthenticated"], message: "unregistered runner" },
      },
    ],
  },
  {
    name: "Register refuses a missing name and an unknown registration token",
    sources: [
      {
        repo: "offsoc/forgejo",
        path: "routers/api/actions/runner/runner.go",
        commit: "313e61c6d035ceac8c4d30ec3f14da9ef67b2ffd",
        facts:
          "Register: empty token or name → `missing runner token, name`; unknown token → `runner registration token not found` (plain errors, `unknown` on the wire; later Forgejo answers invalid_argument)",
      },
    ],
    setup: {},
    exchanges: [
      {
        procedure: "/runner.v1.RunnerService/Register",
        auth: "none",
        request: { name: "", token: "whatever", version: "v1" },
        error: { codes: ["invalid_argument", "unknown"], message: "missing runner token, name" },
      },
      {
        procedure: "/runner.v1.RunnerService/Register",
        auth: "none",
        request: { name: "r", token: "no-such-token", version: "v1" },
        error: { codes: ["invalid_argument", "unknown"], message: "runner registration token not found" },
      },
    ],
  },
  {
    name: "FetchTask with the version the server answered gets no task",
    sources: [
      {
        repo: "offsoc/forgejo",
        path: "routers/api/actions/runner/runner.go",
        commit: "313e61c6d035ceac8c4d30ec3f14da9ef67b2ffd",
        facts:
          "FetchTask: latest version never 0; a task is picked only when the request's tasks_version differs; the response always carries tasks_version = latest",
      },
    ],
    setup: { registrationToken: "regtoken-version" },
    exchanges: [
      ...REGISTER_AND_FETCH.slice(0, 1),
      {
        procedure: "/runner.v1.RunnerService/FetchTask",
        auth: "runner",
        request: { tasksVersion: "0" },
        response: { tasksVersion: "$capture:version" },
      },
      {
        procedure: "/runner.v1.RunnerService/FetchTask",
        auth: "runner",
        request: { tasksVersion: "$version" },
        response: { tasksVersion: "$version" },
      },
    ],
  },
  {
    name: "a final UpdateLog without rows is acknowledged with the stored count, also when sent again",
    sources: [
      {
        repo: "go-gitea/gitea",
        path: "tests/integration/actions_log_finalize_test.go",
        commit: "094eeee365e2ff660db29bef8f9dd63afe188287",
        facts: "UpdateLog{Index 0, Rows nil, NoMore true} → AckIndex 0; the same request re-sent → AckIndex 0",
      },
    ],
    setup: { registrationToken: "regtoken-final", workflow: ONE_JOB },
    exchanges: [
      ...REGISTER_AND_FETCH,
      {
        procedure: "/runner.v1.RunnerService/UpdateLog",
        auth: "runner",
        request: { taskId: "$taskId", index: "0", noMore: true },
        response: {},
      },
      {
        procedure: "/runner.v1.RunnerService/UpdateLog",
        auth: "runner",
        request: { taskId: "$taskId", index: "0", noMore: true },
        response: {},
      },
    ],
  },
  {
    name: "a runner registered offline from a secret pings with its uuid and declares with the secret as token",
    sources: [
      {
        repo: "offsoc/forgejo",
        path: "tests/integration/cmd_forgejo_actions_test.go",
        commit: "08e39d920e0457b48201a27553178931464efa2f",
        facts:
          "forgejo-cli actions register --secret 0123456789012345678901234567890123456789 --name runnerName --labels label1,label2,label3 --version v1.2.3 prints uuid 30313233-3435-3637-3839-303132333435",
      },
      {
        repo: "project-mirrors/forgejo-runner",
        path: "internal/app/cmd/create-runner-file.go",
        commit: "44d9d4f45371ee64df88baa5767aab11f00552dc",
        facts: "ping with Data = the uuid and no credentials; --connect declares with uuid + token = secret",
      },
      {
        repo: "project-mirrors/forgejo-runner",
        path: "internal/app/cmd/create-runner-file_test.go",
        commit: "44d9d4f45371ee64df88baa5767aab11f00552dc",
        facts: "FetchTask{} with the file's credentials succeeds with no task",
      },
      {
        repo: "offsoc/forgejo",
        path: "routers/api/actions/runner/runner.go",
        commit: "313e61c6d035ceac8c4d30ec3f14da9ef67b2ffd",
        facts: "Declare answers the stored runner; the token is not stored in clear, so the answer carries none",
      },
    ],
    setup: {
      offline: {
        secret: "0123456789012345678901234567890123456789",
        name: "runnerName",
        labels: ["label1", "label2", "label3"],
        version: "v1.2.3",
        uuid: "30313233-3435-3637-3839-303132333435",
      },
    },
    exchanges: [
      {
        procedure: "/ping.v1.PingService/Ping",
        auth: "none",
        request: { data: "30313233-3435-3637-3839-303132333435" },
        response: { data: "Hello, 30313233-3435-3637-3839-303132333435!" },
      },
      {
        procedure: "/runner.v1.RunnerService/Declare",
        auth: "runner",
        request: { version: "v1.2.3", labels: ["label1", "label2", "label3"] },
        response: {
          runner: {
            id: "$any",
            uuid: "30313233-3435-3637-3839-303132333435",
            name: "runnerName",
            version: "v1.2.3",
            labels: ["label1", "label2", "label3"],
          },
        },
      },
      {
        procedure: "/runner.v1.RunnerService/FetchTask",
        auth: "runner",
        request: {},
        response: { tasksVersion: "$any" },
      },
    ],
  },
];

/** The runner side: what an official runner sends and how it reacts to an answer, replayed against our client. */
export const CLIENT_FIXTURES = {
  register: {
    sources: [
      {
        repo: "project-mirrors/forgejo-runner",
        path: "internal/app/cmd/register.go",
        commit: "44d9d4f45371ee64df88baa5767aab11f00552dc",
        facts:
          "Ping{Data: runner name} first; Register{Name, Token, Version, AgentLabels: names, Labels: names}; the .runner keeps ID, UUID, Name, Token of the answer and the address and full labels given",
      },
      {
        repo: "project-mirrors/forgejo-runner",
        path: "internal/pkg/config/registration_test.go",
        commit: "aaf9dea44afa042f5093538cb8bcdf3c53b5ef9e",
        facts: "a registration: ID 1234, UUID, NAME, TOKEN, labels LABEL1, LABEL2",
      },
    ],
    labels: ["LABEL1:vm:tiny", "LABEL2"],
    name: "NAME",
    registrationToken: "registration-token",
    request: {
      name: "NAME",
      token: "registration-token",
      agentLabels: ["LABEL1", "LABEL2"],
      labels: ["LABEL1", "LABEL2"],
    },
    response: { runner: { id: "1234", uuid: "UUID", token: "TOKEN", name: "NAME", labels: ["LABEL1", "LABEL2"] } },
    runnerFile: { id: 1234, uuid: "UUID", name: "NAME", token: "TOKEN", labels: ["LABEL1:vm:tiny", "LABEL2"] },
  },
  reporter: {
    sources: [
      {
        repo: "project-mirrors/forgejo-runner",
        path: "internal/pkg/report/reporter_test.go",
        commit: "067a16f6b20e2828dec477de4e368a01a664e87c",
        facts:
          "UpdateTask answers {State{Result CANCELLED}} and {State{Result FAILURE}} end the job; {SentOutputs [KEY1]} leaves KEY2 to send again; UpdateLog AckIndex Index+1 of A,B,C leaves B,C; AckIndex 50 below offset 100 is `submitted logs are lost`",
      },
    ],
    cancelled: { state: { result: "RESULT_CANCELLED" } },
    failed: { state: { result: "RESULT_FAILURE" } },
    outputs: { KEY1: "VALUE1", KEY2: "VALUE2" },
    partialOutputs: { sentOutputs: ["KEY1"] },
    rows: ["A", "B", "C"],
    lostAck: { offset: 100, ackIndex: "50" },
  },
  tasks: {
    sources: [
      {
        repo: "project-mirrors/forgejo-runner",
        path: "internal/app/run/runner_test.go",
        commit: "014b4ba5f652f7b22adf9162c8b97f54884f1247",
        facts:
          "a task the Forgejo runner's tests run: a push workflow using actions/cache@v4, context {token, forgejo_default_actions_url, repository, event_name, ref}",
      },
      {
        repo: "go-gitea/gitea",
        path: "modules/actions/jobparser/testdata/has_needs.out.yaml",
        commit: "e68d455b7b3dd93d2481035f29d0effbfd8e5531",
        facts: "single-job payloads of job2 (needs: job1) and job3 (needs: [job1, job2])",
      },
      {
        repo: "go-gitea/gitea",
        path: "modules/actions/jobparser/testdata/job_name_with_matrix.out.yaml",
        commit: "31e2e114d3ac5bc3cf59197cb3df73c8dd6bf738",
        facts: "a matrix job's payload: the combination in strategy.matrix, with job-index and job-total",
      },
      {
        repo: "offsoc/forgejo",
        path: "services/actions/context_test.go",
        commit: "313e61c6d035ceac8c4d30ec3f14da9ef67b2ffd",
        facts: "needs of job1 with outputs output_a=abc, output_b=bbb",
      },
      {
        repo: "project-mirrors/forgejo-runner",
        path: "internal/app/poll/poller_test.go",
        commit: "44d9d4f45371ee64df88baa5767aab11f00552dc",
        facts: "FetchTaskResponse{Task: &Task{}, TasksVersion: 1}: an empty task",
      },
    ],
    /** FetchTaskResponse JSON, each with what our runner must do with the task. */
    cases: [
      {
        name: "the Forgejo runner's cache test task (uses: actions/cache) is planned: the VM host serves the cache",
        labels: ["ubuntu-latest:vm:tiny"],
        response: {
          task: {
            id: "1",
            workflowPayload: Buffer.from(`
name: Cache Testing Action
on:
  push:
jobs:
  job-cache-check-1:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/cache@v4
        with:
          path: cache_path_1
          key: cache-key-1
      - run: |
          mkdir -p cache_path_1
          echo "Hello from push workflow!" > cache_path_1/cache_content_1
`).toString("base64"),
            context: {
              token: "some token here",
              forgejo_default_actions_url: "https://data.forgejo.org",
              repository: "runner",
              event_name: "push",
              ref: "refs/heads/main",
            },
          },
          tasksVersion: "1",
        },
        expect: { planned: { job: "job-cache-check-1", fleetLabel: "tiny", steps: 2 }, masks: ["some token here"] },
      },
      {
        name: "job2 of has_needs (needs: job1) is planned for its label",
        labels: ["linux:vm:tiny"],
        response: {
          task: {
            id: "2",
            workflowPayload: Buffer.from(
              "name: test\njobs:\n  job2:\n    name: job2\n    needs: job1\n    runs-on: linux\n    steps:\n      - run: uname -a\n",
            ).toString("base64"),
            needs: { job1: { outputs: { output_a: "abc", output_b: "bbb" }, result: "RESULT_SUCCESS" } },
          },
          tasksVersion: "3",
        },
        expect: { planned: { job: "job2", fleetLabel: "tiny", steps: 1 } },
      },
      {
        name: "job3 of has_needs (needs: [job1, job2]) is planned for its label",
        labels: ["linux:vm:tiny"],
        response: {
          task: {
            id: "3",
            workflowPayload: Buffer.from(
              "name: test\njobs:\n  job3:\n    name: job3\n    needs: [job1, job2]\n    runs-on: linux\n    steps:\n      - run: uname -a\n",
            ).toString("base64"),
            needs: {
              job1: { outputs: { output_a: "abc" }, result: "RESULT_SUCCESS" },
              job2: { result: "RESULT_SUCCESS" },
            },
          },
          tasksVersion: "3",
        },
        expect: { planned: { job: "job3", fleetLabel: "tiny", steps: 1 } },
      },
      {
        name: "a matrix combination's payload with job-index/job-total is read and planned, its setup-go step as an action",
        labels: ["ubuntu-20.04:vm:tiny"],
        response: {
          task: {
            id: "4",
            workflowPayload: Buffer.from(`name: test
jobs:
  job1:
    name: test_version_1.17_on_ubuntu-20.04
    runs-on: ubuntu-20.04
    steps:
      - uses: actions/setup-go@v3
        with:
          go-version: \${{ matrix.version }}
      - run: uname -a && go version
    strategy:
      matrix:
        os:
          - ubuntu-20.04
        version:
          - 1.17
      job-index: 3
      job-total: 6
`).toString("base64"),
          },
          tasksVersion: "5",
        },
        expect: { planned: { job: "job1", fleetLabel: "tiny", steps: 2 } },
      },
      {
        name: "the poller test's empty task is refused: it carries no workflow",
        labels: ["linux:vm:tiny"],
        response: { task: {}, tasksVersion: "1" },
        expect: { refused: "no workflow payload" },
      },
    ],
  },
  createRunnerFile: {
    sources: [
      {
        repo: "project-mirrors/forgejo-runner",
        path: "internal/app/cmd/create-runner-file_test.go",
        commit: "44d9d4f45371ee64df88baa5767aab11f00552dc",
        facts:
          "uuidFromSecret(40 × A) = 41414141-4141-4141-4141-414141414141; validateSecret(abc) → exactly 40 characters; validateSecret(Z + 39 × A) → must be an hexadecimal",
      },
      {
        repo: "offsoc/forgejo",
        path: "tests/integration/cmd_forgejo_actions_test.go",
        commit: "08e39d920e0457b48201a27553178931464efa2f",
        facts: "secrets 40 × D → 44444444-…, 0123456789… → 30313233-3435-3637-3839-303132333435",
      },
    ],
    uuids: [
      ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "41414141-4141-4141-4141-414141414141"],
      ["DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD", "44444444-4444-4444-4444-444444444444"],
      ["0123456789012345678901234567890123456789", "30313233-3435-3637-3839-303132333435"],
    ],
    invalid: [
      ["abc", "exactly 40 characters"],
      ["ZAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "hexadecimal"],
    ],
  },
} as const;
