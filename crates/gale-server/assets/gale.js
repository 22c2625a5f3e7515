// Gale's browser helpers, with no framework and no build step:
//   (a) every htmx request that can change something carries the CSRF token;
//   (b) <pre class="log" data-follow-url="..."> follows a running attempt's log;
//   (c) forms (or their submit buttons) with data-confirm="..." ask first;
//   (d) <select data-autosubmit> submits its form when changed;
//   (e) a self-refreshing part whose session ended sends the page to the login;
//   (f) <input data-masked-by="ID"> is a password field while checkbox ID is ticked.
// Everything from the server is inserted as text, never as markup.
(function () {
  "use strict";

  // (a) CSRF ------------------------------------------------------------------

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var verb = String(event.detail.verb || "get").toUpperCase();
    if (verb === "GET") return;
    var token = csrfToken();
    if (token) event.detail.headers["X-CSRF-Token"] = token;
  });

  // (b) Log follower ----------------------------------------------------------

  var POLL_MS = 1000;
  var MAX_BACKOFF_MS = 10000;

  function setStatus(text, state) {
    var status = document.getElementById("follow-status");
    if (!status) return;
    status.textContent = text;
    status.className = "follow-status " + state;
  }

  // "2026-01-02T03:04:05.678Z" -> "03:04:05"; the full value goes in the tooltip.
  // With a zone (the log's data-tz, the DAG's zone the page is in), the time
  // of day there, as the server writes the lines it renders.
  function shortTime(ts, zone) {
    if (zone && ts && window.Intl) {
      try {
        return new Intl.DateTimeFormat("en-GB", {
          timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
        }).format(new Date(ts));
      } catch (e) { /* an unknown zone: UTC below */ }
    }
    var match = /T(\d\d:\d\d:\d\d)/.exec(ts || "");
    return match ? match[1] : String(ts || "");
  }

  function lineElement(line, zone) {
    var el = document.createElement("span");
    var stream = line.stream === "stderr" || line.stream === "system" ? line.stream : "stdout";
    el.className = "line " + stream;
    if (line.seq != null) el.setAttribute("data-seq", String(line.seq));
    if (line.ts) {
      var ts = document.createElement("span");
      ts.className = "ts";
      ts.title = line.ts;
      ts.textContent = shortTime(line.ts, zone);
      el.appendChild(ts);
    }
    el.appendChild(document.createTextNode(line.text == null ? "" : String(line.text)));
    return el;
  }

  // Whether the log's own scroll box (or, if it has none, the page) is at its end.
  function scroller(pre) {
    var overflow = window.getComputedStyle(pre).overflowY;
    return overflow === "auto" || overflow === "scroll" ? pre : document.scrollingElement;
  }

  function isAtBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  }

  function follow(pre) {
    if (pre.getAttribute("data-following")) return;
    pre.setAttribute("data-following", "1");
    var url = pre.getAttribute("data-follow-url");
    var lastSeq = Number(pre.getAttribute("data-after")) || 0;
    var failures = 0;
    setStatus("following…", "following");

    function schedule(delay) {
      window.setTimeout(poll, delay);
    }

    function poll() {
      if (!pre.isConnected) return; // replaced by a swap: stop quietly
      if (document.hidden) return schedule(POLL_MS); // no requests from a background tab
      var sep = url.indexOf("?") === -1 ? "?" : "&";
      fetch(url + sep + "after=" + encodeURIComponent(lastSeq), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          failures = 0;
          var lines = (data && data.lines) || [];
          if (lines.length) {
            var box = scroller(pre);
            var stick = isAtBottom(box);
            var batch = document.createDocumentFragment();
            lines.forEach(function (line) {
              if (typeof line.seq === "number" && line.seq > lastSeq) lastSeq = line.seq;
              batch.appendChild(lineElement(line, pre.getAttribute("data-tz")));
            });
            pre.appendChild(batch);
            pre.setAttribute("data-after", String(lastSeq));
            if (stick) box.scrollTop = box.scrollHeight;
          }
          if (data && data.finished) {
            setStatus("finished", "finished");
          } else {
            setStatus("following…", "following");
            schedule(POLL_MS);
          }
        })
        .catch(function () {
          failures += 1;
          setStatus("reconnecting…", "error");
          schedule(Math.min(POLL_MS * Math.pow(2, failures), MAX_BACKOFF_MS));
        });
    }

    var box = scroller(pre);
    box.scrollTop = box.scrollHeight;
    poll();
  }

  function startFollowers(root) {
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches("pre.log[data-follow-url]")) follow(root);
    root.querySelectorAll("pre.log[data-follow-url]").forEach(follow);
  }

  // (c) Confirmations ---------------------------------------------------------

  // Capture phase on the document, so a refusal stops the event before htmx (or
  // the browser) acts on it. A submit button's own data-confirm wins.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var button = event.submitter;
      var message =
        (button && button.getAttribute("data-confirm")) ||
        (form && form.getAttribute && form.getAttribute("data-confirm"));
      if (message && !window.confirm(message)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  // (d) Auto-submitting selects -------------------------------------------------

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el && el.matches && el.matches("select[data-autosubmit]") && el.form) {
      if (el.form.requestSubmit) el.form.requestSubmit();
      else el.form.submit();
    }
  });

  // (e) Expired sessions ----------------------------------------------------------

  // A poll after the session ended is redirected to the login page: rather than
  // swap that page into a fragment, load it whole (it brings the user back here).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail && event.detail.xhr;
    var url = (xhr && xhr.responseURL) || "";
    if (url && new URL(url, window.location.href).pathname === "/login") {
      event.detail.shouldSwap = false;
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    }
  });

  // (f) Secret fields -------------------------------------------------------------

  // A value typed blind while it is to be secret, in clear otherwise.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box || box.type !== "checkbox" || !box.id) return;
    var inputs = document.querySelectorAll("input[data-masked-by]");
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i].getAttribute("data-masked-by") === box.id) {
        inputs[i].type = box.checked ? "password" : "text";
      }
    }
  });

  // Start-up --------------------------------------------------------------------

  document.addEventListener("htmx:load", function (event) {
    startFollowers(event.detail && event.detail.elt);
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      startFollowers(document);
    });
  } else {
    startFollowers(document);
  }
})();
