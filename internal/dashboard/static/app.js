// Skiff dashboard: lists, then watches, each resource through the API
// server (proxied by the dashboard with the user's token), and renders the
// tables on every change. Everything shown is set as text, never as HTML.
'use strict';

const TOKEN_KEY = 'skiff-dashboard-token';
const $ = (id) => document.getElementById(id);

// What the page follows: the API path (per namespace, or all) and the
// table each one feeds.
const RESOURCES = {
  nodes: { prefix: '/api/v1', plural: 'nodes', cluster: true, table: 'nodes' },
  deployments: { prefix: '/apis/apps/v1', plural: 'deployments', table: 'workloads' },
  statefulsets: { prefix: '/apis/apps/v1', plural: 'statefulsets', table: 'workloads' },
  daemonsets: { prefix: '/apis/apps/v1', plural: 'daemonsets', table: 'workloads' },
  jobs: { prefix: '/apis/batch/v1', plural: 'jobs', table: 'workloads' },
  pods: { prefix: '/api/v1', plural: 'pods', table: 'pods' },
  events: { prefix: '/api/v1', plural: 'events', table: 'events' },
};

const state = {
  token: '',
  namespace: '',
  aborter: null, // stops every watch at once (sign-out, namespace change)
  stores: {}, // resource -> Map(key -> object)
  problems: {}, // resource -> message shown under its table
  live: {}, // resource -> watching now
  usage: null, // the last /dashboard/usage answer
  pod: null, // the pod whose logs and charts are open: {namespace, name}
  logAborter: null,
};

// ---- API access ----

class HTTPError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function authHeaders() {
  return { Authorization: 'Bearer ' + state.token, Accept: 'application/json' };
}

async function request(path, signal) {
  const res = await fetch(path, { headers: authHeaders(), signal, cache: 'no-store' });
  if (!res.ok) {
    let msg = res.statusText;
    try {
      const body = await res.text();
      try { msg = JSON.parse(body).message || body; } catch { msg = body || msg; }
    } catch { /* keep statusText */ }
    throw new HTTPError(res.status, msg.trim());
  }
  return res;
}

function resourcePath(r) {
  if (r.cluster || !state.namespace) return `${r.prefix}/${r.plural}`;
  return `${r.prefix}/namespaces/${encodeURIComponent(state.namespace)}/${r.plural}`;
}

// jsonLines yields each JSON object of a newline-delimited stream.
async function* jsonLines(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) yield JSON.parse(line);
    }
  }
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

const objectKey = (o) => (o.metadata.namespace ? o.metadata.namespace + '/' : '') + o.metadata.name;

// follow keeps state.stores[name] equal to the server's objects: a list,
// then a watch from its resourceVersion, resumed where it stopped, and a
// fresh list when the server no longer has that version (410).
async function follow(name, signal) {
  const r = RESOURCES[name];
  const store = new Map();
  state.stores[name] = store;
  let rv = '';
  let backoff = 500;
  while (!signal.aborted) {
    try {
      if (!rv) {
        const list = await (await request(resourcePath(r), signal)).json();
        store.clear();
        for (const o of list.items || []) store.set(objectKey(o), o);
        rv = list.metadata.resourceVersion;
        changed(r.table);
      }
      const res = await request(`${resourcePath(r)}?watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(rv)}`, signal);
      setLive(name, true, '');
      backoff = 500;
      for await (const ev of jsonLines(res.body)) {
        if (ev.type === 'ERROR') {
          if (ev.object && ev.object.code === 410) rv = '';
          break;
        }
        rv = ev.object.metadata.resourceVersion || rv;
        if (ev.type === 'BOOKMARK') continue;
        if (ev.type === 'DELETED') store.delete(objectKey(ev.object));
        else store.set(objectKey(ev.object), ev.object);
        changed(r.table);
      }
      setLive(name, false, '');
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof HTTPError && err.status === 401) {
        signOut('The API server no longer accepts this token.');
        return;
      }
      if (err instanceof HTTPError && err.status === 410) rv = '';
      const forbidden = err instanceof HTTPError && err.status === 403;
      setLive(name, false, forbidden ? `${name}: not allowed (${err.message})` : `${name}: ${err.message}; retrying`);
      if (forbidden) {
        store.clear();
        changed(r.table);
        backoff = 30000; // permissions rarely change quickly
      }
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 30000);
    }
  }
}

