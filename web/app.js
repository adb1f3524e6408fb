// The uhaha dashboard: follows the cluster through the node's event stream
// (/ui/events, server-sent events read with fetch so that the secret can go in
// an Authorization header) and runs commands through /ui/cmd.
//
// When the node that served this page stops answering, the page follows the
// cluster through the other members it last heard of (they answer the page's
// origin: it is one of theirs), and goes back home as soon as it can.

const SECRET_KEY = "uhaha-dashboard-secret";
const STALL_MS = 10000; // no view for this long: the stream is dead, reconnect
const HOME_PROBE_MS = 5000; // while following another member, how often to look for home
const KEEP = 120; // chart samples kept (about two minutes)

const state = {
  secret: sessionStorage.getItem(SECRET_KEY) || "",
  needSecret: false,
  view: null,
  base: "", // "" is the node that served this page; else another member's origin
  home: "", // the address of the node that served this page
  samples: [],
  received: 0, // views received so far
  rows: new Map(),
  stream: null, // the AbortController of the stream being read
  secretEntered: null, // resolves when the operator submits a secret
};

const $ = (selector) => document.querySelector(selector);

class AuthRequired extends Error {}

// --- small helpers ------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "className") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function show(value) {
  return value === null || value === undefined || value === "" ? "\u2014" : String(value);
}

function bytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function rate(value) {
  if (value === null || value === undefined) return "\u2014";
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function headers(extra = {}) {
  return state.secret ? { ...extra, Authorization: `Bearer ${state.secret}` } : extra;
}

function originOf(address) {
  return `${location.protocol}//${address}`;
}

// Splits a console line into arguments: whitespace separates them, "double"
// and 'single' quotes group them, and a backslash escapes inside double quotes.
export function splitArgs(line) {
  const args = [];
  let current = null;
  let quote = "";
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = "";
      else if (c === "\\" && quote === '"' && i + 1 < line.length) current += line[++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      current = current ?? "";
    } else if (/\s/.test(c)) {
      if (current !== null) args.push(current);
      current = null;
    } else {
      current = (current ?? "") + c;
    }
  }
  if (quote) throw new Error("unbalanced quotes");
  if (current !== null) args.push(current);
  return args;
}

// --- the secret --------------------------------------------------------------------

function askSecret(refused) {
  state.needSecret = true;
  const error = $("#auth-error");
  error.hidden = !refused;
  error.textContent = refused ? "That secret was refused: try again." : "";
  $("#auth").hidden = false;
  document.body.classList.add("locked");
  $("#forget").hidden = true;
  $("#secret").value = "";
  $("#secret").focus();
  setConnection("lost", "locked: the cluster needs its secret");
  if (!state.secretEntered) {
    state.secretEntered = new Promise((resolve) => {
      state.enter = resolve;
    });
  }
  return state.secretEntered;
}

function secretSubmitted(event) {
  event.preventDefault();
  state.secret = $("#secret").value;
  sessionStorage.setItem(SECRET_KEY, state.secret);
  state.needSecret = false;
  $("#auth").hidden = true;
  $("#forget").hidden = false;
  const enter = state.enter;
  state.secretEntered = null;
  state.enter = null;
  if (enter) enter();
}

function forgetSecret() {
  state.secret = "";
  sessionStorage.removeItem(SECRET_KEY);
  if (state.stream) state.stream.abort();
}

// --- the event stream ----------------------------------------------------------------

function setConnection(kind, text) {
  const node = $("#connection");
  node.dataset.state = kind;
  node.textContent = text;
}

function parseEvent(block) {
  const message = { event: "message", data: [] };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") message.event = value;
    else if (field === "data") message.data.push(value);
  }
  return { event: message.event, data: message.data.join("\n") };
}

// Reads the stream of one node until it ends or breaks. Throws AuthRequired on 401.
async function follow(base) {
  const controller = new AbortController();
  state.stream = controller;
  let timer = 0;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), STALL_MS);
  };
  arm();
  try {
    const response = await fetch(`${base}/ui/events`, {
      headers: headers(),
      signal: controller.signal,
      cache: "no-store",
    });
    if (response.status === 401) throw new AuthRequired();
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    if (state.secret) $("#forget").hidden = false;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      arm();
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (message.event === "view") received(JSON.parse(message.data), base);
      }
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
    if (state.stream === controller) state.stream = null;
  }
}

