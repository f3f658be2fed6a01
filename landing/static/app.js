// Reports CTA clicks, clicks on [data-track] elements and signups to this page's own origin; the page
// itself is rendered on the server.
(function () {
  "use strict";

  function newId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
    });
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      keepalive: true,
      body: JSON.stringify(body),
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    // A QA preview (?force_variant=experiment:variant,...) sends the previewed variants with every
    // event of this page: they are recorded under them, marked forced (left out of stats).
    var forced = document.body.getAttribute("data-forced-variant");
    function withForced(body) {
      if (forced) body.forced_variant = forced;
      return body;
    }

    var cta = document.getElementById("cta");
    if (cta) {
      cta.addEventListener("click", function () {
        post("/track", withForced({ event_type: "cta_click", event_id: newId() })).catch(function () {});
      });
    }

    // Any element with data-track="<event type>" (and optionally data-track-value="<number>")
    // reports its clicks as that event type; one listener on the document also sees elements added later.
    document.addEventListener("click", function (event) {
      var target = event.target instanceof Element ? event.target.closest("[data-track]") : null;
      if (!target) return;
      var body = { event_type: target.getAttribute("data-track"), event_id: newId() };
      var value = parseFloat(target.getAttribute("data-track-value"));
      if (isFinite(value)) body.value = value;
      post("/track", withForced(body)).catch(function () {});
    });

    var form = document.getElementById("signup-form");
    if (!form) return;
    var feedback = document.getElementById("form-feedback");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button");
      var input = form.querySelector("input[name=email]");
      var email = input.value;
      button.disabled = true;
      feedback.className = "feedback";
      feedback.textContent = "Sending…";
      post("/signup", withForced({ email: email, event_id: newId() }))
        .then(function (response) {
          return response.json().then(function (body) { return { ok: response.ok, body: body }; });
        })
        .then(function (result) {
          feedback.className = "feedback " + (result.ok ? "success" : "error");
          feedback.textContent = result.body.message || (result.ok ? "Thanks!" : "Something went wrong.");
          // The typed address stays in the field to be corrected; the field says it was refused.
          var refused = !result.ok && (result.body.errors || []).some(function (e) { return e.field === "email"; });
          if (refused) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
          if (result.ok) form.reset();
        })
        .catch(function () {
          feedback.className = "feedback error";
          feedback.textContent = "Could not reach the server. Please try again.";
        })
        .finally(function () { button.disabled = false; });
    });
  });
})();