function setLive(name, isLive, problem) {
  state.live[name] = isLive;
  state.problems[name] = problem;
  changed(RESOURCES[name].table);
  const total = Object.keys(RESOURCES).length;
  const live = Object.values(state.live).filter(Boolean).length;
  const conn = $('conn');
  conn.textContent = live === total ? '● live' : `○ ${live}/${total} watching`;
  conn.className = 'conn ' + (live === total ? 'ok' : 'warn');
}

// ---- rendering ----

const dirty = new Set();
let renderTimer = 0;

// changed coalesces bursts of events into one render per table.
function changed(table) {
  dirty.add(table);
  if (!renderTimer) renderTimer = setTimeout(renderDirty, 30);
}

function renderDirty() {
  renderTimer = 0;
  for (const t of dirty) RENDERERS[t]();
  dirty.clear();
}

const RENDERERS = {
  nodes: renderNodes,
  workloads: renderWorkloads,
  pods: renderPods,
  events: renderEvents,
};

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fillTable(id, rows, notes) {
  const tbody = $(id).tBodies[0];
  tbody.replaceChildren(...rows);
  const note = notes.filter(Boolean).join(' · ');
  $('note-' + id).textContent = note || (rows.length ? '' : 'None.');
}

function row(key, cells) {
  const tr = el('tr');
  tr.dataset.key = key;
  for (const c of cells) tr.append(c instanceof Node ? c : el('td', c));
  return tr;
}

function age(ts) {
  if (!ts) return '';
  let s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 120) return s + 's';
  s = Math.floor(s / 60);
  if (s < 120) return s + 'm';
  const h = Math.floor(s / 60);
  if (h < 48) return h + 'h';
  return Math.floor(h / 24) + 'd';
}

const sorted = (store) => [...(store || new Map()).entries()].sort((a, b) => a[0].localeCompare(b[0]));

function latestUsage() {
  const s = state.usage && state.usage.samples;
  return s && s.length ? s[s.length - 1] : null;
}

const fmtCPU = (u) => (u ? (u.cpu < 1 ? Math.round(u.cpu * 1000) + 'm' : u.cpu.toFixed(2)) : '');
const fmtMem = (u) => (u ? Math.round(u.memory / 1048576) + 'Mi' : '');

function renderNodes() {
  const usage = latestUsage();
  const rows = sorted(state.stores.nodes).map(([key, n]) => {
    const ready = (n.status.conditions || []).find((c) => c.type === 'Ready');
    let status = ready && ready.status === 'True' ? 'Ready' : 'NotReady';
    if (n.spec.unschedulable) status += ',SchedulingDisabled';
    const u = usage && usage.nodes[n.metadata.name];
    return row(key, [n.metadata.name, el('td', status, status.startsWith('Ready') ? 'status ok' : 'status bad'),
      (n.status.nodeInfo || {}).kubeletVersion, fmtCPU(u), fmtMem(u), age(n.metadata.creationTimestamp)]);
  });
  fillTable('nodes', rows, [state.problems.nodes]);
}

function workloadReady(kind, o) {
  const s = o.status || {};
  switch (kind) {
    case 'Deployment':
    case 'StatefulSet':
      return [`${s.readyReplicas || 0}/${o.spec.replicas ?? 1}`, (s.readyReplicas || 0) >= (o.spec.replicas ?? 1) ? 'Available' : 'Progressing'];
    case 'DaemonSet':
      return [`${s.numberReady || 0}/${s.desiredNumberScheduled || 0}`, (s.numberReady || 0) >= (s.desiredNumberScheduled || 0) ? 'Available' : 'Progressing'];
    case 'Job': {
      const cond = (s.conditions || []).find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
      return [`${s.succeeded || 0}/${o.spec.completions ?? 1}`, cond ? cond.type : (s.active ? 'Running' : 'Pending')];
    }
  }
  return ['', ''];
}

