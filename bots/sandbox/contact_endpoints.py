"""Emulated 客户联系 endpoints (``externalcontact/*``): customers, contact ways, welcome messages,
mass-message tasks and corp tags. Shapes follow docs/wecom.md §5. Customer groups and their join ways are in
``group_endpoints.py``."""

from __future__ import annotations

from typing import Any

from bots.outbound.client import Errcode
from bots.sandbox.endpoints import ApiFailure, Call, Endpoint, page
from bots.sandbox.entities import ContactWay, Customer, Follow, Tag, TagGroup, random_id
from bots.sandbox.state import SandboxState
from scrm.core.clock import SHANGHAI

MAX_STATE_CHARS = 30


def _member(state: SandboxState, userid: str) -> None:
    if userid not in state.members:
        raise ApiFailure(Errcode.INVALID_USERID, "userid not found")


def _customer(state: SandboxState, external_userid: str) -> Customer:
    customer = state.customers.get(external_userid)
    if customer is None:
        raise ApiFailure(Errcode.NOT_EXTERNAL_CONTACT)
    return customer


def _contact_dict(c: Customer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "external_userid": c.external_userid,
        "name": c.name,
        "avatar": c.avatar,
        "type": c.type,
        "gender": c.gender,
    }
    if c.unionid:
        out["unionid"] = c.unionid  # only present when the customer's WeChat is bound to the corp's open platform
    if c.type == 2:
        out.update(corp_name=c.corp_name, corp_full_name=c.corp_name)
    return out


def _tags_of(state: SandboxState, follow: Follow) -> list[dict[str, Any]]:
    out = []
    for tag_id in follow.tag_ids:
        found = state.find_tag(tag_id)
        if found:
            out.append({"group_name": found[0].group_name, "tag_name": found[1].name, "tag_id": tag_id, "type": 1})
    return out


def _follow_common(f: Follow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "userid": f.userid,
        "remark": f.remark,
        "description": f.description,
        "createtime": f.createtime,
        "add_way": f.add_way,
        "oper_userid": f.userid,
    }
    if f.state:
        out["state"] = f.state
    return out


def get(state: SandboxState, call: Call) -> dict[str, Any]:
    customer = _customer(state, call.param("external_userid"))
    follow = [{**_follow_common(f), "tags": _tags_of(state, f)} for f in customer.follows.values()]
    return {"external_contact": _contact_dict(customer), "follow_user": follow, "next_cursor": ""}


def list_(state: SandboxState, call: Call) -> dict[str, Any]:
    userid = call.param("userid")
    _member(state, userid)
    ids = [c.external_userid for c in state.customers.values() if userid in c.follows]
    if not ids:
        raise ApiFailure(Errcode.NOT_EXTERNAL_CONTACT)  # the real API answers 84061 for "no customers", not []
    return {"external_userid": ids}


def batch_get_by_user(state: SandboxState, call: Call) -> dict[str, Any]:
    userids = call.strings("userid_list", limit=100)
    for userid in userids:
        _member(state, userid)
    limit = call.field("limit", int, required=False, default=50)
    if not 1 <= limit <= 100:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "limit must be 1..100")
    items = [
        {
            "external_contact": _contact_dict(c),
            "follow_info": {
                **_follow_common(c.follows[u]),
                "tag_id": list(c.follows[u].tag_ids),
                "remark_corp_name": "",
                "remark_mobiles": [],
            },
        }
        for u in userids
        for c in state.customers.values()
        if u in c.follows
    ]
    chunk, next_cursor = page(state, items, call.field("cursor", str, required=False, default=""), limit)
    return {"external_contact_list": chunk, "next_cursor": next_cursor}


def get_follow_user_list(state: SandboxState, call: Call) -> dict[str, Any]:
    return {"follow_user": [m.userid for m in state.members.values() if m.can_follow and m.departed_at is None]}


