// SPDX-License-Identifier: MIT
// Drives headless Debian chromium (playwright-core, no downloaded browser)
// against the web UI served by lighttpd, with lodestoned behind /v1/.
// Prints "ok - ..." / "not ok - ..." lines (tests/e2e/ui_browser.sh counts
// them) and exits 1 when a check failed. Any console error or uncaught
// exception in the page is a failure, except the "Failed to load resource"
// lines of API answers that the test itself expects to be errors (and
// checks that the page shows).
//
// usage: node run_page.mjs --base http://127.0.0.1:PORT/ui/ --run ID --type TYPE
//          --other ID --pending ID --pending2 ID --failed ID --shot FILE.png [--load-error FILE_NAME]
//          [--approval ID]   (a run of workflows/approval.lua, on a daemon with signals)
//          [--paused ID]     (a run paused by a step that always fails: it is
//                             resumed from its page, then terminated)
//        node run_page.mjs --base URL --smoke    (opens the runs list only)
//        node run_page.mjs --base URL --down     (the daemon is stopped)
//        node run_page.mjs --base URL --guarded TOKEN   (/v1/ wants an admin token)
import { chromium } from "playwright-core";

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^--/, "");
  const next = process.argv[i + 1];
  if (next === undefined || next.startsWith("--")) args[k] = true;
  else args[k] = process.argv[++i];
}
const base = args.base;
if (!base) {
  console.error("run_page.mjs: --base URL is required");
  process.exit(2);
}
const WAIT = 15000; // how long a check waits for the page to get there

let failed = 0;
let passed = 0;
const ok = (name) => { passed++; console.log(`ok - ${name}`); };
const notOk = (name, why) => { failed++; console.log(`not ok - ${name}`); if (why) console.log(`#   ${String(why).split("\n")[0]}`); };
async function check(name, fn) {
  try {
    const r = await fn();
    if (r === false) notOk(name, "condition false");
    else ok(name);
  } catch (e) {
    notOk(name, e && e.message ? e.message : e);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });

// Console errors and uncaught exceptions.
const consoleErrors = [];
const expectedFailures = []; // URL patterns whose error answers are part of the test
page.on("console", (msg) => {
  if (msg.type() !== "error") return;
  const url = (msg.location() && msg.location().url) || "";
  if (/^Failed to load resource/.test(msg.text()) && expectedFailures.some((re) => re.test(url))) return;
  consoleErrors.push(`${msg.text()} ${url}`.trim());
});
page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
let confirmAnswer = true; // what the test answers to window.confirm
const dialogs = [];
page.on("dialog", (d) => {
  dialogs.push(d.message());
  if (confirmAnswer) d.accept();
  else d.dismiss();
});

const runsUrl = new URL("#/runs", base).href;
const apiBase = new URL("/v1/", base).href;

