"use strict";
// The wafer playground: the Cerebras chat API from a browser, streaming, nothing but this server.

const $ = (id) => document.getElementById(id);

const DEFAULT_SCHEMA = {
  type: "object",
  properties: {
    city: { type: "string" },
    country: { type: "string" },
    population: { type: "integer" },
  },
  required: ["city", "country", "population"],
  additionalProperties: false,
};

const DEFAULT_TOOLS = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "The current weather in a city",
      parameters: {
        type: "object",
        properties: { city: { type: "string", description: "the city's name" } },
        required: ["city"],
      },
    },
  },
];

const state = {
  key: localStorage.getItem("wafer.apiKey") || "",
  keysOn: false,
  info: {},          // model id -> /wafer/models entry
  messages: [],      // the conversation as API messages (without the system prompt)
  controller: null,  // the AbortController of the request in flight
};

class APIError extends Error {}

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  if (state.key) h.Authorization = `Bearer ${state.key}`;
  return h;
}

// The API's own message for an error body: Cerebras' flat {message, type, param, code}, an error
// event's {error: {...}}, or FastAPI's {detail} (a missing or malformed key).
function errorText(status, body) {
  if (body && typeof body === "object") {
    if (typeof body.message === "string" && body.message) return body.message;
    if (body.error && typeof body.error.message === "string") return body.error.message;
    if (typeof body.detail === "string") return body.detail;
  }
  return `HTTP ${status}`;
}

async function readError(resp) {
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  return errorText(resp.status, body);
}

function showError(text) {
  const el = $("error");
  el.textContent = text;
  el.hidden = !text;
}

// ------------------------------------------------------------------ models and settings

async function loadModels() {
  showError("");
  let resp;
  try {
    resp = await fetch("/v1/models", { headers: headers(false) });
  } catch (e) {
    showError(`Cannot reach the server: ${e.message}`);
    return;
  }
  if (resp.status === 401 || resp.status === 403) {
    state.keysOn = true;
    $("key-section").hidden = false;
    showError(`${await readError(resp)} — enter an API key in the settings.`);
    openSettings(true);
    return;
  }
  if (!resp.ok) {
    showError(await readError(resp));
    return;
  }
  const ids = (await resp.json()).data.map((m) => m.id);
  try {
    const info = await (await fetch("/wafer/models")).json();
    state.info = Object.fromEntries(info.data.map((m) => [m.id, m]));
  } catch (_) {
    state.info = {};
  }
  const select = $("model");
  const previous = select.value || localStorage.getItem("wafer.model");
  select.innerHTML = "";
  for (const id of ids) {
    const opt = document.createElement("option");
    opt.value = opt.textContent = id;
    select.appendChild(opt);
  }
  if (ids.includes(previous)) select.value = previous;
  onModelChange();
}

function modelInfo() {
  return state.info[$("model").value] || null;
}

function resetSampling() {
  const info = modelInfo();
  const d = (info && info.defaults) || {};
  $("temperature").value = d.temperature ?? "";
  $("top-p").value = d.top_p ?? "";
  $("temperature").placeholder = "1 (API default)";
  $("top-p").placeholder = "1 (API default)";
  const rec = info && info.recommended && Object.keys(info.recommended).length
    ? Object.entries(info.recommended).map(([k, v]) => `${k} ${v}`).join(", ") : "";
  $("sampling-source").textContent = rec
    ? `Recommended for ${info.model}: ${rec}${info.recommended_source ? ` (${info.recommended_source})` : ""}.`
    : "This model has no recommended sampling settings: the API defaults apply.";
}

function onModelChange() {
  localStorage.setItem("wafer.model", $("model").value);
  resetSampling();
  const info = modelInfo();
  const reasons = Boolean(info && info.reasoning);
  $("reasoning-format").disabled = $("reasoning-effort").disabled = !reasons;
  $("reasoning-note").textContent = reasons
    ? `This model reasons (${info.reasoning}; default format ${info.reasoning_default_format}). "parsed" shows the thinking apart from the answer.`
    : "This model has no reasoning template; the settings are not sent.";
  if (reasons && !$("reasoning-format").value) $("reasoning-format").value = "parsed";
}

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function onModeChange() {
  $("json-section").hidden = mode() !== "json";
  $("tools-section").hidden = mode() !== "tools";
}

