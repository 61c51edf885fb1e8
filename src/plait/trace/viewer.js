// plait's offline trace viewer: draws the tracks, the legend and the summary tables.
(function(){
const data = JSON.parse(document.getElementById('trace-data').textContent);
const ev = data.traceEvents || [], meta = (data.otherData || {}).plait || {};
const names = {}, procs = {}, tracks = {};
for (const e of ev) {
  if (e.ph === 'M' && e.name === 'thread_name') names[e.pid + ':' + e.tid] = e.args.name;
  if (e.ph === 'M' && e.name === 'process_name') procs[e.pid] = e.args.name;
}
let t0 = Infinity, t1 = -Infinity;
function track(e) {
  const k = e.pid + ':' + e.tid;
  if (!tracks[k]) tracks[k] = {pid: e.pid, tid: e.tid, slices: [], ticks: []};
  return tracks[k];
}
for (const e of ev) {
  if (e.ph === 'X') { track(e).slices.push(e); t0 = Math.min(t0, e.ts); t1 = Math.max(t1, e.ts + e.dur); }
  else if (e.ph === 'i') { track(e).ticks.push(e); t0 = Math.min(t0, e.ts); t1 = Math.max(t1, e.ts); }
}
if (!isFinite(t0)) { t0 = 0; t1 = 1; }
if (t1 <= t0) t1 = t0 + 1;
const colours = {}; let ncol = 0;
function colour(label) {
  if (!(label in colours)) { colours[label] = 'hsl(' + ((ncol * 137) % 360) + ',70%,55%)'; ncol++; }
  return colours[label];
}
const keys = Object.keys(tracks).sort((a, b) => {
  const [pa, ta] = a.split(':').map(Number), [pb, tb] = b.split(':').map(Number);
  return pa - pb || ta - tb;
});
const tl = document.getElementById('timeline');
let view = {a: t0, b: t1};
const rows = [];
let lastPid = null;
for (const k of keys) {
  const t = tracks[k];
  if (t.pid !== lastPid) {
    const p = document.createElement('div'); p.className = 'proc';
    p.textContent = procs[t.pid] || ('pid ' + t.pid); tl.appendChild(p); lastPid = t.pid;
  }
  const row = document.createElement('div'); row.className = 'track';
  row.dataset.pid = t.pid; row.dataset.tid = t.tid; row.dataset.slices = t.slices.length;
  row.dataset.waits = t.slices.filter(s => s.cat === 'wait').length;
  const n = document.createElement('div'); n.className = 'name';
  n.textContent = names[k] || ('strand ' + t.tid); n.title = n.textContent;
  const c = document.createElement('canvas');
  row.appendChild(n); row.appendChild(c); tl.appendChild(row);
  for (const s of t.slices) if (s.cat === 'wait') colour(s.args.object);
  rows.push({t, c});
}
function draw() {
  const span = view.b - view.a;
  for (const {t, c} of rows) {
    const w = c.clientWidth || 800, h = 20;
    if (c.width !== w) c.width = w;
    c.height = h;
    const g = c.getContext('2d'); g.clearRect(0, 0, w, h);
    for (const s of t.slices) {
      const x0 = (s.ts - view.a) / span * w, x1 = (s.ts + s.dur - view.a) / span * w;
      if (x1 < 0 || x0 > w) continue;
      const tall = s.cat !== 'run';
      g.fillStyle = s.cat === 'wait' ? colour(s.args.object) : s.cat === 'task' ? '#1565c0' : '#90a4ae';
      g.fillRect(x0, tall ? 3 : 6, Math.max(x1 - x0, 1), tall ? 14 : 8);
    }
    g.fillStyle = '#b71c1c';
    for (const i of t.ticks) {
      if (i.cat === 'channel') continue;
      const x = (i.ts - view.a) / span * w; if (x >= 0 && x <= w) g.fillRect(x, 0, 1, h);
    }
  }
  document.getElementById('range').textContent =
    ((view.a - t0) / 1000).toFixed(3) + ' ms .. ' + ((view.b - t0) / 1000).toFixed(3) + ' ms';
}
function zoom(f, at) {
  const span = view.b - view.a, m = view.a + span * at, ns = Math.max(span * f, 0.001);
  view = {a: m - ns * at, b: m + ns * (1 - at)}; draw();
}
let drag = null;
for (const {t, c} of rows) {
  c.addEventListener('wheel', e => { e.preventDefault(); zoom(e.deltaY > 0 ? 1.25 : 0.8, e.offsetX / c.clientWidth); });
  c.addEventListener('mousedown', e => { drag = {x: e.clientX, v: view, w: c.clientWidth}; });
  c.addEventListener('click', e => {
    const ts = view.a + (view.b - view.a) * e.offsetX / c.clientWidth;
    const s = t.slices.find(s => s.ts <= ts && ts <= s.ts + s.dur);
    document.getElementById('info').textContent = s ?
      (names[t.pid + ':' + t.tid] + ': ' + s.name + ' ' + (s.dur / 1000).toFixed(3) + ' ms ' + JSON.stringify(s.args)) : '';
  });
}
window.addEventListener('mousemove', e => {
  if (!drag) return;
  const d = (e.clientX - drag.x) / drag.w * (drag.v.b - drag.v.a);
  view = {a: drag.v.a - d, b: drag.v.b - d}; draw();
});
window.addEventListener('mouseup', () => { drag = null; });
document.getElementById('zin').onclick = () => zoom(0.5, 0.5);
document.getElementById('zout').onclick = () => zoom(2, 0.5);
document.getElementById('reset').onclick = () => { view = {a: t0, b: t1}; draw(); };
window.addEventListener('resize', draw);
const legend = document.getElementById('legend');
for (const [label, col] of Object.entries(colours)) {
  const s = document.createElement('span'); const i = document.createElement('i');
  i.style.background = col; s.appendChild(i); s.appendChild(document.createTextNode('wait ' + label));
  legend.appendChild(s);
}
function table(id, rows, cols) {
  const el = document.getElementById(id); if (!rows || !rows.length) { el.textContent = '(none)'; return; }
  const tb = document.createElement('table'), hr = document.createElement('tr');
  for (const [k, title] of cols) { const th = document.createElement('th'); th.textContent = title; hr.appendChild(th); }
  tb.appendChild(hr);
  for (const r of rows) {
    const tr = document.createElement('tr');
    for (const [k] of cols) {
      const td = document.createElement('td'); let v = r[k];
      if (k.endsWith('_us')) v = (v / 1000).toFixed(3);
      if (k === 'utilisation') v = (v * 100).toFixed(1) + ' %';
      td.textContent = v; tr.appendChild(td);
    }
    tb.appendChild(tr);
  }
  el.appendChild(tb);
}
const sm = meta.summary || {};
table('s-strands', sm.strands, [['strand', 'strand'], ['pid', 'pid'], ['running_us', 'running (ms)'], ['waiting_us', 'waiting (ms)']]);
table('s-objects', sm.objects, [['object', 'object'], ['waits', 'waits'], ['waited_us', 'waited (ms)'], ['timeouts', 'timeouts'], ['cancelled', 'cancelled']]);
table('s-locks', sm.locks, [['lock', 'lock'], ['holds', 'holds'], ['held_us', 'held (ms)'], ['contended', 'contended waits'], ['contended_wait_us', 'waited (ms)']]);
table('s-channels', sm.channels, [['channel', 'channel'], ['puts', 'puts'], ['gets', 'gets']]);
table('s-processes', sm.processes, [['pid', 'process'], ['strands', 'strands'], ['span_us', 'span (ms)'], ['running_us', 'running (ms)'],
  ['tasks', 'pool tasks'], ['task_us', 'in tasks (ms)'], ['utilisation', 'utilisation']]);
if (meta.partial) document.getElementById('partial').hidden = false;
const nslices = rows.reduce((n, r) => n + r.t.slices.length, 0);
document.getElementById('status').textContent = rows.length + ' tracks, ' + nslices + ' slices, ' +
  Object.keys(colours).length + ' objects waited on, ' + (meta.dropped || 0) + ' events dropped' +
  (meta.partial ? ', partial' : '');
document.body.dataset.tracks = rows.length; document.body.dataset.slices = nslices;
document.body.dataset.partial = meta.partial ? '1' : '0';
draw();
document.body.dataset.ready = '1';
})();
