"""In-memory state of the sandbox WeCom (企业微信) and Official Account (公众号): plain Python, no HTTP.

The emulator's endpoints (``*_endpoints.py``) apply the API rules to this state; tests and the sandbox page
seed it with the helpers below (members, customers, groups, customer messages in 微信客服) and read back
what the product sent (app messages, kf replies, template messages, mass-message tasks, welcome messages).

Time comes from ``now`` (default: real UTC) so tests can move it together with the product's FrozenClock.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from bots.sandbox.entities import (
    Application,
    ContactWay,
    Customer,
    EventHook,
    Fault,
    Follow,
    Grant,
    Group,
    GroupMember,
    JoinWay,
    KfHook,
    KfWindow,
    Media,
    Member,
    Tag,
    TagGroup,
    Transfer,
    random_id,
)
from bots.sandbox.entities import (
    KfNotice as KfNotice,  # re-exported: the hook's argument
)
from config.settings import (
    SANDBOX_AGENT_ID,
    SANDBOX_APPROVAL_TEMPLATE,
    SANDBOX_CORP_ID,
    SANDBOX_KF_OPEN_KFID,
    SANDBOX_MP_APP_ID,
    SANDBOX_MP_SECRET,
    SANDBOX_SECRET,
)


def normalize_fault_path(path: str) -> str:
    """``/sandbox/wecom/cgi-bin/kf/send_msg`` → ``wecom:kf/send_msg``; a bare ``kf/send_msg`` stays bare
    (matches either API)."""
    path = path.strip().lstrip("/")
    path = path.removeprefix("sandbox/")
    for api in ("wecom", "mp"):
        if path.startswith(f"{api}/cgi-bin/"):
            return f"{api}:" + path.removeprefix(f"{api}/cgi-bin/")
    return path.removeprefix("cgi-bin/")


class SandboxState:
    """Everything the emulated WeCom and Official Account know. Not thread-safe; one event loop owns it."""

    def __init__(
        self,
        *,
        corp_id: str = SANDBOX_CORP_ID,
        corp_secret: str = SANDBOX_SECRET,
        agent_id: str = SANDBOX_AGENT_ID,
        open_kfid: str = SANDBOX_KF_OPEN_KFID,
        mp_app_id: str = SANDBOX_MP_APP_ID,
        mp_secret: str = SANDBOX_MP_SECRET,
        now: Callable[[], dt.datetime] | None = None,
        msg_template_monthly_cap: int = 4,
        kf_window_hours: float = 48,
        kf_max_messages: int = 5,
        mp_template_ids: Iterable[str] = ("sandbox-order-notice",),
    ) -> None:
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.agent_id = str(agent_id)
        self.open_kfids: set[str] = {open_kfid}
        self.default_open_kfid = open_kfid
        self.mp_app_id = mp_app_id
        self.mp_secret = mp_secret
        self.now: Callable[[], dt.datetime] = now or (lambda: dt.datetime.now(dt.UTC))
        # Rules the real service applies; some figures changed over time (docs/wecom.md: unconfirmed), so settable.
        self.msg_template_monthly_cap = msg_template_monthly_cap
        self.kf_window = dt.timedelta(hours=kf_window_hours)
        self.kf_max_messages = kf_max_messages
        self.app_message_per_minute = 30
        self.app_message_per_hour = 1000
        self.token_ttl = 7200
        self.welcome_code_ttl = dt.timedelta(seconds=20)
        self.oauth_code_ttl = dt.timedelta(minutes=5)
        self.kf_sync_token_ttl = dt.timedelta(minutes=10)
        self.media_ttl = dt.timedelta(days=3)  # temporary media (docs/wecom.md §5b)
        self.strict_kf_sync_token = False  # True: sync_msg refuses unknown/stale callback tokens (95007)
        self.mp_template_ids: set[str] = set(mp_template_ids)
        self.on_kf_message: KfHook | None = None
        self.on_wecom_event: EventHook | None = None  # set by the sandbox mount: posts to our /callback/wecom
        self.public_base = ""  # http://host:port of the server the sandbox is mounted on: channel codes' QR images live there
        self.epoch = random_id(length=8)  # makes cursors of an earlier emulator recognisable
        # --- directory
        self.members: dict[str, Member] = {}
        self.customers: dict[str, Customer] = {}
        self.groups: dict[str, Group] = {}
        self.tag_groups: list[TagGroup] = []
        self.contact_ways: dict[str, ContactWay] = {}
        self.join_ways: dict[str, JoinWay] = {}
        self.followers: dict[str, dict[str, Any]] = {}  # Official Account openid → user info
        # --- credentials and single-use codes
        self.tokens: dict[str, tuple[str, dt.datetime]] = {}  # token → (api, expires_at)
        self.oauth_codes: dict[str, Grant] = {}
        self.welcome_codes: dict[str, Grant] = {}
        self.kf_event_codes: dict[str, Grant] = {}
        self.kf_sync_tokens: dict[str, dt.datetime] = {}
        self.js_tickets: dict[str, str] = {}  # "jsapi" / "agent_config" → ticket
        self.faults: dict[str, list[Fault]] = {}
        self.media: dict[str, Media] = {}  # media_id → what media/upload received
        # --- traffic
        self.kf_log: dict[str, list[dict[str, Any]]] = {}
        self.kf_windows: dict[tuple[str, str], KfWindow] = {}
        self.kf_sent: dict[tuple[str, str], dict[str, Any]] = {}  # (open_kfid, msgid) → the message (idempotency)
        self.app_messages: list[dict[str, Any]] = []
        self.templates_sent: list[dict[str, Any]] = []
        self.mp_custom_sent: list[dict[str, Any]] = []
        self.msg_templates: list[dict[str, Any]] = []
        self.welcome_messages: list[dict[str, Any]] = []
        # --- 审批 app: templates the admin made, and the applications submitted to them
        self.approval_templates: set[str] = {SANDBOX_APPROVAL_TEMPLATE}
        self.applications: dict[str, Application] = {}
        # --- customer transfers (在职继承 / 离职继承), oldest first; rules as docs/wecom.md §5b (settable figures)
        self.transfers: list[Transfer] = []
        self.transfer_takeover_delay = dt.timedelta(hours=24)
        self.transfer_limit_window = dt.timedelta(days=90)
        self.transfer_limit_count = 2  # on-job transfers of one customer within the window
        self.pending_events: list[str] = []  # callbacks WeCom owes the product (delivered by /sandbox/api/transfers/settle)
        # "api:path" of recent API calls, in order (tests count them); bounded for a long-running sandbox.
        self.calls: deque[str] = deque(maxlen=100_000)

    @classmethod
    def from_settings(cls, settings: Any, now: Callable[[], dt.datetime] | None = None) -> SandboxState:
        """A state that accepts the credentials of these settings (the sandbox defaults, normally)."""
        return cls(
            corp_id=settings.wecom_corp_id,
            corp_secret=settings.wecom_secret.get(),
            agent_id=settings.wecom_agent_id,
            open_kfid=settings.kf_open_kfid or SANDBOX_KF_OPEN_KFID,
            mp_app_id=settings.mp_app_id,
            mp_secret=settings.mp_secret.get(),
            now=now,
            msg_template_monthly_cap=settings.msg_template_monthly_cap,
            kf_window_hours=settings.kf_window_hours,
            kf_max_messages=settings.kf_max_messages,
            mp_template_ids=[t for t in ("sandbox-order-notice", settings.mp_notice_template_id) if t],
        )

    # ---- time ------------------------------------------------------------------------------------------
    def ts(self) -> int:
        return int(self.now().timestamp())

    # ---- access tokens -----------------------------------------------------------------------------------
    def issue_token(self, api: str) -> str:
        """The valid token of ``api`` ("wecom"/"mp"), reused while it lives (as WeCom does), else new."""
        now = self.now()
        for token, (owner, expires_at) in self.tokens.items():
            if owner == api and expires_at > now:
                return token
        token = random_id(f"{api}-tk-", 40)
        self.tokens[token] = (api, now + dt.timedelta(seconds=self.token_ttl))
        return token

    def token_status(self, api: str, token: str) -> str:
        """ "ok", "missing", "unknown" or "expired"."""
        if not token:
            return "missing"
        entry = self.tokens.get(token)
        if entry is None or entry[0] != api:
            return "unknown"
        return "ok" if entry[1] > self.now() else "expired"

    def expire_tokens(self) -> None:
        """Expire every issued token now: the next call with one answers 42001."""
        past = self.now() - dt.timedelta(seconds=1)
        self.tokens = {t: (api, past) for t, (api, _) in self.tokens.items()}

    # ---- fault injection -----------------------------------------------------------------------------
    def inject(self, path: str, errcode: int, times: int = 1, delay: float = 0.0) -> None:
        """The next ``times`` calls of ``path`` wait ``delay`` s, then answer ``errcode`` (0 = normally).

        ``path`` is an API path (``kf/send_msg``) or a full one (``/sandbox/wecom/cgi-bin/kf/send_msg``)."""
        self.faults.setdefault(normalize_fault_path(path), []).append(Fault(int(errcode), int(times), float(delay)))

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_fault(self, api: str, path: str) -> Fault | None:
        """Consume one injected fault for this call, if any (the API-specific entry first)."""
        for key in (f"{api}:{path}", path):
            queue = self.faults.get(key)
            if queue:
                fault = queue[0]
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
                return Fault(fault.errcode, 1, fault.delay)
        return None

    # ---- single-use codes ------------------------------------------------------------------------------
    def issue_oauth_code(self, userid: str) -> str:
        """A code as OAuth would put on the redirect for member ``userid`` (single use, 5 minutes)."""
        code = random_id(length=32)
        self.oauth_codes[code] = Grant({"userid": userid}, self.now())
        return code

    def issue_welcome_code(self, userid: str, external_userid: str) -> str:
        """The WelcomeCode of an add_external_contact event (single use, 20 s)."""
        code = random_id("WELCOME", 24)
        self.welcome_codes[code] = Grant({"userid": userid, "external_userid": external_userid}, self.now())
        return code

    def redeem(self, codes: dict[str, Grant], code: str, ttl: dt.timedelta) -> Grant | None:
        """Use a code once: None when unknown, used or older than ``ttl``."""
        grant = codes.get(code)
        if grant is None or grant.used or self.now() - grant.issued_at > ttl:
            return None
        grant.used = True
        return grant

    def kf_sync_token(self) -> str:
        """A fresh ``Token`` for a kf_msg_or_event callback (sync_msg accepts it for 10 minutes)."""
        token = random_id("ENC", 40)
        self.kf_sync_tokens[token] = self.now()
        return token

    # ---- seed helpers: directory ---------------------------------------------------------------------
    def add_member(self, userid: str, name: str, **fields: Any) -> Member:
        """Add (or replace) an internal member; ``fields`` are :class:`Member` attributes."""
        member = Member(userid=userid, name=name, **fields)
        self.members[userid] = member
        return member

    def add_customer(
        self,
        external_userid: str,
        name: str,
        followers: Iterable[str] = (),
        unionid: str | None = None,
        *,
        state: str = "",
        add_way: int = 1,
        remark: str = "",
        tag_ids: Iterable[str] = (),
        **fields: Any,
    ) -> Customer:
        """Add a customer followed by ``followers`` (member userids); an existing one gains the followers."""
        customer = self.customers.get(external_userid)
        if customer is None:
            customer = Customer(external_userid=external_userid, name=name, unionid=unionid, **fields)
            self.customers[external_userid] = customer
        for userid in followers:
            customer.follows.setdefault(
                userid,
                Follow(userid, self.ts(), remark=remark, tag_ids=list(tag_ids), add_way=add_way, state=state),
            )
        return customer

    def add_group(
        self,
        chat_id: str,
        name: str,
        owner: str,
        members: Iterable[str | dict[str, Any]] = (),
        *,
        notice: str = "",
        admins: Iterable[str] = (),
    ) -> Group:
        """Add a customer group. Members are userids / external_userids (type guessed from the directory) or
        dicts of :class:`GroupMember` fields. The owner is a member too."""
        group = Group(chat_id, name, owner, self.ts(), notice=notice, admins=list(admins))
        for item in [owner, *members]:
            spec: dict[str, Any] = {"userid": item} if isinstance(item, str) else dict(item)
            if any(m.userid == spec["userid"] for m in group.members):
                continue
            customer = self.customers.get(spec["userid"])
            spec.setdefault("type", 2 if customer else 1)
            spec.setdefault("join_time", self.ts())
            spec.setdefault("invitor", owner if spec["userid"] != owner else "")
            if customer is not None:
                spec.setdefault("name", customer.name)
                spec.setdefault("unionid", customer.unionid or "")
            elif spec["userid"] in self.members:
                spec.setdefault("name", self.members[spec["userid"]].name)
            group.members.append(GroupMember(**spec))
        self.groups[chat_id] = group
        return group

    def add_tag_group(self, group_name: str, tag_names: Iterable[str], *, order: int = 0) -> TagGroup:
        """Add a corp tag group (企业标签组) with tags; returns it (ids as WeCom makes them: et…)."""
        group = TagGroup(random_id("et", 20), group_name, self.ts(), order)
        group.tags = [Tag(random_id("et", 20), n, self.ts()) for n in tag_names]
        self.tag_groups.append(group)
        return group

    def find_tag(self, tag_id: str) -> tuple[TagGroup, Tag] | None:
        for group in self.tag_groups:
            for tag in group.tags:
                if tag.id == tag_id:
                    return group, tag
        return None

    def customer_added_via(self, config_id: str, external_userid: str, name: str, **fields: Any) -> dict[str, str]:
        """A customer scans a 联系我 code: they become the customer of its first member, with its state.
        Returns what the add_external_contact callback carries: userid, external_userid, state and
        welcome_code."""
        way = self.contact_ways[config_id]
        userid = way.users[0]
        self.add_customer(external_userid, name, [userid], state=way.state, **fields)
        code = self.issue_welcome_code(userid, external_userid)
        return {
            "userid": userid,
            "external_userid": external_userid,
            "state": way.state,
            "welcome_code": code,
        }

    def customer_joined_via(
        self, config_id: str, external_userid: str, name: str, *, chat_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A customer scans a 加入群聊 code: they join its first group (or ``chat_id``, one of its groups) by QR code
        (join_scene 3), carrying the join way's state in the group's member list. An unknown customer is created
        (joining a group needs no salesperson). Returns what the change_external_chat callback carries: chat_id,
        external_userid, state, join_scene, create_time. Raises KeyError / ValueError for a way or group that
        does not exist, LookupError when they are in the group already."""
        way = self.join_ways[config_id]
        target = chat_id or way.chat_id_list[0]
        if target not in way.chat_id_list or target not in self.groups:
            raise ValueError(f"group {target} is not one of this join way's groups")
        group = self.groups[target]
        if any(m.userid == external_userid for m in group.members):
            raise LookupError(f"{external_userid} is in {target} already")
        customer = self.customers.get(external_userid) or self.add_customer(external_userid, name, **fields)
        now = self.ts()
        group.members.append(
            GroupMember(external_userid, 2, now, join_scene=3, name=customer.name, unionid=customer.unionid or "", state=way.state)
        )
        return {"chat_id": target, "external_userid": external_userid, "state": way.state, "join_scene": 3, "create_time": now}

    def member_left_group(self, chat_id: str, userid: str, *, quit_scene: int = 0) -> dict[str, Any]:
        """``userid`` leaves the group (quit_scene 0) or is removed (1). Returns the callback's fields; KeyError
        when they were not in it."""
        group = self.groups[chat_id]
        before = len(group.members)
        group.members = [m for m in group.members if m.userid != userid]
        if len(group.members) == before:
            raise KeyError(f"{userid} is not in {chat_id}")
        return {"chat_id": chat_id, "userid": userid, "quit_scene": quit_scene, "create_time": self.ts()}

    def add_follower(self, openid: str, *, unionid: str | None = None, interacted: bool = True, **fields: Any) -> None:
        """An Official Account follower; ``interacted`` opens the 48 h customer-service window now."""
        self.followers[openid] = {
            "openid": openid,
            "unionid": unionid,
            "subscribe": 1,
            "subscribe_time": self.ts(),
            "last_interaction": self.now() if interacted else None,
            **fields,
        }

    def mp_interaction(self, openid: str) -> None:
        """The follower wrote to / clicked in the Official Account: the 48 h window starts again."""
        if openid not in self.followers:
            self.add_follower(openid)
        self.followers[openid]["last_interaction"] = self.now()

    def seed_demo(self) -> None:
        """A small corp for the sandbox page and the demo: a salesperson and their manager (who approves what the
        salesperson's orders need approved), operations staff, tags."""
        self.add_member("boss01", "张经理", position="销售经理", can_follow=False)  # approves; serves no customers himself
        self.add_member("sales01", "王销售", position="销售", direct_leader=["boss01"])
        self.add_member("ops01", "李运营", position="运营")
        self.add_tag_group("客户等级", ["重要客户", "普通客户"])

    # ---- temporary media ---------------------------------------------------------------------------------
    def store_media(self, api: str, kind: str, filename: str, content_type: str, content: bytes) -> Media:
        """Keep an uploaded file; returns it with its new media_id."""
        media = Media(random_id("3" if api == "wecom" else "M", 54), api, kind, filename, content_type, content, self.now())
        self.media[media.media_id] = media
        return media

    def live_media(self, api: str, media_id: str, kind: str | None = None) -> Media | None:
        """The media ``media_id`` of ``api`` (and ``kind``) if it exists and is younger than 3 days."""
        media = self.media.get(media_id)
        if media is None or media.api != api or (kind is not None and media.type != kind):
            return None
        return media if self.now() - media.created_at < self.media_ttl else None

    # ---- 微信客服 ------------------------------------------------------------------------------------------
    def _kf_append(self, open_kfid: str, msg: dict[str, Any]) -> dict[str, Any]:
        self.kf_log.setdefault(open_kfid, []).append(msg)
        return msg

    def customer_kf_message(
        self, external_userid: str, text: str, *, open_kfid: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """The customer writes ``text`` in 微信客服: appended to the sync_msg log (origin 3), window reset.
        With ``name`` (their WeChat nickname), an unknown customer is added to the contacts first and a known one
        whose nickname changed takes the new one."""
        kfid = open_kfid or self.default_open_kfid
        if name is not None and external_userid not in self.customers:
            self.add_customer(external_userid, name)
        elif name and self.customers[external_userid].name != name:
            self.customers[external_userid].name = name
        msg = {
            "msgid": random_id(length=32),
            "open_kfid": kfid,
            "external_userid": external_userid,
            "send_time": self.ts(),
            "origin": 3,
            "msgtype": "text",
            "text": {"content": text},
        }
        self.kf_windows[(kfid, external_userid)] = KfWindow(self.now(), 0)
        return self._kf_append(kfid, msg)

    def restore_kf_windows(self, windows: Iterable[tuple[str, str, dt.datetime, int]]) -> int:
        """Take back 微信客服 windows a restart forgot: ``(open_kfid, external_userid, customer last wrote at,
        messages sent since)``, as the product stored them when it synced those messages. The real WeCom never
        forgets a window; an emulator restarted over the same database must not either. A window this instance
        already knows and that is as new or newer is kept. Returns how many were taken."""
        taken = 0
        for open_kfid, external_userid, last_at, sent_since in windows:
            known = self.kf_windows.get((open_kfid, external_userid))
            if known is not None and known.last_customer_at >= last_at:
                continue
            self.kf_windows[(open_kfid, external_userid)] = KfWindow(last_at, int(sent_since))
            taken += 1
        return taken

    def kf_event(
        self,
        external_userid: str,
        event_type: str = "enter_session",
        *,
        open_kfid: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A system event in the kf log (origin 4); enter_session gets a single-use welcome_code."""
        kfid = open_kfid or self.default_open_kfid
        event: dict[str, Any] = {
            "event_type": event_type,
            "open_kfid": kfid,
            "external_userid": external_userid,
        }
        if event_type == "enter_session":
            event.setdefault("scene", "")
            event.setdefault("scene_param", "")
            code = fields.pop("welcome_code", None) or random_id("WELCOME", 24)
            self.kf_event_codes[code] = Grant({"open_kfid": kfid, "external_userid": external_userid}, self.now())
            event["welcome_code"] = code
        event.update(fields)
        msg = {
            "msgid": random_id(length=32),
            "open_kfid": kfid,
            "send_time": self.ts(),
            "origin": 4,
            "msgtype": "event",
            "event": event,
        }
        return self._kf_append(kfid, msg)

    def kf_servicer_message(
        self, open_kfid: str, external_userid: str, msgid: str, text: str, *, media_id: str | None = None
    ) -> dict[str, Any]:
        """A message the bot (via the API) sent: in the log with origin 5, so the conversation shows it. With
        ``media_id`` it is a picture (msgtype image), as sync_msg lists one."""
        content: dict[str, Any] = {"msgtype": "text", "text": {"content": text}}
        if media_id:
            content = {"msgtype": "image", "image": {"media_id": media_id}}
        msg = {
            "msgid": msgid,
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "send_time": self.ts(),
            "origin": 5,
            "servicer_userid": "",
            **content,
        }
        self.kf_sent[(open_kfid, msgid)] = msg
        return self._kf_append(open_kfid, msg)

    # ---- readers (tests, the sandbox page) -----------------------------------------------------------------
    def kf_conversation(self, external_userid: str, open_kfid: str | None = None) -> list[dict[str, Any]]:
        """Texts and pictures between the customer and the kf account, oldest first: origin, text, send_time,
        msgid; a picture has text "[图片]" and ``image``: its media_id and where the page reads its bytes."""
        kfids = [open_kfid] if open_kfid else sorted(self.kf_log)
        out: list[dict[str, Any]] = []
        for kfid in kfids:
            for m in self.kf_log.get(kfid, []):
                if m.get("external_userid") != external_userid or m.get("msgtype") not in ("text", "image"):
                    continue
                item = {"origin": m["origin"], "text": m["text"]["content"] if m["msgtype"] == "text" else "[图片]"}
                item |= {"send_time": m["send_time"], "msgid": m["msgid"]}
                if m["msgtype"] == "image":
                    media_id = m["image"]["media_id"]
                    item["image"] = {"media_id": media_id, "url": f"api/media/{media_id}"}  # relative to /sandbox/
                out.append(item)
        return sorted(out, key=lambda m: m["send_time"])

    def kf_images(self, external_userid: str, open_kfid: str | None = None) -> list[Media]:
        """Pictures the bot sent to this customer in 微信客服 (what was uploaded), oldest first."""
        return [
            self.media[m["image"]["media_id"]]
            for m in self.kf_conversation(external_userid, open_kfid)
            if m["origin"] == 5 and "image" in m and m["image"]["media_id"] in self.media
        ]

    def kf_replies(self, external_userid: str, open_kfid: str | None = None) -> list[str]:
        """Texts the bot sent to this customer in 微信客服, oldest first."""
        return [m["text"] for m in self.kf_conversation(external_userid, open_kfid) if m["origin"] == 5 and "image" not in m]

    def traffic(self) -> dict[str, Any]:
        """Everything the product sent, JSON-ready, and the number of API calls per ``api:path``."""

        def plain(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in item.items()} for item in items]

        calls: dict[str, int] = {}
        for call in self.calls:
            calls[call] = calls.get(call, 0) + 1
        return {
            "kf_sent": plain(self.kf_sent.values()),
            "app_messages": plain(self.app_messages),
            "welcome_messages": plain(self.welcome_messages),
            "templates_sent": plain(self.templates_sent),
            "mp_custom_sent": plain(self.mp_custom_sent),
            "msg_templates": plain(self.msg_templates),
            "media": [
                {"media_id": m.media_id, "api": m.api, "type": m.type, "filename": m.filename, "bytes": len(m.content)}
                for m in self.media.values()
            ],
            "calls": calls,
        }

    def app_messages_to(self, userid: str) -> list[str]:
        """Texts of app messages delivered (not dropped) to member ``userid``."""
        return [m["content"] for m in self.app_messages if userid in m["delivered"]]

    def call_count(self, path: str) -> int:
        """How many calls reached ``path`` (``kf/send_msg`` or ``wecom:kf/send_msg``)."""
        path = normalize_fault_path(path)
        return sum(1 for c in self.calls if c == path or c.split(":", 1)[1] == path)
