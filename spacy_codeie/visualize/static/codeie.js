/* spacy-codeie view. The browser lays out the text (wrapping, right-to-left, CJK); this script measures where
   each mention landed and draws relation and event arcs over it, in an SVG laid on the text. It also runs the
   page's label switches, "docs with" filter and sorting. It loads nothing and evaluates no data. */
(function () {
  "use strict";
  if (window.codeieView) { window.codeieView.start(); return; }
  var SVG = "http://www.w3.org/2000/svg";
  var STEP = 16;        // px between two arc levels
  var LABEL_H = 14;     // px, height of an arc's label box
  var hidden = new Set();
  var STATUS_STROKE = { fp: "#d62728", fn: "#d62728", label: "#e67300", boundary: "#7b3fb8" };

  function svgEl(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  /* Visual lines of the text: bands from the rects of its text nodes, widened by the marks on them. */
  function measureLines(textEl, base) {
    var rects = [], range = document.createRange(), node;
    var walker = document.createTreeWalker(textEl, NodeFilter.SHOW_TEXT);
    while ((node = walker.nextNode())) {
      if (!node.nodeValue.trim()) continue;
      range.selectNodeContents(node);
      var rs = range.getClientRects();
      for (var i = 0; i < rs.length; i++) if (rs[i].height > 0) rects.push(rs[i]);
    }
    rects.sort(function (a, b) { return (a.top + a.bottom) - (b.top + b.bottom); });
    var tol = parseFloat(getComputedStyle(textEl).fontSize) * 0.6, lines = [];
    rects.forEach(function (r) {
      var cy = (r.top + r.bottom) / 2 - base.top, last = lines[lines.length - 1];
      if (last && cy - last.cy <= tol) return;
      lines.push({ cy: cy, top: r.top - base.top, bottom: r.bottom - base.top });
    });
    var marks = textEl.querySelectorAll("mark.codeie-m");
    for (var m = 0; m < marks.length; m++) {
      var mrs = marks[m].getClientRects();
      for (var j = 0; j < mrs.length; j++) {
        var line = lines[lineOf(lines, (mrs[j].top + mrs[j].bottom) / 2 - base.top)];
        if (!line) continue;
        line.top = Math.min(line.top, mrs[j].top - base.top);
        line.bottom = Math.max(line.bottom, mrs[j].bottom - base.top);
      }
    }
    return lines;
  }

  function lineOf(lines, cy) {
    var best = -1, dist = Infinity;
    for (var i = 0; i < lines.length; i++) {
      var d = Math.abs(lines[i].cy - cy);
      if (d < dist) { dist = d; best = i; }
    }
    return best;
  }

  function anchor(textEl, base, lines, id) {
    var mark = textEl.querySelector('mark[data-m="' + id + '"]');
    if (!mark || mark.classList.contains("codeie-off")) return null;
    var r = mark.getClientRects()[0];
    if (!r) return null;
    return { x: (r.left + r.right) / 2 - base.left, y: r.top - base.top,
             line: lineOf(lines, (r.top + r.bottom) / 2 - base.top) };
  }

  function arcVisible(arc) {
    return !hidden.has(arc.l) && !(arc.e && hidden.has(arc.e));
  }

  /* Each arc is one segment on its line, or, across lines, a part leaving the head's line at its end and a
     part entering the tail's line at its start; each segment gets the lowest level free on its line. */
  function plan(docEl, textEl, svg, arcs) {
    var base = textEl.getBoundingClientRect(), width = textEl.clientWidth;
    var rtl = getComputedStyle(textEl).direction === "rtl";
    var lines = measureLines(textEl, base), segs = [];
    var probe = svgEl("text", { "class": "codeie-arc-text", x: -1000, y: -1000 }, svg);
    arcs.forEach(function (arc) {
      if (!arcVisible(arc)) return;
      if (arc.h === null) {
        // a role of a trigger-less event: a small loop onto its argument, labelled "EVENT: role"
        var a = anchor(textEl, base, lines, arc.t);
        if (!a || a.line < 0) return;
        var text = arc.e + ": " + arc.l;
        probe.textContent = text;
        segs.push({ arc: arc, line: a.line, xa: a.x + (rtl ? 12 : -12), ya: a.y, xb: a.x, yb: a.y, arrow: true,
                    lw: probe.getComputedTextLength() + 8, text: text });
        return;
      }
      var h = anchor(textEl, base, lines, arc.h), t = anchor(textEl, base, lines, arc.t);
      if (!h || !t || h.line < 0 || t.line < 0) return;
      probe.textContent = arc.l;
      var lw = probe.getComputedTextLength() + 8;
      if (h.line === t.line) {
        var x2 = t.x;
        if (Math.abs(x2 - h.x) < 10) x2 = h.x + (rtl ? -12 : 12);  // same place: a small loop
        segs.push({ arc: arc, line: h.line, xa: h.x, ya: h.y, xb: x2, yb: t.y, arrow: true, lw: lw });
      } else {
        var first = h.line < t.line ? h : t, last = first === h ? t : h;
        var lineEnd = rtl ? 0 : width, lineStart = rtl ? width : 0;
        var headFirst = first === h;
        segs.push({ arc: arc, line: first.line, xa: first.x, ya: first.y, xb: lineEnd, yb: null,
                    arrow: false, arrowStart: !headFirst, lw: lw });
        // the label rides on the first line's part; the arrow points at the tail, wherever it is
        segs.push({ arc: arc, line: last.line, xa: lineStart, ya: null, xb: last.x, yb: last.y,
                    arrow: headFirst, lw: 0 });
      }
    });
    probe.remove();
    var byLine = {};
    segs.forEach(function (s) {
      var mid = (s.xa + s.xb) / 2;
      s.labelX = Math.max(s.lw / 2 + 1, Math.min(width - s.lw / 2 - 1, mid));
      s.lo = Math.min(s.xa, s.xb, s.labelX - s.lw / 2);
      s.hi = Math.max(s.xa, s.xb, s.labelX + s.lw / 2);
      (byLine[s.line] = byLine[s.line] || []).push(s);
    });
    var need = lines.map(function () { return 0; });
    Object.keys(byLine).forEach(function (key) {
      var taken = [];
      byLine[key].sort(function (a, b) { return (a.hi - a.lo) - (b.hi - b.lo); }).forEach(function (s) {
        var level = 0;
        while ((taken[level] || []).some(function (o) { return s.lo < o.hi + 4 && s.hi > o.lo - 4; })) level++;
        (taken[level] = taken[level] || []).push(s);
        s.level = level;
      });
      need[key] = taken.length * STEP + LABEL_H / 2 + 4;
    });
    return { lines: lines, segs: segs, need: need, width: width };
  }

  function drawSegment(svg, s, lines) {
    var arc = s.arc, y = lines[s.line].top - (s.level + 1) * STEP;
    var stroke = STATUS_STROKE[arc.s] || "#555";
    var dir = s.xb >= s.xa ? 1 : -1, r = Math.min(5, Math.abs(s.xb - s.xa) / 2);
    var d = "M" + s.xa + " " + (s.ya === null ? y : s.ya);
    if (s.ya !== null) d += " L" + s.xa + " " + (y + r) + " Q" + s.xa + " " + y + " " + (s.xa + dir * r) + " " + y;
    if (s.yb !== null) {
      d += " L" + (s.xb - dir * r) + " " + y + " Q" + s.xb + " " + y + " " + s.xb + " " + (y + r) + " L" + s.xb + " " + s.yb;
    } else {
      d += " L" + s.xb + " " + y;
    }
    var path = svgEl("path", { d: d, fill: "none", stroke: stroke, "stroke-width": arc.s === "ok" ? 1.4 : 2,
                               "class": "codeie-arc codeie-s-" + arc.s }, svg);
    if (arc.s === "fn") path.setAttribute("stroke-dasharray", "5 3");
    if (s.arrow) arrowHead(svg, s.xb, s.yb, stroke);
    if (s.arrowStart) arrowHead(svg, s.xa, s.ya, stroke);
  }

  function drawLabel(svg, s, lines) {
    var arc = s.arc, y = lines[s.line].top - (s.level + 1) * STEP;
    var stroke = STATUS_STROKE[arc.s] || "#555";
    if (s.lw > 0) {
      var g = svgEl("g", { "class": "codeie-arc-label codeie-label codeie-s-" + arc.s }, svg);
      var title = svgEl("title", {}, g);
      title.textContent = (arc.e ? arc.e + " " : "") + arc.l + (arc.why ? " (" + arc.why + ")" : "");
      svgEl("rect", { x: s.labelX - s.lw / 2, y: y - LABEL_H / 2, width: s.lw, height: LABEL_H, rx: 3,
                      fill: arc.c, stroke: stroke, "stroke-width": arc.s === "ok" ? 0.6 : 1.5 }, g);
      var text = svgEl("text", { x: s.labelX, y: y + 4, "text-anchor": "middle", "class": "codeie-arc-text" }, g);
      text.textContent = s.text || arc.l;
    }
  }

  function arrowHead(svg, x, y, color) {
    svgEl("path", { d: "M" + (x - 4) + " " + (y - 7) + " L" + (x + 4) + " " + (y - 7) + " L" + x + " " + y + " Z",
                    fill: color, "class": "codeie-arrow" }, svg);
  }

  function draw(docEl) {
    try {
      var textEl = docEl.querySelector(".codeie-text");
      var arcs = JSON.parse(docEl.querySelector("script.codeie-arcs").textContent);
      var canvas = textEl.parentNode;
      var svg = canvas.querySelector("svg.codeie-svg");
      if (!svg) svg = svgEl("svg", { "class": "codeie-svg" }, canvas);
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      textEl.style.lineHeight = "";
      textEl.style.paddingTop = "";
      if (!textEl.clientWidth) return;  // not displayed now; drawn when shown
      var p = plan(docEl, textEl, svg, arcs);
      if (p.segs.length) {
        var grow = 0;
        for (var i = 1; i < p.lines.length; i++) grow = Math.max(grow, p.need[i] - (p.lines[i].top - p.lines[i - 1].bottom));
        if (grow > 0) {
          textEl.style.lineHeight = (parseFloat(getComputedStyle(textEl).lineHeight) + grow) + "px";
          p = plan(docEl, textEl, svg, arcs);
        }
        var pad = p.need[0] - p.lines[0].top;
        if (pad > 0) {
          textEl.style.paddingTop = pad + "px";
          p = plan(docEl, textEl, svg, arcs);
        }
      }
      svg.setAttribute("width", p.width);
      svg.setAttribute("height", textEl.offsetHeight);
      p.segs.forEach(function (s) { drawSegment(svg, s, p.lines); });
      p.segs.forEach(function (s) { drawLabel(svg, s, p.lines); });  // labels over every line
      docEl.setAttribute("data-codeie-drawn", String(arcs.length));
      docEl.removeAttribute("data-codeie-error");
    } catch (err) {
      docEl.setAttribute("data-codeie-error", String(err && err.message || err));
      if (window.console) console.error("spacy-codeie view:", err);
    }
  }

  var observer = null;
  function start() {
    var docs = document.querySelectorAll(".codeie-doc:not([data-codeie-seen])");
    for (var i = 0; i < docs.length; i++) {
      docs[i].setAttribute("data-codeie-seen", "1");
      // docs on (or near) the screen now are drawn at once; the others when they scroll near it
      var r = docs[i].getBoundingClientRect();
      if (!observer || (r.bottom > -800 && r.top < innerHeight + 800)) draw(docs[i]);
      if (observer) observer.observe(docs[i]);
    }
    bindControls();
  }

  function redrawAll() {
    var docs = document.querySelectorAll(".codeie-doc[data-codeie-drawn]");
    for (var i = 0; i < docs.length; i++) draw(docs[i]);
  }

  /* ---- page controls ---- */
  function setLabel(label, on) {
    if (on) hidden.delete(label); else hidden.add(label);
    var marks = document.querySelectorAll("mark.codeie-m");
    for (var i = 0; i < marks.length; i++)
      if (marks[i].getAttribute("data-label") === label) marks[i].classList.toggle("codeie-off", !on);
    redrawAll();
  }

  function onlyDocsWith(label) {
    var items = document.querySelectorAll(".codeie-item");
    for (var i = 0; i < items.length; i++) {
      var labels = JSON.parse(items[i].getAttribute("data-labels") || "[]");
      var errorsOnly = document.querySelector('input[data-role="errors-only"]');
      var show = (!label || labels.indexOf(label) >= 0) &&
                 !(errorsOnly && errorsOnly.checked && items[i].getAttribute("data-errors") === "0");
      items[i].style.display = show ? "" : "none";
    }
    redrawAll();
  }

  function sortItems(key) {
    var list = document.querySelector(".codeie-items");
    if (!list) return;
    var items = Array.prototype.slice.call(list.querySelectorAll(":scope > .codeie-item"));
    var num = function (el, name) { return parseFloat(el.getAttribute(name) || "0"); };
    items.sort(function (a, b) {
      if (key === "worst") return num(b, "data-errors") - num(a, "data-errors") || num(a, "data-f") - num(b, "data-f") || num(a, "data-index") - num(b, "data-index");
      if (key === "f") return num(a, "data-f") - num(b, "data-f") || num(a, "data-index") - num(b, "data-index");
      return num(a, "data-index") - num(b, "data-index");
    });
    items.forEach(function (el) { list.appendChild(el); });
  }

  var bound = false;
  function bindControls() {
    if (bound) return;
    bound = true;
    document.addEventListener("change", function (ev) {
      var t = ev.target;
      if (!t || !t.closest || !t.closest(".codeie-root")) return;
      if (t.matches('input[type="checkbox"][data-label]')) setLabel(t.getAttribute("data-label"), t.checked);
      else if (t.matches('select[data-role="only"], input[data-role="errors-only"]')) {
        var sel = document.querySelector('select[data-role="only"]');
        onlyDocsWith(sel ? sel.value : "");
      } else if (t.matches('select[data-role="sort"]')) sortItems(t.value);
    });
  }

  if ("IntersectionObserver" in window) {
    observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting && !e.target.hasAttribute("data-codeie-drawn")) draw(e.target); });
    }, { rootMargin: "800px 0px" });
  }
  var timer = null;
  window.addEventListener("resize", function () { clearTimeout(timer); timer = setTimeout(redrawAll, 150); });
  if (document.fonts && document.fonts.ready) document.fonts.ready.then(redrawAll);
  window.codeieView = { start: start, draw: draw, redrawAll: redrawAll };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
