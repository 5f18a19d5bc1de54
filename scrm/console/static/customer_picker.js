// The console's customer picker (macros.html customer_picker): an <input data-customer-picker="/console/customers/pick">
// gets a list of matching customers under it as staff type (name, remark, phone, #id, external_userid). Picking one
// writes "name #id" into the field; the server reads the #id. Without this script the field is a plain text field.
(function () {
  "use strict";

  function setup(input) {
    if (input.getAttribute("data-picker-ready")) return;
    input.setAttribute("data-picker-ready", "1");
    var endpoint = input.getAttribute("data-customer-picker");
    var list = document.createElement("ul");
    list.className = "picker-list";
    list.id = input.id + "-choices";
    list.setAttribute("role", "listbox");
    list.hidden = true;
    input.parentNode.insertBefore(list, input.nextSibling);
    var timer = null;
    var asked = 0;

    function close() {
      list.hidden = true;
      list.textContent = "";
      input.setAttribute("aria-expanded", "false");
    }

    function choose(item) {
      input.value = item.value;
      close();
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }

    function show(items) {
      list.textContent = "";
      items.forEach(function (item) {
        var li = document.createElement("li");
        var button = document.createElement("button");
        button.type = "button";
        button.className = "picker-choice";
        button.setAttribute("role", "option");
        button.textContent = item.label;
        button.addEventListener("mousedown", function (e) { e.preventDefault(); });  // keep focus: no blur-close first
        button.addEventListener("click", function () { choose(item); });
        li.appendChild(button);
        list.appendChild(li);
      });
      if (!items.length) {
        var empty = document.createElement("li");
        empty.className = "picker-empty";
        empty.textContent = "没有匹配的客户（也可直接填写 #编号 或 external_userid）";
        list.appendChild(empty);
      }
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }

    function search() {
      var q = input.value.trim();
      if (!q) { close(); return; }
      var mine = ++asked;
      fetch(endpoint + "?q=" + encodeURIComponent(q), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { items: [] }; })
        .then(function (data) { if (mine === asked) show(data.items || []); })
        .catch(close);  // offline or signed out: the typed value still posts
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(search, 200);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Escape") close();
      if (e.key === "ArrowDown" && !list.hidden) {
        var first = list.querySelector("button");
        if (first) { e.preventDefault(); first.focus(); }
      }
    });
    list.addEventListener("keydown", function (e) {
      var buttons = Array.prototype.slice.call(list.querySelectorAll("button"));
      var at = buttons.indexOf(document.activeElement);
      if (e.key === "ArrowDown" && at < buttons.length - 1) { e.preventDefault(); buttons[at + 1].focus(); }
      if (e.key === "ArrowUp") { e.preventDefault(); (at > 0 ? buttons[at - 1] : input).focus(); }
      if (e.key === "Escape") { close(); input.focus(); }
    });
    input.addEventListener("blur", function () { setTimeout(function () { if (!list.contains(document.activeElement)) close(); }, 150); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("input[data-customer-picker]"), setup);
})();
