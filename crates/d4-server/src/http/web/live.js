// d4 web UI: the live rates, refreshed every 2 s without reloading the
// page. First-party, no library; served from /static/live.js under the
// Content-Security-Policy `script-src 'self'; connect-src 'self'`.
// Elements with data-rate="total" | "type:<key>" | "sensor:<32 hex>" and
// data-unit="bytes" | "frames" show a rate; data-queue="<uuid>" a queue's
// length. The numbers come from GET <data-live> (/live/rates).
(function () {
  'use strict';
  var root = document.querySelector('[data-live]');
  if (!root || !window.fetch) {
    return;
  }
  var url = root.getAttribute('data-live');
  var units = ['B', 'kB', 'MB', 'GB', 'TB'];

  function bytes(v) {
    var n = Math.round(v);
    if (n < 1000) {
      return n + ' B/s';
    }
    var x = n;
    var i = 0;
    while (x >= 1000 && i < units.length - 1) {
      x /= 1000;
      i += 1;
    }
    return x.toFixed(1) + ' ' + units[i] + '/s';
  }

  function rateOf(d, key) {
    if (key === 'total') {
      return d.total;
    }
    var i = key.indexOf(':');
    var kind = key.slice(0, i);
    var k = key.slice(i + 1);
    var m = kind === 'type' ? d.types : kind === 'sensor' ? d.sensors : null;
    return (m && m[k]) || { bytes_per_sec: 0, frames_per_sec: 0 };
  }

  function show(d) {
    document.querySelectorAll('[data-rate]').forEach(function (e) {
      var r = rateOf(d, e.getAttribute('data-rate'));
      var frames = e.getAttribute('data-unit') === 'frames';
      var v = frames ? r.frames_per_sec : r.bytes_per_sec;
      e.setAttribute('data-value', String(v));
      e.textContent = frames ? v.toFixed(1) + '/s' : bytes(v);
    });
    document.querySelectorAll('[data-queue]').forEach(function (e) {
      var q = d.queues && d.queues[e.getAttribute('data-queue')];
      if (q) {
        e.textContent = String(q.length);
      }
    });
    var u = document.getElementById('live-updated');
    if (u) {
      u.textContent = ' (updated ' + new Date(d.time * 1000).toISOString().slice(11, 19) + ' UTC)';
    }
  }

  function tick() {
    fetch(url, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) {
        var json = r.ok && (r.headers.get('content-type') || '').indexOf('json') >= 0;
        return json ? r.json() : null;
      })
      .then(function (d) {
        if (d) {
          show(d);
        }
      })
      .catch(function () {})
      .then(function () {
        setTimeout(tick, 2000);
      });
  }

  setTimeout(tick, 2000);
})();
