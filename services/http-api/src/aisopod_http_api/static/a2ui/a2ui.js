// A2UI renderer: shows the surfaces an agent pushes into one session and sends the user's
// actions back to it. Served as a file so the page runs under a CSP without inline
// scripts; every node is built with DOM APIs (textContent, never innerHTML).
//
// URL: /a2ui/?session=<sessionKey>[#token=<bearer>] — a token in the fragment never
// reaches a server log; it is kept in sessionStorage and removed from the address bar.
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var sessionKey = params.get("session") || params.get("sessionKey") || "";
  var token = readToken();
  var surfaces = new Map();
  var root = document.getElementById("surfaces");
  var empty = document.getElementById("empty");
  var statusEl = document.getElementById("status");
  document.getElementById("session").textContent = sessionKey || "(no session)";

  function readToken() {
    var hash = new URLSearchParams(window.location.hash.slice(1));
    var fromHash = hash.get("token");
    if (fromHash) {
      sessionStorage.setItem("aisopod.a2ui.token", fromHash);
      history.replaceState(null, "", window.location.pathname + window.location.search);
      return fromHash;
    }
    return sessionStorage.getItem("aisopod.a2ui.token") || "";
  }

  function headers(json) {
    var h = {};
    if (token) h.Authorization = "Bearer " + token;
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  function setStatus(text, kind) {
    statusEl.textContent = text;
    statusEl.className = "status" + (kind ? " " + kind : "");
  }

  // --- rendering -----------------------------------------------------------------------
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function inline(parent, text) {
    var pattern = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*]+\*)|(\[[^\]]+\]\((https?:\/\/[^)\s]+)\))/;
    var rest = text;
    while (rest.length) {
      var match = pattern.exec(rest);
      if (!match) {
        parent.appendChild(document.createTextNode(rest));
        return;
      }
      if (match.index > 0) parent.appendChild(document.createTextNode(rest.slice(0, match.index)));
      var token = match[0];
      if (match[1]) parent.appendChild(el("code", "", token.slice(1, -1)));
      else if (match[2]) parent.appendChild(el("strong", "", token.slice(2, -2)));
      else if (match[3]) parent.appendChild(el("em", "", token.slice(1, -1)));
      else {
        var link = el("a", "", token.slice(1, token.indexOf("](")));
        link.href = match[5];
        link.rel = "noopener noreferrer";
        link.target = "_blank";
        parent.appendChild(link);
      }
      rest = rest.slice(match.index + token.length);
    }
  }

  function markdown(text) {
    var box = el("div", "markdown");
    String(text).split(/\n{2,}/).forEach(function (block) {
      var lines = block.split("\n");
      if (lines.every(function (l) { return /^\s*[-*] /.test(l); })) {
        var list = el("ul");
        lines.forEach(function (l) {
          var item = el("li");
          inline(item, l.replace(/^\s*[-*] /, ""));
          list.appendChild(item);
        });
        box.appendChild(list);
      } else {
        var p = el("p");
        inline(p, block);
        box.appendChild(p);
      }
    });
    return box;
  }

  function render(surfaceId, component) {
    switch (component.type) {
      case "text":
        return el("p", "", component.text);
      case "markdown":
        return markdown(component.markdown);
      case "button": {
        var button = el("button", component.style || "primary", component.label);
        button.type = "button";
        button.addEventListener("click", function () {
          act(surfaceId, component.id, component.action || "click", null, button);
        });
        return button;
      }
      case "textField": {
        var field = el("div", "field");
        var id = "f-" + surfaceId + "-" + component.id;
        if (component.label) {
          var label = el("label", "", component.label);
          label.htmlFor = id;
          field.appendChild(label);
        }
        var input = el(component.multiline ? "textarea" : "input");
        input.id = id;
        if (component.placeholder) input.placeholder = component.placeholder;
        if (component.value) input.value = component.value;
        var submit = el("button", "secondary", component.submitLabel || "Send");
        submit.type = "button";
        submit.addEventListener("click", function () {
          act(surfaceId, component.id, component.action || "submit", input.value, submit);
        });
        var row = el("div", "row");
        row.appendChild(input);
        row.appendChild(submit);
        field.appendChild(row);
        return field;
      }
      case "list": {
        var list = el(component.ordered ? "ol" : "ul");
        (component.items || []).forEach(function (child) {
          var item = el("li");
          item.appendChild(render(surfaceId, child));
          list.appendChild(item);
        });
        return list;
      }
      case "card": {
        var card = el("section", "card");
        if (component.title) card.appendChild(el("h3", "", component.title));
        (component.children || []).forEach(function (child) {
          card.appendChild(render(surfaceId, child));
        });
        return card;
      }
      case "image": {
        var img = el("img");
        img.src = component.src;
        img.alt = component.alt || "";
        return img;
      }
      default:
        return el("p", "error-text", "unknown component: " + component.type);
    }
  }

  function show(surface) {
    var box = el("section", "surface");
    box.dataset.surface = surface.surfaceId;
    if (surface.title) box.appendChild(el("h2", "", surface.title));
    (surface.components || []).forEach(function (component) {
      box.appendChild(render(surface.surfaceId, component));
    });
    var old = surfaces.get(surface.surfaceId);
    if (old) root.replaceChild(box, old);
    else root.appendChild(box);
    surfaces.set(surface.surfaceId, box);
    empty.hidden = surfaces.size > 0;
  }

  function remove(surfaceId) {
    var old = surfaces.get(surfaceId);
    if (old) old.remove();
    surfaces.delete(surfaceId);
    empty.hidden = surfaces.size > 0;
  }

  // --- actions -------------------------------------------------------------------------
  function act(surfaceId, componentId, action, value, button) {
    button.disabled = true;
    var body = { sessionKey: sessionKey, surfaceId: surfaceId, componentId: componentId, action: action };
    if (value !== null && value !== undefined) body.value = value;
    fetch("/a2ui/actions", { method: "POST", headers: headers(true), body: JSON.stringify(body) })
      .then(function (response) {
        if (!response.ok) throw new Error("action failed: " + response.status);
        setStatus("action sent", "ok");
      })
      .catch(function (err) {
        setStatus(err.message, "error");
      })
      .finally(function () {
        button.disabled = false;
      });
  }

  // --- events (fetch + stream reader: EventSource cannot send a bearer token) -----------
  function dispatch(block) {
    var name = "message";
    var data = [];
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) name = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
    });
    if (!data.length) return;
    var payload;
    try {
      payload = JSON.parse(data.join("\n"));
    } catch (err) {
      return;
    }
    if (name === "surface") show(payload);
    else if (name === "remove") remove(payload.surfaceId);
  }

  function connect(delay) {
    if (!sessionKey) {
      setStatus("add ?session=<sessionKey> to the URL", "error");
      return;
    }
    var url = "/a2ui/events?sessionKey=" + encodeURIComponent(sessionKey);
    fetch(url, { headers: headers(false), cache: "no-store" })
      .then(function (response) {
        if (!response.ok || !response.body) throw new Error("events: HTTP " + response.status);
        setStatus("live", "ok");
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function pump() {
          return reader.read().then(function (part) {
            if (part.done) throw new Error("events ended");
            buffer += decoder.decode(part.value, { stream: true }).replace(/\r\n/g, "\n");
            var end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              dispatch(buffer.slice(0, end));
              buffer = buffer.slice(end + 2);
            }
            delay = 500;
            return pump();
          });
        }
        return pump();
      })
      .catch(function (err) {
        setStatus(err.message + "; reconnecting", "error");
        setTimeout(function () {
          connect(Math.min(delay * 2, 10000));
        }, delay);
      });
  }

  connect(500);
})();
