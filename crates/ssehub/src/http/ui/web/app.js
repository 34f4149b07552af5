// ssehub's browser UI: a dashboard fed by the hub's stats stream (admin
// token only) and a debugger that subscribes, publishes and decodes tokens.
// Streams are read with fetch so the token travels in the Authorization
// header; the admin token lives in this tab's sessionStorage only.
'use strict';

const HUB = new URL('/.well-known/mercure', location.origin).href;
const STATS = new URL('stats', location.href).href;
const STORAGE_KEY = 'ssehub-admin-token';
const HISTORY_POINTS = 120;
const MAX_EVENTS = 500;

const $ = (id) => document.getElementById(id);

// ---- Server-Sent Events over fetch ----------------------------------------

/** A WHATWG event-stream parser: push() text, onEvent gets {id, type, data}. */
function sseParser(onEvent) {
  let buffer = '';
  let data = [];
  let type = '';
  let lastId = '';
  const line = (text) => {
    if (text === '') {
      if (data.length) onEvent({ id: lastId, type: type || 'message', data: data.join('\n') });
      data = [];
      type = '';
      return;
    }
    if (text[0] === ':') return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') type = value;
    else if (field === 'id' && !value.includes('\0')) lastId = value;
  };
  return {
    push(chunk) {
      buffer += chunk;
      for (;;) {
        const end = /\r\n|\r|\n/.exec(buffer);
        // A CR at the end may be the first half of a CRLF.
        if (!end || (end[0] === '\r' && end.index === buffer.length - 1)) return;
        line(buffer.slice(0, end.index));
        buffer = buffer.slice(end.index + end[0].length);
      }
    },
  };
}

/** Reads `response`'s event stream until it ends (or is aborted). */
async function readStream(response, onEvent) {
  const parser = sseParser(onEvent);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    parser.push(value);
  }
}

const bearer = (token) => (token ? { authorization: `Bearer ${token}` } : {});

// ---- The admin token --------------------------------------------------------

let adminToken = null;
let statsAbort = null;
let retryTimer = null;

/** Moves a `#token=` of the URL to sessionStorage and clears the fragment. */
function takeTokenFromFragment() {
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  if (!token) return;
  history.replaceState(null, '', location.pathname + location.search);
  sessionStorage.setItem(STORAGE_KEY, token);
}

/** Shows the token prompt, with why, and nothing else. */
function showLogin(message) {
  adminToken = null;
  sessionStorage.removeItem(STORAGE_KEY);
  statsAbort?.abort();
  clearTimeout(retryTimer);
  stopSubscription('Not subscribed.');
  for (const id of ['tabs', 'dashboard', 'debugger', 'forget']) $(id).hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  setLive('');
  $('login-token').focus();
}

function showApp() {
  if (!$('login').hidden || $('tabs').hidden) {
    $('login').hidden = true;
    $('tabs').hidden = false;
    $('forget').hidden = false;
    for (const id of ['sub-token', 'pub-token']) if (!$(id).value) $(id).value = adminToken;
    selectTab(location.hash === '#debugger' ? 'debugger' : 'dashboard');
  }
}

function useToken(token) {
  adminToken = token.trim();
  if (!adminToken) return showLogin('Paste an admin token.');
  sessionStorage.setItem(STORAGE_KEY, adminToken);
  connectStats();
}

function setLive(text, on = false) {
  $('live').textContent = text;
  $('live').classList.toggle('on', on);
}

// ---- The stats stream -------------------------------------------------------

async function connectStats() {
  statsAbort?.abort();
  clearTimeout(retryTimer);
  const abort = new AbortController();
  statsAbort = abort;
  let res;
  try {
    res = await fetch(STATS, { headers: bearer(adminToken), signal: abort.signal, cache: 'no-store' });
  } catch {
    if (!abort.signal.aborted) retryStats('hub unreachable');
    return;
  }
  if (res.status === 401 || res.status === 403) {
    const why = (await res.text()).trim();
    return showLogin(`The hub refused this token (${res.status}): ${why}`);
  }
  if (!res.ok) return retryStats(`stats answered ${res.status}`);
  showApp();
  setLive('live', true);
  try {
    await readStream(res, (event) => {
      if (event.type === 'stats') render(JSON.parse(event.data));
    });
  } catch {
    // Aborted or cut: retried below unless aborted.
  }
  if (!abort.signal.aborted) retryStats('stream ended');
}

