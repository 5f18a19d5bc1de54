"""Callbacks exactly as WeCom and the Official Account send them (docs/wecom.md §1, §3, §4, §7).

:class:`CallbackSimulator` signs and encrypts WeCom callbacks (URL verification GET, message POST);
:class:`MpSimulator` does the Official Account's plain and safe modes. The XML builders return the *decrypted*
XML, with CDATA where WeCom uses it, so tests and the sandbox can build any event and post it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from defusedxml.ElementTree import fromstring
from yarl import URL

from bots.gateway.wechatpy_crypto import MpPrpCrypto, WorkPrpCrypto
from bots.sandbox.entities import EventHook, KfHook, KfNotice
from config.settings import SANDBOX_AGENT_ID, SANDBOX_CORP_ID

Now = Callable[[], dt.datetime]


def _cdata(value: object) -> str:
    # "]]>" cannot appear inside one CDATA section: split it across two, as XML writers do.
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _element(name: str, value: object) -> str:
    """Numbers plain, strings in CDATA, lists as ``<Item>`` children (as WeCom writes MemChangeList); a dict is a
    nested element and a list of dicts repeats the element (as WeCom writes ApprovalInfo's SpRecord)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, dict):
        return f"<{name}>" + "".join(_element(k, v) for k, v in value.items()) + f"</{name}>"
    if isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
        return "".join(_element(name, v) for v in value)
    if isinstance(value, int):
        return f"<{name}>{value}</{name}>"
    if isinstance(value, list | tuple):
        return f"<{name}>" + "".join(f"<Item>{_cdata(v)}</Item>" for v in value) + f"</{name}>"
    return f"<{name}>{_cdata(value)}</{name}>"


def _xml(fields: Iterable[tuple[str, object]]) -> str:
    return "<xml>" + "".join(_element(k, v) for k, v in fields if v is not None) + "</xml>"


def _ts(create_time: int | None) -> int:
    return int(time.time()) if create_time is None else int(create_time)


def _signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324 - the protocol's choice


def _nonce() -> str:
    return str(secrets.randbelow(10**10))


# ---- WeCom XML builders (decrypted plaintext) ----------------------------------------------------------
def text_message(
    from_user: str,
    content: str,
    msg_id: int | None = None,
    agent_id: str = SANDBOX_AGENT_ID,
    create_time: int | None = None,
    *,
    corp_id: str = SANDBOX_CORP_ID,
) -> str:
    """A member's text message to the app."""
    return _xml(
        [
            ("ToUserName", corp_id),
            ("FromUserName", from_user),
            ("CreateTime", _ts(create_time)),
            ("MsgType", "text"),
            ("Content", content),
            ("MsgId", msg_id if msg_id is not None else secrets.randbelow(10**18)),
            ("AgentID", int(agent_id) if str(agent_id).isdecimal() else agent_id),
        ]
    )


def event(
    name: str,
    *,
    from_user: str = "sys",
    create_time: int | None = None,
    corp_id: str = SANDBOX_CORP_ID,
    **fields: object,
) -> str:
    """Any event: ``event("enter_agent", from_user="zhangsan", EventKey="", AgentID=1000002)``."""
    return _xml(
        [
            ("ToUserName", corp_id),
            ("FromUserName", from_user),
            ("CreateTime", _ts(create_time)),
            ("MsgType", "event"),
            ("Event", name),
            *fields.items(),
        ]
    )


def change_external_contact(
    change_type: str,
    user_id: str,
    external_userid: str,
    state: str | None = None,
    welcome_code: str | None = None,
    source: str | None = None,
    fail_reason: str | None = None,
    create_time: int | None = None,
    *,
    corp_id: str = SANDBOX_CORP_ID,
) -> str:
    """客户联系 change (doc 92130): add/edit/del customer, del_follow_user, transfer_fail."""
    return event(
        "change_external_contact",
        create_time=create_time,
        corp_id=corp_id,
        ChangeType=change_type,
        UserID=user_id,
        ExternalUserID=external_userid,
        State=state,
        WelcomeCode=welcome_code,
        Source=source,
        FailReason=fail_reason,
    )


def change_external_chat(
    change_type: str,
    chat_id: str,
    update_detail: str | None = None,
    join_scene: int | None = None,
    quit_scene: int | None = None,
    mem_change_list: Iterable[str] = (),
    create_time: int | None = None,
    *,
    last_mem_ver: str | None = None,
    cur_mem_ver: str | None = None,
    corp_id: str = SANDBOX_CORP_ID,
) -> str:
    """客户群 change: create / update (with UpdateDetail, member changes) / dismiss."""
    members = list(mem_change_list)
    return event(
        "change_external_chat",
        create_time=create_time,
        corp_id=corp_id,
        ChatId=chat_id,
        ChangeType=change_type,
        UpdateDetail=update_detail,
        JoinScene=join_scene,
        QuitScene=quit_scene,
        MemChangeCnt=len(members) if members else None,
        MemChangeList=members or None,
        LastMemVer=last_mem_ver,
        CurMemVer=cur_mem_ver,
    )


def change_external_tag(
    change_type: str,
    tag_id: str,
    tag_type: str = "tag",
    create_time: int | None = None,
    *,
    corp_id: str = SANDBOX_CORP_ID,
) -> str:
    """企业客户标签 change: create / update / delete / shuffle of a tag or tag_group."""
    return event(
        "change_external_tag",
        create_time=create_time,
        corp_id=corp_id,
        Id=tag_id,
        TagType=tag_type,
        ChangeType=change_type,
    )


def kf_msg_or_event(token: str, open_kfid: str, create_time: int | None = None, *, corp_id: str = SANDBOX_CORP_ID) -> str:
    """微信客服 "there is news" notice: no FromUserName, no message — only Token and OpenKfId."""
    return _xml(
        [
            ("ToUserName", corp_id),
            ("CreateTime", _ts(create_time)),
            ("MsgType", "event"),
            ("Event", "kf_msg_or_event"),
            ("Token", token),
            ("OpenKfId", open_kfid),
        ]
    )


# ---- WeCom ----------------------------------------------------------------------------------------------
class CallbackSimulator:
    """Signs and encrypts WeCom callbacks for ``corp_id`` with the app's Token and EncodingAESKey."""

    def __init__(self, token: str, aes_key: str, corp_id: str, now: Now | None = None, *, agent_id: str = "") -> None:
        self.token = token
        self.corp_id = corp_id
        self.agent_id = agent_id
        self._key = base64.b64decode(aes_key + "=")
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    def timestamp(self) -> str:
        return str(int(self._now().timestamp()))

    def encrypt(self, plaintext: str) -> str:
        """The ``Encrypt`` value: AES-256-CBC over random16 + length + plaintext + corp id, base64."""
        return str(WorkPrpCrypto(self._key).encrypt(plaintext, self.corp_id).decode())

    def verify_query(self, echostr_plain: str, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
        """The query of the URL-verification GET; the product must answer ``echostr_plain``."""
        ts, nonce = timestamp or self.timestamp(), nonce or _nonce()
        echostr = self.encrypt(echostr_plain)
        return {
            "msg_signature": _signature(self.token, ts, nonce, echostr),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }

    def encrypt_post(self, xml: str, timestamp: str | int | None = None, nonce: str | None = None) -> tuple[dict[str, str], bytes]:
        """(query, body) of a callback POST carrying ``xml``: envelope with ToUserName, AgentID, Encrypt."""
        ts, nonce = str(timestamp) if timestamp is not None else self.timestamp(), nonce or _nonce()
        encrypted = self.encrypt(xml)
        body = _xml([("ToUserName", self.corp_id), ("AgentID", self.agent_id), ("Encrypt", encrypted)])
        return {
            "msg_signature": _signature(self.token, ts, nonce, encrypted),
            "timestamp": ts,
            "nonce": nonce,
        }, body.encode()

    async def verify(self, session: aiohttp.ClientSession, url: str, echostr_plain: str) -> tuple[int, str]:
        """Do the URL-verification GET; returns (status, body)."""
        async with session.get(signed_url(url, self.verify_query(echostr_plain))) as resp:
            return resp.status, await resp.text()

    async def deliver(self, session: aiohttp.ClientSession, url: str, xml: str) -> tuple[int, str]:
        """POST ``xml`` as a signed, encrypted callback; returns (status, body)."""
        query, body = self.encrypt_post(xml)
        async with session.post(signed_url(url, query), data=body, headers={"Content-Type": "text/xml"}) as resp:
            return resp.status, await resp.text()


def kf_callback_hook(sim: CallbackSimulator, url: str, session: Callable[[], Awaitable[aiohttp.ClientSession]]) -> KfHook:
    """A ``SandboxState.on_kf_message`` hook that tells the product at ``url`` (its /callback/wecom) that there is
    kf news, exactly as WeCom does: a signed, encrypted ``kf_msg_or_event``. Raises unless answered 200."""

    async def hook(notice: KfNotice) -> None:
        xml = kf_msg_or_event(notice.token, notice.open_kfid, int(sim.timestamp()), corp_id=sim.corp_id)
        status, text = await sim.deliver(await session(), url, xml)
        if status != 200:
            raise RuntimeError(f"kf_msg_or_event callback answered HTTP {status}: {text[:200]}")

    return hook


def wecom_event_hook(sim: CallbackSimulator, url: str, session: Callable[[], Awaitable[aiohttp.ClientSession]]) -> EventHook:
    """A ``SandboxState.on_wecom_event`` hook: POST one event's XML to the product at ``url`` (its
    /callback/wecom), signed and encrypted as WeCom does. Raises unless answered 200."""

    async def hook(xml: str) -> None:
        status, text = await sim.deliver(await session(), url, xml)
        if status != 200:
            raise RuntimeError(f"WeCom event callback answered HTTP {status}: {text[:200]}")

    return hook


def signed_url(url: str, query: dict[str, str]) -> URL:
    """``url?query`` percent-encoded as WeCom does it (every ``+``, ``/`` and ``=`` of base64 escaped)."""
    sep = "&" if "?" in url else "?"
    return URL(url + sep + urlencode(query, quote_via=quote, safe=""), encoded=True)


# ---- Official Account -----------------------------------------------------------------------------------
class MpSimulator:
    """Official Account callbacks in plain mode (signature only) or safe mode (``encrypt_type=aes``)."""

    def __init__(
        self,
        token: str,
        aes_key: str,
        app_id: str,
        now: Now | None = None,
        *,
        safe: bool | None = None,
        original_id: str = "gh_sandbox00001",
    ) -> None:
        self.token = token
        self.app_id = app_id
        self.original_id = original_id
        self.safe = bool(aes_key) if safe is None else safe
        self._aes_key = aes_key
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    def timestamp(self) -> str:
        return str(int(self._now().timestamp()))

    def _time(self, create_time: int | None) -> int:
        return int(self.timestamp()) if create_time is None else int(create_time)

    # -- builders
    def text_message(self, openid: str, content: str, msg_id: int | None = None, create_time: int | None = None) -> str:
        return _xml(
            [
                ("ToUserName", self.original_id),
                ("FromUserName", openid),
                ("CreateTime", self._time(create_time)),
                ("MsgType", "text"),
                ("Content", content),
                ("MsgId", msg_id if msg_id is not None else secrets.randbelow(10**18)),
            ]
        )

    def subscribe_event(self, openid: str, event_key: str = "", create_time: int | None = None) -> str:
        return _xml(
            [
                ("ToUserName", self.original_id),
                ("FromUserName", openid),
                ("CreateTime", self._time(create_time)),
                ("MsgType", "event"),
                ("Event", "subscribe"),
                ("EventKey", event_key),
            ]
        )

    # -- signing
    def verify_query(self, echostr: str, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
        """URL-verification GET: signature over (token, timestamp, nonce); the product echoes ``echostr``."""
        ts, nonce = timestamp or self.timestamp(), nonce or _nonce()
        return {
            "signature": _signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }

    def encrypt(self, plaintext: str) -> str:
        key = base64.b64decode(self._aes_key + "=")
        return str(MpPrpCrypto(key).encrypt(plaintext, self.app_id).decode())

    def post(
        self,
        xml: str,
        openid: str | None = None,
        *,
        timestamp: str | int | None = None,
        nonce: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """(query, body) of a message POST; safe mode adds encrypt_type=aes, msg_signature,
        an Encrypt body."""
        ts, nonce = str(timestamp) if timestamp is not None else self.timestamp(), nonce or _nonce()
        openid = openid if openid is not None else _from_user(xml)
        query = {
            "signature": _signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "openid": openid,
        }
        if not self.safe:
            return query, xml.encode()
        encrypted = self.encrypt(xml)
        query.update(encrypt_type="aes", msg_signature=_signature(self.token, ts, nonce, encrypted))
        body = _xml([("ToUserName", self.original_id), ("Encrypt", encrypted)])
        return query, body.encode()

    async def verify(self, session: aiohttp.ClientSession, url: str, echostr: str) -> tuple[int, str]:
        """Do the URL-verification GET; returns (status, body) — the product must echo ``echostr``."""
        async with session.get(signed_url(url, self.verify_query(echostr))) as resp:
            return resp.status, await resp.text()

    async def deliver(self, session: aiohttp.ClientSession, url: str, xml: str) -> tuple[int, str]:
        """POST ``xml`` as the Official Account would; returns (status, body)."""
        query, body = self.post(xml)
        async with session.post(signed_url(url, query), data=body, headers={"Content-Type": "text/xml"}) as resp:
            return resp.status, await resp.text()


def _from_user(xml: str) -> str:
    node: Any = fromstring(xml).find("FromUserName")
    return str(node.text or "") if node is not None else ""
