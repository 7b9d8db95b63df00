// Genre Lens linked player: one time axis for the window timeline, the mel spectrogram (with the
// saliency overlay), the slice strip and the attention strip, plus the audio. A playhead follows
// playback; a click seeks and selects the window under it (sent to Python as the component value);
// Space plays or pauses. Talks the Streamlit components v1 protocol by postMessage; no libraries.
(function () {
  "use strict";

  const ROWS = { timeline: 78, spec: 150, slices: 24, attention: 30, axis: 18 };
  const GAP = 5;
  const GUTTER_L = 58;
  const GUTTER_R = 10;
  const NARROW_PX = 520; // phones: a shorter spectrogram, shorter labels
  const root = document.getElementById("root");
  const stage = document.getElementById("stage");
  const base = document.getElementById("base");
  const over = document.getElementById("overlay");
  const tip = document.getElementById("tip");
  const audio = document.getElementById("audio");
  const playButton = document.getElementById("play");
  const clock = document.getElementById("clock");
  const notice = document.getElementById("notice");

  let meta = null;
  let specImage = null;
  let overlayImage = null;
  let audioId = null;
  let audioUrl = null;
  let selected = 0;
  let stopAt = null;
  let lastPlayId = null;
  let rendered = false;
  let seq = 0;
  let hoverX = null;
  let layout = null;

  // ------------------------------------------------------------------ Streamlit protocol (v1)
  function send(type, data) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, data), "*");
  }
  function setFrameHeight() {
    send("streamlit:setFrameHeight", { height: Math.ceil(root.getBoundingClientRect().height) + 4 });
  }
  function setValue(value) {
    send("streamlit:setComponentValue", { value: value, dataType: "json" });
  }

  // ------------------------------------------------------------------ colours
  function hexToRgb(hex) {
    const h = hex.replace("#", "");
    return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
  }
  function lut(stops) {
    const out = new Uint8ClampedArray(256 * 3);
    const pts = stops.map((s) => [s[0], hexToRgb(s[1])]);
    for (let i = 0; i < 256; i++) {
      const v = i / 255;
      let k = 0;
      while (k < pts.length - 2 && v > pts[k + 1][0]) k++;
      const [p0, c0] = pts[k];
      const [p1, c1] = pts[k + 1];
      const f = p1 > p0 ? Math.min(1, Math.max(0, (v - p0) / (p1 - p0))) : 0;
      for (let j = 0; j < 3; j++) out[i * 3 + j] = c0[j] + f * (c1[j] - c0[j]);
    }
    return out;
  }
  function rgba(hex, alpha) {
    const [r, g, b] = hexToRgb(hex);
    return `rgba(${r},${g},${b},${alpha})`;
  }

  // ------------------------------------------------------------------ images from bytes
  function buildSpecImage(bytes, spec) {
    const table = lut(spec.colorscale);
    const c = document.createElement("canvas");
    c.width = spec.frames;
    c.height = spec.mels;
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(spec.frames, spec.mels);
    for (let r = 0; r < spec.mels; r++) {
      const y = spec.mels - 1 - r; // low bands at the bottom
      for (let col = 0; col < spec.frames; col++) {
        const v = bytes[r * spec.frames + col];
        const o = (y * spec.frames + col) * 4;
        img.data[o] = table[v * 3];
        img.data[o + 1] = table[v * 3 + 1];
        img.data[o + 2] = table[v * 3 + 2];
        img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    return c;
  }
  function buildOverlayImage(bytes, spec, ov) {
    const c = document.createElement("canvas");
    c.width = spec.frames;
    c.height = spec.mels;
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(spec.frames, spec.mels);
    const signed = ov.part === "both";
    for (let r = 0; r < spec.mels; r++) {
      const y = spec.mels - 1 - r;
      for (let col = 0; col < spec.frames; col++) {
        const b = bytes[r * spec.frames + col];
        let z = signed ? (b / 255) * 2 - 1 : b / 255;
        const colour = z < 0 || ov.part === "against" ? ov.against : ov.for;
        z = Math.abs(z);
        const a = z <= ov.floor ? 0 : (z - ov.floor) / (1 - ov.floor);
        const o = (y * spec.frames + col) * 4;
        img.data[o] = colour[0];
        img.data[o + 1] = colour[1];
        img.data[o + 2] = colour[2];
        img.data[o + 3] = Math.round(255 * a);
      }
    }
    ctx.putImageData(img, 0, 0);
    return c;
  }

  // ------------------------------------------------------------------ geometry
  function computeLayout() {
    const width = Math.max(240, stage.clientWidth || root.clientWidth || 600);
    const narrow = width < NARROW_PX;
    const rows = Object.assign({}, ROWS, narrow ? { spec: 112, timeline: 64 } : {});
    const top = {};
    let y = 4;
    for (const name of ["timeline", "spec", "slices", "attention", "axis"]) {
      top[name] = y;
      y += rows[name] + GAP;
    }
    return { width: width, height: y, rows: rows, top: top, narrow: narrow,
             left: GUTTER_L, right: width - GUTTER_R };
  }
  function xOf(t) {
    const d = Math.max(meta.duration, 1e-6);
    return layout.left + (Math.min(Math.max(t, 0), d) / d) * (layout.right - layout.left);
  }
  function tOf(x) {
    const f = (x - layout.left) / Math.max(1, layout.right - layout.left);
    return Math.min(Math.max(f, 0), 1) * meta.duration;
  }
  function rowAt(y) {
    for (const name of ["timeline", "spec", "slices", "attention", "axis"]) {
      if (y >= layout.top[name] - GAP / 2 && y < layout.top[name] + layout.rows[name] + GAP / 2) return name;
    }
    return null;
  }
  function windowAt(t) {
    // Of the windows containing t, the one centred nearest t (app/slices.py: window_at).
    let best = 0;
    let bestD = Infinity;
    let anyInside = meta.windows.some((w) => w.start <= t && t <= w.end);
    meta.windows.forEach((w, i) => {
      const inside = w.start <= t && t <= w.end;
      if (anyInside && !inside) return;
      const d = Math.abs((w.start + w.end) / 2 - t);
      if (d < bestD) { bestD = d; best = i; }
    });
    return best;
  }
  function sliceAt(t) {
    let best = -1;
    let bestD = Infinity;
    meta.slices.forEach((s, i) => {
      if (t < s.start || t > s.end) return;
      const d = Math.abs((s.start + s.end) / 2 - t);
      if (d < bestD) { bestD = d; best = i; }
    });
    return best;
  }
  function fmt(t) {
    t = Math.max(0, t || 0);
    const m = Math.floor(t / 60);
    const s = t - 60 * m;
    return `${m}:${s < 10 ? "0" : ""}${s.toFixed(1)}`;
  }

  // ------------------------------------------------------------------ drawing
  function sizeCanvas(c, dpr) {
    c.width = Math.round(layout.width * dpr);
    c.height = Math.round(layout.height * dpr);
    c.style.width = layout.width + "px";
    c.style.height = layout.height + "px";
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }
  function label(ctx, text, row) {
    ctx.fillStyle = "rgba(232,230,227,0.7)";
    ctx.font = "11px sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(text, 2, layout.top[row] + layout.rows[row] / 2);
  }
  function drawTimeline(ctx) {
    const top = layout.top.timeline;
    const h = layout.rows.timeline;
    const y = (v) => top + h - v * h;
    ctx.strokeStyle = "rgba(232,230,227,0.12)";
    ctx.lineWidth = 1;
    for (const v of [0, 0.5, 1]) {
      ctx.beginPath(); ctx.moveTo(layout.left, y(v)); ctx.lineTo(layout.right, y(v)); ctx.stroke();
    }
    // the lane's scale, in the gutter like the spectrogram's Hz ticks: probability, or share of the ten genres
    ctx.fillStyle = "rgba(232,230,227,0.55)";
    ctx.font = "10px sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillText("100%", layout.left - 4, y(1) + 5);
    ctx.fillText("0", layout.left - 4, y(0) - 4);
    const xs = meta.windows.map((w) => xOf((w.start + w.end) / 2));
    ctx.globalAlpha = meta.forced ? meta.forced.opacity : 1;  // not music: forced picks, not confidences
    if (meta.stacked) {
      let floor = xs.map(() => 0);
      for (const s of meta.series) {
        const ceil = floor.map((f, i) => f + s.values[i]);
        ctx.beginPath();
        xs.forEach((x, i) => (i ? ctx.lineTo(x, y(ceil[i])) : ctx.moveTo(x, y(ceil[i]))));
        for (let i = xs.length - 1; i >= 0; i--) ctx.lineTo(xs[i], y(floor[i]));
        ctx.closePath();
        ctx.fillStyle = rgba(s.color, 0.55);
        ctx.fill();
        floor = ceil;
      }
    } else {
      ctx.setLineDash([2, 3]);
      ctx.strokeStyle = "rgba(232,230,227,0.35)";
      ctx.beginPath(); ctx.moveTo(layout.left, y(meta.threshold)); ctx.lineTo(layout.right, y(meta.threshold));
      ctx.stroke();
      ctx.setLineDash([]);
      for (const s of meta.series) {
        ctx.strokeStyle = s.color;
        ctx.fillStyle = s.color;
        ctx.lineWidth = 2;
        ctx.beginPath();
        xs.forEach((x, i) => (i ? ctx.lineTo(x, y(s.values[i])) : ctx.moveTo(x, y(s.values[i]))));
        ctx.stroke();
        xs.forEach((x, i) => { ctx.beginPath(); ctx.arc(x, y(s.values[i]), 2.5, 0, 2 * Math.PI); ctx.fill(); });
      }
    }
    ctx.globalAlpha = 1;
    // legend, right-aligned inside the row
    ctx.font = "11px sans-serif";
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    let lx = layout.left + 4;
    for (const s of meta.series) {
      if (lx > layout.right - 40) break;
      ctx.fillStyle = s.color;
      ctx.fillRect(lx, top + 2, 8, 8);
      ctx.fillStyle = "rgba(232,230,227,0.85)";
      ctx.fillText(s.name, lx + 11, top + 1);
      lx += 18 + ctx.measureText(s.name).width;
    }
    label(ctx, meta.forced ? "forced" : meta.stacked ? "share" : "genres", "timeline");
  }
  function drawSpec(ctx) {
    const top = layout.top.spec;
    const h = layout.rows.spec;
    const spec = meta.spec;
    ctx.fillStyle = "#0b0c10";
    ctx.fillRect(layout.left, top, layout.right - layout.left, h);
    ctx.imageSmoothingEnabled = true;
    const x0 = xOf(spec.t0);
    const x1 = xOf(spec.t1);
    if (specImage) ctx.drawImage(specImage, x0, top, Math.max(1, x1 - x0), h);
    if (overlayImage) {
      ctx.globalAlpha = meta.overlay.opacity;
      ctx.drawImage(overlayImage, x0, top, Math.max(1, x1 - x0), h);
      ctx.globalAlpha = 1;
    }
    // slice boundaries (dotted) while they stay readable
    const bounds = new Set();
    meta.slices.forEach((s) => { bounds.add(s.start); bounds.add(s.end); });
    if (bounds.size <= 60) {
      ctx.setLineDash([2, 3]);
      ctx.strokeStyle = "rgba(255,255,255,0.3)";
      ctx.lineWidth = 1;
      bounds.forEach((b) => {
        if (b <= 0 || b >= meta.duration) return;
        const x = Math.round(xOf(b)) + 0.5;
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
      });
      ctx.setLineDash([]);
    }
    // frequency ticks
    ctx.fillStyle = "rgba(232,230,227,0.55)";
    ctx.font = "10px sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const step = layout.narrow ? 2 : 1;
    spec.ticks.forEach(([row, text], i) => {
      if (i % step) return;
      const y = top + h - ((row + 0.5) / spec.mels) * h;
      ctx.fillText(text, layout.left - 4, y);
    });
    // what the image shows, boxed inside its top-left corner (the gutter holds the Hz ticks)
    const ov = meta.overlay;
    const text = ov ? `saliency: evidence ${ov.part === "both" ? "for / against" : ov.part} ${ov.genre}`
                    : "mel spectrogram";
    ctx.font = "11px sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    const tw = ctx.measureText(text).width;
    ctx.fillStyle = "rgba(20,22,28,0.75)";
    ctx.fillRect(layout.left + 3, top + 3, tw + 8, 15);
    ctx.fillStyle = "rgba(232,230,227,0.9)";
    ctx.fillText(text, layout.left + 7, top + 5);
  }
  function drawSelection(ctx) {
    const w = meta.windows[selected];
    if (!w) return;
    const xa = xOf(w.start);
    const xb = xOf(w.end);
    const top = layout.top.timeline;
    const bottom = layout.top.spec + layout.rows.spec;
    ctx.fillStyle = "rgba(0,0,0,0.5)";
    ctx.fillRect(layout.left, layout.top.spec, xa - layout.left, layout.rows.spec);
    ctx.fillRect(xb, layout.top.spec, layout.right - xb, layout.rows.spec);
    ctx.fillStyle = rgba(meta.accent, 0.1);
    ctx.fillRect(xa, top, xb - xa, layout.rows.timeline);
    ctx.strokeStyle = meta.accent;
    ctx.lineWidth = 2;
    ctx.strokeRect(xa + 1, layout.top.spec + 1, xb - xa - 2, bottom - layout.top.spec - 2);
    ctx.fillStyle = meta.accent;
    ctx.font = "bold 11px sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    const text = `window ${selected + 1}`;
    const tx = Math.min(xa + 3, layout.right - ctx.measureText(text).width - 2);
    ctx.fillText(text, tx, top + layout.rows.timeline - 2);
  }
  function drawSlices(ctx) {
    const top = layout.top.slices;
    const h = layout.rows.slices;
    const win = meta.windows[selected];
    ctx.font = "11px sans-serif";
    ctx.textBaseline = "middle";
    ctx.textAlign = "center";
    meta.slices.forEach((s) => {
      const xa = xOf(s.start);
      const xb = xOf(s.end);
      // not music: one grey strip that says so; a genre colour and a percentage would read as a verdict
      ctx.fillStyle = meta.forced ? meta.forced.fill : rgba(s.color, 0.25 + 0.75 * s.p);
      ctx.fillRect(xa + 0.5, top, Math.max(1, xb - xa - 1), h);
      const text = meta.forced ? "not music" : `${s.genre} ${Math.round(100 * s.p)}%`;
      const shortText = meta.forced ? "–" : `${Math.round(100 * s.p)}%`;
      const room = xb - xa - 4;
      ctx.fillStyle = "#14161c";
      if (ctx.measureText(text).width <= room) ctx.fillText(text, (xa + xb) / 2, top + h / 2);
      else if (ctx.measureText(shortText).width <= room) ctx.fillText(shortText, (xa + xb) / 2, top + h / 2);
    });
    if (win) {
      ctx.strokeStyle = meta.accent;
      ctx.lineWidth = 2;
      ctx.strokeRect(xOf(win.start) + 1, top - 1, xOf(win.end) - xOf(win.start) - 2, h + 2);
    }
    label(ctx, "slices", "slices");
  }
  function drawAttention(ctx) {
    const top = layout.top.attention;
    const h = layout.rows.attention;
    const bar = (t0, t1, a, fill) => {
      const xa = xOf(t0) + 2;
      const xb = xOf(t1) - 2;
      ctx.fillStyle = fill;
      ctx.fillRect(xa, top + h - a * h, Math.max(1, xb - xa), a * h);
    };
    meta.slices.forEach((s) => bar(s.start, s.end, s.attention, "rgba(154,160,166,0.35)"));
    const win = meta.windows[selected];
    if (win) {
      ctx.font = "10px sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "bottom";
      win.slices.forEach((s, j) => {
        bar(s, s + 5, win.attention[j], rgba(meta.accent, 0.85));
        const text = `${Math.round(100 * win.attention[j])}%`;
        const x = (xOf(s) + xOf(s + 5)) / 2;
        if (xOf(s + 5) - xOf(s) > ctx.measureText(text).width + 4) {
          ctx.fillStyle = "rgba(232,230,227,0.9)";
          ctx.fillText(text, x, Math.max(top + 10, top + h - win.attention[j] * h));
        }
      });
    }
    label(ctx, "attention", "attention");
  }
  function drawAxis(ctx) {
    const top = layout.top.axis;
    const span = layout.right - layout.left;
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600];
    const minGap = layout.narrow ? 56 : 64;
    let step = steps[steps.length - 1];
    for (const s of steps) { if ((s / meta.duration) * span >= minGap) { step = s; break; } }
    ctx.fillStyle = "rgba(232,230,227,0.65)";
    ctx.strokeStyle = "rgba(232,230,227,0.35)";
    ctx.font = "10px sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let t = 0; t <= meta.duration + 1e-6; t += step) {
      const x = xOf(t);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + 4); ctx.stroke();
      const text = meta.duration >= 120 ? fmt(t).replace(/\.0$/, "") : `${t} s`;
      ctx.fillText(text, Math.min(Math.max(x, layout.left + 10), layout.right - 14), top + 5);
    }
  }
  function drawBase() {
    if (!meta) return;
    layout = computeLayout();
    stage.style.height = layout.height + "px";
    const dpr = window.devicePixelRatio || 1;
    const ctx = sizeCanvas(base, dpr);
    ctx.clearRect(0, 0, layout.width, layout.height);
    drawTimeline(ctx);
    drawSpec(ctx);
    drawSelection(ctx);
    drawSlices(ctx);
    drawAttention(ctx);
    drawPadding(ctx);
    drawAxis(ctx);
    sizeCanvas(over, dpr);
    drawOverlay();
    root.dataset.selected = String(selected);
    setFrameHeight();
  }
  // A clip shorter than one window was repeated to fill it: shade the repeat so it is not read as more audio.
  function drawPadding(ctx) {
    if (meta.padded_from == null) return;
    const x0 = xOf(meta.padded_from);
    const top = layout.top.timeline;
    const bottom = layout.top.attention + layout.rows.attention;
    ctx.fillStyle = "rgba(14,17,23,0.62)";
    ctx.fillRect(x0, top, layout.right - x0, bottom - top);
    ctx.strokeStyle = "rgba(232,230,227,0.5)";
    ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(Math.round(x0) + 0.5, top); ctx.lineTo(Math.round(x0) + 0.5, bottom); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "rgba(232,230,227,0.85)";
    ctx.font = "11px sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(`repeated to fill ${meta.duration.toFixed(0)} s`, x0 + 6, layout.top.spec + 22);
  }
  function drawOverlay() {
    if (!layout) return;
    const ctx = over.getContext("2d");
    ctx.clearRect(0, 0, layout.width, layout.height);
    const bottom = layout.top.attention + layout.rows.attention;
    if (hoverX !== null) {
      ctx.strokeStyle = "rgba(232,230,227,0.35)";
      ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(hoverX + 0.5, layout.top.timeline); ctx.lineTo(hoverX + 0.5, bottom); ctx.stroke();
    }
    const t = audio.currentTime || 0;
    const x = Math.round(xOf(t)) + 0.5;
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x, layout.top.timeline); ctx.lineTo(x, bottom); ctx.stroke();
    ctx.fillStyle = "#ffffff";
    ctx.beginPath();
    ctx.moveTo(x - 5, layout.top.timeline); ctx.lineTo(x + 5, layout.top.timeline); ctx.lineTo(x, layout.top.timeline + 6);
    ctx.fill();
    root.dataset.currentTime = t.toFixed(3);
    root.dataset.playheadX = x.toFixed(1);
    clock.textContent = `${fmt(t)} / ${fmt(meta.audio_seconds)}`;
  }

  // ------------------------------------------------------------------ playback
  function loop() {
    if (stopAt !== null && audio.currentTime >= stopAt) {
      audio.pause();
      stopAt = null;
    }
    drawOverlay();
    if (!audio.paused) requestAnimationFrame(loop);
  }
  function play() {
    notice.textContent = "";
    const p = audio.play();
    if (p && p.catch) {
      p.catch(() => { notice.textContent = "The browser blocked playback: press Play."; });
    }
  }
  function toggle() {
    if (audio.paused) { stopAt = null; play(); } else audio.pause();
  }
  function playRange(start, end) {
    stopAt = end;
    audio.currentTime = Math.max(0, start);
    play();
  }
  audio.addEventListener("play", () => {
    playButton.textContent = "❚❚ Pause";
    playButton.setAttribute("aria-label", "Pause");
    root.dataset.playing = "true";
    requestAnimationFrame(loop);
  });
  audio.addEventListener("pause", () => {
    playButton.textContent = "▶ Play";
    playButton.setAttribute("aria-label", "Play");
    root.dataset.playing = "false";
    drawOverlay();
  });
  audio.addEventListener("seeked", drawOverlay);
  audio.addEventListener("timeupdate", drawOverlay);
  audio.addEventListener("loadedmetadata", drawOverlay);
  playButton.addEventListener("click", toggle);

  // ------------------------------------------------------------------ input
  function choose(t, row) {
    let index = windowAt(t);
    if (row === "slices") {
      const i = sliceAt(t);
      if (i >= 0) index = meta.slices[i].window;
    }
    const limit = isFinite(audio.duration) ? audio.duration : meta.audio_seconds;
    stopAt = null;
    audio.currentTime = Math.min(t, Math.max(0, limit - 0.01));
    drawOverlay();
    if (index !== selected) {
      selected = index;
      drawBase();
      seq += 1;
      setValue({ window: index, time: Math.round(t * 1000) / 1000, seq: seq });
    }
  }
  over.addEventListener("click", (e) => {
    if (!meta) return;
    const r = over.getBoundingClientRect();
    over.focus({ preventScroll: true });
    choose(tOf(e.clientX - r.left), rowAt(e.clientY - r.top));
  });
  over.addEventListener("mousemove", (e) => {
    if (!meta) return;
    const r = over.getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    if (x < layout.left || x > layout.right) { hoverX = null; tip.style.display = "none"; drawOverlay(); return; }
    hoverX = x;
    const t = tOf(x);
    const w = windowAt(t);
    const i = sliceAt(t);
    const s = i >= 0 ? meta.slices[i] : null;
    tip.textContent = `${t.toFixed(1)} s · window ${w + 1}` + (s ? ` · slice: ${meta.forced ? "not music, forced pick " : ""}${s.genre} ${Math.round(100 * s.p)}%` : "");
    tip.style.display = "block";
    const left = Math.min(x + 10, layout.width - tip.offsetWidth - 2);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${Math.max(0, y - 26)}px`;
    drawOverlay();
  });
  over.addEventListener("mouseleave", () => { hoverX = null; tip.style.display = "none"; drawOverlay(); });
  window.addEventListener("keydown", (e) => {
    if (e.code !== "Space" && e.key !== " ") return;
    if (e.target === audio || e.target === playButton) return; // they handle Space themselves
    e.preventDefault();
    toggle();
  });
  window.addEventListener("resize", () => { if (meta) drawBase(); });

  // ------------------------------------------------------------------ render
  function onRender(args) {
    meta = args.meta;
    selected = meta.selected;
    specImage = args.spec ? buildSpecImage(args.spec, meta.spec) : null;
    overlayImage = meta.overlay && args.overlay ? buildOverlayImage(args.overlay, meta.spec, meta.overlay) : null;
    if (meta.audio_id !== audioId) {
      if (audioUrl) URL.revokeObjectURL(audioUrl);
      audioUrl = args.audio ? URL.createObjectURL(new Blob([args.audio], { type: meta.mime })) : null;
      if (audioUrl) audio.src = audioUrl; else audio.removeAttribute("src");
      audioId = meta.audio_id;
      playButton.disabled = !audioUrl;
      notice.textContent = audioUrl ? "" : "This upload was too large to keep, so it cannot be played.";
    }
    root.dataset.duration = String(meta.duration);
    root.dataset.paddedFrom = meta.padded_from == null ? "none" : String(meta.padded_from);
    root.dataset.slices = String(meta.slices.length);
    root.dataset.forced = meta.forced ? "1" : "0";
    root.dataset.stripStart = String(meta.slices.length ? meta.slices[0].start : 0);
    root.dataset.stripEnd = String(meta.slices.length ? Math.max(...meta.slices.map((s) => s.end)) : 0);
    root.dataset.overlay = meta.overlay ? meta.overlay.part : "none";
    drawBase();
    if (meta.play && meta.play.id !== lastPlayId) {
      if (rendered) playRange(meta.play.start, meta.play.end);
      lastPlayId = meta.play.id;
    }
    rendered = true;
    root.dataset.ready = "true";
  }
  window.addEventListener("message", (e) => {
    if (e.data && e.data.type === "streamlit:render") onRender(e.data.args);
  });
  window.glPlayer = { audio: audio, meta: () => meta, windowAt: (t) => windowAt(t), selected: () => selected,
                      xOf: (t) => (layout ? xOf(t) : null), layout: () => layout };
  send("streamlit:componentReady", { apiVersion: 1 });
})();