function retryStats(why) {
  setLive(`reconnecting (${why})…`);
  retryTimer = setTimeout(connectStats, 2000);
}

// ---- The dashboard ----------------------------------------------------------

const points = [];
const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const fmt = (n) => (n === null || n === undefined ? '–' : number.format(n));
const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
const byLabel = (o) =>
  Object.entries(o)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(' · ');

function bytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${number.format(n)} ${units[i]}`;
}

function text(id, value) {
  $(id).textContent = value;
}

function render(s) {
  text('version', `v${s.version}`);
  text('m-connections', fmt(sum(s.connections)));
  text('m-connections-by', byLabel(s.connections));
  text('m-subscriptions', fmt(sum(s.subscriptions)));
  text('m-subscriptions-by', byLabel(s.subscriptions));
  text('m-publishes', fmt(s.publishes_per_s));
  text('m-updates-total', `${fmt(s.updates_total)} updates in all`);
  text('m-deliveries', fmt(s.deliveries_per_s));
  text('m-deliveries-total', `${fmt(s.deliveries_total)} events written in all`);
  text('m-history', s.history.events === null ? 'unknown' : `${fmt(s.history.events)} events`);
  text('m-history-bytes', bytes(s.history.bytes));
  text('m-slow', fmt(s.slow_subscribers_dropped));
  text('m-limits', fmt(s.limits_hit_total));
  text('m-limits-by', byLabel(s.limits_hit));
  text('m-auth', fmt(s.auth_failures));
  $('card-redis').hidden = !s.redis;
  if (s.redis) {
    text('m-redis', s.redis.up ? 'following' : 'disconnected');
    text('m-redis-lag', `lag ${fmt(s.redis.lag_ms)} ms`);
  }
  renderNodes(s.redis);
  points.push(s);
  if (points.length > HISTORY_POINTS) points.shift();
  drawCharts();
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

// The live nodes of a Redis cluster, this one marked; `nodes` is null when
// Redis did not list them in time.
function renderNodes(redis) {
  $('nodes-panel').hidden = !redis;
  if (!redis) return;
  const body = $('nodes').tBodies[0];
  body.replaceChildren();
  if (!redis.nodes) {
    text('nodes-count', '');
    text('nodes-note', 'Redis did not list the nodes in time.');
    return;
  }
  text('nodes-count', `(${redis.nodes.length} live)`);
  text('nodes-note', '');
  for (const node of redis.nodes) {
    const row = document.createElement('tr');
    if (node.this) row.className = 'this';
    const name = node.this ? `${node.id} (this node)` : node.id;
    for (const value of [name, `${seconds(node.renewed_ms_ago)} ago`, seconds(node.expires_in_ms)]) {
      const cell = document.createElement('td');
      cell.textContent = value;
      row.append(cell);
    }
    body.append(row);
  }
}

function drawCharts() {
  if ($('dashboard').hidden) return;
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const [a, b] = [color('--accent'), color('--accent2')];
  const series = (key) => points.map((p) => p[key]);
  drawChart($('c-rates'), [
    { label: 'publishes/s', color: a, values: series('publishes_per_s') },
    { label: 'deliveries/s', color: b, values: series('deliveries_per_s') },
  ]);
  drawChart($('c-publish'), [
    { label: 'p50', color: a, values: series('publish_p50_ms') },
    { label: 'p99', color: b, values: series('publish_p99_ms') },
  ]);
  drawChart($('c-delivery'), [
    { label: 'p50', color: a, values: series('delivery_p50_ms') },
    { label: 'p99', color: b, values: series('delivery_p99_ms') },
  ]);
}

/** An axis value: two significant digits below 10. */
const axisLabel = (v) => (v >= 10 ? number.format(v) : String(Number(v.toPrecision(2))));

/** A round upper bound for an axis. */
function niceMax(max) {
  if (!(max > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 2.5, 5, 10].map((m) => m * step).find((v) => v >= max);
}

/** Lines of `series` (null values leave gaps) over the last HISTORY_POINTS seconds. */
function drawChart(canvas, series) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  const css = getComputedStyle(document.documentElement);
  const muted = css.getPropertyValue('--muted').trim();
  const line = css.getPropertyValue('--line').trim();
  const left = 40;
  const top = 16;
  const plotW = width - left - 6;
  const plotH = height - top - 14;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null))));
  g.font = '11px system-ui, sans-serif';
  g.textBaseline = 'middle';
  for (const frac of [0, 0.5, 1]) {
    const y = top + plotH * (1 - frac);
    g.strokeStyle = line;
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(left + plotW, y);
    g.stroke();
    g.fillStyle = muted;
    g.textAlign = 'right';
    g.fillText(axisLabel(max * frac), left - 4, y);
  }
  g.textAlign = 'left';
  g.fillText(`${HISTORY_POINTS} s`, left, height - 6);
  let legendX = left + 4;
  for (const s of series) {
    g.fillStyle = s.color;
    g.fillText(`— ${s.label}`, legendX, top - 8);
    legendX += g.measureText(`— ${s.label}`).width + 12;
    g.strokeStyle = s.color;
    g.lineWidth = 1.5;
    g.beginPath();
    let drawing = false;
    const offset = HISTORY_POINTS - s.values.length;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        drawing = false;
        return;
      }
      const x = left + (plotW * (offset + i)) / (HISTORY_POINTS - 1);
      const y = top + plotH * (1 - Math.min(v, max) / max);
      if (drawing) g.lineTo(x, y);
      else g.moveTo(x, y);
      drawing = true;
    });
    g.stroke();
  }
}

// ---- Tabs -------------------------------------------------------------------

function selectTab(name) {
  for (const view of ['dashboard', 'debugger']) {
    const on = view === name;
    $(view).hidden = !on;
    $(`tab-${view}`).setAttribute('aria-selected', String(on));
    $(`tab-${view}`).tabIndex = on ? 0 : -1;
  }
  drawCharts();
}

// ---- The debugger: subscribe ------------------------------------------------

let subscription = null;
let lastSeenId = '';
let eventCount = 0;

const lines = (id) =>
  $(id)
    .value.split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

function setSubscribed(on) {
  $('sub-stop').disabled = !on;
  $('sub-reconnect').disabled = !lastSeenId && !$('sub-last-id').value.trim();
}

function stopSubscription(status) {
  subscription?.abort();
  subscription = null;
  setSubscribed(false);
  if (status) text('sub-status', status);
}

async function subscribe(lastEventId) {
  stopSubscription();
  const selectors = lines('sub-selectors');
  if (!selectors.length) return text('sub-status', 'Give at least one selector.');
  const kind = $('sub-kind').value;
  const url = new URL(HUB);
  for (const s of selectors) url.searchParams.append(kind, s);
  const headers = bearer($('sub-token').value.trim());
  if (lastEventId) headers['last-event-id'] = lastEventId;
  const abort = new AbortController();
  subscription = abort;
  text('sub-status', 'Connecting…');
  let res;
  try {
    res = await fetch(url, { headers, signal: abort.signal, cache: 'no-store' });
  } catch (e) {
    if (!abort.signal.aborted) stopSubscription(`Could not connect: ${e.message}`);
    return;
  }
  if (!res.ok) {
    const why = (await res.text()).trim();
    return stopSubscription(`Refused (${res.status}): ${why}`);
  }
  const after = lastEventId ? ` after ${lastEventId}` : '';
  text('sub-status', `Subscribed (${kind}=) to ${selectors.join(', ')}${after}.`);
  setSubscribed(true);
  try {
    await readStream(res, addEvent);
  } catch {
    // Aborted or cut.
  }
  if (subscription === abort) {
    stopSubscription('The stream ended: "Reconnect from last id" resumes after the last event received.');
  }
}

function addEvent(event) {
  if (event.id) {
    lastSeenId = event.id;
    $('sub-last-id').value = event.id;
    $('sub-reconnect').disabled = false;
  }
  const row = document.createElement('tr');
  const now = new Date();
  const time = `${now.toTimeString().slice(0, 8)}.${String(now.getMilliseconds()).padStart(3, '0')}`;
  for (const value of [time, event.id, event.type, event.data]) {
    const cell = document.createElement('td');
    cell.textContent = value;
    row.append(cell);
  }
  const body = $('events').tBodies[0];
  body.prepend(row);
  while (body.rows.length > MAX_EVENTS) body.lastElementChild.remove();
  eventCount += 1;
  text('ev-count', `(${eventCount})`);
}

// ---- The debugger: publish --------------------------------------------------

async function publish() {
  const form = new URLSearchParams();
  for (const topic of lines('pub-topics')) form.append('topic', topic);
  form.append('data', $('pub-data').value);
  for (const field of ['id', 'type', 'retry']) {
    const value = $(`pub-${field}`).value.trim();
    if (value) form.append(field, value);
  }
  if ($('pub-private').checked) form.append('private', 'on');
  const result = $('pub-result');
  result.className = '';
  result.textContent = 'Publishing…';
  try {
    const res = await fetch(HUB, {
      method: 'POST',
      headers: bearer($('pub-token').value.trim()),
      body: form,
      cache: 'no-store',
    });
    const body = (await res.text()).trim();
    result.className = res.ok ? 'ok' : 'error';
    result.textContent = res.ok ? `Published: ${body}` : `Refused (${res.status}): ${body}`;
  } catch (e) {
    result.className = 'error';
    result.textContent = `Could not reach the hub: ${e.message}`;
  }
}

// ---- The debugger: decode a token (locally) ---------------------------------

function decodePart(part) {
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, '='));
  const utf8 = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(utf8));
}

function decodeToken() {
  const out = $('jwt-output');
  const expiry = $('jwt-expiry');
  expiry.className = '';
  const parts = $('jwt-input').value.trim().split('.');
  try {
    if (parts.length !== 3) throw new Error('a JWT has three parts separated by dots');
    const header = decodePart(parts[0]);
    const payload = decodePart(parts[1]);
    out.textContent = JSON.stringify({ header, payload }, null, 2);
    const admin = payload.ssehub?.admin === true ? ' Carries the admin claim.' : '';
    if (typeof payload.exp !== 'number') {
      expiry.textContent = `No expiry (no exp claim).${admin}`;
    } else {
      const at = new Date(payload.exp * 1000);
      const minutes = Math.round((at - Date.now()) / 60000);
      const when = minutes >= 0 ? `in ${minutes} min` : `${-minutes} min ago`;
      expiry.textContent = `${minutes >= 0 ? 'Expires' : 'Expired'} ${at.toISOString()} (${when}).${admin}`;
      if (minutes < 0) expiry.className = 'error';
    }
  } catch (e) {
    out.textContent = '';
    expiry.className = 'error';
    expiry.textContent = `Not a readable JWT: ${e.message}`;
  }
}

// ---- Wiring -----------------------------------------------------------------

function onSubmit(id, handler) {
  $(id).addEventListener('submit', (e) => {
    e.preventDefault();
    handler();
  });
}

function start() {
  takeTokenFromFragment();
  onSubmit('login-form', () => useToken($('login-token').value));
  onSubmit('sub-form', () => subscribe($('sub-last-id').value.trim()));
  onSubmit('pub-form', publish);
  onSubmit('jwt-form', decodeToken);
  $('sub-reconnect').addEventListener('click', () => subscribe(lastSeenId || $('sub-last-id').value.trim()));
  $('sub-stop').addEventListener('click', () => stopSubscription('Disconnected.'));
  $('ev-clear').addEventListener('click', () => {
    $('events').tBodies[0].replaceChildren();
    eventCount = 0;
    text('ev-count', '');
  });
  $('forget').addEventListener('click', () => showLogin('Token forgotten.'));
  for (const view of ['dashboard', 'debugger']) {
    $(`tab-${view}`).addEventListener('click', () => selectTab(view));
  }
  $('tabs').addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
    const next = $('tab-dashboard').getAttribute('aria-selected') === 'true' ? 'debugger' : 'dashboard';
    selectTab(next);
    $(`tab-${next}`).focus();
  });
  window.addEventListener('resize', drawCharts);
  const stored = sessionStorage.getItem(STORAGE_KEY);
  if (stored) useToken(stored);
  else showLogin('');
}

start();