// The other members' origins, to follow the cluster through when home is down.
function elsewhere() {
  const nodes = state.view ? state.view.nodes : [];
  return nodes.filter((n) => n.address !== state.home).map((n) => originOf(n.address));
}

// Follows home (the node that served the page) or, while home does not answer,
// another member; goes back home as soon as home answers again.
async function connect() {
  let failures = 0;
  for (;;) {
    if (state.needSecret) await state.secretEntered;
    let heard = false;
    for (const base of ["", ...elsewhere()]) {
      const before = state.received;
      const probe = base ? setInterval(probeHome, HOME_PROBE_MS) : 0;
      try {
        await follow(base);
      } catch (error) {
        if (error instanceof AuthRequired) {
          askSecret(Boolean(state.secret));
          break;
        }
        lost(base);
      } finally {
        clearInterval(probe);
      }
      if (state.received > before) {
        heard = true; // it worked for a while: start over from home
        break;
      }
    }
    if (state.needSecret) continue;
    failures = heard ? 0 : failures + 1;
    await sleep(heard ? 250 : Math.min(250 * 2 ** failures, 3000));
  }
}

// While the page follows another member: is home back? Then go home.
async function probeHome() {
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    if (response.ok && state.base && state.stream) state.stream.abort();
  } catch {
    // still down
  }
}

