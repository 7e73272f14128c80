// paperfeed: small progressive enhancement; every page works without it.
// Math rendering, copy buttons, upvotes via fetch, search-as-you-type, keyboard shortcuts.
(function () {
  "use strict";
  var SEARCH_DEBOUNCE_MS = 180; // fast typists send one request per pause, not per key
  var SEARCH_LIMIT = 8;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  // ---- Math (KaTeX, paper pages only) ----
  function renderMath() {
    if (!window.renderMathInElement) return;
    $$(".math").forEach(function (node) {
      window.renderMathInElement(node, {
        delimiters: [
          { left: "$$", right: "$$", display: true },
          { left: "\\[", right: "\\]", display: true },
          { left: "$", right: "$", display: false },
          { left: "\\(", right: "\\)", display: false },
        ],
        throwOnError: false,
      });
    });
  }

  // ---- Copy buttons ----
  function copyButtons() {
    $$("[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var target = $(btn.getAttribute("data-copy"));
        if (!target || !navigator.clipboard) return;
        navigator.clipboard.writeText(target.textContent).then(function () {
          var label = btn.textContent;
          btn.textContent = "Copied";
          setTimeout(function () { btn.textContent = label; }, 1500);
        });
      });
    });
  }

  // ---- Upvotes: the form posts without JS; with JS it toggles in place ----
  function csrfToken(form) {
    var field = form && form.elements.csrf_token;
    if (field && field.value) return field.value;
    var meta = $('meta[name="csrf-token"]');
    var token = meta ? meta.getAttribute("content") : "";
    if (field) field.value = token; // the server renders the session's token; this is a fallback
    return token;
  }
  function submitVote(form) {
    var btn = $("[data-vote]", form);
    if (!btn || btn.classList.contains("busy")) return;
    var count = $("[data-count]", form);
    btn.classList.add("busy");
    // The JSON API toggles the vote and answers {upvoted, upvotes}; the form's own action
    // (a redirecting POST) stays the fallback.
    fetch("/api/papers/" + form.getAttribute("data-arxiv-id") + "/upvote", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrfToken(form) },
    }).then(function (r) {
      if (r.status === 401) {
        window.location.href = "/signin?next=" + encodeURIComponent(window.location.pathname);
        return null;
      }
      if (!r.ok) throw new Error("vote failed: " + r.status);
      return r.json();
    }).then(function (data) {
      if (!data) return;
      count.textContent = String(data.upvotes);
      btn.classList.toggle("voted", !!data.upvoted);
      btn.setAttribute("aria-pressed", data.upvoted ? "true" : "false");
      btn.title = data.upvoted ? "Remove upvote" : "Upvote";
    }).catch(function () {
      form.submit(); // fall back to the plain POST, which always works
    }).finally(function () { btn.classList.remove("busy"); });
  }
  function votes() {
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      if (!form.classList || !form.classList.contains("vote-form") || !window.fetch) return;
      ev.preventDefault();
      submitVote(form);
    });
  }

  // ---- Search as you type ----
  function terms(q) {
    return q.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(function (t) { return t.length > 1; });
  }
  // Text with the query terms wrapped in <mark>, built from text nodes (never innerHTML).
  function highlighted(text, words, cls) {
    var out = el("span", cls);
    if (!words.length) { out.textContent = text; return out; }
    var esc = words.map(function (w) { return w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); });
    var re = new RegExp("(" + esc.join("|") + ")", "giu");
    var last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) out.appendChild(document.createTextNode(text.slice(last, m.index)));
      out.appendChild(el("mark", null, m[0]));
      last = re.lastIndex;
    }
    if (last < text.length) out.appendChild(document.createTextNode(text.slice(last)));
    return out;
  }
  // The server's snippet marks matches with <mark> (its stemmer knows "models" matched "model");
  // parse it inertly and rebuild only text and <mark> nodes.
  function snippetNode(html, words) {
    if (html.indexOf("<mark>") === -1) return highlighted(html, words, "r-snippet");
    var doc = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html");
    var out = el("span", "r-snippet");
    doc.body.firstChild.childNodes.forEach(function (n) {
      out.appendChild(n.nodeName === "MARK" ? el("mark", null, n.textContent) : document.createTextNode(n.textContent));
    });
    return out;
  }
  function liveSearch() {
    var form = $("form.search[data-live]");
    if (!form) return;
    var input = $("#q", form), box = $("#search-live", form);
    var endpoint = form.getAttribute("data-live");
    var timer = null, seq = 0, active = -1;
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", "search-live");

    function options() { return $$("li[role=option]", box); }
    function close() {
      box.hidden = true; active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }
    function select(i) {
      var opts = options();
      opts.forEach(function (o, j) { o.setAttribute("aria-selected", j === i ? "true" : "false"); });
      active = i;
      if (i >= 0 && opts[i]) {
        input.setAttribute("aria-activedescendant", opts[i].id);
        opts[i].scrollIntoView({ block: "nearest" });
      } else input.removeAttribute("aria-activedescendant");
    }
    function show(q, items) {
      var words = terms(q);
      box.textContent = "";
      if (!items.length) {
        box.appendChild(el("p", "r-empty", "No papers match “" + q + "”."));
      } else {
        var ul = el("ul");
        ul.setAttribute("role", "listbox");
        ul.setAttribute("aria-label", "Search results");
        items.slice(0, SEARCH_LIMIT).forEach(function (it, i) {
          var li = el("li");
          li.setAttribute("role", "option");
          li.id = "live-" + i;
          var a = el("a");
          a.href = "/papers/" + it.arxiv_id;
          a.tabIndex = -1;
          a.appendChild(highlighted(it.title || it.arxiv_id, words, "r-title"));
          var authors = (it.authors || []).slice(0, 3).join(", ") + ((it.authors || []).length > 3 ? " et al." : "");
          a.appendChild(el("span", "r-meta", [it.arxiv_id, authors].filter(Boolean).join(" · ")));
          var snip = it.snippet_html || it.snippet || "";
          if (snip) a.appendChild(snippetNode(snip, words));
          li.appendChild(a);
          ul.appendChild(li);
        });
        box.appendChild(ul);
      }
      var all = el("a", "r-all", "See all results for “" + q + "” →");
      all.href = form.action + "?q=" + encodeURIComponent(q);
      box.appendChild(all);
      box.hidden = false;
      input.setAttribute("aria-expanded", "true");
      select(-1);
    }
    function run() {
      var q = input.value.trim();
      if (q.length < 2) { close(); return; }
      var mine = ++seq;
      fetch(endpoint + "?limit=" + SEARCH_LIMIT + "&q=" + encodeURIComponent(q), { headers: { "Accept": "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (data) {
          if (mine !== seq) return; // a newer query is in flight or done
          var items = Array.isArray(data) ? data : (data.results || data.items || data.papers || []);
          show(q, items);
        })
        .catch(function () { if (mine === seq) close(); }); // the form still submits normally
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(run, SEARCH_DEBOUNCE_MS);
    });
    input.addEventListener("keydown", function (ev) {
      var n = options().length;
      if (ev.key === "ArrowDown" && !box.hidden && n) { ev.preventDefault(); select((active + 1) % n); }
      else if (ev.key === "ArrowUp" && !box.hidden && n) { ev.preventDefault(); select(active <= 0 ? n - 1 : active - 1); }
      else if (ev.key === "Enter" && active >= 0 && !box.hidden) {
        ev.preventDefault();
        window.location.href = $("a", options()[active]).href;
      } else if (ev.key === "Escape") {
        if (!box.hidden) close(); else input.blur();
      }
    });
    document.addEventListener("click", function (ev) { if (!form.contains(ev.target)) close(); });
    input.addEventListener("focus", function () { if (box.childNodes.length && input.value.trim().length > 1) { box.hidden = false; input.setAttribute("aria-expanded", "true"); } });
  }

  // ---- Keyboard: j/k move between cards, Enter opens, u upvotes, / searches ----
  function keyboard() {
    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      var t = ev.target;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      var cards = $$("article.card");
      // The card holding focus, else the one j/k last marked (focus may have gone to search).
      var current = (t && t.closest ? t.closest("article.card") : null) || $("article.card.is-current");
      var i = cards.indexOf(current);
      if (ev.key === "/") {
        var q = $("#q");
        if (q) { ev.preventDefault(); q.focus(); q.select(); }
      } else if ((ev.key === "j" || ev.key === "k") && cards.length) {
        ev.preventDefault();
        var next = ev.key === "j" ? Math.min(i + 1, cards.length - 1) : Math.max(i - 1, 0);
        if (i === -1) next = 0;
        cards.forEach(function (c) { c.classList.remove("is-current"); });
        cards[next].classList.add("is-current");
        var link = $("[data-card-link]", cards[next]);
        link.focus({ preventScroll: true });
        cards[next].scrollIntoView({ block: "nearest" });
      } else if (ev.key === "u") {
        var scope = current || $(".paper-actions");
        var form = scope ? $("form.vote-form", scope) : null;
        var signin = scope ? $("a.vote-btn", scope) : null;
        if (form) { ev.preventDefault(); submitVote(form); }
        else if (signin) { ev.preventDefault(); signin.click(); }
      }
    });
  }

  window.addEventListener("load", renderMath);
  document.addEventListener("DOMContentLoaded", function () {
    copyButtons();
    votes();
    liveSearch();
    keyboard();
  });
})();
