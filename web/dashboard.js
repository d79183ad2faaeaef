/* sluice dashboard: live over Server-Sent Events (api/events), polling
 * api/stats every second while no event has arrived for 2.5 s (SSE refused,
 * broken or buffered by a proxy; EventSource retries on its own, and is
 * reopened with backoff when it gives up). A token=… in the page URL is added to
 * every request.
 *
 * For tests: each viewer row is <tr data-viewer-id data-state data-stream>
 * with its lag (ms, a plain number) in <td class="lag">; each recently-left
 * entry is <li data-viewer-id data-reason>; each stream card is
 * <article data-stream data-kind>, its values in <div class="kv KEY"> (kind,
 * codec, bitrate, gop, gop-held, ...). window.sluiceDashboard = {updates,
 * via, last}. */
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  const dir = location.pathname.replace(/[^/]*$/, '');
  const nsMatch = dir.match(/^(.*\/)streams\/[^/]+\/$/);
  const root = nsMatch ? nsMatch[1] : dir;
  const WINDOW_MS = 5 * 60 * 1000;

  function url(path) {
    const u = new URL(path.startsWith('/') ? root + path.slice(1) : path, location.href);
    if (token) u.searchParams.set('token', token);
    return u.href;
  }
  for (const a of document.querySelectorAll('a[data-nav]')) a.href = url(a.dataset.nav);

  /* ---- formatting ----------------------------------------------------- */
  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  function bytes(n) {
    if (!(n >= 0)) return '–';
    let u = 0;
    while (n >= 1024 && u < UNITS.length - 1) { n /= 1024; u++; }
    return (u === 0 ? String(Math.round(n)) : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)) + ' ' + UNITS[u];
  }
  function dur(ms) {
    if (!(ms >= 0)) return '–';
    const s = Math.floor(ms / 1000);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor(s / 60) % 60 + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor(s / 3600) % 24 + ' h';
  }
  function rate(bps) {
    if (!(bps >= 0)) return '–';
    if (bps >= 1e6) return (bps / 1e6).toFixed(bps >= 1e7 ? 1 : 2) + ' Mbit/s';
    if (bps >= 1e3) return (bps / 1e3).toFixed(0) + ' kbit/s';
    return Math.round(bps) + ' bit/s';
  }
  const num = (n, d) => (typeof n === 'number' && isFinite(n) ? n.toFixed(d || 0) : '–');
  const REASONS = ['replaced', 'queue', 'resync', 'fps', 'too_big', 'budget'];
  const EVICTS = ['hard_limit', 'soft_limit', 'slot', 'budget'];

  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    return e;
  }

  /* ---- chart ---------------------------------------------------------- */
  const hist = [];                 /* {t, held, rss, s: {name: held}} */
  const hidden = new Set();
  const chart = $('chart');
  let hoverX = -1, logScale = false;
  const css = (v) => getComputedStyle(document.documentElement).getPropertyValue(v).trim();

  function seriesList() {
    const names = [];
    for (const p of hist) for (const n of Object.keys(p.s)) if (!names.includes(n)) names.push(n);
    const list = [{ key: 'held', label: 'Library held', color: css('--c1'), get: (p) => p.held }];
    const colors = ['--c3', '--c4', '--c5', '--c6'];
    names.forEach((n, i) => list.push({
      key: 's:' + n, label: 'Stream ' + n + ' held', color: css(colors[i % colors.length]), dash: [5, 3],
      get: (p) => p.s[n],
    }));
    list.push({ key: 'rss', label: 'Process RSS', color: css('--c2'), get: (p) => p.rss });
    return list;
  }

  function legend(list) {
    const ul = $('legend');
    const sig = list.map((s) => s.key + (hidden.has(s.key) ? '-' : '+')).join();
    if (ul.dataset.sig === sig) return;
    ul.dataset.sig = sig;
    ul.textContent = '';
    for (const s of list) {
      const i = h('i'); i.style.background = s.color;
      const li = h('li', { class: hidden.has(s.key) ? 'off' : '', role: 'button', tabindex: '0', title: 'Show or hide' }, i, s.label);
      li.onclick = li.onkeydown = (e) => {
        if (e.type === 'keydown' && e.key !== 'Enter' && e.key !== ' ') return;
        if (hidden.has(s.key)) hidden.delete(s.key); else hidden.add(s.key);
        draw();
      };
      ul.append(li);
    }
  }

  /* Linear: 0..top in steps of 1/2/2.5/5 x 10^n of one binary unit. Log:
   * decades of binary units (1, 10, 100 KiB, 1 MiB, ...). Returns the ticks
   * and a function from bytes to 0..1. */
  function scale(lo, hi, log) {
    if (log) {
      const cands = [];
      for (let u = 0; u < UNITS.length; u++) for (const m of [1, 10, 100]) cands.push([m * Math.pow(1024, u), m + ' ' + UNITS[u]]);
      let a = 0, b = cands.length - 1;
      while (a + 1 < cands.length && cands[a + 1][0] <= Math.max(lo, 1)) a++;
      while (b > a + 1 && cands[b - 1][0] >= hi) b--;
      const l0 = Math.log(cands[a][0]), l1 = Math.log(cands[b][0]);
      return { ticks: cands.slice(a, b + 1), f: (v) => (v > 0 ? (Math.log(v) - l0) / (l1 - l0) : -1) };
    }
    let u = 0, max = hi;
    while (max >= 1024 * 1.5 && u < UNITS.length - 1) { max /= 1024; u++; }
    const raw = Math.max(max, 1e-9) / 4, p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((x) => x >= raw);
    const top = Math.max(step, Math.ceil(max / step - 1e-9) * step), div = Math.pow(1024, u), ticks = [];
    for (let i = 0; i * step <= top + step / 1e6; i++) ticks.push([i * step * div, (Math.round(i * step * 1000) / 1000) + ' ' + UNITS[u]]);
    return { ticks, f: (v) => v / (top * div) };
  }

  function draw() {
    const list = seriesList();
    legend(list);
    const dpr = window.devicePixelRatio || 1;
    const W = chart.clientWidth, H = chart.clientHeight;
    if (!W || !H) return;
    if (chart.width !== Math.round(W * dpr) || chart.height !== Math.round(H * dpr)) {
      chart.width = Math.round(W * dpr); chart.height = Math.round(H * dpr);
    }
    const g = chart.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const fg = css('--fg'), muted = css('--muted'), line = css('--line');
    g.font = '11px system-ui, sans-serif';
    const now = hist.length ? hist[hist.length - 1].t : Date.now(), t0 = now - WINDOW_MS;
    const shown = list.filter((s) => !hidden.has(s.key));
    let max = 0, min = Infinity;
    for (const p of hist) for (const s of shown) { const v = s.get(p); if (v > max) max = v; if (v > 0 && v < min) min = v; }
    const budget = hist.length ? hist[hist.length - 1].budget : 0;
    const showBudget = budget > 0 && !hidden.has('held') && (logScale || budget <= max * 1.5);
    if (showBudget) max = Math.max(max, budget);
    const sc = scale(min === Infinity ? 1024 : min, max || 1024, logScale);
    const L = Math.max(52, ...sc.ticks.map((t) => g.measureText(t[1]).width + 14)), R = 12, T = 10, B = 24;
    const pw = W - L - R, ph = H - T - B;
    const X = (t) => L + (t - t0) / WINDOW_MS * pw, Y = (v) => T + ph - Math.max(-0.02, sc.f(v)) * ph;

    /* grid and y labels */
    g.lineWidth = 1; g.textAlign = 'right'; g.textBaseline = 'middle';
    for (const [v, label] of sc.ticks) {
      const y = Math.round(Y(v)) + 0.5;
      g.strokeStyle = line; g.beginPath(); g.moveTo(L, y); g.lineTo(W - R, y); g.stroke();
      g.fillStyle = muted;
      g.fillText(label, L - 6, y);
    }
    /* x labels: one per minute */
    g.textAlign = 'center'; g.textBaseline = 'top';
    for (let m = 5; m >= 0; m--) {
      const x = Math.round(X(now - m * 60000)) + 0.5;
      g.strokeStyle = line; g.beginPath(); g.moveTo(x, T); g.lineTo(x, T + ph); g.stroke();
      g.fillStyle = muted;
      g.textAlign = m === 5 ? 'left' : m === 0 ? 'right' : 'center';
      g.fillText(m ? '−' + m + (pw < 420 ? 'm' : ' min') : 'now', x, T + ph + 6);
    }
    if (showBudget) {
      const y = Math.round(Y(budget)) + 0.5;
      g.strokeStyle = css('--bad'); g.setLineDash([2, 4]); g.beginPath(); g.moveTo(L, y); g.lineTo(W - R, y); g.stroke();
      g.setLineDash([]); g.fillStyle = css('--bad'); g.textAlign = 'left';
      g.textBaseline = y < T + 14 ? 'top' : 'bottom';
      g.fillText('budget ' + bytes(budget), L + 4, y < T + 14 ? y + 3 : y - 2);
    }
    /* series */
    g.save(); g.beginPath(); g.rect(L, T - 2, pw, ph + 4); g.clip();
    for (const s of shown) {
      g.strokeStyle = s.color; g.lineWidth = 2; g.lineJoin = 'round'; g.setLineDash(s.dash || []);
      g.beginPath();
      let prev = null;
      for (const p of hist) {
        const v = s.get(p);
        if (typeof v !== 'number') { prev = null; continue; }
        const x = X(p.t), y = Y(v);
        if (prev && p.t - prev.t < 5000) g.lineTo(x, y); else g.moveTo(x, y);
        prev = p;
      }
      g.stroke();
    }
    g.restore(); g.setLineDash([]);
    /* hover readout */
    if (hoverX >= L && hoverX <= W - R && hist.length) {
      const t = t0 + (hoverX - L) / pw * WINDOW_MS;
      let best = hist[0];
      for (const p of hist) if (Math.abs(p.t - t) < Math.abs(best.t - t)) best = p;
      const x = Math.round(X(best.t)) + 0.5;
      g.strokeStyle = muted; g.beginPath(); g.moveTo(x, T); g.lineTo(x, T + ph); g.stroke();
      const rows = [[null, dur(now - best.t) + ' ago']].concat(shown.map((s) => [s, s.label + ': ' + bytes(s.get(best))]));
      g.font = '12px system-ui, sans-serif';
      const bw = Math.max(...rows.map((r) => g.measureText(r[1]).width)) + 26, bh = rows.length * 17 + 8;
      const bx = x + 10 + bw > W - R ? x - 10 - bw : x + 10, by = T + 4;
      g.fillStyle = css('--panel'); g.strokeStyle = line;
      g.fillRect(bx, by, bw, bh); g.strokeRect(bx + 0.5, by + 0.5, bw, bh);
      g.textAlign = 'left'; g.textBaseline = 'middle';
      rows.forEach((r, i) => {
        const y = by + 12 + i * 17;
        if (r[0]) { g.fillStyle = r[0].color; g.fillRect(bx + 8, y - 1.5, 10, 3); }
        g.fillStyle = r[0] ? fg : muted;
        g.fillText(r[1], bx + (r[0] ? 22 : 8), y);
      });
    }
  }
  for (const b of document.querySelectorAll('[data-scale]')) b.onclick = () => {
    logScale = b.dataset.scale === 'log';
    for (const x of document.querySelectorAll('[data-scale]')) x.setAttribute('aria-pressed', String(x === b));
    draw();
  };
  chart.addEventListener('pointermove', (e) => { hoverX = e.offsetX; draw(); });
  chart.addEventListener('pointerleave', () => { hoverX = -1; draw(); });
  window.addEventListener('resize', draw);
  if (window.matchMedia) matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => { $('legend').dataset.sig = ''; draw(); });

  /* ---- cards, table, leaves ------------------------------------------ */
  function reasonList(obj, keys) {
    const dl = h('dl', { class: 'reasons' });
    for (const k of keys) {
      const v = obj && typeof obj[k] === 'number' ? obj[k] : 0;
      dl.append(h('dt', null, k.replace('_', ' ')), h('dd', { class: v ? 'nz' : '' }, v));
    }
    return dl;
  }
  const kv = (label, value, key, title) =>
    h('div', { class: 'kv' + (key ? ' ' + key : ''), title }, h('span', null, label), h('b', null, value));

  function renderCards(streams) {
    const box = $('cards');
    box.textContent = '';
    for (const s of streams) {
      const kind = s.kind === 'h264' ? 'h264' : 'mjpeg', avc = kind === 'h264';
      box.append(h('article', { class: 'panel card', 'data-stream': s.name, 'data-kind': kind },
        h('h3', null, s.name),
        h('div', { class: 'src' }, s.source || ''),
        h('div', { class: 'kvs' },
          kv('Kind', avc ? 'H.264' : 'MJPEG', 'kind'),
          kv('Codec', avc ? s.codec || 'unknown yet' : 'JPEG', 'codec',
            avc && s.width ? s.width + ' × ' + s.height : null),
          kv('Bitrate in', rate(s.bitrate), 'bitrate'),
          kv('GOP', avc && typeof s.gop_frames === 'number' ? s.gop_frames + ' frames' : '–', 'gop',
            'Frames since the last IDR, which a joining viewer gets at once'),
          kv('GOP held', avc ? bytes(s.gop_bytes) : '–', 'gop-held', 'Bytes of the cached GOP'),
          kv('FPS in', num(s.fps_in, 1)),
          kv('Viewers', (s.viewers ?? 0) + (s.max_viewers ? ' / ' + s.max_viewers : '')),
          kv('Refused', s.refused ?? 0),
          kv('Held', bytes(s.held)),
          kv('Frames held', s.frames_held ?? '–'),
          kv('Largest frame', bytes(s.largest_frame))),
        h('div', { class: 'split' },
          h('div', null, h('h4', null, 'Drops'), reasonList(s.drops, REASONS)),
          h('div', null, h('h4', null, 'Evictions'), reasonList(s.evictions, EVICTS)))));
    }
  }

  function dropsCell(d) {
    const td = h('td', { class: 'drops' });
    const nz = REASONS.filter((k) => d && d[k]);
    if (!nz.length) td.append('none');
    nz.forEach((k, i) => td.append(i ? ' · ' : '', k.replace('_', ' ') + ' ', h('b', null, d[k])));
    return td;
  }

  function renderViewers(streams) {
    const rows = [];
    for (const s of streams) for (const v of s.viewers_list || []) rows.push([s.name, v]);
    rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1].id - b[1].id));
    const tb = $('viewer-rows');
    tb.textContent = '';
    const stalled = rows.filter((r) => r[1].state === 'stalled').length;
    $('v-count').textContent = rows.length + ' connected' + (stalled ? ', ' + stalled + ' stalled' : '');
    if (!rows.length) { tb.append(h('tr', null, h('td', { class: 'empty', colspan: 12 }, 'No viewers'))); return; }
    for (const [name, v] of rows) {
      const st = v.state || 'active';
      tb.append(h('tr', { 'data-viewer-id': v.id, 'data-state': st, 'data-stream': name, class: st === 'stalled' ? 'stalled' : '' },
        h('td', { class: 'num' }, v.id),
        h('td', null, name),
        h('td', { class: 'mono' }, v.peer || ''),
        h('td', null, v.transport || ''),
        h('td', null, v.policy || ''),
        h('td', { class: 'r' }, bytes(v.queued)),
        h('td', { class: 'r lag' }, typeof v.lag_ms === 'number' ? Math.round(v.lag_ms) : '–'),
        h('td', { class: 'r' }, num(v.fps, 1) + (v.fps_cap ? ' / ' + v.fps_cap : '')),
        h('td', { class: 'r' }, (v.frames_sent ?? 0) + ' · ' + bytes(v.bytes_sent)),
        dropsCell(v.drops),
        h('td', null, h('span', { class: 'state ' + st }, st)),
        h('td', { class: 'r' }, dur(v.age_ms))));
    }
  }

  function renderLeaves(streams, uptime) {
    const all = [];
    for (const s of streams) for (const l of s.recent_leaves || []) all.push([s.name, l]);
    all.sort((a, b) => (b[1].at_ms || 0) - (a[1].at_ms || 0));
    const ul = $('leaves');
    ul.textContent = '';
    if (!all.length) { ul.append(h('li', { class: 'empty' }, 'None yet')); return; }
    for (const [name, l] of all.slice(0, 25)) {
      const at = l.at_ms;
      const ago = at > 1e12 ? Date.now() - at : uptime - at;
      const why = (l.reason || 'closed') + (l.evict ? ' (' + String(l.evict).replace('_', ' ') + ')' : '');
      ul.append(h('li', { 'data-viewer-id': l.id, 'data-reason': l.reason || '', 'data-evict': l.evict || null, class: l.reason === 'evicted' ? 'evicted' : '' },
        h('span', { class: 'num' }, '#' + l.id),
        h('span', { class: 'mono' }, l.peer || ''),
        h('span', null, (l.transport || '') + (streams.length > 1 ? ' · ' + name : '')),
        h('span', { class: 'why' }, why),
        h('span', { class: 'when' }, typeof at === 'number' && ago >= 0 ? dur(ago) + ' ago' : '')));
    }
  }

  /* ---- updates -------------------------------------------------------- */
  const D = window.sluiceDashboard = { updates: 0, via: null, last: null };
  let lastAt = 0;

  function update(j, via) {
    if (!j || typeof j !== 'object') return;
    const now = Date.now();
    lastAt = now;
    D.updates++; D.via = via; D.last = j;
    const mem = j.memory || {}, streams = Array.isArray(j.streams) ? j.streams : [];
    const p = { t: now, held: mem.held, rss: j.rss_bytes, budget: mem.budget, s: {} };
    for (const s of streams) p.s[s.name] = s.held;
    if (hist.length && now - hist[hist.length - 1].t < 400) hist.pop();
    hist.push(p);
    while (hist.length && hist[0].t < now - WINDOW_MS - 5000) hist.shift();

    const viewers = streams.reduce((a, s) => a + (s.viewers_list ? s.viewers_list.length : s.viewers || 0), 0);
    const stalled = streams.reduce((a, s) => a + (s.viewers_list || []).filter((v) => v.state === 'stalled').length, 0);
    $('t-held').textContent = bytes(mem.held);
    $('t-held2').textContent = mem.lib_total !== undefined ? 'allocated total ' + bytes(mem.lib_total) : '';
    $('t-peak').textContent = bytes(mem.peak);
    $('t-budget').textContent = mem.budget ? bytes(mem.budget) : 'off';
    $('t-budget2').textContent = mem.budget ? num(100 * (mem.held || 0) / mem.budget, 1) + ' % used' : '';
    $('t-rss').textContent = bytes(j.rss_bytes);
    $('t-viewers').textContent = viewers;
    $('t-viewers2').textContent = stalled ? stalled + ' stalled' : streams.length + (streams.length === 1 ? ' stream' : ' streams');
    $('t-uptime').textContent = dur(j.uptime_ms);
    $('meta').textContent = j.version ? 'v' + j.version : '';
    renderCards(streams);
    renderViewers(streams);
    renderLeaves(streams, j.uptime_ms || 0);
    status();
    draw();
  }

  function status() {
    const pill = $('conn'), age = Date.now() - lastAt;
    if (!lastAt || age > 5000) { pill.className = 'pill bad'; pill.textContent = lastAt ? 'offline' : 'connecting'; }
    else if (D.via === 'sse') { pill.className = 'pill ok'; pill.textContent = 'live'; }
    else { pill.className = 'pill warn'; pill.textContent = 'polling'; }
  }

  /* SSE, reopened with backoff when the browser gives up on it. */
  let es = null, sseDelay = 2000, lastSse = 0;
  function openSSE() {
    if (!window.EventSource) return;
    es = new EventSource(url('/api/events'));
    es.onmessage = (e) => {
      sseDelay = 2000;
      lastSse = Date.now();
      try { update(JSON.parse(e.data), 'sse'); } catch (err) { /* ignore a bad event */ }
    };
    es.onerror = () => {
      if (es && es.readyState === EventSource.CLOSED) {
        es = null;
        setTimeout(openSSE, sseDelay);
        sseDelay = Math.min(30000, sseDelay * 2);
      }
    };
  }

  let polling = false;
  function poll() {
    if (polling) return;
    polling = true;
    fetch(url('/api/stats'), { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status))))
      .then((j) => update(j, 'poll'))
      .catch(() => {})
      .finally(() => { polling = false; status(); });
  }

  setInterval(() => {
    if (Date.now() - lastSse > 2500) poll();
    status();
  }, 1000);
  poll();
  openSSE();
  draw();
})();
