// paperfeed community: upvote without a page reload. The vote forms work without this file.
(function () {
  "use strict";
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  function setState(form, data) {
    var box = form.closest(".votes");
    var btn = form.querySelector(".vote-btn");
    if (box) {
      var count = box.querySelector(".count");
      var label = box.querySelector(".votes-label");
      if (count) count.textContent = String(data.upvotes);
      if (label) label.textContent = data.upvotes === 1 ? "upvote" : "upvotes";
    }
    if (btn) {
      btn.classList.toggle("voted", data.upvoted);
      btn.setAttribute("aria-pressed", data.upvoted ? "true" : "false");
      btn.title = data.upvoted ? "Remove upvote" : "Upvote";
    }
  }
  function onSubmit(event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("vote-form")) return;
    if (!window.fetch) return; // old browser: the normal form post works
    event.preventDefault();
    var btn = form.querySelector(".vote-btn");
    if (btn) btn.disabled = true;
    var id = form.getAttribute("data-arxiv-id");
    fetch("/api/papers/" + id + "/upvote", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken(), Accept: "application/json" },
    })
      .then(function (response) {
        if (response.status === 401) {
          window.location.href = "/signin?next=" + encodeURIComponent(window.location.pathname);
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (data) setState(form, data);
      })
      .catch(function () {
        form.submit(); // fall back to the plain form post
      })
      .finally(function () {
        if (btn) btn.disabled = false;
      });
  }
  document.addEventListener("submit", onSubmit);
})();
