// The sluice web dashboard: one page with hash routes, reading only the REST
// API of the server that serves it (Flink's paths and JSON shapes).
//
// Routes: #/overview, #/jobs, #/jobs/<jobid>, #/taskmanagers. When the
// server has a bearer token, open the page as .../#token=<token> (or add
// ?token=<token> to any route): the page keeps the token in sessionStorage,
// removes it from the address bar and sends it as `Authorization: Bearer`.
//
// Elements the tests look for carry stable ids, classes and data-*
// attributes (see tests/dashboard.test.cpp); keep them when restyling.
'use strict';

(() => {
  const REFRESH_MS = 1000;
  const RATE_WINDOW_MS = 5000;
  const TOKEN_KEY = 'sluice-dashboard-token';
  const TERMINAL = new Set(['FINISHED', 'CANCELED', 'FAILED']);
  const NO_WATERMARK = -9223372036854775808n; // Long.MIN_VALUE, Flink's "none yet"

  let token = sessionStorage.getItem(TOKEN_KEY);
  let current = null; // the view on screen: { stop() }

  // -- DOM helpers (text is always set as text, never parsed as HTML) ------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    setAttrs(e, attrs);
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function setText(root, selector, text) {
    const e = root.querySelector(selector);
    if (e) e.textContent = text;
    return e;
  }

  // -- formatting ----------------------------------------------------------------------

  function fmtTime(ms) {
    if (!(ms > 0)) return '–';
    return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
  }

  function fmtDuration(ms) {
    if (!(ms >= 0)) return '–';
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `${d}d ${h}h ${m}m`;
    if (h) return `${h}h ${m}m ${s}s`;
    if (m) return `${m}m ${s}s`;
    return ms < 1000 ? `${ms}ms` : `${s}s`;
  }

  function fmtCount(n) {
    return Number(n || 0).toLocaleString('en-US', { maximumFractionDigits: 0 });
  }

  function fmtRate(r) {
    if (r === null || r === undefined) return '–';
    return `${Number(r).toLocaleString('en-US', { maximumFractionDigits: r < 10 ? 1 : 0 })}/s`;
  }

  function fmtBytes(b) {
    if (!(b > 0)) return '0 B';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; ++i; }
    return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  function statusBadge(status, id) {
    return el('span', { class: `status status-${status}`, id, 'data-status': status }, status);
  }

  // -- the REST API ----------------------------------------------------------------------

  async function api(path, method = 'GET', body) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new Error(`${method} ${path}: the server is not reachable (${e.message})`);
    }
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { /* not JSON: reported below */ }
    if (!res.ok) {
      let why = json && Array.isArray(json.errors) ? json.errors.join('; ') : text || res.statusText;
      if (res.status === 401)
        why += token ? ' (the token given in #token=... was not accepted)'
                     : ' (open the page as http://host:port/#token=<token>)';
      throw new Error(`${method} ${path}: ${res.status} ${why}`);
    }
    return json;
  }

  function showError(message) {
    const box = document.getElementById('error');
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    const box = document.getElementById('error');
    box.hidden = true;
    box.textContent = '';
  }

  // Runs `load` now and every `period` ms until the view is left; a failed
  // load shows its error and is retried on the next tick.
  function poll(load, period = REFRESH_MS) {
    let stopped = false;
    let handle = null;
    const tick = async () => {
      try {
        await load();
        if (!stopped) clearError();
      } catch (e) {
        if (!stopped) showError(e.message);
      }
      if (!stopped) handle = setTimeout(tick, period);
    };
    tick();
    return { stop() { stopped = true; clearTimeout(handle); } };
  }

  // -- views -----------------------------------------------------------------------------

  function jobTable(jobs) {
    const sorted = [...jobs].sort((a, b) => b['start-time'] - a['start-time']);
    return el('table', { id: 'job-list' },
      el('thead', {}, el('tr', {},
        el('th', {}, 'Name'), el('th', {}, 'Status'), el('th', {}, 'Start'),
        el('th', {}, 'End'), el('th', { class: 'num' }, 'Duration'), el('th', {}, 'Tasks'))),
      el('tbody', {}, sorted.length === 0
        ? el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No jobs.'))
        : sorted.map((j) => el('tr', { class: 'job-row', 'data-job-id': j.jid },
          el('td', { class: 'job-name' }, el('a', { href: `#/jobs/${j.jid}` }, j.name)),
          el('td', {}, statusBadge(j.state)),
          el('td', {}, fmtTime(j['start-time'])),
          el('td', {}, fmtTime(j['end-time'])),
          el('td', { class: 'num' }, fmtDuration(j.duration)),
          el('td', { class: 'job-tasks' }, taskSummary(j.tasks))))));
  }

  function taskSummary(tasks) {
    if (!tasks) return '–';
    const parts = [`${tasks.total} total`];
    for (const k of ['running', 'finished', 'canceled', 'failed', 'deploying', 'scheduled', 'created'])
      if (tasks[k] > 0) parts.push(`${tasks[k]} ${k}`);
    return parts.join(', ');
  }

  function overviewView(root) {
    const cards = [
      ['taskmanagers', 'TaskManagers'], ['slots-total', 'Slots total'],
      ['slots-available', 'Slots available'], ['jobs-running', 'Jobs running'],
      ['jobs-finished', 'Jobs finished'], ['jobs-cancelled', 'Jobs cancelled'],
      ['jobs-failed', 'Jobs failed'],
    ];
    const jobs = el('div', { id: 'overview-jobs' });
    root.replaceChildren(
      el('h1', {}, 'Cluster overview'),
      el('div', { class: 'cards' }, cards.map(([key, label]) => el('div', { class: 'card' },
        el('div', { class: 'value', id: `overview-${key}` }, '–'),
        el('div', { class: 'label' }, label)))),
      el('h2', {}, 'Jobs'), jobs);
    return poll(async () => {
      const [o, list] = await Promise.all([api('/overview'), api('/jobs/overview')]);
      for (const [key] of cards) setText(root, `#overview-${key}`, fmtCount(o[key]));
      jobs.replaceChildren(jobTable(list.jobs));
    }, 2 * REFRESH_MS);
  }

  function jobsView(root) {
    const body = el('div', {}, el('p', { class: 'muted' }, 'Loading...'));
    root.replaceChildren(el('h1', {}, 'Jobs'), body);
    return poll(async () => {
      const list = await api('/jobs/overview');
      body.replaceChildren(jobTable(list.jobs));
    }, 2 * REFRESH_MS);
  }

  function taskManagersView(root) {
    const body = el('div', {}, el('p', { class: 'muted' }, 'Loading...'));
    root.replaceChildren(el('h1', {}, 'TaskManagers'), body);
    return poll(async () => {
      const { taskmanagers } = await api('/taskmanagers');
      body.replaceChildren(el('table', { id: 'taskmanager-list' },
        el('thead', {}, el('tr', {},
          el('th', {}, 'ID'), el('th', {}, 'Path'), el('th', { class: 'num' }, 'Slots'),
          el('th', { class: 'num' }, 'Free slots'), el('th', { class: 'num' }, 'CPU cores'),
          el('th', { class: 'num' }, 'Physical memory'), el('th', { class: 'num' }, 'Free memory'))),
        el('tbody', {}, taskmanagers.length === 0
          ? el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No TaskManagers registered.'))
          : taskmanagers.map((tm) => el('tr', { class: 'taskmanager-row', 'data-taskmanager-id': tm.id },
            el('td', {}, tm.id), el('td', {}, tm.path),
            el('td', { class: 'num tm-slots' }, tm.slotsNumber),
            el('td', { class: 'num tm-free-slots' }, tm.freeSlots),
            el('td', { class: 'num' }, tm.hardware ? tm.hardware.cpuCores : '–'),
            el('td', { class: 'num' }, tm.hardware ? fmtBytes(tm.hardware.physicalMemory) : '–'),
            el('td', { class: 'num' }, tm.hardware ? fmtBytes(tm.hardware.freeMemory) : '–'))))));
    }, 2 * REFRESH_MS);
  }

  // Lays the plan out in columns by longest path from a source; returns
  // positions by vertex id and the SVG size.
  function layout(nodes) {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const level = new Map();
    const levelOf = (id, seen = new Set()) => {
      if (level.has(id)) return level.get(id);
      if (seen.has(id)) return 0; // a cycle (feedback edge): cut it here
      seen.add(id);
      const n = byId.get(id);
      let l = 0;
      for (const input of (n && n.inputs) || [])
        if (byId.has(input.id)) l = Math.max(l, levelOf(input.id, seen) + 1);
      level.set(id, l);
      return l;
    };
    const columns = [];
    for (const n of nodes) {
      const l = levelOf(n.id);
      (columns[l] = columns[l] || []).push(n.id);
    }
    const W = 240, H = 78, GX = 110, GY = 30, PAD = 20;
    const pos = new Map();
    let rows = 0;
    columns.forEach((ids, c) => {
      rows = Math.max(rows, ids.length);
      ids.forEach((id, r) => pos.set(id, { x: PAD + c * (W + GX), y: PAD + r * (H + GY), w: W, h: H }));
    });
    return {
      pos, width: PAD * 2 + columns.length * W + Math.max(0, columns.length - 1) * GX,
      height: PAD * 2 + rows * H + Math.max(0, rows - 1) * GY,
    };
  }

  function truncate(s, n) { return s.length > n ? `${s.slice(0, n - 1)}…` : s; }

  function jobGraph(plan, vertices) {
    const nodes = (plan && plan.nodes) || [];
    const names = new Map(vertices.map((v) => [v.id, v.name]));
    const { pos, width, height } = layout(nodes);
    const root = svg('svg', { id: 'job-graph', width, height, viewBox: `0 0 ${width} ${height}` },
      svg('defs', {}, svg('marker', {
        id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7,
        orient: 'auto-start-reverse',
      }, svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow' }))));
    for (const n of nodes) {
      for (const input of n.inputs || []) {
        const a = pos.get(input.id), b = pos.get(n.id);
        if (!a || !b) continue;
        const x1 = a.x + a.w, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2;
        const mx = (x1 + x2) / 2;
        root.append(svg('g', { class: 'edge-group', 'data-from': input.id, 'data-to': n.id },
          svg('path', { class: 'edge', d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`,
            'marker-end': 'url(#arrow)' }),
          svg('text', { class: 'edge-label', x: mx, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle' },
            input.ship_strategy || '')));
      }
    }
    for (const n of nodes) {
      const p = pos.get(n.id);
      const name = names.get(n.id) || n.description || n.id;
      root.append(svg('g', { class: 'vertex', 'data-vertex-id': n.id },
        svg('title', {}, name),
        svg('rect', { class: 'box', x: p.x, y: p.y, width: p.w, height: p.h, rx: 6 }),
        svg('text', { class: 'title', x: p.x + 10, y: p.y + 20 }, truncate(name, 34)),
        svg('text', { class: 'sub graph-parallelism', x: p.x + 10, y: p.y + 38 },
          `Parallelism: ${n.parallelism}`),
        svg('text', { class: 'sub graph-rates', x: p.x + 10, y: p.y + 54 }, 'in –  out –'),
        svg('text', { class: 'sub graph-backpressure', x: p.x + 10, y: p.y + 70 }, 'backpressure –')));
    }
    return el('div', { class: 'graph' }, root);
  }

  function watermarkText(list) {
    if (!Array.isArray(list) || list.length === 0) return { text: 'none', value: '' };
    let min = null;
    for (const w of list) {
      let v;
      try { v = BigInt(w.value); } catch (e) { continue; }
      if (min === null || v < min) min = v;
    }
    if (min === null || min === NO_WATERMARK) return { text: 'none yet', value: '' };
    const ms = Number(min);
    const when = ms > 1e11 && ms < 1e14 ? ` (${fmtTime(ms)})` : '';
    return { text: `${min}${when}`, value: String(min) };
  }

  function jobView(root, jid) {
    const history = new Map(); // vertex id -> [{ in, out, now }], oldest first
    let built = false;
    let name = jid;
    let state = '';
    let left = false; // the user went to another view

    const notice = el('div', { id: 'job-notice', class: 'notice', hidden: true });
    const say = (text) => { notice.textContent = text; notice.hidden = false; };

    const cancel = async () => {
      if (!window.confirm(`Cancel job "${name}"? Its state is not saved.`)) return;
      try {
        await api(`/jobs/${encodeURIComponent(jid)}?mode=cancel`, 'PATCH');
        say('Cancellation requested.');
      } catch (e) { showError(e.message); }
    };

    const stop = async () => {
      const dir = root.querySelector('#savepoint-dir').value.trim();
      if (!window.confirm(`Stop job "${name}" with a savepoint${dir ? ` in ${dir}` : ''}?`)) return;
      try {
        const body = { drain: false };
        if (dir) body.targetDirectory = dir;
        const { 'request-id': trigger } = await api(`/jobs/${encodeURIComponent(jid)}/stop`, 'POST', body);
        say(`Stop requested (trigger ${trigger}); waiting for the savepoint...`);
        while (!left) {
          await new Promise((r) => setTimeout(r, REFRESH_MS));
          const s = await api(`/jobs/${encodeURIComponent(jid)}/savepoints/${trigger}`);
          if (s.status.id !== 'COMPLETED') continue;
          const op = s.operation || {};
          if (op.location) say(`Stopped; savepoint at ${op.location}`);
          else say(`Stop failed: ${(op['failure-cause'] || {})['stack-trace'] || 'unknown error'}`);
          return;
        }
      } catch (e) { showError(e.message); }
    };

    const build = (job) => {
      root.replaceChildren(
        el('div', { class: 'job-header' },
          el('h1', { id: 'job-name' }, job.name),
          statusBadge(job.state, 'job-status'),
          el('div', { class: 'actions' },
            el('input', { type: 'text', id: 'savepoint-dir', placeholder: 'savepoint directory (optional)' }),
            el('button', { id: 'stop-job', onclick: stop }, 'Stop with savepoint'),
            el('button', { id: 'cancel-job', class: 'danger', onclick: cancel }, 'Cancel job'))),
        el('div', { class: 'meta' },
          el('span', {}, 'ID ', el('code', { id: 'job-id' }, job.jid)),
          el('span', {}, 'Started ', el('span', { id: 'job-start' }, fmtTime(job['start-time']))),
          el('span', {}, 'Duration ', el('span', { id: 'job-duration' }, '–'))),
        notice,
        el('h2', {}, 'Job graph'),
        jobGraph(job.plan, job.vertices),
        el('h2', {}, 'Vertices'),
        el('table', { id: 'vertex-table' },
          el('thead', {}, el('tr', {},
            el('th', {}, 'Name'), el('th', { class: 'num' }, 'Parallelism'), el('th', {}, 'Status'),
            el('th', { class: 'num' }, 'Records in'), el('th', { class: 'num' }, 'Records out'),
            el('th', { class: 'num' }, 'Records/s in'), el('th', { class: 'num' }, 'Records/s out'),
            el('th', {}, 'Backpressure'), el('th', {}, 'Watermark'))),
          el('tbody', {}, job.vertices.map((v) => el('tr', { class: 'vertex-row', 'data-vertex-id': v.id },
            el('td', { class: 'vertex-name' }, v.name),
            el('td', { class: 'num vertex-parallelism' }, v.parallelism),
            el('td', { class: 'vertex-status' }, '–'),
            el('td', { class: 'num records-in' }, '–'),
            el('td', { class: 'num records-out' }, '–'),
            el('td', { class: 'num rate-in' }, '–'),
            el('td', { class: 'num rate-out' }, '–'),
            el('td', { class: 'backpressure' }, '–'),
            el('td', { class: 'watermark' }, '–'))))),
        el('h2', {}, 'Checkpoints'),
        el('div', { id: 'checkpoint-counts', class: 'meta' }, '–'),
        el('table', { id: 'checkpoint-history' },
          el('thead', {}, el('tr', {},
            el('th', { class: 'num' }, 'ID'), el('th', {}, 'Status'), el('th', {}, 'Type'),
            el('th', {}, 'Triggered'), el('th', { class: 'num' }, 'Duration'),
            el('th', { class: 'num' }, 'State size'), el('th', { class: 'num' }, 'Acknowledged'),
            el('th', {}, 'Path / failure'))),
          el('tbody', {})),
        el('h2', {}, 'Exceptions'),
        el('div', { id: 'exceptions' }, el('p', { class: 'muted' }, '–')));
      built = true;
    };

    const updateVertices = (job, pressure, marks) => {
      job.vertices.forEach((v, i) => {
        const m = v.metrics || {};
        const now = job.now;
        const inN = m['read-records'] || 0, outN = m['write-records'] || 0;
        // Rates over the samples of the last RATE_WINDOW_MS of server time
        // (the job's `now`), so neither the browser's clock nor a slow poll
        // skews them; counters going back (a restart) start a new window.
        let samples = history.get(v.id) || [];
        const last = samples[samples.length - 1];
        if (last && (inN < last.in || outN < last.out)) samples = [];
        if (!last || now > last.now) samples.push({ in: inN, out: outN, now });
        while (samples.length > 2 && now - samples[1].now >= RATE_WINDOW_MS) samples.shift();
        history.set(v.id, samples);
        const first = samples[0];
        let rateIn = null, rateOut = null;
        if (samples.length > 1 && now > first.now) {
          rateIn = (inN - first.in) * 1000 / (now - first.now);
          rateOut = (outN - first.out) * 1000 / (now - first.now);
        }
        const row = root.querySelector(`tr.vertex-row[data-vertex-id="${CSS.escape(v.id)}"]`);
        const box = root.querySelector(`g.vertex[data-vertex-id="${CSS.escape(v.id)}"]`);
        const bp = pressure[i];
        const wm = watermarkText(marks[i]);
        let bpText = '–', level = '';
        if (bp instanceof Error) bpText = 'unavailable';
        else if (bp) {
          level = bp['backpressure-level'];
          const ratio = Math.max(0, ...(bp.subtasks || []).map((s) => s.ratio || 0));
          bpText = `${level} (${Math.round(ratio * 100)}%)`;
        }
        if (row) {
          row.querySelector('.vertex-status').replaceChildren(statusBadge(v.status));
          setText(row, '.records-in', fmtCount(inN));
          setText(row, '.records-out', fmtCount(outN));
          setText(row, '.rate-in', fmtRate(rateIn)).dataset.rate = rateIn === null ? '' : rateIn;
          setText(row, '.rate-out', fmtRate(rateOut)).dataset.rate = rateOut === null ? '' : rateOut;
          const bpCell = setText(row, '.backpressure', bpText);
          bpCell.className = `backpressure bp-${level || 'none'}`;
          bpCell.dataset.level = level;
          setText(row, '.watermark', marks[i] instanceof Error ? 'unavailable' : wm.text).dataset.value = wm.value;
        }
        if (box) {
          box.querySelector('rect').setAttribute('class', `box state-${v.status}`);
          setText(box, '.graph-rates', `in ${fmtRate(rateIn)}  out ${fmtRate(rateOut)}`);
          setText(box, '.graph-backpressure', `backpressure ${bpText}`);
        }
      });
    };

    const updateCheckpoints = (cp) => {
      const counts = root.querySelector('#checkpoint-counts');
      const body = root.querySelector('#checkpoint-history tbody');
      if (cp instanceof Error) {
        counts.textContent = cp.message;
        return;
      }
      const c = cp.counts || {};
      counts.replaceChildren(
        el('span', {}, `Triggered ${c.total ?? 0}`), el('span', {}, `Completed ${c.completed ?? 0}`),
        el('span', {}, `In progress ${c.in_progress ?? 0}`), el('span', {}, `Failed ${c.failed ?? 0}`),
        el('span', {}, `Restored ${c.restored ?? 0}`));
      const history = cp.history || [];
      body.replaceChildren(...(history.length === 0
        ? [el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No checkpoints yet.'))]
        : history.map((h) => el('tr', { class: 'checkpoint-row', 'data-checkpoint-id': h.id, 'data-status': h.status },
          el('td', { class: 'num' }, h.id),
          el('td', {}, statusBadge(h.status)),
          el('td', {}, h.is_savepoint ? 'savepoint' : 'checkpoint'),
          el('td', {}, fmtTime(h.trigger_timestamp)),
          el('td', { class: 'num' }, fmtDuration(h.end_to_end_duration)),
          el('td', { class: 'num' }, fmtBytes(h.state_size)),
          el('td', { class: 'num' }, `${h.num_acknowledged_subtasks}/${h.num_subtasks}`),
          el('td', { class: 'wrap' }, h.failure_message || h.external_path || '')))));
    };

    const updateExceptions = (ex) => {
      const box = root.querySelector('#exceptions');
      if (ex instanceof Error) { box.replaceChildren(el('p', { class: 'error' }, ex.message)); return; }
      const entries = (ex.exceptionHistory && ex.exceptionHistory.entries) || [];
      if (!ex['root-exception'] && entries.length === 0) {
        box.replaceChildren(el('p', { class: 'muted' }, 'No exceptions.'));
        return;
      }
      const rows = entries.length ? entries
        : [{ timestamp: ex.timestamp, stacktrace: ex['root-exception'] }];
      box.replaceChildren(el('table', { id: 'exception-list' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Time'), el('th', {}, 'Exception'))),
        el('tbody', {}, rows.map((e) => el('tr', { class: 'exception-row' },
          el('td', {}, fmtTime(e.timestamp)), el('td', { class: 'wrap' }, el('pre', { class: 'trace' }, e.stacktrace)))))));
    };

    const load = async () => {
      const base = `/jobs/${encodeURIComponent(jid)}`;
      // Secondary parts fail alone: their error shows in their place.
      const soft = (p) => p.catch((e) => e);
      const [job, cp, ex] = await Promise.all([api(base), soft(api(`${base}/checkpoints`)),
        soft(api(`${base}/exceptions`))]);
      const vpath = (v, what) => `${base}/vertices/${encodeURIComponent(v.id)}/${what}`;
      const [pressure, marks] = await Promise.all([
        Promise.all(job.vertices.map((v) => soft(api(vpath(v, 'backpressure'))))),
        Promise.all(job.vertices.map((v) => soft(api(vpath(v, 'watermarks'))))),
      ]);
      name = job.name;
      if (!built) build(job);
      if (job.state !== state) {
        state = job.state;
        root.querySelector('#job-status').replaceWith(statusBadge(job.state, 'job-status'));
      }
      const ended = TERMINAL.has(job.state);
      root.querySelector('#cancel-job').disabled = ended || job.state === 'CANCELLING';
      root.querySelector('#stop-job').disabled = ended || job.state === 'CANCELLING';
      setText(root, '#job-duration', fmtDuration(job.duration));
      updateVertices(job, pressure, marks);
      updateCheckpoints(cp);
      updateExceptions(ex);
    };

    root.replaceChildren(el('p', { class: 'muted' }, 'Loading job...'));
    const polling = poll(async () => {
      try {
        await load();
      } catch (e) {
        if (!built) root.replaceChildren(el('h1', {}, 'Job'), el('p', { class: 'muted' }, `Job ${jid} could not be loaded.`));
        throw e;
      }
    });
    return { stop() { left = true; polling.stop(); } };
  }

  // -- routing ---------------------------------------------------------------------------

  // Splits the fragment into a route and parameters: "#/jobs/x?token=t",
  // "#token=t" and "#/jobs" all work.
  function parseHash() {
    let h = location.hash.replace(/^#/, '');
    let query = '';
    const q = h.indexOf('?');
    if (q >= 0) { query = h.slice(q + 1); h = h.slice(0, q); } else if (!h.startsWith('/') && h.includes('=')) {
      query = h; h = '';
    }
    return { path: h || '/overview', params: new URLSearchParams(query) };
  }

  function route() {
    const { path, params } = parseHash();
    if (params.has('token')) {
      token = params.get('token');
      sessionStorage.setItem(TOKEN_KEY, token);
      params.delete('token');
      const rest = params.toString();
      // Keep the token out of the address bar, history and screenshots.
      history.replaceState(null, '', `${location.pathname}${location.search}#${path}${rest ? `?${rest}` : ''}`);
      loadVersion();
    }
    if (current) current.stop();
    clearError();
    const root = document.getElementById('view');
    const parts = path.split('/').filter(Boolean);
    for (const a of document.querySelectorAll('header nav a'))
      a.classList.toggle('active', a.getAttribute('href') === `#/${parts[0] || 'overview'}`);
    if (parts[0] === 'jobs' && parts.length === 2) current = jobView(root, decodeURIComponent(parts[1]));
    else if (parts[0] === 'jobs') current = jobsView(root);
    else if (parts[0] === 'taskmanagers') current = taskManagersView(root);
    else if (parts[0] === 'overview') current = overviewView(root);
    else {
      current = null;
      root.replaceChildren(el('h1', {}, 'Not found'),
        el('p', {}, 'No page ', el('code', {}, `#${path}`), '. Try ', el('a', { href: '#/overview' }, 'the overview'), '.'));
    }
  }

  async function loadVersion() {
    try {
      const c = await api('/config');
      document.getElementById('version').textContent = `sluice ${c['flink-version']} (${c['flink-revision']})`;
    } catch (e) { /* the current view reports API errors */ }
  }

  window.addEventListener('error', (e) => showError(`dashboard error: ${e.message}`));
  window.addEventListener('unhandledrejection', (e) => showError(`dashboard error: ${e.reason}`));
  window.addEventListener('hashchange', route);
  loadVersion();
  route();
})();