function renderWorkloads() {
  const kinds = { deployments: 'Deployment', statefulsets: 'StatefulSet', daemonsets: 'DaemonSet', jobs: 'Job' };
  const rows = [];
  for (const [res, kind] of Object.entries(kinds)) {
    for (const [key, o] of sorted(state.stores[res])) {
      const [ready, status] = workloadReady(kind, o);
      const cls = status === 'Available' || status === 'Complete' ? 'status ok' : (status === 'Failed' ? 'status bad' : 'status warn');
      rows.push(row(kind + '/' + key, [kind, o.metadata.namespace, o.metadata.name, ready, el('td', status, cls), age(o.metadata.creationTimestamp)]));
    }
  }
  fillTable('workloads', rows, Object.keys(kinds).map((r) => state.problems[r]));
}

// podStatus is the one-word status kubectl shows for a pod.
function podStatus(p) {
  const st = p.status || {};
  if (p.metadata.deletionTimestamp) return 'Terminating';
  let reason = st.reason || st.phase || 'Pending';
  const inits = st.initContainerStatuses || [];
  for (let i = 0; i < inits.length; i++) {
    const s = inits[i].state || {};
    if (s.terminated && s.terminated.exitCode === 0) continue;
    if (s.terminated) return 'Init:' + (s.terminated.reason || 'Error');
    if (s.waiting && s.waiting.reason && s.waiting.reason !== 'PodInitializing') return 'Init:' + s.waiting.reason;
    return `Init:${i}/${(p.spec.initContainers || []).length}`;
  }
  for (const c of st.containerStatuses || []) {
    const s = c.state || {};
    if (s.waiting && s.waiting.reason) reason = s.waiting.reason;
    else if (s.terminated && s.terminated.reason) reason = s.terminated.reason;
  }
  return reason;
}

function statusClass(s) {
  if (s === 'Running' || s === 'Completed' || s === 'Succeeded') return 'status ok';
  if (/Err|BackOff|Failed|Invalid|OOM|Evicted/.test(s)) return 'status bad';
  return 'status warn';
}

function renderPods() {
  const usage = latestUsage();
  const rows = sorted(state.stores.pods).map(([key, p]) => {
    const cs = (p.status && p.status.containerStatuses) || [];
    const ready = cs.filter((c) => c.ready).length;
    const restarts = cs.reduce((n, c) => n + (c.restartCount || 0), 0);
    const status = podStatus(p);
    const u = usage && usage.pods[key];
    const logs = el('button', 'logs');
    logs.type = 'button';
    logs.addEventListener('click', () => openPod(p.metadata.namespace, p.metadata.name));
    const action = el('td');
    action.append(logs);
    return row(key, [p.metadata.namespace, el('td', p.metadata.name, 'name'), el('td', status, statusClass(status)),
      `${ready}/${(p.spec.containers || []).length}`, restarts, p.spec.nodeName || '', fmtCPU(u), fmtMem(u),
      age(p.metadata.creationTimestamp), action]);
  });
  fillTable('pods', rows, [state.problems.pods]);
  if (state.pod && !state.stores.pods.has(state.pod.namespace + '/' + state.pod.name)) $('log-state').textContent = 'the pod is gone';
}

function renderEvents() {
  const when = (e) => e.lastTimestamp || e.eventTime || (e.series && e.series.lastObservedTime) || e.metadata.creationTimestamp;
  const events = [...(state.stores.events || new Map()).values()]
    .sort((a, b) => Date.parse(when(b) || 0) - Date.parse(when(a) || 0))
    .slice(0, 100);
  const rows = events.map((e) => {
    const obj = e.involvedObject || {};
    return row(objectKey(e), [age(when(e)), el('td', e.type, e.type === 'Warning' ? 'warn' : ''), e.reason,
      `${obj.kind || ''}/${obj.name || ''}`, el('td', e.message, 'message')]);
  });
  fillTable('events', rows, [state.problems.events]);
}

