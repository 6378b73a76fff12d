// d4 dns aggregate: the live dashboard. First-party, no library; served
// from /static/dns.js under the Content-Security-Policy `script-src 'self';
// connect-src 'self'`. It listens to the Server-Sent Events of
// <div id="dashboard" data-events="/api/v1/events?span=..."> (a `summary`
// event on connect, then each second something changed) and redraws the
// numbers, tables and chart in place: the page is never reloaded. Names
// come from the network: they are set as text (textContent), never as HTML.
(function () {
  'use strict';
  var root = document.getElementById('dashboard');
  if (!root || !window.EventSource) {
    return;
  }
  var SVG = 'http://www.w3.org/2000/svg';
  var received = 0;

  function rate(v) {
    return v === null || v === undefined ? '\u2013' : v.toFixed(1);
  }

  function clock(t) {
    return new Date(t * 1000).toISOString().slice(11, 19);
  }

  function setText(id, v) {
    var e = document.getElementById(id);
    if (e) {
      e.textContent = String(v);
    }
    return e;
  }

  function setRate(id, v) {
    var e = setText(id, rate(v));
    if (e) {
      e.setAttribute('data-value', v === null || v === undefined ? '' : String(v));
    }
  }

  // A table row: each cell a string, or {text, cls, href}.
  function row(cells) {
    var tr = document.createElement('tr');
    cells.forEach(function (c) {
      var td = document.createElement('td');
      if (typeof c !== 'object') {
        c = { text: c };
      }
      if (c.cls) {
        td.className = c.cls;
      }
      if (c.href) {
        var a = document.createElement('a');
        a.href = c.href;
        a.textContent = String(c.text);
        td.appendChild(a);
      } else {
        td.textContent = String(c.text);
      }
      tr.appendChild(td);
    });
    return tr;
  }

  function fill(id, rows) {
    var body = document.getElementById(id);
    if (!body) {
      return;
    }
    while (body.firstChild) {
      body.removeChild(body.firstChild);
    }
    rows.forEach(function (r) {
      body.appendChild(r);
    });
  }

  function tiles(id, counts) {
    var box = document.getElementById(id);
    if (!box) {
      return;
    }
    var keys = Object.keys(counts).sort(function (a, b) {
      return counts[b] - counts[a] || (a < b ? -1 : 1);
    });
    while (box.firstChild) {
      box.removeChild(box.firstChild);
    }
    keys.forEach(function (k) {
      var t = document.createElement('div');
      t.className = 'tile';
      var b = document.createElement('b');
      b.textContent = String(counts[k]);
      var s = document.createElement('span');
      s.textContent = k;
      t.appendChild(b);
      t.appendChild(s);
      box.appendChild(t);
    });
  }

  function q(s) {
    return encodeURIComponent(s);
  }

  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) {
      e.setAttribute(k, String(attrs[k]));
    });
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }

  // The QPS line chart: the total (gaps where no monitor reported) and one
  // line per monitor.
  function chart(d) {
    var box = document.getElementById('qps-chart');
    if (!box) {
      return;
    }
    var W = 1200, H = 220, L = 52, R = 10, T = 12, B = 22;
    var t0 = d.time - d.span_secs, t1 = d.time;
    var lines = [{ name: 'total', cls: 'total', pts: d.series.map(function (p) { return [p.t, p.qps]; }) }];
    d.servers.forEach(function (s, i) {
      lines.push({ name: s.id, cls: 's' + (i % 6), pts: s.series });
    });
    var max = 0;
    lines.forEach(function (l) {
      l.pts.forEach(function (p) {
        if (p[1] !== null && p[1] > max) {
          max = p[1];
        }
      });
    });
    max = max > 0 ? max * 1.1 : 1;
    function x(t) {
      return L + (W - L - R) * Math.max(0, Math.min(1, (t - t0) / (t1 - t0)));
    }
    function y(v) {
      return T + (H - T - B) * (1 - v / max);
    }
    while (box.firstChild) {
      box.removeChild(box.firstChild);
    }
    [0, 0.5, 1].forEach(function (f) {
      var v = max * f;
      box.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), 'class': 'grid' }));
      box.appendChild(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', 'class': 'label' }, v.toFixed(v < 10 ? 1 : 0)));
    });
    box.appendChild(svg('text', { x: L, y: H - 6, 'class': 'label' }, clock(t0)));
    box.appendChild(svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end', 'class': 'label' }, clock(t1)));
    var legend = document.getElementById('chart-legend');
    if (legend) {
      while (legend.firstChild) {
        legend.removeChild(legend.firstChild);
      }
    }
    lines.forEach(function (l) {
      var path = '';
      var pen = false;
      var n = 0;
      l.pts.forEach(function (p) {
        if (p[1] === null) {
          pen = false;
          return;
        }
        // The bucket's middle.
        var px = x(p[0] + d.bucket_secs / 2).toFixed(1), py = y(p[1]).toFixed(1);
        path += (pen ? ' L' : ' M') + px + ' ' + py;
        pen = true;
        n += 1;
        box.appendChild(svg('circle', { cx: px, cy: py, r: 2.5, 'class': l.cls }));
      });
      if (n > 0) {
        box.appendChild(svg('path', { d: path.trim(), 'class': l.cls, 'data-series': l.name }));
      }
      if (legend) {
        var s = document.createElement('span');
        s.className = l.cls;
        s.textContent = l.name;
        legend.appendChild(s);
      }
    });
    box.setAttribute('data-points', String(d.series.filter(function (p) { return p.qps !== null; }).length));
  }

  function show(d) {
    received += 1;
    root.setAttribute('data-received', String(received));
    setRate('total-qps', d.total.qps);
    setRate('total-aps', d.total.aps);
    setText('total-pps', rate(d.total.pps));
    setText('monitors', d.servers.length);
    setText('queries', d.total.queries);
    setText('clients-count', d.clients);
    setText('findings-count', d.findings.underscored + d.findings.alone_queries + d.findings.alone_answers);
    setText('malformed', d.total.malformed);
    setText('updated', clock(d.time));
    setText('in-messages', d.input.messages);
    setText('in-malformed', d.input.malformed);
    setText('in-unknown', d.input.unknown_types);
    setText('in-large', d.input.too_large);
    setText('in-refused', d.input.refused_servers);
    fill('top-names', d.top_names.map(function (n) {
      return row([{ text: n.name, cls: 'mono' }, { text: n.count, cls: 'num' }, { text: n.percent.toFixed(1), cls: 'num' }]);
    }));
    tiles('qtypes', d.qtypes);
    tiles('rcodes', d.rcodes);
    fill('servers', d.servers.map(function (s) {
      var top = s.top_names.length ? s.top_names[0].name + ' (' + s.top_names[0].percent.toFixed(1) + ' %)' : '';
      var tr = row([s.id, { text: rate(s.qps), cls: 'num' }, { text: rate(s.aps), cls: 'num' },
        { text: rate(s.pps), cls: 'num' }, { text: s.windows, cls: 'num' }, { text: s.queries, cls: 'num' },
        { text: s.malformed, cls: 'num' }, clock(s.last_seen), { text: top, cls: 'mono' }]);
      tr.setAttribute('data-server', s.id);
      return tr;
    }));
    var span = d.span;
    fill('findings', d.finding_groups.map(function (g) {
      return row([{ text: g.qname, cls: 'mono', href: '/finding?name=' + q(g.qname) + '&span=' + span },
        g.kind, { text: g.count, cls: 'num' }, g.monitors.join(', ')]);
    }));
    fill('top-clients', d.top_clients.map(function (c) {
      var types = Object.keys(c.qtypes).map(function (t) { return t + ' ' + c.qtypes[t]; }).join(', ');
      return row([{ text: c.client, cls: 'mono', href: '/client?ip=' + q(c.client) + '&span=' + span },
        { text: c.queries, cls: 'num' }, { text: c.names, cls: 'num' }, types]);
    }));
    chart(d);
  }

  var es = new EventSource(root.getAttribute('data-events'));
  var state = document.getElementById('live-state');
  es.addEventListener('summary', function (e) {
    var d;
    try {
      d = JSON.parse(e.data);
    } catch (x) {
      return;
    }
    if (state) {
      state.classList.remove('stale');
    }
    show(d);
  });
  es.onerror = function () {
    // The browser reconnects by itself; meanwhile the numbers are stale.
    if (state) {
      state.classList.add('stale');
    }
  };
})();