function lost(base) {
  const where = base ? base.replace(/^\w+:\/\//, "") : state.home || location.host;
  setConnection("lost", `lost ${where}: reconnecting\u2026`);
}

// --- rendering a view -----------------------------------------------------------------

function received(view, base) {
  state.received += 1;
  state.view = view;
  state.base = base;
  document.body.classList.remove("locked");
  if (!base) state.home = view.node.address;
  const through = view.node;
  setConnection("live", base ? `live via node ${through.id} (${through.address})` : `live (node ${through.id})`);
  const banner = $("#banner");
  banner.hidden = !base;
  banner.textContent = base
    ? `The node that served this page (${state.home || location.host}) does not answer: ` +
      `following the cluster through node ${through.id} (${through.address}).`
    : "";
  $("#title").textContent = view.title || "uhaha";
  document.title = `${view.title || "uhaha"} dashboard`;
  const leader = view.nodes.find((n) => n.id === view.leader);
  $("#leader").textContent = leader ? `node ${leader.id} (${leader.address})` : "none";
  $("#term").textContent = show(view.term);
  $("#commit").textContent = show(view.commit_index);
  renderNodes(view);
  renderSnapshots(view);
  sample(view);
}

const COLUMNS = ["node", "address", "role", "voter", "term", "last", "commit", "applied", "lag", "snapshot", "reach", "actions"];
const NUMERIC = new Set(["term", "last", "commit", "applied", "lag", "snapshot"]);

const ACTIONS = [
  { action: "transfer", label: "Make leader", when: (n) => n.voter && !n.leader && n.reachable },
  { action: "promote", label: "Promote", when: (n) => n.member && !n.voter },
  { action: "demote", label: "Demote", when: (n) => n.member && n.voter && !n.leader },
  { action: "remove", label: "Remove", when: (n) => n.member && !n.leader },
  { action: "snapshot", label: "Snapshot", when: (n) => n.reachable },
];

function makeRow(id) {
  const cells = {};
  const row = el("tr", { dataset: { id } });
  for (const name of COLUMNS) {
    cells[name] = el("td", { className: NUMERIC.has(name) ? `num ${name}` : name });
    row.append(cells[name]);
  }
  const buttons = {};
  for (const { action, label } of ACTIONS) {
    const button = el("button", { type: "button", dataset: { action, id } }, label);
    button.addEventListener("click", () => act(action, id));
    buttons[action] = button;
    cells.actions.append(button);
  }
  return { row, cells, buttons };
}

function renderNodes(view) {
  const body = $("#nodes tbody");
  const seen = new Set();
  view.nodes.forEach((n, position) => {
    seen.add(n.id);
    let entry = state.rows.get(n.id);
    if (!entry) {
      entry = makeRow(n.id);
      state.rows.set(n.id, entry);
    }
    const { row, cells, buttons } = entry;
    row.classList.toggle("leader", n.leader);
    row.classList.toggle("unreachable", !n.reachable);
    row.dataset.state = n.reachable ? n.state || "" : "unreachable";
    const name = [el("strong", {}, n.id)];
    if (n.leader) name.push(el("span", { className: "badge lead" }, "leader"));
    if (n.address === state.home) name.push(el("span", { className: "badge" }, "this page"));
    if (!n.member) name.push(el("span", { className: "badge" }, "not a member"));
    cells.node.replaceChildren(...name);
    cells.address.textContent = n.address;
    cells.role.textContent = n.reachable ? show(n.state) : "\u2014";
    cells.voter.textContent = n.voter ? "voter" : "non-voter";
    cells.term.textContent = show(n.term);
    cells.last.textContent = show(n.last_index);
    cells.commit.textContent = show(n.commit_index);
    cells.applied.textContent = show(n.applied_index);
    cells.lag.textContent = show(n.lag);
    cells.snapshot.textContent = show(n.snapshot_index);
    cells.reach.textContent = n.reachable ? "yes" : `no (${n.error || "no answer"})`;
    cells.reach.className = "reach";
    for (const { action, when } of ACTIONS) buttons[action].hidden = !when(n);
    if (body.children[position] !== row) body.insertBefore(row, body.children[position] || null);
  });
  for (const [id, entry] of state.rows) {
    if (!seen.has(id)) {
      entry.row.remove();
      state.rows.delete(id);
    }
  }
}

function renderSnapshots(view) {
  const section = $("#snapshots");
  section.querySelector(".where").textContent = `on node ${view.node.id}`;
  const rows = view.snapshots.map((s) =>
    el(
      "tr",
      {},
      el("td", {}, s.id),
      el("td", { className: "num" }, String(s.index)),
      el("td", { className: "num" }, String(s.term)),
      el("td", { className: "num" }, bytes(s.size)),
      el("td", {}, new Date(s.timestamp).toLocaleString()),
    ),
  );
  section.querySelector("tbody").replaceChildren(...rows);
  section.querySelector(".empty").hidden = rows.length > 0;
}

// --- charts ---------------------------------------------------------------------------

function sample(view) {
  const last = state.samples[state.samples.length - 1];
  if (last && view.time - last.time < 0.5) return; // an extra view on a change: too close to rate
  const point = {
    time: view.time,
    node: view.node.id,
    commit: view.commit_index,
    applied: view.self.applied_index,
    requests: view.requests_total,
  };
  if (last) {
    const dt = point.time - last.time;
    point.commitRate = Math.max(0, (point.commit - last.commit) / dt);
    if (point.node === last.node) {
      point.appliedRate = Math.max(0, (point.applied - last.applied) / dt);
      if (point.requests !== null && last.requests !== null) {
        point.requestRate = Math.max(0, (point.requests - last.requests) / dt);
      }
    }
  }
  state.samples.push(point);
  if (state.samples.length > KEEP) state.samples.shift();
  const where = `on node ${view.node.id}`;
  chart("#chart-commits", "commitRate");
  chart("#chart-applied", "appliedRate", where);
  const requests = $("#chart-requests");
  requests.hidden = view.requests_total === null;
  if (!requests.hidden) chart("#chart-requests", "requestRate", where);
}

const SVG = "http://www.w3.org/2000/svg";

function chart(selector, key, where) {
  const figure = $(selector);
  const values = state.samples.map((p) => p[key]);
  const current = values[values.length - 1];
  figure.querySelector(".value").textContent = rate(current);
  if (where !== undefined) figure.querySelector(".where").textContent = where;
  let svg = figure.querySelector("svg");
  if (!svg) {
    svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    for (const kind of ["area", "line"]) {
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("class", kind);
      svg.append(path);
    }
    figure.append(svg);
  }
  // The samples so far fill the width (up to KEEP of them, the newest on the right).
  svg.setAttribute("viewBox", `0 0 ${Math.max(values.length - 1, 1)} 100`);
  const top = Math.max(1, ...values.filter((v) => v !== undefined)) * 1.1;
  // A rate is unknown across a change of node: the line breaks there.
  const segments = [];
  let segment = null;
  values.forEach((v, x) => {
    if (v === undefined) {
      segment = null;
      return;
    }
    if (!segment) segments.push((segment = []));
    segment.push([x, 100 - (v / top) * 100]);
  });
  const trace = (points) => points.map(([x, y], i) => `${i ? "L" : "M"}${x} ${y.toFixed(2)}`).join(" ");
  svg.querySelector(".line").setAttribute("d", segments.map(trace).join(" "));
  svg.querySelector(".area").setAttribute(
    "d",
    segments
      .filter((points) => points.length > 1)
      .map((points) => `${trace(points)} L${points[points.length - 1][0]} 100 L${points[0][0]} 100 Z`)
      .join(" "),
  );
  svg.setAttribute("aria-label", `${figure.querySelector("figcaption").textContent.trim()}`);
}

// --- commands -------------------------------------------------------------------------

function addEntry(args, nodeAddress) {
  const text = args.map((a) => (/[\s"']/.test(a) || a === "" ? JSON.stringify(a) : a)).join(" ");
  const result = el("pre", { className: "result" }, "\u2026");
  const where = el("span", { className: "where" }, nodeAddress ? ` on ${nodeAddress}` : "");
  const entry = el("div", { className: "entry", dataset: { status: "pending" } },
    el("div", {}, el("span", { className: "command" }, `> ${text}`), where), result);
  const output = $("#console-output");
  output.append(entry);
  output.scrollTop = output.scrollHeight;
  return { entry, result, where };
}

function finish(item, status, body) {
  item.entry.dataset.status = status;
  const { node, ...shown } = body;
  item.result.textContent = JSON.stringify(shown, null, 2);
  if (node) item.where.textContent = ` answered by ${node}`;
  const output = $("#console-output");
  output.scrollTop = output.scrollHeight;
}

async function run(args, nodeAddress) {
  const item = addEntry(args, nodeAddress);
  let response;
  try {
    response = await fetch(`${state.base}/ui/cmd`, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(nodeAddress ? { args, node: nodeAddress } : { args }),
    });
  } catch (error) {
    finish(item, "error", { error: `cannot reach the node: ${error.message}` });
    return null;
  }
  let body;
  try {
    body = await response.json();
  } catch {
    body = { error: `HTTP ${response.status}` };
  }
  finish(item, response.ok ? "ok" : "error", body);
  if (response.status === 401) {
    askSecret(Boolean(state.secret));
    if (state.stream) state.stream.abort();
  }
  return body;
}

function act(action, id) {
  const view = state.view;
  const n = view && view.nodes.find((x) => x.id === id);
  if (!n) return;
  const commands = {
    transfer: ["RAFT", "TRANSFER", id],
    promote: ["RAFT", "SERVER", "PROMOTE", id],
    demote: ["RAFT", "SERVER", "DEMOTE", id],
    remove: ["RAFT", "SERVER", "REMOVE", id],
    snapshot: ["RAFT", "SNAPSHOT", "NOW"],
  };
  if ((action === "remove" || action === "demote") &&
      !confirm(`${action === "remove" ? "Remove" : "Demote"} node ${id} (${n.address})?`)) {
    return;
  }
  run(commands[action], action === "snapshot" ? n.address : undefined);
}

function consoleSubmitted(event) {
  event.preventDefault();
  const input = $("#console-input");
  let args;
  try {
    args = splitArgs(input.value);
  } catch (error) {
    finish(addEntry([input.value]), "error", { error: `ERR ${error.message}` });
    return;
  }
  if (!args.length) return;
  input.value = "";
  run(args);
}

function addSubmitted(event) {
  event.preventDefault();
  const args = ["RAFT", "SERVER", "ADD", $("#add-id").value.trim(), $("#add-address").value.trim()];
  if ($("#add-nonvoter").checked) args.push("NONVOTER");
  run(args);
  event.target.reset();
}

// --- start ----------------------------------------------------------------------------

$("#auth-form").addEventListener("submit", secretSubmitted);
$("#forget").addEventListener("click", forgetSecret);
$("#console-form").addEventListener("submit", consoleSubmitted);
$("#add-form").addEventListener("submit", addSubmitted);
$("#snapshot-now").addEventListener("click", () => {
  if (state.view) run(["RAFT", "SNAPSHOT", "NOW"], state.view.node.address);
});
connect();
