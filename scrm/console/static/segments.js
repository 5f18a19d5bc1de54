// 客群页：输入表达式时实时显示人数（GET /console/segments/preview，控制台会话鉴权）。
// No inline script (the page's CSP allows scripts from 'self' only); all text goes in through textContent.
(function () {
  "use strict";
  var box = document.getElementById("segment-expression");
  var out = document.getElementById("segment-preview");
  var saved = document.getElementById("segment-save-expression");
  if (!box || !out) { return; }
  var endpoint = box.getAttribute("data-preview");
  var timer = null;
  var seq = 0;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function show(nodes) {
    while (out.firstChild) { out.removeChild(out.firstChild); }
    nodes.forEach(function (n) { out.appendChild(n); });
  }

  function showCount(body) {
    var p = el("p", "kpi");
    p.appendChild(el("strong", "", String(body.count)));
    p.appendChild(document.createTextNode(" 位客户"));
    var names = (body.sample || []).map(function (s) { return ("#" + s.id + " " + (s.name || "")).trim(); });
    show([p, el("p", "hint", names.length ? "例如：" + names.join("、") : "")]);
  }

  function showError(text, message, column) {
    var code = el("code");
    var i = Math.max(0, (column || 1) - 1);
    code.appendChild(document.createTextNode(text.slice(0, i)));
    code.appendChild(el("mark", "", text.slice(i, i + 1) || " "));
    code.appendChild(document.createTextNode(text.slice(i + 1)));
    var where = el("p", "hint");
    where.appendChild(code);
    show([el("p", "flash flash-err", message), where]);
  }

  function check() {
    var text = box.value;
    if (saved) { saved.value = text; }
    if (!text.trim()) { show([el("span", "hint", "输入表达式后会实时显示人数。")]); return; }
    var mine = ++seq;
    fetch(endpoint + "?expression=" + encodeURIComponent(text), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (resp) {
      return resp.json().then(function (body) { return { status: resp.status, body: body }; });
    }).then(function (r) {
      if (mine !== seq) { return; }  // a newer keystroke already asked
      if (r.status === 200) { showCount(r.body); return; }
      var err = r.body && r.body.error ? r.body.error : { message: "预览失败（" + r.status + "）" };
      showError(text, err.message, err.details && err.details.column);
    }).catch(function () {
      if (mine === seq) { show([el("p", "flash flash-err", "网络错误，稍后再试")]); }
    });
  }

  box.addEventListener("input", function () {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(check, 300);
  });
  if (saved) { saved.value = box.value; }
})();