def _qr_code_url(state: SandboxState, config_id: str) -> str:
    """A channel code's QR image: served by the sandbox itself (a real, scannable PNG of its scan page) when the
    sandbox knows where it is mounted, else a placeholder shaped like WeCom's image URLs."""
    if state.public_base:
        return f"{state.public_base}/sandbox/qr/contact-way/{config_id}.png"
    return f"https://wework.qpic.cn/wwpic/{random_id(length=24)}/0"


def add_contact_way(state: SandboxState, call: Call) -> dict[str, Any]:
    """A 联系我 code; ``state`` (≤ 30 chars, else 40058) comes back in the add_external_contact event."""
    way_type = call.field("type", int)
    scene = call.field("scene", int)
    if way_type not in (1, 2) or scene not in (1, 2):
        raise ApiFailure(Errcode.INVALID_PARAMETER, "invalid type or scene")
    way_state = call.field("state", str, required=False, default="")
    if len(way_state) > MAX_STATE_CHARS:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "state exceeds 30 characters")
    users = call.strings("user", required=False)
    if not users or (way_type == 1 and len(users) != 1):
        raise ApiFailure(Errcode.INVALID_PARAMETER, "user must name one member (type 1) or several (type 2)")
    for userid in users:
        _member(state, userid)
    config_id = random_id(length=32).lower()
    qr_code = _qr_code_url(state, config_id) if scene == 2 else ""
    state.contact_ways[config_id] = ContactWay(
        config_id,
        way_type,
        scene,
        way_state,
        users,
        bool(call.body.get("skip_verify", True)),
        qr_code,
        str(call.body.get("remark", "")),
    )
    return {"config_id": config_id, **({"qr_code": qr_code} if qr_code else {})}


def _contact_way(state: SandboxState, call: Call) -> ContactWay:
    way = state.contact_ways.get(call.field("config_id"))
    if way is None:
        # (unconfirmed) the real errcode of an unknown config_id; the product treats it as "already gone".
        raise ApiFailure(Errcode.INVALID_PARAMETER, "invalid config_id")
    return way


def get_contact_way(state: SandboxState, call: Call) -> dict[str, Any]:
    way = _contact_way(state, call)
    return {
        "contact_way": {
            "config_id": way.config_id,
            "type": way.type,
            "scene": way.scene,
            "state": way.state,
            "user": list(way.users),
            "skip_verify": way.skip_verify,
            "remark": way.remark,
            **({"qr_code": way.qr_code} if way.qr_code else {}),
        }
    }


def update_contact_way(state: SandboxState, call: Call) -> dict[str, Any]:
    """Change a 联系我 code's members, state, remark or skip_verify; its type (single/multi) cannot change."""
    way = _contact_way(state, call)
    if "user" in call.body:
        users = call.strings("user")
        if not users or (way.type == 1 and len(users) != 1):
            raise ApiFailure(Errcode.INVALID_PARAMETER, "user must name one member (type 1) or several (type 2)")
        for userid in users:
            _member(state, userid)
        way.users = users
    if "state" in call.body:
        new_state = call.field("state", str)
        if len(new_state) > MAX_STATE_CHARS:
            raise ApiFailure(Errcode.INVALID_PARAMETER, "state exceeds 30 characters")
        way.state = new_state
    way.remark = str(call.body.get("remark", way.remark))
    way.skip_verify = bool(call.body.get("skip_verify", way.skip_verify))
    return {}


def del_contact_way(state: SandboxState, call: Call) -> dict[str, Any]:
    """Delete a 联系我 code: its QR code stops working (customers can no longer add through it)."""
    way = _contact_way(state, call)
    del state.contact_ways[way.config_id]
    return {}


def send_welcome_msg(state: SandboxState, call: Call) -> dict[str, Any]:
    """Once per welcome_code, within 20 s of the add event: a second use or an unknown code answers 41051."""
    code = call.field("welcome_code")
    text = call.field("text", dict, required=False, default={})
    attachments = call.field("attachments", list, required=False, default=[])
    if not text.get("content") and not attachments:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "text or attachments required")
    grant = state.redeem(state.welcome_codes, code, state.welcome_code_ttl)
    if grant is None:
        raise ApiFailure(Errcode.WELCOME_CODE_INVALID)
    state.welcome_messages.append(
        {
            "welcome_code": code,
            **grant.subject,
            "text": text.get("content", ""),
            "attachments": attachments,
            "at": state.now(),
        }
    )
    return {}


