"""Test helpers: build signed, encrypted callbacks the way WeCom does, and run the real app on a local port."""

from __future__ import annotations

import socket
import time
from typing import Any

from bots.gateway.crypto import CallbackCrypto, signature


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def envelope(
    crypto: CallbackCrypto, xml: str, *, timestamp: int | None = None, nonce: str = "1372623149", agent_id: str = "1000002"
) -> tuple[dict[str, str], bytes]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    encrypted = crypto.encrypt(xml)
    sig = signature(crypto.token, ts, nonce, encrypted)
    body = (
        f"<xml><ToUserName><![CDATA[{crypto.receive_id}]]></ToUserName><AgentID><![CDATA[{agent_id}]]></AgentID>"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    )
    return {"msg_signature": sig, "timestamp": ts, "nonce": nonce}, body.encode()


def text_xml(from_user: str, content: str, msg_id: int, create_time: int, corp_id: str = "wwsandbox0000000001") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{from_user}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>"
    )


def event_xml(event: str, create_time: int, **fields: Any) -> str:
    inner = "".join(
        f"<{k}>{v}</{k}>" if isinstance(v, int) or (isinstance(v, str) and v.startswith("<")) else f"<{k}><![CDATA[{v}]]></{k}>"
        for k, v in fields.items()
    )
    return (
        "<xml><ToUserName><![CDATA[wwsandbox0000000001]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>{inner}</xml>"
    )
