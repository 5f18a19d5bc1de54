// 标签规则页：输入示例消息（或修改规则）时，按表单中未保存的规则实时试一条消息（POST /console/rules/try，
// 控制台会话 + CSRF 鉴权）；“添加规则”复制空白规则。No inline script (CSP 'self'); all text goes in via textContent.
(function () {
  "use strict";
  var form = document.getElementById("rules-form");
  var sample = document.getElementById("rule-sample");
  var out = document.getElementById("rule-try-result");
  var add = document.getElementById("rules-add");
  var count = document.getElementById("rules-count");
  if (!form || !sample || !out) { return; }
  var endpoint = sample.getAttribute("data-endpoint");
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

  function showResults(results) {
    if (!results.length) { show([el("p", "hint", "没有规则的关键词出现在这条消息里。")]); return; }
    show(results.map(function (r) {
      var box = el("div", "result");
      box.setAttribute("data-tag", r.tag);
      var head = el("p");
      head.appendChild(el("strong", "", r.tag));
      head.appendChild(document.createTextNode("（" + r.group + "）得分 " + r.score + " / 阈值 " + r.threshold + " · "));
      head.appendChild(el("span", r.fires ? "fires" : "quiet", r.fires ? "会打上" : "单条消息不够阈值"));
      box.appendChild(head);
      var list = el("ul");
      r.reasons.forEach(function (why) { list.appendChild(el("li", "", why)); });
      box.appendChild(list);
      return box;
    }));
  }

  function showError(body, status) {
    var err = body && body.error ? body.error : { message: "试运行失败（" + status + "）" };
    var nodes = [el("p", "flash flash-err", err.message)];
    var problems = err.details && err.details.problems ? err.details.problems : [];
    if (problems.length) {
      var list = el("ul");
      problems.forEach(function (p) {
        list.appendChild(el("li", "", [p.rule, p.field, p.message].filter(Boolean).join(" · ")));
      });
      nodes.push(list);
    }
    show(nodes);
  }

  function tryNow() {
    if (!sample.value.trim()) { show([el("p", "hint", "输入一条客户消息试试。")]); return; }
    var mine = ++seq;
    fetch(endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json" },
      body: new FormData(form)
    }).then(function (resp) {
      return resp.json().then(function (body) { return { status: resp.status, body: body }; });
    }).then(function (r) {
      if (mine !== seq) { return; }  // a newer keystroke already asked
      if (r.status === 200) { showResults(r.body.results || []); return; }
      showError(r.body, r.status);
    }).catch(function () {
      if (mine === seq) { show([el("p", "flash flash-err", "网络错误，稍后再试")]); }
    });
  }

  function later() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(tryNow, 250);
  }

  sample.addEventListener("input", later);
  form.addEventListener("input", function () { if (sample.value.trim()) { later(); } });
  if (sample.value.trim()) { tryNow(); }

  if (add && count) {
    add.hidden = false;
    add.addEventListener("click", function () {
      var blank = form.querySelector("fieldset.rule-new");
      if (!blank) { return; }
      var n = parseInt(count.value, 10);
      var copy = blank.cloneNode(true);
      var from = "r" + blank.getAttribute("data-index") + ".";
      copy.setAttribute("data-index", String(n));
      copy.querySelectorAll("[name]").forEach(function (field) {
        field.name = "r" + n + "." + field.name.slice(from.length);
        if (field.tagName === "TEXTAREA" || (field.type !== "hidden" && field.name.indexOf(".weight") < 0 &&
            field.name.indexOf("threshold") < 0 && field.name.indexOf("half_life") < 0)) { field.value = ""; }
      });
      blank.parentNode.insertBefore(copy, blank.nextSibling);
      count.value = String(n + 1);
      var first = copy.querySelector("input:not([type=hidden])");
      if (first) { first.focus(); }
    });
  }
}());