def add_msg_template(state: SandboxState, call: Call) -> dict[str, Any]:
    """A mass-message task the salesperson confirms in the WeCom client. Customers not followed by the sender
    or already at the monthly cap are returned in fail_list."""
    if call.field("chat_type", str, required=False, default="single") != "single":
        raise ApiFailure(Errcode.INVALID_PARAMETER, "only chat_type single is emulated")
    sender = call.field("sender")
    _member(state, sender)
    targets = call.strings("external_userid", limit=10000)
    text = call.field("text", dict, required=False, default={})
    if not text.get("content") and not call.body.get("attachments"):
        raise ApiFailure(Errcode.INVALID_PARAMETER, "text or attachments required")
    month = state.now().astimezone(SHANGHAI).strftime("%Y-%m")
    this_month = [t for t in state.msg_templates if t["at"].astimezone(SHANGHAI).strftime("%Y-%m") == month]
    accepted: list[str] = []
    failed: list[str] = []
    for ext in targets:
        customer = state.customers.get(ext)
        received = sum(1 for t in this_month if ext in t["external_userid"])
        ok = customer is not None and sender in customer.follows and received < state.msg_template_monthly_cap
        (accepted if ok else failed).append(ext)
    msgid = random_id("msg", 26)
    state.msg_templates.append(
        {
            "msgid": msgid,
            "sender": sender,
            "external_userid": accepted,
            "fail_list": failed,
            "text": text.get("content", ""),
            "attachments": call.body.get("attachments", []),
            "at": state.now(),
            "status": "pending",
        }
    )
    return {"fail_list": failed, "msgid": msgid}


# ---- corp tags -----------------------------------------------------------------------------------------
def _group_dict(g: TagGroup, tags: list[Tag] | None = None) -> dict[str, Any]:
    return {
        "group_id": g.group_id,
        "group_name": g.group_name,
        "create_time": g.create_time,
        "order": g.order,
        "tag": [{"id": t.id, "name": t.name, "create_time": t.create_time, "order": t.order} for t in (g.tags if tags is None else tags)],
    }


def get_corp_tag_list(state: SandboxState, call: Call) -> dict[str, Any]:
    """All corp tags, or those of ``group_id`` groups, or the ``tag_id`` tags with their groups. As in WeCom,
    ``tag_id`` is ignored when ``group_id`` is given, and unknown (deleted) ids simply match nothing."""
    group_ids = set(call.strings("group_id", required=False))
    tag_ids = set() if group_ids else set(call.strings("tag_id", required=False))
    out = []
    for g in state.tag_groups:
        if group_ids and g.group_id not in group_ids:
            continue
        tags = [t for t in g.tags if not tag_ids or t.id in tag_ids]
        if tags or not tag_ids:
            out.append(_group_dict(g, tags))
    return {"tag_group": out}


def add_corp_tag(state: SandboxState, call: Call) -> dict[str, Any]:
    group_id = call.field("group_id", str, required=False, default="")
    specs = call.field("tag", list)
    if not specs or not all(isinstance(s, dict) and isinstance(s.get("name"), str) and s["name"] for s in specs):
        raise ApiFailure(Errcode.INVALID_PARAMETER, "tag must be a list of {name, order}")
    if group_id:
        group = next((g for g in state.tag_groups if g.group_id == group_id), None)
        if group is None:
            raise ApiFailure(Errcode.INVALID_TAG_ID, "invalid group_id")
    else:
        name = call.field("group_name")
        group = next((g for g in state.tag_groups if g.group_name == name), None)
        if group is None:
            group = TagGroup(random_id("et", 20), name, state.ts(), int(call.body.get("order", 0) or 0))
            state.tag_groups.append(group)
    names = [s["name"] for s in specs]
    if len(set(names)) != len(names) or {t.name for t in group.tags} & set(names):
        raise ApiFailure(Errcode.TAG_NAME_EXISTS, "tag name already exists")
    new = [Tag(random_id("et", 20), s["name"], state.ts(), int(s.get("order", 0) or 0)) for s in specs]
    group.tags.extend(new)
    return {"tag_group": _group_dict(group, new)}