function refreshToolChoice() {
  const select = $("tool-choice");
  const before = select.value || "auto";
  const names = [];
  try {
    for (const t of JSON.parse($("tools").value)) if (t && t.function && t.function.name) names.push(t.function.name);
  } catch (_) { /* shown when sending */ }
  select.innerHTML = "";
  for (const v of ["auto", "required", "none", ...names.map((n) => `function:${n}`)]) {
    const opt = document.createElement("option");
    opt.value = v;
    opt.textContent = v.startsWith("function:") ? `call ${v.slice(9)}` : v;
    select.appendChild(opt);
  }
  select.value = [...select.options].some((o) => o.value === before) ? before : "auto";
}

function openSettings(open) {
  document.body.classList.toggle("settings-open", open);
  $("toggle-settings").setAttribute("aria-expanded", String(open));
}

function number(id, parse) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  const v = parse(raw);
  if (!Number.isFinite(v)) throw new APIError(`${$(id).labels[0].textContent}: not a number`);
  return v;
}

function parseJSONField(id, what) {
  try {
    return JSON.parse($(id).value);
  } catch (e) {
    throw new APIError(`${what} is not valid JSON: ${e.message}`);
  }
}

function buildBody() {
  const body = { model: $("model").value, stream: true, messages: [] };
  const system = $("system").value.trim();
  if (system) body.messages.push({ role: "system", content: system });
  body.messages.push(...state.messages);
  const temperature = number("temperature", parseFloat);
  const topP = number("top-p", parseFloat);
  const maxTokens = number("max-tokens", (s) => parseInt(s, 10));
  if (temperature !== undefined) body.temperature = temperature;
  if (topP !== undefined) body.top_p = topP;
  if (maxTokens !== undefined) body.max_completion_tokens = maxTokens;
  if (mode() === "json") {
    if ($("json-object").checked) {
      body.response_format = { type: "json_object" };
    } else {
      const schema = parseJSONField("schema", "The JSON schema");
      body.response_format = {
        type: "json_schema",
        json_schema: { name: (schema && schema.title) || "answer", schema, strict: $("strict").checked },
      };
    }
  } else if (mode() === "tools") {
    body.tools = parseJSONField("tools", "The tools");
    const choice = $("tool-choice").value;
    body.tool_choice = choice.startsWith("function:")
      ? { type: "function", function: { name: choice.slice(9) } } : choice;
  }
  const info = modelInfo();
  if (info && info.reasoning) {
    if ($("reasoning-format").value) body.reasoning_format = $("reasoning-format").value;
    if ($("reasoning-effort").value) body.reasoning_effort = $("reasoning-effort").value;
  }
  return body;
}

// ------------------------------------------------------------------ one assistant answer

