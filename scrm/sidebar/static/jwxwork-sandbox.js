/* Sandbox stand-in for WeCom's JS-SDK (jweixin + jwxwork), served only in sandbox mode so the sidebar works in a
 * plain browser. It implements what the sidebar uses, with WeCom's callback shapes:
 *   wx.agentConfig({corpid, agentid, timestamp, nonceStr, signature, jsApiList, success, fail}) — the emulator checks
 *     the signature against its agent_config ticket, as WeCom does;
 *   wx.invoke("getContext" | "getCurExternalContact" | "getCurExternalChat", {}, callback);
 *   wx.invoke("sendChatMessage", {msgtype, ...}, callback) — in the chat the sidebar is opened in; the sandbox keeps
 *     what was sent in wx.sentMessages (the salesperson's "send" is always confirmed here).
 * The chat the sidebar is "opened in" comes from the page's query string: ?customer=<external_userid> (a 1:1 chat)
 * or ?chat=<chat_id> (a customer group). */
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var customer = params.get("customer") || "";
  var chat = params.get("chat") || "";
  var allowed = null;  // the jsApiList of a successful agentConfig
  var sent = [];  // sendChatMessage calls, in order

  function entry() {
    if (chat) return "group_chat_tools";
    if (customer) return "single_chat_tools";
    return "normal";
  }

  function agentConfig(cfg) {
    var body = {
      corpid: cfg.corpid, agentid: String(cfg.agentid), timestamp: cfg.timestamp, nonceStr: cfg.nonceStr,
      signature: cfg.signature, url: window.location.href.split("#")[0]
    };
    fetch("/sandbox/api/jssdk/agent-config", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
    }).then(function (resp) { return resp.json(); }).then(function (res) {
      if (res.ok) {
        allowed = (cfg.jsApiList || []).slice();
        if (cfg.success) cfg.success({ errMsg: "agentConfig:ok" });
      } else if (cfg.fail) {
        cfg.fail({ errMsg: "agentConfig:fail " + (res.reason || "") });
      }
    }).catch(function () { if (cfg.fail) cfg.fail({ errMsg: "agentConfig:fail network" }); });
  }

  function invoke(name, args, callback) {
    var res;
    if (allowed === null || allowed.indexOf(name) < 0) {
      res = { err_msg: name + ":no permission" };
    } else if (name === "getContext") {
      res = { err_msg: "getContext:ok", entry: entry(), shareTicket: "" };
    } else if (name === "getCurExternalContact" && entry() === "single_chat_tools") {
      res = { err_msg: "getCurExternalContact:ok", userId: customer };
    } else if (name === "getCurExternalChat" && entry() === "group_chat_tools") {
      res = { err_msg: "getCurExternalChat:ok", chatId: chat };
    } else if (name === "sendChatMessage" && entry() !== "normal" && args && args.msgtype) {
      sent.push({ to: chat || customer, message: args });
      res = { err_msg: "sendChatMessage:ok" };
    } else {
      res = { err_msg: name + ":fail" };
    }
    window.setTimeout(function () { callback(res); }, 0);
  }

  window.wx = { sandbox: true, agentConfig: agentConfig, invoke: invoke, sentMessages: sent };
})();