def edit_corp_tag(state: SandboxState, call: Call) -> dict[str, Any]:
    """Rename / reorder a tag or a tag group (``id`` names either)."""
    target_id = call.field("id")
    name = call.field("name", str, required=False, default="")
    order = call.field("order", int, required=False)
    group = next((g for g in state.tag_groups if g.group_id == target_id), None)
    if group is not None:
        if name and name != group.group_name and any(g.group_name == name for g in state.tag_groups):
            raise ApiFailure(Errcode.TAG_NAME_EXISTS, "tag group name already exists")
        group.group_name = name or group.group_name
        group.order = group.order if order is None else order
        return {}
    found = state.find_tag(target_id)
    if found is None:
        raise ApiFailure(Errcode.INVALID_TAG_ID, "invalid tagid")
    owner, tag = found
    if name and name != tag.name and any(t.name == name for t in owner.tags):
        raise ApiFailure(Errcode.TAG_NAME_EXISTS, "tag name already exists")
    tag.name = name or tag.name
    tag.order = tag.order if order is None else order
    return {}


def del_corp_tag(state: SandboxState, call: Call) -> dict[str, Any]:
    tag_ids = set(call.strings("tag_id", required=False))
    group_ids = set(call.strings("group_id", required=False))
    if not tag_ids and not group_ids:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "tag_id or group_id required")
    known_tags = {t.id for g in state.tag_groups for t in g.tags}
    if tag_ids - known_tags or group_ids - {g.group_id for g in state.tag_groups}:
        raise ApiFailure(Errcode.INVALID_TAG_ID, "invalid tagid")
    removed = set(tag_ids)
    for g in state.tag_groups:
        if g.group_id in group_ids:
            removed |= {t.id for t in g.tags}
        g.tags = [t for t in g.tags if t.id not in removed]
    # A group whose last tag goes is deleted with it, as in WeCom.
    state.tag_groups = [g for g in state.tag_groups if g.tags]
    for customer in state.customers.values():
        for follow in customer.follows.values():
            follow.tag_ids = [t for t in follow.tag_ids if t not in removed]
    return {}


def mark_tag(state: SandboxState, call: Call) -> dict[str, Any]:
    userid = call.field("userid")
    _member(state, userid)
    customer = _customer(state, call.field("external_userid"))
    follow = customer.follows.get(userid)
    if follow is None:
        raise ApiFailure(Errcode.NOT_EXTERNAL_CONTACT)
    add = call.strings("add_tag", required=False)
    remove = call.strings("remove_tag", required=False)
    if not add and not remove:
        raise ApiFailure(Errcode.INVALID_PARAMETER, "add_tag or remove_tag required")
    if any(state.find_tag(t) is None for t in (*add, *remove)):
        raise ApiFailure(Errcode.INVALID_TAG_ID, "invalid tagid")
    follow.tag_ids = [t for t in follow.tag_ids if t not in remove] + [t for t in add if t not in follow.tag_ids]
    return {}


ROUTES: dict[str, Endpoint] = {
    f"externalcontact/{name}": func
    for name, func in {
        "get": get,
        "list": list_,
        "batch/get_by_user": batch_get_by_user,
        "get_follow_user_list": get_follow_user_list,
        "add_contact_way": add_contact_way,
        "get_contact_way": get_contact_way,
        "update_contact_way": update_contact_way,
        "del_contact_way": del_contact_way,
        "send_welcome_msg": send_welcome_msg,
        "add_msg_template": add_msg_template,
        "get_corp_tag_list": get_corp_tag_list,
        "add_corp_tag": add_corp_tag,
        "edit_corp_tag": edit_corp_tag,
        "del_corp_tag": del_corp_tag,
        "mark_tag": mark_tag,
    }.items()
}