function element(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

function addUserMessage(text) {
  $("empty").hidden = true;
  const el = element("div", "msg user");
  el.appendChild(element("div", "who", "You"));
  el.appendChild(element("div", "body plain", text));
  $("messages").appendChild(el);
  scrollDown();
}

function addToolResults(results) {
  const el = element("div", "msg tool");
  el.appendChild(element("div", "who", "Tool results"));
  for (const r of results) el.appendChild(element("pre", "code small", `${r.name}: ${r.content}`));
  $("messages").appendChild(el);
}

function scrollDown() {
  const box = $("messages");
  if (box.scrollHeight - box.scrollTop - box.clientHeight < 200) box.scrollTop = box.scrollHeight;
}

class Answer {
  constructor(model, jsonMode) {
    this.model = model;
    this.jsonMode = jsonMode;
    this.content = "";
    this.reasoning = "";
    this.calls = [];
    this.finish = null;
    this.t0 = performance.now();
    this.ttft = null;
    this.pending = false;
    this.el = element("div", "msg assistant streaming");
    this.head = element("div", "who", model);
    this.thinkBox = element("details", "thinking");
    this.thinkBox.open = true;
    this.thinkBox.appendChild(element("summary", null, "Thinking"));
    this.thinkText = element("div", "body plain");
    this.thinkBox.appendChild(this.thinkText);
    this.thinkBox.hidden = true;
    this.body = element("div", "body markdown");
    this.callsBox = element("div", "calls");
    this.stats = element("div", "stats");
    this.el.append(this.head, this.thinkBox, this.body, this.callsBox, this.stats);
    $("empty").hidden = true;
    $("messages").appendChild(this.el);
    scrollDown();
  }

  firstToken() {
    if (this.ttft === null) {
      this.ttft = performance.now() - this.t0;
      this.el.dataset.ttftMs = this.ttft.toFixed(0);
    }
  }

  chunk(obj) {
    if (obj.model) this.head.textContent = obj.model;
    for (const c of obj.choices || []) {
      const d = c.delta || {};
      if (d.reasoning) { this.firstToken(); this.reasoning += d.reasoning; }
      if (d.content) { this.firstToken(); this.content += d.content; }
      for (const tc of d.tool_calls || []) {
        this.firstToken();
        const i = tc.index ?? this.calls.length;
        const call = this.calls[i] || (this.calls[i] = { id: "", type: "function", function: { name: "", arguments: "" } });
        if (tc.id) call.id = tc.id;
        if (tc.function && tc.function.name) call.function.name += tc.function.name;
        if (tc.function && tc.function.arguments) call.function.arguments += tc.function.arguments;
      }
      if (c.finish_reason) this.finish = c.finish_reason;
    }
    if (obj.usage) this.showStats(obj.usage, obj.time_info || {});
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }

  // reasoning_format "raw" leaves the thinking in the content, wrapped in <think>...</think>
  split() {
    let thinking = this.reasoning;
    let answer = this.content;
    const m = answer.match(/^\s*<think>([\s\S]*?)(<\/think>|$)/);
    if (m) {
      thinking += m[1];
      answer = answer.slice(m[0].length);
    }
    return [thinking.trim(), answer];
  }

  render() {
    const [thinking, answer] = this.split();
    this.thinkBox.hidden = !thinking;
    this.thinkText.textContent = thinking;
    if (this.jsonMode && answer.trim()) {
      let valid = false;
      try { JSON.parse(answer); valid = true; } catch (_) { /* still streaming, or not JSON */ }
      this.body.innerHTML = Markdown.codeBlock(Markdown.prettyJSON(answer), "json");
      this.body.dataset.validJson = String(valid);
    } else {
      this.body.innerHTML = Markdown.render(answer);
    }
    this.renderCalls();
    scrollDown();
  }

  renderCalls() {
    this.callsBox.innerHTML = "";
    for (const call of this.calls) {
      const card = element("div", "call");
      card.appendChild(element("div", "call-name", `→ ${call.function.name}`));
      card.appendChild(element("pre", "code small", Markdown.prettyJSON(call.function.arguments)));
      if (!this.el.classList.contains("streaming")) {
        const input = element("textarea", "tool-result");
        input.rows = 2;
        input.placeholder = `result of ${call.function.name} (e.g. {"temperature": 21})`;
        input.dataset.callId = call.id;
        card.appendChild(input);
      }
      this.callsBox.appendChild(card);
    }
    if (this.calls.length && !this.el.classList.contains("streaming") && !this.resultsSent) {
      const btn = element("button", "small send-results", "Send tool results");
      btn.type = "button";
      btn.addEventListener("click", () => this.sendResults());
      this.callsBox.appendChild(btn);
    }
  }

  sendResults() {
    if (state.controller) return;
    const results = this.calls.map((call) => {
      const input = this.callsBox.querySelector(`textarea[data-call-id="${CSS.escape(call.id)}"]`);
      return { role: "tool", tool_call_id: call.id, name: call.function.name, content: (input && input.value.trim()) || "" };
    });
    this.resultsSent = true;
    this.renderCalls();
    state.messages.push(...results.map(({ role, tool_call_id, content }) => ({ role, tool_call_id, content })));
    addToolResults(results);
    run();
  }

  showStats(usage, ti) {
    const s = this.el.dataset;
    const details = usage.prompt_tokens_details || {};
    const cdetails = usage.completion_tokens_details || {};
    const rate = ti.completion_time ? usage.completion_tokens / ti.completion_time : 0;
    s.promptTokens = usage.prompt_tokens;
    s.completionTokens = usage.completion_tokens;
    s.cachedTokens = details.cached_tokens || 0;
    s.tokPerS = rate.toFixed(1);
    const ms = (x) => `${((x || 0) * 1000).toFixed(0)} ms`;
    const parts = [
      ["TTFT", this.ttft === null ? "—" : `${this.ttft.toFixed(0)} ms`],
      ["speed", `${rate.toFixed(1)} tok/s`],
      ["completion", `${usage.completion_tokens} tokens`],
      ["prompt", `${usage.prompt_tokens} tokens`],
      ["cached", `${details.cached_tokens || 0} tokens`],
    ];
    if (cdetails.reasoning_tokens) parts.push(["reasoning", `${cdetails.reasoning_tokens} tokens`]);
    parts.push(["time_info", `queue ${ms(ti.queue_time)} · prompt ${ms(ti.prompt_time)} · completion ${ms(ti.completion_time)} · total ${ms(ti.total_time)}`]);
    this.stats.innerHTML = "";
    for (const [k, v] of parts) {
      const item = element("span", "stat");
      item.appendChild(element("b", null, k));
      item.appendChild(document.createTextNode(` ${v}`));
      this.stats.appendChild(item);
    }
  }

  done(note) {
    this.el.classList.remove("streaming");
    this.el.dataset.finish = note || this.finish || "";
    this.el.dataset.content = this.content;
    this.render();
    if (note) this.stats.prepend(element("span", "stat note", note));
  }

  fail(message) {
    this.el.classList.add("failed");
    this.body.appendChild(element("div", "inline-error", message));
    this.done("error");
  }

  message() {
    const m = { role: "assistant", content: this.content || (this.calls.length ? null : "") };
    if (this.calls.length) m.tool_calls = this.calls;
    return m;
  }
}

// ------------------------------------------------------------------ sending and streaming

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  document.body.classList.toggle("busy", busy);
}

