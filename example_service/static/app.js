// The demo page: every call goes through the browser module, /wsproxy.js.
import { HTTPStatusError, clientStream, openCall, openMux, unary } from "/wsproxy.js";

const $ = (id) => document.getElementById(id);

// The switch: each call on its own WebSocket (the module's functions), or every call on one
// multiplexed socket (wsproxy.mux.v1), opened on first use with the page's token.
const single = { unary, clientStream, openCall };
let mux = null;
let muxToken = null;

function calls() {
  if (!$("mux").checked) return single;
  const token = $("token").value.trim() || null;
  if (mux === null || mux.closed || token !== muxToken) {
    mux?.close();
    mux = openMux("/", { token });
    muxToken = token;
  }
  return mux;
}

$("mux").addEventListener("change", () => {
  if (!$("mux").checked) {
    mux?.close();
    mux = null;
  }
});

function show(id, state, text) {
  const status = $(`${id}-status`);
  status.dataset.state = state;
  status.textContent = text;
}

function showError(id, error) {
  // HTTPStatusError reads "HTTP 400 INVALID_ARGUMENT message must not be empty".
  const where = error.code ? ` (close ${error.code})` : "";
  show(id, "error", `${error.message}${where}`);
  if (!(error instanceof HTTPStatusError) && !error.code) console.error(error);
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function append(list, text, className = "") {
  const item = document.createElement("li");
  item.textContent = text;
  if (className) item.className = className;
  list.append(item);
  list.scrollTop = list.scrollHeight;
  return item;
}

function onSubmit(id, handler) {
  $(`${id}-form`).addEventListener("submit", (event) => {
    event.preventDefault();
    handler();
  });
}

onSubmit("echo", async () => {
  $("echo-output").textContent = "";
  show("echo", "running", "calling…");
  try {
    const reply = await calls().unary("/v1/echo", { message: $("echo-message").value }, { method: "POST" });
    $("echo-output").textContent = pretty(reply);
    show("echo", "ok", "OK (close 1000)");
  } catch (error) {
    showError("echo", error);
  }
});

// One ticker at a time: starting again abandons the stream still running.
let ticker = null;

onSubmit("ticker", async () => {
  const list = $("ticker-output");
  list.replaceChildren();
  show("ticker", "running", "streaming…");
  const query = new URLSearchParams({ count: $("ticker-count").value, interval_ms: $("ticker-interval").value });
  ticker?.close();
  const call = (ticker = calls().openCall(`/v1/ticker?${query}`));
  call.closeSend(); // a server stream's request has no message: the body ends at once
  try {
    for await (const tick of call) {
      if (call !== ticker) return;
      const time = tick.time ? new Date(tick.time).toISOString().slice(11, 23) : "";
      append(list, `tick ${tick.seq ?? 0}  ${time}`);
    }
    if (call === ticker) show("ticker", "ok", `OK: ${list.children.length} ticks (close 1000)`);
  } catch (error) {
    if (call === ticker) showError("ticker", error);
  }
});

onSubmit("sum", async () => {
  const values = $("sum-values").value.split(/[\s,]+/).filter(Boolean).map((text) => ({ value: text }));
  $("sum-output").textContent = `sent ${values.length} messages, then the half-close`;
  show("sum", "running", "calling…");
  try {
    const result = await calls().clientStream("/v1/sum", values, { method: "POST" });
    $("sum-output").textContent = `total ${result.total ?? 0} of ${result.count ?? 0} values`;
    show("sum", "ok", "OK (close 1000)");
  } catch (error) {
    showError("sum", error);
  }
});

// Chat keeps one call open across sends; End half-closes it and the call finishes.
let chat = null;

async function readChat(call) {
  const list = $("chat-output");
  try {
    for await (const reply of call) append(list, `server #${reply.seq ?? 0}: ${reply.text ?? ""}`);
    show("chat", "ok", "ended: OK (close 1000)");
  } catch (error) {
    showError("chat", error);
  } finally {
    if (chat === call) chat = null;
    $("chat-end").disabled = true;
  }
}

onSubmit("chat", () => {
  if (chat === null) {
    $("chat-output").replaceChildren();
    chat = calls().openCall("/v1/chat", { method: "POST" });
    $("chat-end").disabled = false;
    show("chat", "running", "open: send more, or End");
    readChat(chat);
  }
  const text = $("chat-text").value;
  try {
    chat.send({ text });
    append($("chat-output"), `you: ${text}`, "from-me");
  } catch (error) {
    showError("chat", error);
  }
});

$("chat-end").addEventListener("click", () => {
  if (chat === null) return;
  chat.closeSend();
  show("chat", "running", "half-closed: waiting for the end");
});

onSubmit("whoami", async () => {
  $("whoami-output").textContent = "";
  show("whoami", "running", "calling…");
  try {
    const me = await calls().unary("/v1/whoami", undefined, { token: $("token").value.trim() || null });
    $("whoami-output").textContent = pretty(me);
    show("whoami", "ok", "OK (close 1000)");
  } catch (error) {
    showError("whoami", error);
  }
});