try {
  await page.goto(runsUrl);

  if (args.guarded) {
    // /v1/ behind a policy that wants an admin's bearer token.
    expectedFailures.push(/\/v1\//);
    const rows = page.locator("table.runs tbody tr");
    const banner = page.locator("#banner");
    const setToken = async (token) => {
      await page.locator("#token summary").click();
      await page.getByLabel("Bearer token").fill(token);
      await page.getByRole("button", { name: "Save token" }).click();
    };
    await check("without a token the page says the API wants one", async () => {
      await page.locator("#banner", { hasText: 'the API wants a token; set one under "API token"' }).waitFor({ timeout: WAIT });
      const text = await banner.innerText();
      assert(text.includes("answered HTTP 401"), `banner [${text}]`);
      assert(await page.locator("#token-state").innerText() === "none", "token state");
    });
    await check("with the token the runs are listed", async () => {
      await setToken(args.guarded);
      await rows.first().waitFor({ timeout: WAIT });
      assert(await page.locator("#token-state").innerText() === "set", "token state");
      await banner.waitFor({ state: "hidden", timeout: WAIT });
      assert(!(await page.url()).includes(args.guarded), "the token is in the URL");
      assert(!(await page.content()).includes(args.guarded), "the token is in the page");
    });
    await check("the token lasts across a reload of the tab", async () => {
      await page.reload();
      await rows.first().waitFor({ timeout: WAIT });
    });
    await check("a refused token says so", async () => {
      await setToken("not.a.token");
      await page.locator("#banner", { hasText: "the API token was refused" }).waitFor({ timeout: WAIT });
    });
    await check("forgetting the token", async () => {
      await page.locator("#token summary").click();
      await page.getByRole("button", { name: "Forget token" }).click();
      await page.locator("#banner", { hasText: "the API wants a token" }).waitFor({ timeout: WAIT });
      assert(await page.locator("#token-state").innerText() === "none", "token state");
    });
  } else if (args.down) {
    // The daemon is stopped: lighttpd answers /v1/ with an error page.
    expectedFailures.push(/\/v1\//);
    await check("with the daemon down the runs page says why", async () => {
      await page.locator("#banner").waitFor({ timeout: WAIT });
      const text = await page.locator("#banner").innerText();
      // The list or the types for its filter, whichever failed last.
      assert(/GET \/v1\/(workflows|workflow-types)\b.* answered HTTP 5\d\d/.test(text), `banner [${text}]`);
      assert(await page.locator("main h1", { hasText: "Runs" }).isVisible(), "no page heading");
      assert(await page.locator("nav a").count() === 3, "no navigation");
    });
  } else if (args.smoke) {
    await check("runs list loads", async () => {
      await page.locator("table.runs tbody tr").first().waitFor({ timeout: WAIT });
    });
  } else {
    const runId = args.run;
    const type = args.type;
    const otherId = args.other;
    const pendingId = args.pending;
    const failedId = args.failed;
    const pausedId = args.paused;
    const getJson = async (path) => (await fetch(new URL(path, apiBase))).json();
    const resumeButton = page.getByRole("button", { name: "Resume run" });
    const tag = Math.random().toString(36).slice(2, 8);
    const live1 = `live-${tag}-1`;
    const live2 = `live-${tag}-2`;
    const rowOf = (id) => page.locator(`table.runs tbody tr[data-id="${id}"]`);

    await check("runs list shows the run with its status", async () => {
      await rowOf(runId).waitFor({ timeout: WAIT });
      const text = await rowOf(runId).innerText();
      assert(text.includes("completed"), `row says [${text}]`);
      assert(text.includes(type), `row lacks the type: [${text}]`);
    });
    await check("runs list shows the other runs", async () => {
      await rowOf(otherId).waitFor({ timeout: WAIT });
      await rowOf(pendingId).waitFor({ timeout: WAIT });
      assert((await rowOf(pendingId).innerText()).includes("running"), "the pending run is not shown running");
    });
    if (pausedId) {
      await check("runs list flags the paused run, and only it", async () => {
        await rowOf(pausedId).waitFor({ timeout: WAIT });
        const cell = (await rowOf(pausedId).locator("td:nth-child(3)").innerText()).trim();
        assert(/^running\s+paused$/.test(cell), `status cell [${cell}]`);
        const flagged = await page.locator("table.runs tbody tr:has(.flag-paused)").evaluateAll((trs) => trs.map((r) => r.dataset.id));
        assert(flagged.length === 1 && flagged[0] === pausedId, `flagged: ${flagged.join(" ")}`);
      });
    }
    await check("runs are listed newest first", async () => {
      const ids = await page.locator("table.runs tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.id));
      assert(ids.indexOf(pendingId) < ids.indexOf(runId), `order: ${ids.join(" ")}`);
    });

    // Live refresh: a run started now appears without reloading the page.
    await check("live refresh lists a run started after the page opened", async () => {
      const res = await fetch(new URL("workflows/hello", apiBase), {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id: live1, input: { name: "Live", pause: "10ms" } }),
      });
      assert(res.status === 201, `start answered ${res.status}`);
      await rowOf(live1).waitFor({ timeout: WAIT });
    });
    await check("live refresh can be paused", async () => {
      await page.getByLabel("Live refresh").uncheck();
      const res = await fetch(new URL("workflows/hello", apiBase), {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id: live2, input: { name: "Paused", pause: "10ms" } }),
      });
      assert(res.status === 201, `start answered ${res.status}`);
      // The refresh runs every 2 s: three periods without the run showing.
      await page.waitForTimeout(6500);
      assert(await rowOf(live2).count() === 0, "a paused list refreshed");
      await page.getByLabel("Live refresh").check();
      await rowOf(live2).waitFor({ timeout: WAIT });
    });

    await check("status filter narrows the list", async () => {
      await page.getByLabel("Status").selectOption("running");
      await page.waitForURL(/#\/runs\?status=running$/, { timeout: WAIT });
      await rowOf(pendingId).waitFor({ timeout: WAIT });
      await rowOf(runId).waitFor({ state: "detached", timeout: WAIT });
      const statuses = await page.locator("table.runs tbody tr .status").allInnerTexts();
      assert(statuses.length > 0 && statuses.every((s) => s === "running"), `statuses: ${statuses}`);
    });
    await check("status filter lists the failed run", async () => {
      await page.getByLabel("Status").selectOption("failed");
      await rowOf(failedId).waitFor({ timeout: WAIT });
      assert(await page.locator("table.runs tbody tr").count() === 1, "other rows listed");
    });
    if (pausedId) {
      await check("status filter paused lists the paused run", async () => {
        await page.getByLabel("Status").selectOption("paused");
        await rowOf(pausedId).waitFor({ timeout: WAIT });
        await rowOf(failedId).waitFor({ state: "detached", timeout: WAIT });
        assert(await page.locator("table.runs tbody tr").count() === 1, "other rows listed");
      });
    }
    await check("status filter with no match says so", async () => {
      await page.getByLabel("Status").selectOption("terminated");
      await page.locator("p", { hasText: "No runs with status terminated." }).waitFor({ timeout: WAIT });
      assert(await page.locator("table.runs tbody tr").count() === 0, "rows listed");
    });
    await check("type filter narrows the list", async () => {
      await page.getByLabel("Status").selectOption("");
      await page.locator(`#filter-type option[value="${type}"]`).waitFor({ state: "attached", timeout: WAIT });
      await page.getByLabel("Type").selectOption(type);
      await page.waitForURL(new RegExp(`#/runs\\?type=${type}$`), { timeout: WAIT });
      await rowOf(runId).waitFor({ timeout: WAIT });
      await rowOf(otherId).waitFor({ state: "detached", timeout: WAIT });
      const types = await page.locator("table.runs tbody tr td:nth-child(2)").allInnerTexts();
      assert(types.every((t) => t === type), `types: ${types}`);
    });

    await check("a filter keeps the keyboard focus when it reloads the list", async () => {
      await page.getByLabel("Type").focus();
      await page.keyboard.press("Home"); // "any type"
      await page.waitForURL(/#\/runs$/, { timeout: WAIT });
      await rowOf(otherId).waitFor({ timeout: WAIT });
      const active = await page.evaluate(() => document.activeElement && document.activeElement.id);
      assert(active === "filter-type", `focus on [${active}]`);
      await page.keyboard.press("End"); // the last type
      await page.waitForURL(/#\/runs\?type=/, { timeout: WAIT });
      assert(await page.evaluate(() => document.activeElement.id) === "filter-type", "focus lost");
      await page.getByLabel("Type").selectOption(type);
      await page.waitForURL(new RegExp(`#/runs\\?type=${type}$`), { timeout: WAIT });
    });
    await check("a live refresh keeps the keyboard focus on a run's link", async () => {
      await rowOf(runId).getByRole("link").focus();
      // Two refresh periods.
      await page.waitForTimeout(4500);
      const active = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
      assert(active === runId, `focus on [${active}]`);
    });

    await check("load more follows the cursor, and a refresh keeps what was loaded", async () => {
      const all = (await (await fetch(new URL("workflows?limit=1000", apiBase))).json()).runs.map((r) => r.id);
      assert(all.length >= 5, `only ${all.length} runs`);
      await page.goto(new URL("#/runs?limit=2", base).href);
      const rows = page.locator("table.runs tbody tr");
      const more = page.getByRole("button", { name: "Load more" });
      await rows.nth(1).waitFor({ timeout: WAIT });
      assert(await rows.count() === 2, `${await rows.count()} rows on the first page`);
      for (let n = 2; n < all.length; n += 2) {
        await more.click();
        await rows.nth(Math.min(n + 2, all.length) - 1).waitFor({ timeout: WAIT });
      }
      await more.waitFor({ state: "hidden", timeout: WAIT });
      await page.waitForTimeout(4500); // two live refreshes
      const ids = await rows.evaluateAll((trs) => trs.map((r) => r.dataset.id));
      assert(JSON.stringify(ids) === JSON.stringify(all), `listed ${ids.join(" ")}, API ${all.join(" ")}`);
      await page.goto(new URL(`#/runs?type=${type}`, base).href);
      await rowOf(runId).waitFor({ timeout: WAIT });
    });

    // The run page, reached from the keyboard.
    await check("the run's link opens its page", async () => {
      await rowOf(runId).getByRole("link", { name: runId }).focus();
      await page.keyboard.press("Enter");
      await page.waitForURL(new RegExp(`#/runs/${runId}$`), { timeout: WAIT });
      await page.locator("h1", { hasText: runId }).waitFor({ timeout: WAIT });
      await page.locator("#run-status .status-completed").waitFor({ timeout: WAIT });
    });
    const history = await (await fetch(new URL(`workflows/${runId}/history`, apiBase))).json();
    const run = await (await fetch(new URL(`workflows/${runId}`, apiBase))).json();
    const steps = [...new Set(history.events.filter((e) => e.type === "step_started").map((e) => e.name))];
    const stepRow = (name) => page.locator(`.timeline li[data-kind="step"][data-name="${name}"]`);
    await check(`the timeline has a row with bars for each step (${steps.join(", ")})`, async () => {
      assert(steps.length >= 2, `history has steps ${steps}`);
      for (const s of steps) {
        await stepRow(s).waitFor({ timeout: WAIT });
        const started = history.events.filter((e) => e.type === "step_started" && e.name === s).length;
        const bars = await stepRow(s).locator(".tl-bar[data-attempt]").count();
        assert(bars === started, `step ${s}: ${bars} bars for ${started} attempts`);
        assert(await stepRow(s).locator(".tl-attempt-ok").count() === 1, `step ${s}: no completed bar`);
      }
    });
    await check("the timeline shows failed attempts and the retry waits", async () => {
      const failedEvents = history.events.filter((e) => e.type === "step_failed");
      assert(failedEvents.length >= 1, "history has no failed attempt");
      const name = failedEvents[0].name;
      const failedBars = stepRow(name).locator(".tl-attempt-failed");
      assert(await failedBars.count() === failedEvents.filter((e) => e.name === name).length, "failed bars");
      const title = await failedBars.first().getAttribute("title");
      assert(title.includes("failed") && title.includes(failedEvents[0].error), `title [${title}]`);
      assert(await stepRow(name).locator(".tl-retry-wait").count() === failedEvents.filter((e) => e.name === name).length, "retry waits");
      const text = await stepRow(name).innerText();
      assert(/#1 failed \d/.test(text), `no duration on the failed attempt: [${text}]`);
    });
    await check("the timeline shows the timer with its duration", async () => {
      const timers = history.events.filter((e) => e.type === "timer_started").length;
      assert(timers >= 1, "history has no timer");
      const bars = page.locator('.timeline li[data-kind="timer"] .tl-timer');
      assert(await bars.count() === timers, "timer bars");
      const title = await bars.first().getAttribute("title");
      assert(/^timer fired after \d/.test(title), `title [${title}]`);
    });
    await check("input and output are shown (as text)", async () => {
      const input = await page.locator("#run-input pre").innerText();
      const output = await page.locator("#run-output pre").innerText();
      assert(JSON.stringify(JSON.parse(input)) === JSON.stringify(run.input), `input [${input}]`);
      assert(JSON.stringify(JSON.parse(output)) === JSON.stringify(run.output), `output [${output}]`);
      assert(await page.locator("#run-input pre *").count() === 0, "markup rendered from the input");
    });
    await check("the raw event list has every event", async () => {
      const rows = await page.locator("table.events tbody tr").count();
      assert(rows === history.events.length, `${rows} rows for ${history.events.length} events`);
    });
    await check("the actions are disabled for an ended run, and it has no Resume", async () => {
      assert(await page.getByRole("button", { name: "Cancel run" }).isDisabled(), "cancel enabled");
      assert(await resumeButton.count() === 0, "a Resume button is shown");
      assert(await page.locator("#resume-form").isHidden(), "the Resume form is shown");
    });
    // Signals cannot be sent to today's daemon: draw a made-up history
    // with the page's own module to see them (and unknown events) drawn.
    await check("the timeline draws signals and unknown events as markers", async () => {
      const got = await page.evaluate(async () => {
        const m = await import(new URL("timeline.js", document.baseURI).href);
        const t = (ms) => new Date(Date.parse("2026-01-01T00:00:00.000Z") + ms).toISOString();
        const events = [
          { seq: 1, type: "workflow_started", time: t(0) },
          { seq: 2, type: "signal_received", name: "approve", time: t(400), payload: {} },
          { seq: 3, type: "something_new", time: t(600) },
          { seq: 4, type: "workflow_completed", time: t(1000) },
        ];
        const el = m.renderTimeline(m.buildTimeline(events, { status: "completed" }, Date.now()));
        const box = document.createElement("div");
        box.id = "synthetic-timeline";
        box.appendChild(el);
        document.body.appendChild(box);
        m.settleTimeline(box);
        const sig = box.querySelector('li[data-kind="signals"] .tl-signal');
        const other = box.querySelector('li[data-kind="events"] .tl-other');
        const out = { signal: sig && sig.getAttribute("title"), left: sig && sig.style.left, other: other && other.getAttribute("title") };
        box.remove();
        return out;
      });
      assert(got.signal === "approve at +400 ms" && got.left === "40%", `signal marker ${JSON.stringify(got)}`);
      assert(got.other === "something_new at +600 ms", `other marker ${JSON.stringify(got)}`);
    });
    await page.locator(".timeline").scrollIntoViewIfNeeded();
    await page.screenshot({ path: args.shot, fullPage: true });
    ok(`screenshot saved to ${args.shot}`);

    await check("a failed run's page shows its error and traceback", async () => {
      await page.goto(new URL(`#/runs/${failedId}`, base).href);
      await page.locator("#run-status .status-failed").waitFor({ timeout: WAIT });
      const err = (await (await fetch(new URL(`workflows/${failedId}`, apiBase))).json()).error;
      assert(typeof err === "string" && err.includes("card declined"), `API error [${err}]`);
      assert(await page.locator("#run-error > pre").innerText() === err, "the error differs");
      assert(await page.locator("#run-output").count() === 0, "an output is shown");
      await page.locator("#run-error summary", { hasText: "Lua traceback" }).click();
      const tb = await page.locator("#run-error details pre").innerText();
      assert(tb.includes("stack traceback"), `traceback [${tb.slice(0, 80)}]`);
      const bar = page.locator('.timeline li[data-kind="step"][data-name="charge"] .tl-attempt-failed');
      assert(await bar.count() === 1, "no failed bar for the step");
      assert(await page.locator('.timeline li[data-kind="step"] .tl-retry-wait').count() === 0, "a retry wait after a final failure");
    });

    if (args.approval) {
      // A daemon with signals: workflows/approval.lua waits for "approved".
      const id = args.approval;
      await check("a run waiting for a signal shows its wait and custom status", async () => {
        await page.goto(new URL(`#/runs/${id}`, base).href);
        await page.locator("#run-status .status-running").waitFor({ timeout: WAIT });
        await page.locator("dd", { hasText: "for signal approved until" }).waitFor({ timeout: WAIT });
        const custom = JSON.parse(await page.locator("#run-custom-status pre").innerText());
        assert(custom.stage === "waiting for approval", `custom status ${JSON.stringify(custom)}`);
        await page.locator('.timeline li[data-kind="timer"][data-name="signal:approved"] .tl-timer.tl-open')
          .waitFor({ timeout: WAIT });
      });
      await check("a signal sent from the page reaches the run", async () => {
        await page.getByLabel("Name", { exact: true }).fill("approved");
        await page.getByLabel("Payload (JSON, optional)").fill('{"by": "alice"}');
        const [res] = await Promise.all([
          page.waitForResponse((r) => r.url().endsWith(`/v1/workflows/${id}/signals/approved`), { timeout: WAIT }),
          page.getByRole("button", { name: "Send signal" }).click(),
        ]);
        assert(res.status() === 202, `the signal answered ${res.status()}`);
        assert(JSON.stringify(res.request().postDataJSON()) === '{"by":"alice"}', `body ${res.request().postData()}`);
        await page.locator("#run-status .status-completed").waitFor({ timeout: WAIT });
        const out = JSON.parse(await page.locator("#run-output pre").innerText());
        assert(out.approved_by === "alice", `output ${JSON.stringify(out)}`);
        const custom = JSON.parse(await page.locator("#run-custom-status pre").innerText());
        assert(custom.stage === "approved", `custom status ${JSON.stringify(custom)}`);
        const marker = page.locator('.timeline li[data-kind="signals"] .tl-signal');
        assert(await marker.count() === 1, "no signal marker");
        assert((await marker.getAttribute("title")).startsWith("approved at +"), "signal marker title");
        const wait = page.locator('.timeline li[data-kind="timer"][data-name="signal:approved"] .tl-timer');
        assert((await wait.getAttribute("title")).startsWith("timer cancelled after"), "the wait's bar did not end");
      });
    }

    if (pausedId) {
      // A step that always fails under on_exhausted = "pause": the run
      // pauses, is resumed from the page, fails its new round of attempts
      // and pauses again; then it is terminated behind the page's back,
      // and a Resume gets the daemon's 409.
      const pauses = (h) => h.events.filter((e) => e.type === "step_failed" && e.paused === true).length;
      const resumes = (h) => h.events.filter((e) => e.type === "resumed");
      const until = async (what, fn) => {
        for (const t0 = Date.now(); Date.now() - t0 < WAIT; await page.waitForTimeout(100)) {
          const v = await fn();
          if (v) return v;
        }
        throw new Error(`timed out waiting for ${what}`);
      };
      const run0 = await getJson(`workflows/${pausedId}`);
      const step = run0.waiting && run0.waiting.name;
      await check("a paused run's page says it is paused and offers Resume", async () => {
        assert(run0.status === "running" && run0.waiting.kind === "paused", `API: ${JSON.stringify(run0)}`);
        await page.goto(new URL(`#/runs/${pausedId}`, base).href);
        await page.locator("#run-status .status-running").waitFor({ timeout: WAIT });
        await page.locator("#run-status .flag-paused").waitFor({ timeout: WAIT });
        await page.locator("dd", { hasText: `paused: step ${step} used up its attempts` }).waitFor({ timeout: WAIT });
        await resumeButton.waitFor({ timeout: WAIT });
        assert(await resumeButton.isEnabled(), "Resume is disabled");
        assert(await page.getByRole("button", { name: "Cancel run" }).isEnabled(), "cancel disabled");
        const title = await page.locator(`.timeline li[data-kind="step"][data-name="${step}"] .tl-attempt-failed`).last().getAttribute("title");
        assert(title.endsWith("(the run paused)"), `title [${title}]`);
      });
      await check("Resume sends the request, and the daemon's history records the resume", async () => {
        const before = await getJson(`workflows/${pausedId}/history`);
        assert(resumes(before).length === 0 && pauses(before) === 1, "history before the resume");
        const [res] = await Promise.all([
          page.waitForResponse((r) => r.url().endsWith(`/v1/workflows/${pausedId}/resume`), { timeout: WAIT }),
          resumeButton.click(),
        ]);
        assert(res.status() === 202, `the resume answered ${res.status()}`);
        const body = await res.json();
        assert(body.status === "resuming" && body.id === pausedId, `answer ${JSON.stringify(body)}`);
        assert(res.request().method() === "POST" && !res.request().postData(), `body ${res.request().postData()}`);
        await page.locator("#banner.banner-info", { hasText: "Resume requested" }).waitFor({ timeout: WAIT });
        const after = await until("a resumed event", async () => {
          const h = await getJson(`workflows/${pausedId}/history`);
          return resumes(h).length ? h : null;
        });
        const ev = resumes(after);
        // No policy gate here: the daemon records the caller as "api".
        assert(ev.length === 1 && ev[0].by === "api", `resumed events ${JSON.stringify(ev)}`);
        await page.locator('table.events tbody tr[data-type="resumed"]').waitFor({ timeout: WAIT });
        const marker = page.locator('.timeline li[data-kind="events"] .tl-resume');
        await marker.waitFor({ timeout: WAIT });
        assert((await marker.getAttribute("title")).startsWith("resumed by api at +"), "resume marker title");
      });
      await check("the new round of attempts fails, the run pauses again and Resume is offered again", async () => {
        const h = await until("a second pause", async () => {
          const x = await getJson(`workflows/${pausedId}/history`);
          return pauses(x) === 2 ? x : null;
        });
        const failures = h.events.filter((e) => e.type === "step_failed");
        const at = h.events.findIndex((e) => e.type === "resumed");
        assert(failures.length === 4 && h.events.slice(at).filter((e) => e.type === "step_started").length === 2,
          `history ${h.events.map((e) => e.type).join(" ")}`);
        await page.locator("#resume-note", { hasText: "used up its attempts" }).waitFor({ timeout: WAIT });
        await until("Resume enabled", () => resumeButton.isEnabled());
        assert(await page.locator(`.timeline li[data-kind="step"][data-name="${step}"] .tl-attempt-failed`).count() === 4,
          "failed attempt bars");
      });
      await check("Resume on a run that is no longer paused shows the daemon's 409", async () => {
        expectedFailures.push(new RegExp(`/v1/workflows/${pausedId}/resume$`));
        await page.getByLabel("Live refresh").uncheck();
        await page.waitForTimeout(500); // a refresh under way when paused ends first
        const t = await fetch(new URL(`workflows/${pausedId}/terminate`, apiBase), {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ reason: "ended behind the page's back" }),
        });
        assert(t.status === 200 || t.status === 202, `terminate answered ${t.status}`);
        await until("the run terminated", async () => (await getJson(`workflows/${pausedId}`)).status === "terminated");
        assert(await resumeButton.isEnabled(), "the page no longer offers Resume");
        const [res] = await Promise.all([
          page.waitForResponse((r) => r.url().endsWith(`/v1/workflows/${pausedId}/resume`), { timeout: WAIT }),
          resumeButton.click(),
        ]);
        assert(res.status() === 409, `the resume answered ${res.status()}`);
        const body = await res.json();
        await page.locator("#banner.banner-error", { hasText: body.error.message }).waitFor({ timeout: WAIT });
        await page.getByLabel("Live refresh").check();
        await page.locator("#run-status .status-terminated").waitFor({ timeout: WAIT });
        await page.locator("#resume-form").waitFor({ state: "hidden", timeout: WAIT });
        assert(await resumeButton.count() === 0, "a Resume button is shown for the terminated run");
        const h = await getJson(`workflows/${pausedId}/history`);
        assert(resumes(h).length === 1, "the refused resume is in the history");
      });
    }

    // A running run: open bars, and an action whose answer the page shows.
    await check("a running run's page shows its pending timer, and no Resume", async () => {
      await page.goto(new URL(`#/runs/${pendingId}`, base).href);
      await page.locator("#run-status .status-running").waitFor({ timeout: WAIT });
      await page.locator('.timeline li[data-kind="timer"] .tl-timer.tl-open').waitFor({ timeout: WAIT });
      const title = await page.locator('.timeline li[data-kind="timer"] .tl-timer').getAttribute("title");
      assert(title.startsWith("timer pending"), `title [${title}]`);
      assert(await page.getByRole("button", { name: "Cancel run" }).isEnabled(), "cancel disabled");
      assert(await resumeButton.count() === 0 && await page.locator("#run-status .flag-paused").count() === 0,
        "a running run that is not paused is shown paused");
    });
    await check("a bad signal payload is refused in the page", async () => {
      await page.getByLabel("Name", { exact: true }).fill("approve");
      await page.getByLabel("Payload (JSON, optional)").fill("{not json");
      await page.getByRole("button", { name: "Send signal" }).click();
      await page.locator("#banner", { hasText: "signal payload: not valid JSON" }).waitFor({ timeout: WAIT });
    });

    await check("cancel shows the API's answer", async () => {
      expectedFailures.push(new RegExp(`/v1/workflows/${pendingId}/cancel$`));
      await page.getByLabel("Reason").first().fill("from the browser test");
      const [res] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith(`/v1/workflows/${pendingId}/cancel`), { timeout: WAIT }),
        page.getByRole("button", { name: "Cancel run" }).click(),
      ]);
      if (res.status() >= 400) {
        const body = await res.json();
        await page.locator("#banner", { hasText: body.error.message }).waitFor({ timeout: WAIT });
      } else {
        await page.locator("#run-status .status-cancelled").waitFor({ timeout: WAIT });
        await page.locator("dd", { hasText: "from the browser test" }).waitFor({ timeout: WAIT });
      }
    });
    await check("terminate asks first, sends nothing when refused, then shows the answer", async () => {
      const id = args.pending2;
      expectedFailures.push(new RegExp(`/v1/workflows/${id}/terminate$`));
      await page.goto(new URL(`#/runs/${id}`, base).href);
      await page.locator("#run-status .status-running").waitFor({ timeout: WAIT });
      let sent = 0;
      const count = (r) => { if (r.url().endsWith(`/v1/workflows/${id}/terminate`)) sent++; };
      page.on("request", count);
      confirmAnswer = false;
      const asked = dialogs.length;
      await page.getByRole("button", { name: "Terminate run" }).click();
      await page.getByRole("button", { name: "Terminate run" }).waitFor({ state: "visible", timeout: WAIT });
      for (let i = 0; i < 50 && dialogs.length === asked; i++) await page.waitForTimeout(100);
      assert(dialogs.length === asked + 1 && dialogs[asked].includes(id), `dialogs ${JSON.stringify(dialogs)}`);
      assert(sent === 0, "a refused confirmation sent the request");
      confirmAnswer = true;
      const [res] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith(`/v1/workflows/${id}/terminate`), { timeout: WAIT }),
        page.getByRole("button", { name: "Terminate run" }).click(),
      ]);
      page.off("request", count);
      assert(sent === 1, `${sent} requests`);
      if (res.status() >= 400) {
        const body = await res.json();
        await page.locator("#banner", { hasText: body.error.message }).waitFor({ timeout: WAIT });
      } else {
        await page.locator("#run-status .status-terminated").waitFor({ timeout: WAIT });
        await page.locator("dt", { hasText: "Terminated" }).waitFor({ timeout: WAIT });
      }
    });
    await check("the types page lists the loaded types", async () => {
      await page.getByRole("link", { name: "Workflow types" }).click();
      await page.locator(`table.types tr[data-name="${type}"]`).waitFor({ timeout: WAIT });
      await page.locator('table.types tr[data-name="hello"]').waitFor({ timeout: WAIT });
      // the daemon's own fields (runs per version) are no "Other" column
      const heads = await page.locator("table.types thead th").allInnerTexts();
      assert(!heads.includes("Other"), `columns: ${heads}`);
    });
    await check("a live refresh of the types page keeps the keyboard focus", async () => {
      const link = page.locator('table.types tr[data-name="hello"] td:first-child a');
      await link.focus();
      await page.waitForTimeout(2600); // one refresh (every 2 s) or more
      const focused = await page.evaluate(() => document.activeElement?.closest("tr")?.dataset.name ?? document.activeElement?.tagName);
      assert(focused === "hello", `focus on [${focused}]`);
    });
    await check("the types page counts each type's runs", async () => {
      const counts = async (t) => {
        const all = (await (await fetch(new URL(`workflows?type=${t}`, apiBase))).json()).runs.length;
        const running = (await (await fetch(new URL(`workflows?type=${t}&status=running`, apiBase))).json()).runs.length;
        return `${running} running of ${all}`;
      };
      for (const t of [type, "hello"]) {
        const want = await counts(t);
        await page.locator(`table.types tr[data-name="${t}"] td.runs-count`, { hasText: want }).waitFor({ timeout: WAIT });
      }
    });
    if (args["load-error"]) {
      await check("the types page shows the file that failed to load", async () => {
        await page.locator(".load-errors li", { hasText: args["load-error"] }).waitFor({ timeout: WAIT });
      });
      await check("and names the file once (Lua's message names it already)", async () => {
        const text = await page.locator(".load-errors li", { hasText: args["load-error"] }).first().innerText();
        const times = text.split(args["load-error"]).length - 1;
        if (times !== 1) throw new Error(`named ${times} times: ${text}`);
      });
    }
    await check("the schedules page answers without an error", async () => {
      expectedFailures.push(/\/v1\/schedules$/);
      const [res] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith("/v1/schedules"), { timeout: WAIT }),
        page.getByRole("link", { name: "Schedules" }).click(),
      ]);
      if (res.status() === 404) await page.locator("#no-schedules-api").waitFor({ timeout: WAIT });
      else await page.locator("table.schedules, main p", { hasText: /./ }).first().waitFor({ timeout: WAIT });
      assert(await page.locator("#banner").isHidden(), `an error banner is shown: ${await page.locator("#banner").innerText().catch(() => "")}`);
    });
    await check("an unknown run shows the API's error", async () => {
      expectedFailures.push(/\/v1\/workflows\/no-such-run(\/history)?$/);
      await page.goto(new URL("#/runs/no-such-run", base).href);
      await page.locator("#banner").waitFor({ timeout: WAIT });
      const text = await page.locator("#banner").innerText();
      assert(/no-such-run|not found|no run/i.test(text), `banner [${text}]`);
    });
  }

  // The detector itself: a console error in the page is caught.
  const before = consoleErrors.length;
  await page.evaluate(() => console.error("run_page.mjs self-check"));
  for (let i = 0; i < 50 && consoleErrors.length === before; i++) await page.waitForTimeout(100);
  if (consoleErrors.length === before + 1 && consoleErrors[before].includes("self-check")) {
    consoleErrors.pop();
    ok("console errors are detected");
  } else {
    notOk("console errors are detected", `saw ${consoleErrors.length - before} new errors`);
  }
} catch (e) {
  notOk("the browser session ran to the end", e.message);
} finally {
  await browser.close();
}

if (consoleErrors.length === 0) ok("no console errors in the page");
else notOk("no console errors in the page", consoleErrors.join(" | "));
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
