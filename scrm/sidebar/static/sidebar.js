/* The WeCom sidebar page. Flow: who am I (session, CSRF token) → JS-SDK signature → wx.agentConfig →
 * wx.invoke("getContext") → getCurExternalContact / getCurExternalChat → the customer 360 or the group view.
 * Everything from the server is put on the page with textContent, never as HTML. */
(function () {
  "use strict";

  var JS_API_LIST = ["getContext", "getCurExternalContact", "getCurExternalChat", "sendChatMessage"];
  var RELOGIN_KEY = "scrm-sidebar-relogin";
  var state = { csrf: "", sandbox: false, externalUserid: "", applied: {}, requestId: "" };

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function yuan(fen) {
    var sign = fen < 0 ? "-" : "";
    fen = Math.abs(fen);
    return sign + "¥" + Math.floor(fen / 100) + "." + String(fen % 100).padStart(2, "0");
  }

  function when(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    return d.toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hour12: false });
  }

  function setStatus(text, isError) {
    var box = $("status");
    box.textContent = text || "";
    box.className = "status" + (isError ? " err" : "");
  }

  function setMessage(id, text, isError) {
    var box = $(id);
    box.textContent = text || "";
    box.className = "msg" + (isError ? " err" : "");
  }

  function randomId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function ApiFailure(status, message) { this.status = status; this.message = message; }

  function request(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      headers["X-CSRF-Token"] = state.csrf;
    }
    return fetch(path, {
      method: method, headers: headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (resp.ok) return data;
        var message = (data && data.error && data.error.message) || ("请求失败（" + resp.status + "）");
        if (resp.status === 401) relogin();
        throw new ApiFailure(resp.status, message);
      });
    });
  }

  function relogin() {
    // The session ran out: reloading sends the browser through WeCom sign-in again (once, never in a loop).
    if (window.sessionStorage.getItem(RELOGIN_KEY)) return;
    window.sessionStorage.setItem(RELOGIN_KEY, "1");
    window.location.reload();
  }

  function failed(err) { return err instanceof ApiFailure ? err.message : "网络异常，请稍后重试"; }

  // ---- the JS-SDK ----------------------------------------------------------------------------------------
  function invoke(name, args) {
    return new Promise(function (resolve, reject) {
      window.wx.invoke(name, args || {}, function (res) {
        if (res && res.err_msg === name + ":ok") resolve(res);
        else reject(new Error((res && res.err_msg) || name + ":fail"));
      });
    });
  }

  function agentConfig(sig) {
    return new Promise(function (resolve, reject) {
      window.wx.agentConfig({
        corpid: sig.corpid, agentid: sig.agentid, timestamp: sig.timestamp, nonceStr: sig.nonceStr,
        signature: sig.signature, jsApiList: JS_API_LIST,
        success: resolve,
        fail: function (res) { reject(new Error((res && res.errMsg) || "agentConfig:fail")); }
      });
    });
  }

  function boot() {
    if (!window.wx || typeof window.wx.agentConfig !== "function") {
      setStatus("未能加载企业微信 JS-SDK，请在企业微信中打开侧边栏。", true);
      return;
    }
    request("GET", "/sidebar/api/me").then(function (me) {
      window.sessionStorage.removeItem(RELOGIN_KEY);
      state.csrf = me.csrf_token;
      state.sandbox = !!me.sandbox;
      $("me").textContent = me.name + (me.sandbox ? "（沙箱）" : "");
      var url = window.location.href.split("#")[0];
      return request("GET", "/sidebar/api/jsapi-signature?url=" + encodeURIComponent(url));
    }).then(agentConfig).then(function () {
      return invoke("getContext");
    }).then(function (ctx) {
      if (ctx.entry === "single_chat_tools" || ctx.entry === "contact_profile") {
        return invoke("getCurExternalContact").then(function (res) { return showCustomer(res.userId); });
      }
      if (ctx.entry === "group_chat_tools") {
        return invoke("getCurExternalChat").then(function (res) { return showGroup(res.chatId); });
      }
      // Opened from the workbench (not from a chat): the member's day.
      return showHome();
    }).catch(function (err) {
      setStatus(err instanceof ApiFailure ? err.message : "企业微信接口调用失败：" + err.message, true);
    });
  }

  // ---- my day (我的一天) ---------------------------------------------------------------------------------------
  function showHome() {
    setStatus("正在加载我的一天…");
    return loadHome().then(function () {
      setStatus("");
      $("customer-view").hidden = true;
      $("group-view").hidden = true;
      $("home-view").hidden = false;
      $("home-button").hidden = true;
      $("back-button").hidden = !state.externalUserid;
    }).catch(function (err) { setStatus(failed(err), true); });
  }

  function backToCustomer() {
    $("home-view").hidden = true;
    $("customer-view").hidden = false;
    $("home-button").hidden = false;
    $("back-button").hidden = true;
  }

  function item(list, title, sub, body) {
    var li = el("li");
    var head = el("div", "head");
    head.appendChild(el("span", "", title));
    if (sub) head.appendChild(el("span", "sub", sub));
    li.appendChild(head);
    if (body) li.appendChild(el("div", "body sub", body));
    list.appendChild(li);
    return li;
  }

  function count(id, n) { $(id).textContent = n ? String(n) : ""; }

  function loadHome() {
    return request("GET", "/sidebar/api/home").then(function (data) {
      $("home-title").textContent = "我的一天 · " + data.today;
      var follows = $("home-follow-ups");
      clear(follows);
      data.follow_ups.forEach(function (f) {
        var what = f.about === "lead" ? "线索" : "客户";
        var due = f.overdue_days > 0 ? "已逾期 " + f.overdue_days + " 天" : "今天";
        var li = item(follows, (f.subject || what) + "（" + what + "）", due, "上次" + f.kind_zh + "：" + f.body);
        var done = el("button", "link", "完成");
        done.type = "button";
        done.addEventListener("click", function () { completeFollowUp(f.id, done); });
        li.appendChild(done);
      });
      if (!data.follow_ups.length) follows.appendChild(el("li", "empty", "今天没有约定的跟进"));
      count("home-follow-count", data.follow_ups.length);

      var alerts = $("home-alerts");
      clear(alerts);
      data.repurchase.forEach(function (a) {
        var title = (a.kind === "at_risk" ? "【流失预警】" : "【复购提醒】") + (a.customer_name || "客户") + " · " + a.product_name;
        item(alerts, title, a.kind === "at_risk" ? "上次 " + a.last_purchase_on : "预计 " + a.due_on,
          "通常每 " + a.interval_days + " 天买一次，上次购买 " + a.last_purchase_on);
      });
      if (!data.repurchase.length) alerts.appendChild(el("li", "empty", "暂无提醒"));
      count("home-alert-count", data.repurchase.length);

      var leads = $("home-leads");
      clear(leads);
      data.leads.forEach(function (l) {
        item(leads, l.label + (l.corp_name && l.corp_name !== l.label ? "（" + l.corp_name + "）" : ""), l.source_zh + " · " + when(l.created_at), l.remark);
      });
      if (!data.leads.length) leads.appendChild(el("li", "empty", "没有待联系的新线索"));
      count("home-lead-count", data.leads_total);

      var invoices = $("home-invoices");
      clear(invoices);
      data.overdue_invoices.forEach(function (i) {
        item(invoices, (i.customer_name || "客户") + " · " + i.number, "逾期 " + i.days_overdue + " 天",
          "订单 " + i.order_number + "，未付 " + yuan(i.balance_fen) + "，到期 " + i.due_on);
      });
      if (!data.overdue_invoices.length) invoices.appendChild(el("li", "empty", "没有逾期账单"));
      count("home-invoice-count", data.overdue_invoices.length);
    });
  }

  function completeFollowUp(id, button) {
    button.disabled = true;
    request("POST", "/sidebar/api/follow-ups/" + id + "/done", {}).then(function () {
      setMessage("home-message", "已标为完成");
      return loadHome();
    }).catch(function (err) { setMessage("home-message", failed(err), true); button.disabled = false; });
  }

  // ---- the customer 360 ------------------------------------------------------------------------------------
  function showCustomer(externalUserid) {
    state.externalUserid = externalUserid;
    state.requestId = randomId();
    setStatus("正在加载客户…");
    return Promise.all([
      loadCustomer(), loadTagChoices(), loadProducts(), loadCouponTemplates(), loadReferralCampaigns(), loadFollowUps(), loadSales()
    ]).then(function () {
      setStatus("");
      $("customer-view").hidden = false;
      $("home-button").hidden = false;
    }).catch(function (err) { setStatus(failed(err), true); });
  }

  function loadFollowUps() {
    return request("GET", customerPath("/follow-ups")).then(function (data) {
      var kind = $("follow-kind");
      if (!kind.options.length) {
        Object.keys(data.kinds).forEach(function (k) {
          var o = el("option", "", data.kinds[k]);
          o.value = k;
          kind.appendChild(o);
        });
      }
      var list = $("follow-list");
      clear(list);
      data.follow_ups.forEach(function (f) {
        var next = f.next_contact_on ? "下次联系 " + f.next_contact_on + (f.next_done_at ? "（已完成）" : "") : "";
        item(list, f.kind_zh + " · " + f.author, when(f.created_at), f.body + (next ? "\n" + next : ""));
      });
      if (!data.follow_ups.length) list.appendChild(el("li", "empty", "还没有跟进记录"));
    });
  }

  function addFollowUp(event) {
    event.preventDefault();
    var body = $("follow-body").value.trim();
    if (!body) { setMessage("follow-message", "请写下跟进内容", true); return; }
    var button = $("add-follow-button");
    button.disabled = true;
    var payload = { kind: $("follow-kind").value, body: body, next_contact_on: $("follow-next").value || null };
    request("POST", customerPath("/follow-ups"), payload).then(function (data) {
      $("follow-body").value = "";
      $("follow-next").value = "";
      var f = data.follow_up;
      setMessage("follow-message", "跟进已保存" + (f.next_contact_on ? "，" + f.next_contact_on + " 会提醒您联系" : ""));
      return Promise.all([loadFollowUps(), loadCustomer()]);
    }).catch(function (err) { setMessage("follow-message", failed(err), true); })
      .then(function () { button.disabled = false; });
  }

  function customerPath(suffix) {
    return "/sidebar/api/customers/" + encodeURIComponent(state.externalUserid) + (suffix || "");
  }

  function loadCustomer() {
    return request("GET", customerPath()).then(renderCustomer);
  }

  function field(list, label, value) {
    if (value === undefined || value === null || value === "") return;
    list.appendChild(el("dt", "", label));
    list.appendChild(el("dd", "", value));
  }

  function renderCustomer(data) {
    var c = data.customer;
    $("customer-name").textContent = c.name || "未命名客户";
    $("customer-remark").textContent = c.remark ? "备注名：" + c.remark : "";
    $("customer-meta").textContent = [c.gender ? c.gender_zh : "", c.corp_name].filter(Boolean).join(" · ");
    var avatar = $("customer-avatar");
    if (c.avatar && /^https?:\/\//.test(c.avatar)) { avatar.src = c.avatar; avatar.hidden = false; } else { avatar.hidden = true; }

    var fields = $("profile-fields");
    clear(fields);
    field(fields, "来源渠道", c.channel);
    field(fields, "添加方式", c.add_way_zh);
    field(fields, "添加时间", when(c.follow_since));
    field(fields, "关系", c.follow_status === "half" ? "待对方通过" : "正常");
    field(fields, "描述", c.description);
    field(fields, "所在群", (data.groups || []).map(function (g) { return g.name; }).join("、"));

    renderTags(data.tags);
    $("segment").textContent = data.segment ? data.segment : "暂无（每日计算后显示）";
    $("rfm").textContent = data.rfm ? `${data.rfm.segment}（R${data.rfm.r} F${data.rfm.f} M${data.rfm.m}）` : "暂无";
    $("open-orders").textContent = yuan(data.open_orders_fen);
    $("balance-due").textContent = data.balance_due_fen === null ? "暂未开通" : yuan(data.balance_due_fen);
    renderOrders(data.orders);
    renderTimeline(data.timeline);
    renderNotes(data.notes);
  }

  function renderTags(tags) {
    var list = $("tag-list");
    clear(list);
    state.applied = {};
    tags.forEach(function (t) {
      state.applied[t.tag_id] = true;
      var li = el("li", "tag");
      li.dataset.tagId = String(t.tag_id);
      li.appendChild(el("span", "chip", t.name));
      li.appendChild(el("span", "why", t.why));
      var remove = el("button", "", "×");
      remove.type = "button";
      remove.title = "移除标签“" + t.name + "”";
      remove.setAttribute("aria-label", remove.title);
      remove.addEventListener("click", function () { changeTag(t.tag_id, "remove", remove); });
      li.appendChild(remove);
      list.appendChild(li);
    });
    if (!tags.length) list.appendChild(el("li", "empty", "还没有标签"));
    filterTagChoices();
  }

  function loadTagChoices() {
    return request("GET", "/sidebar/api/tags").then(function (data) {
      var select = $("tag-select");
      clear(select);
      var groups = {};
      data.tags.forEach(function (t) {
        if (!groups[t.group]) { groups[t.group] = el("optgroup"); groups[t.group].label = t.group; select.appendChild(groups[t.group]); }
        var option = el("option", "", t.name);
        option.value = String(t.tag_id);
        groups[t.group].appendChild(option);
      });
      filterTagChoices();
    });
  }

  function filterTagChoices() {
    var select = $("tag-select");
    var firstFree = null;
    Array.prototype.forEach.call(select.querySelectorAll("option"), function (o) {
      o.hidden = o.disabled = !!state.applied[o.value];
      if (!o.disabled && firstFree === null) firstFree = o;
    });
    if (firstFree) select.value = firstFree.value;
    $("add-tag-button").disabled = firstFree === null;
  }

  function changeTag(tagId, op, button) {
    button.disabled = true;
    setMessage("tag-message", "");
    return request("POST", customerPath("/tags"), { tag_id: Number(tagId), op: op }).then(function () {
      setMessage("tag-message", op === "add" ? "已添加标签" : "已移除标签");
      return loadCustomer();
    }).catch(function (err) { setMessage("tag-message", failed(err), true); })
      .then(function () { button.disabled = false; filterTagChoices(); });
  }

  function renderOrders(orders) {
    var list = $("order-list");
    clear(list);
    orders.forEach(function (o) {
      var li = el("li");
      var head = el("div", "head");
      head.appendChild(el("span", "", o.number));
      head.appendChild(el("span", "badge", o.status_zh));
      li.appendChild(head);
      var lines = o.lines.map(function (ln) { return ln.name + " ×" + ln.qty + ln.unit; }).join("，");
      li.appendChild(el("div", "sub", lines));
      li.appendChild(el("div", "sub", "合计 " + yuan(o.total_fen) + " · " + when(o.created_at)));
      if (o.tracking_numbers.length) li.appendChild(el("div", "sub", "物流：" + o.tracking_numbers.join("；")));
      list.appendChild(li);
    });
    if (!orders.length) list.appendChild(el("li", "empty", "还没有订单"));
  }

  function renderTimeline(items) {
    var list = $("timeline");
    clear(list);
    items.forEach(function (e) {
      var li = el("li");
      var head = el("div", "head");
      head.appendChild(el("span", "", "【" + e.kind_zh + "】" + e.title));
      head.appendChild(el("span", "sub", when(e.at)));
      li.appendChild(head);
      if (e.body) li.appendChild(el("div", "body sub", e.body));
      list.appendChild(li);
    });
    if (!items.length) list.appendChild(el("li", "empty", "暂无动态"));
  }

  function renderNotes(notes) {
    var list = $("note-list");
    clear(list);
    notes.forEach(function (n) {
      var li = el("li");
      var head = el("div", "head");
      head.appendChild(el("span", "", n.author_name));
      head.appendChild(el("span", "sub", when(n.created_at)));
      li.appendChild(head);
      li.appendChild(el("div", "body", n.body));
      list.appendChild(li);
    });
  }

  function loadProducts() {
    return request("GET", "/sidebar/api/products").then(function (data) {
      var select = $("order-sku");
      clear(select);
      data.products.forEach(function (p) {
        var option = el("option", "", p.name + "（" + yuan(p.price_fen) + "/" + p.unit + "，可用 " + p.available + "）");
        option.value = p.sku;
        select.appendChild(option);
      });
      $("place-order-button").disabled = !data.products.length;
    });
  }

  function placeOrder(event) {
    event.preventDefault();
    var qty = Number($("order-qty").value);
    if (!Number.isInteger(qty) || qty < 1) { setMessage("order-message", "数量需为正整数", true); return; }
    var button = $("place-order-button");
    button.disabled = true;
    setMessage("order-message", "");
    request("POST", customerPath("/orders"), { items: [{ sku: $("order-sku").value, qty: qty }], request_id: state.requestId })
      .then(function (data) {
        var o = data.order;
        var short = o.lines.some(function (ln) { return ln.backordered_qty > 0; });
        setMessage("order-message", "已下单 " + o.number + "，合计 " + yuan(o.total_fen) + (short ? "，部分商品缺货待补" : ""));
        state.requestId = randomId();  // the next submit is a new order; a retry of this one is not
        return Promise.all([loadCustomer(), loadProducts()]);
      })
      .catch(function (err) { setMessage("order-message", failed(err), true); })
      .then(function () { button.disabled = false; });
  }

  function loadCouponTemplates() {
    return request("GET", "/sidebar/api/coupon-templates").then(function (data) {
      var select = $("coupon-template");
      clear(select);
      data.templates.forEach(function (t) {
        var option = el("option", "", t.name + "（" + t.label + "）");
        option.value = String(t.id);
        select.appendChild(option);
      });
      $("send-coupon-button").disabled = !data.templates.length;
      $("send-coupon-button").title = data.templates.length ? "" : "暂无可发的优惠券";
    });
  }

  function sendCoupon() {
    var button = $("send-coupon-button");
    button.disabled = true;
    request("POST", customerPath("/coupons"), { template_id: Number($("coupon-template").value), request_id: randomId() })
      .then(function (data) {
        setMessage("order-message", "已发券 " + data.coupon.name + "（券码 " + data.coupon.code + "）");
        return loadCustomer();
      })
      .catch(function (err) { setMessage("order-message", failed(err), true); })
      .then(function () { button.disabled = false; });
  }

  // ---- 邀请海报: the customer's own referral code, sent into this chat as a news card (JS-SDK sendChatMessage) ----
  function loadReferralCampaigns() {
    return request("GET", "/sidebar/api/referral-campaigns").then(function (data) {
      var select = $("referral-campaign");
      clear(select);
      data.campaigns.forEach(function (c) {
        var option = el("option", "", c.name + "（邀 " + c.goal + " 人）");
        option.value = String(c.id);
        select.appendChild(option);
      });
      $("send-referral-button").disabled = !data.campaigns.length;
      $("send-referral-button").title = data.campaigns.length ? "" : "暂无进行中的邀请活动";
      if (!data.campaigns.length) setMessage("referral-message", "暂无进行中的邀请活动");
    });
  }

  function sendReferralPoster() {
    var button = $("send-referral-button");
    button.disabled = true;
    setMessage("referral-message", "");
    request("POST", customerPath("/referral-invitation"), { campaign_id: Number($("referral-campaign").value) })
      .then(function (data) {
        var poster = $("referral-poster");
        poster.src = data.poster_url;
        poster.hidden = false;
        return invoke("sendChatMessage", {
          msgtype: "news",
          enterChat: false,
          news: { link: data.poster_url, title: data.title, desc: data.desc, imgUrl: data.poster_url }
        }).then(function () { setMessage("referral-message", "已把邀请海报发给客户"); });
      })
      .catch(function (err) {
        var cancelled = err && /cancel/.test(err.message || "");
        setMessage("referral-message", cancelled ? "已取消发送" : failed(err), !cancelled);
      })
      .then(function () { button.disabled = false; });
  }

  // ---- 商机与报价: this customer's opportunities and quotes; a quote's link goes into the chat as a news card ----
  function loadSales() {
    return request("GET", customerPath("/sales")).then(renderSales);
  }

  function renderSales(data) {
    var opps = $("opportunity-list");
    clear(opps);
    data.opportunities.forEach(function (o) {
      var li = el("li");
      var head = el("div", "head");
      head.appendChild(el("span", "", o.title));
      head.appendChild(el("span", "badge", o.stage_name));
      li.appendChild(head);
      li.appendChild(el("div", "sub", yuan(o.amount_fen) + " · " + o.probability + "% · 预计成交 " + (o.expected_close_on || "未定")));
      opps.appendChild(li);
    });
    if (!data.opportunities.length) opps.appendChild(el("li", "empty", "还没有商机"));
    var list = $("quote-list");
    clear(list);
    data.quotes.forEach(function (q) {
      var li = el("li");
      li.dataset.quoteId = String(q.id);
      var head = el("div", "head");
      head.appendChild(el("span", "", "报价单 " + q.number));
      head.appendChild(el("span", "badge", q.status_zh + (q.expired && q.status === "open" ? "（已过期）" : "")));
      li.appendChild(head);
      li.appendChild(el("div", "sub", "合计 " + yuan(q.total_fen) + " · 有效期至 " + q.valid_until + (q.order_number ? " · 订单 " + q.order_number : "")));
      var row = el("div", "row");
      if (q.sendable) {
        var send = el("button", "", "发送报价单");
        send.type = "button";
        send.addEventListener("click", function () { sendQuote(q.id, send); });
        row.appendChild(send);
      }
      if (q.acceptable) {
        var accept = el("button", "", "客户已确认，下单");
        accept.type = "button";
        accept.addEventListener("click", function () { acceptQuote(q.id, accept); });
        row.appendChild(accept);
      }
      if (row.firstChild) li.appendChild(row);
      list.appendChild(li);
    });
    if (!data.quotes.length) list.appendChild(el("li", "empty", "还没有报价单"));
  }

  function sendQuote(quoteId, button) {
    button.disabled = true;
    setMessage("sales-message", "");
    request("POST", customerPath("/quote-link"), { quote_id: quoteId })
      .then(function (data) {
        return invoke("sendChatMessage", {
          msgtype: "news",
          enterChat: false,
          news: { link: data.url, title: data.title, desc: data.desc, imgUrl: "" }
        }).then(function () { setMessage("sales-message", "已把报价单发给客户"); });
      })
      .catch(function (err) {
        var cancelled = err && /cancel/.test(err.message || "");
        setMessage("sales-message", cancelled ? "已取消发送" : failed(err), !cancelled);
      })
      .then(function () { button.disabled = false; });
  }

  function acceptQuote(quoteId, button) {
    button.disabled = true;
    setMessage("sales-message", "");
    request("POST", customerPath("/quote-acceptance"), { quote_id: quoteId })
      .then(function (data) {
        setMessage("sales-message", "已下单 " + data.order.number + "，合计 " + yuan(data.order.total_fen));
        return Promise.all([loadCustomer(), loadSales(), loadProducts()]);
      })
      .catch(function (err) { setMessage("sales-message", failed(err), true); })
      .then(function () { button.disabled = false; });
  }

  function addNote() {
    var box = $("note-input");
    var text = box.value.trim();
    if (!text) { setMessage("note-message", "请先写备注内容", true); return; }
    var button = $("add-note-button");
    button.disabled = true;
    request("POST", customerPath("/notes"), { body: text }).then(function () {
      box.value = "";
      setMessage("note-message", "备注已保存");
      return loadCustomer();
    }).catch(function (err) { setMessage("note-message", failed(err), true); })
      .then(function () { button.disabled = false; });
  }

  // ---- a customer group ------------------------------------------------------------------------------------
  function showGroup(chatId) {
    setStatus("正在加载客户群…");
    return request("GET", "/sidebar/api/groups/" + encodeURIComponent(chatId)).then(function (data) {
      var g = data.group;
      $("group-name").textContent = g.name || "未命名群聊";
      $("group-meta").textContent = "群主 " + g.owner_name + " · " + g.member_count + " 人" + (g.dismissed ? " · 已解散" : "");
      $("group-notice").textContent = g.notice ? "群公告：" + g.notice : "";
      var members = $("group-members");
      clear(members);
      data.members.forEach(function (m) {
        var li = el("li", "head");
        li.appendChild(el("span", "", m.name));
        li.appendChild(el("span", "badge", m.followed_by_me ? "我的客户" : (m.is_customer ? "客户" : "成员")));
        members.appendChild(li);
      });
      var activity = $("group-activity");
      clear(activity);
      data.activity.recent.forEach(function (a) {
        var li = el("li", "head");
        li.appendChild(el("span", "", a.name + " " + a.event_zh));
        li.appendChild(el("span", "sub", when(a.at)));
        activity.appendChild(li);
      });
      data.activity.days.forEach(function (d) {
        activity.appendChild(el("li", "sub", d.day + "：入群 " + d.joins + "，退群 " + d.leaves + "，消息 " + d.messages));
      });
      if (!activity.firstChild) activity.appendChild(el("li", "empty", "暂无动态"));
      setStatus("");
      $("group-view").hidden = false;
    }).catch(function (err) { setStatus(failed(err), true); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("add-tag-button").addEventListener("click", function () {
      var value = $("tag-select").value;
      if (value) changeTag(value, "add", $("add-tag-button"));
    });
    $("order-form").addEventListener("submit", placeOrder);
    $("send-coupon-button").addEventListener("click", sendCoupon);
    $("send-referral-button").addEventListener("click", sendReferralPoster);
    $("add-note-button").addEventListener("click", addNote);
    $("follow-form").addEventListener("submit", addFollowUp);
    $("home-button").addEventListener("click", showHome);
    $("back-button").addEventListener("click", backToCustomer);
    boot();
  });
})();