// ---- usage charts ----

const SVG = 'http://www.w3.org/2000/svg';

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// drawChart plots series ({name, points: [[ms, value]]}) over the last
// hour on a plain SVG.
function drawChart(svg, series, format) {
  const W = 420, H = 160, L = 44, R = 8, T = 8, B = 20;
  const now = Date.now(), from = now - 3600 * 1000;
  let top = 0;
  for (const s of series) for (const [, v] of s.points) top = Math.max(top, v);
  top = top > 0 ? top * 1.15 : 1;
  const x = (t) => L + ((t - from) / (now - from)) * (W - L - R);
  const y = (v) => H - B - (v / top) * (H - T - B);
  const parts = [
    svgEl('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' }),
    svgEl('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }),
    svgEl('text', { x: L - 4, y: T + 8, 'text-anchor': 'end' }, format(top)),
    svgEl('text', { x: L - 4, y: H - B, 'text-anchor': 'end' }, '0'),
    svgEl('text', { x: L, y: H - 6 }, '−60m'),
    svgEl('text', { x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle' }, '−30m'),
    svgEl('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, 'now'),
  ];
  series.slice(0, 6).forEach((s, i) => {
    const pts = s.points.filter(([t]) => t >= from).map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    if (pts.length === 1) pts.push(pts[0].replace(/^[\d.]+/, (m) => String(Number(m) + 2)));
    parts.push(svgEl('polyline', { points: pts.join(' '), class: 's' + i }));
    parts.push(svgEl('text', { x: L + 6, y: T + 10 + i * 12, class: 's' + i }, s.name));
  });
  if (!series.length) parts.push(svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no samples yet'));
  svg.replaceChildren(...parts);
}

function seriesOf(samples, pick) {
  const byName = new Map();
  for (const s of samples) {
    const t = Date.parse(s.time);
    for (const [name, u] of Object.entries(pick(s) || {})) {
      if (!byName.has(name)) byName.set(name, []);
      byName.get(name).push([t, u]);
    }
  }
  return [...byName.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([name, points]) => ({ name, points }));
}

const cpuFmt = (v) => (v < 1 ? Math.round(v * 1000) + 'm' : v.toFixed(1));
const memFmt = (v) => String(Math.round(v));

function renderUsage() {
  const samples = (state.usage && state.usage.samples) || [];
  const nodes = seriesOf(samples, (s) => s.nodes);
  drawChart($('chart-node-cpu'), nodes.map((s) => ({ name: s.name, points: s.points.map(([t, u]) => [t, u.cpu]) })), cpuFmt);
  drawChart($('chart-node-mem'), nodes.map((s) => ({ name: s.name, points: s.points.map(([t, u]) => [t, u.memory / 1048576]) })), memFmt);
  renderPodCharts();
  changed('nodes');
  changed('pods');
}

function renderPodCharts() {
  if (!state.pod) return;
  const key = state.pod.namespace + '/' + state.pod.name;
  const samples = (state.usage && state.usage.samples) || [];
  const points = seriesOf(samples, (s) => ({ [state.pod.name]: s.pods[key] })).filter((s) => s.points.some(([, u]) => u));
  const clean = (f) => points.map((s) => ({ name: s.name, points: s.points.filter(([, u]) => u).map(([t, u]) => [t, f(u)]) }));
  drawChart($('chart-pod-cpu'), clean((u) => u.cpu), cpuFmt);
  drawChart($('chart-pod-mem'), clean((u) => u.memory / 1048576), memFmt);
}

// The server samples every 15 s; the page fetches the history as often.
async function pollUsage(signal) {
  while (!signal.aborted) {
    try {
      state.usage = await (await request('/dashboard/usage', signal)).json();
      $('note-usage').textContent = state.usage.samples.length ? '' : 'No samples yet: usage is read every 15 s from metrics.k8s.io.';
    } catch (err) {
      if (signal.aborted) return;
      state.usage = null;
      $('note-usage').textContent = err.status === 403
        ? 'This token may not list pods in metrics.k8s.io, so usage is not shown.'
        : 'Usage unavailable: ' + err.message;
    }
    renderUsage();
    await sleep(((state.usage && state.usage.intervalSeconds) || 15) * 1000, signal);
  }
}

// ---- pod logs ----

function openPod(namespace, name) {
  state.pod = { namespace, name };
  $('pod-detail').hidden = false;
  $('detail-name').textContent = `${namespace}/${name}`;
  const pod = state.stores.pods.get(namespace + '/' + name);
  const select = $('container');
  const names = pod ? [...(pod.spec.initContainers || []), ...(pod.spec.containers || [])].map((c) => c.name) : [];
  select.replaceChildren(...names.map((n) => { const o = el('option', n); o.value = n; return o; }));
  const first = pod && pod.spec.containers && pod.spec.containers[0];
  if (first) select.value = first.name;
  renderPodCharts();
  streamLogs();
  $('pod-detail').scrollIntoView({ block: 'nearest' });
}

function closePod() {
  if (state.logAborter) state.logAborter.abort();
  state.pod = null;
  $('pod-detail').hidden = true;
  $('logs').textContent = '';
}

async function streamLogs() {
  if (state.logAborter) state.logAborter.abort();
  const aborter = new AbortController();
  state.logAborter = aborter;
  const out = $('logs');
  out.textContent = '';
  const { namespace, name } = state.pod;
  const container = $('container').value;
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}/log?follow=true&tailLines=500` +
    (container ? '&container=' + encodeURIComponent(container) : '');
  $('log-state').textContent = 'following…';
  try {
    const res = await request(path, aborter.signal);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
      out.textContent = (out.textContent + decoder.decode(value, { stream: true })).slice(-200000);
      if (stick) out.scrollTop = out.scrollHeight;
    }
    $('log-state').textContent = 'the log stream ended';
  } catch (err) {
    if (!aborter.signal.aborted) $('log-state').textContent = 'logs unavailable: ' + err.message;
  }
}

// ---- session ----

function start() {
  if (state.aborter) state.aborter.abort();
  const aborter = new AbortController();
  state.aborter = aborter;
  state.stores = {};
  state.problems = {};
  state.live = {};
  $('login').hidden = true;
  $('app').hidden = false;
  $('controls').hidden = false;
  for (const t of Object.keys(RENDERERS)) changed(t);
  for (const name of Object.keys(RESOURCES)) follow(name, aborter.signal);
  pollUsage(aborter.signal);
}

function signOut(message) {
  if (state.aborter) state.aborter.abort();
  closePod();
  state.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  $('app').hidden = true;
  $('controls').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
}

async function signIn(event) {
  event.preventDefault();
  const token = $('token').value.trim();
  if (!token) return;
  state.token = token;
  $('login-error').textContent = '';
  try {
    await request('/api', undefined); // 401 when the token is not accepted
  } catch (err) {
    state.token = '';
    $('login-error').textContent = err.status === 401 ? 'The API server does not accept this token.' : 'Sign-in failed: ' + err.message;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token').value = '';
  start();
}

function init() {
  $('login-form').addEventListener('submit', signIn);
  $('logout').addEventListener('click', () => signOut(''));
  $('detail-close').addEventListener('click', closePod);
  $('container').addEventListener('change', streamLogs);
  let nsTimer = 0;
  $('namespace').addEventListener('input', () => {
    clearTimeout(nsTimer);
    nsTimer = setTimeout(() => {
      state.namespace = $('namespace').value.trim();
      closePod();
      start();
    }, 400);
  });
  // Ages move on even when nothing changes.
  setInterval(() => { for (const t of Object.keys(RENDERERS)) changed(t); }, 10000);
  state.token = sessionStorage.getItem(TOKEN_KEY) || '';
  if (state.token) start();
}

document.addEventListener('DOMContentLoaded', init);
