// hardcap dashboard script: live overview and a copy button. Hand-written,
// no third-party code, loaded from the dashboard itself (CSP default-src
// 'self'). The pages work without it; it only keeps the overview current.
(function () {
  "use strict";

  var POLL_MS = 2000;

  // replaceInner swaps an element's content for server-rendered HTML (the
  // same templates as the page, escaped by html/template).
  function replaceInner(id, html) {
    var el = document.getElementById(id);
    if (el && typeof html === "string") {
      el.innerHTML = html;
    }
  }

  function replaceOuter(id, html) {
    var el = document.getElementById(id);
    if (el && typeof html === "string") {
      el.outerHTML = html;
    }
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el && text !== undefined && text !== null) {
      el.textContent = String(text);
    }
  }

  function startLive(budgets) {
    var url = budgets.getAttribute("data-live");
    var busy = false;
    var stopped = false;
    var timer = null;

    function note(text) {
      var el = document.getElementById("live-note");
      if (!el) {
        el = document.createElement("p");
        el.id = "live-note";
        el.className = "error";
        budgets.parentNode.insertBefore(el, budgets);
      }
      el.textContent = text;
    }

    function clearNote() {
      var el = document.getElementById("live-note");
      if (el) {
        el.parentNode.removeChild(el);
      }
    }

    function poll() {
      if (busy || stopped || document.hidden) {
        return;
      }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (res) {
          var type = res.headers.get("Content-Type") || "";
          if (res.redirected || type.indexOf("application/json") !== 0) {
            // The session ended: the answer is the login page.
            stopped = true;
            clearInterval(timer);
            note("Your session has ended; reload the page to log in again.");
            return null;
          }
          if (!res.ok) {
            throw new Error("status " + res.status);
          }
          return res.json();
        })
        .then(function (live) {
          if (!live) {
            return;
          }
          clearNote();
          replaceInner("budgets", live.budgets_html);
          replaceOuter("spend-chart", live.chart_html);
          replaceInner("recent-alerts", live.alerts_html);
          setText("open-reservations", live.open_reservations);
          setText("in-flight", live.in_flight);
          setText("updated", live.time);
        })
        .catch(function () {
          note("The overview could not be updated; retrying.");
        })
        .then(function () {
          busy = false;
        });
    }

    timer = setInterval(poll, POLL_MS);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) {
        poll();
      }
    });
  }

  // A copy button for a once-shown secret, where the browser allows it.
  function startCopy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target || !navigator.clipboard || !window.isSecureContext) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent).then(function () {
        button.textContent = "Copied";
      }, function () {
        button.textContent = "Copy failed: select the text";
      });
    });
  }

  function start() {
    var budgets = document.getElementById("budgets");
    if (budgets && budgets.getAttribute("data-live") && window.fetch) {
      startLive(budgets);
    }
    var buttons = document.querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      startCopy(buttons[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