async function readStream(resp, answer) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (!data || data === "[DONE]") continue;
        const obj = JSON.parse(data);
        if (obj.error) throw new APIError(errorText(obj.status_code, obj));
        answer.chunk(obj);
      }
    }
  }
}

async function run() {
  showError("");
  let body;
  try {
    body = buildBody();
  } catch (e) {
    showError(e.message);
    return false;
  }
  const answer = new Answer(body.model, mode() === "json");
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  try {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(true), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!resp.ok) throw new APIError(await readError(resp));
    await readStream(resp, answer);
    answer.done();
    state.messages.push(answer.message());
  } catch (e) {
    if (e.name === "AbortError") {
      answer.done("stopped");
      if (answer.content) state.messages.push(answer.message());
    } else {
      const text = e instanceof APIError ? e.message : `Request failed: ${e.message}`;
      answer.fail(text);
      showError(text);
    }
  } finally {
    state.controller = null;
    setBusy(false);
  }
  return true;
}

async function send() {
  const input = $("input");
  const text = input.value.trim();
  if (!text || state.controller) return;
  state.messages.push({ role: "user", content: text });
  addUserMessage(text);
  input.value = "";
  if (!(await run())) {  // nothing was sent (bad settings): give the text back
    state.messages.pop();
    $("messages").lastElementChild.remove();
    input.value = text;
  }
}

function stop() {
  if (state.controller) state.controller.abort();
}

function clearChat() {
  stop();
  state.messages = [];
  for (const el of [...$("messages").querySelectorAll(".msg")]) el.remove();
  $("empty").hidden = false;
  showError("");
}

// ------------------------------------------------------------------ wiring

function init() {
  $("schema").value = JSON.stringify(DEFAULT_SCHEMA, null, 2);
  $("tools").value = JSON.stringify(DEFAULT_TOOLS, null, 2);
  $("api-key").value = state.key;
  refreshToolChoice();
  onModeChange();
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $("stop").addEventListener("click", stop);
  $("clear").addEventListener("click", clearChat);
  $("model").addEventListener("change", onModelChange);
  $("reset-sampling").addEventListener("click", resetSampling);
  $("tools").addEventListener("input", refreshToolChoice);
  for (const r of document.querySelectorAll('input[name="mode"]')) r.addEventListener("change", onModeChange);
  const useKey = (e) => {
    if (e) e.preventDefault();
    state.key = $("api-key").value.trim();
    localStorage.setItem("wafer.apiKey", state.key);
    loadModels();
  };
  $("api-key").addEventListener("change", () => useKey());
  $("key-section").addEventListener("submit", useKey);
  $("toggle-settings").addEventListener("click", () => openSettings(!document.body.classList.contains("settings-open")));
  $("messages").addEventListener("click", (e) => {
    const btn = e.target.closest("button.copy");
    if (!btn) return;
    const code = btn.closest(".codeblock").querySelector("code").textContent;
    (navigator.clipboard ? navigator.clipboard.writeText(code) : Promise.reject()).then(
      () => { btn.textContent = "Copied"; setTimeout(() => { btn.textContent = "Copy"; }, 1200); },
      () => { btn.textContent = "Select and copy"; });
  });
  if (state.key) $("key-section").hidden = false;
  loadModels();
}

init();
