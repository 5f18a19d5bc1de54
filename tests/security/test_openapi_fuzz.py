"""Schema-driven fuzzing of /api/v1 from the app's own ``/api/openapi.json`` (what schemathesis does, written with
hypothesis so it needs no extra dependency and runs against our aiohttp app on a real local port).

For every documented operation, hypothesis draws path parameters, query parameters and a body — from the documented
schema, from near-misses of it, and from arbitrary JSON or bytes — with and without the bearer token. Every answer
must be a documented status for that operation (no 5xx unless documented), JSON, errors in the
``{"error": {"code", "message"}}`` shape, successes in the documented shape. The document itself must describe
exactly the routes the router serves. Bounded: a few examples per operation (``FUZZ_EXAMPLES``), well under two
minutes per database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrm.core.clock import UTC, FrozenClock
from tests.conftest import make_settings, reset_database
from tests.helpers import free_port

pytestmark = pytest.mark.security

FUZZ_EXAMPLES = int(os.environ.get("SCRM_FUZZ_EXAMPLES", "12"))
RANDOM = bool(os.environ.get("SCRM_FUZZ_RANDOM"))  # CI runs the same examples every time; set it to explore
TOKEN = "fuzz-admin-token"
KNOWN = {  # values that exist in the seeded database, so the fuzzer reaches past "not found"
    "number": ["SO100001", "SO100002", "PO100001", "SH100001"],
    "sku": ["WATER-550", "COLA-330", "OIL-5L"],
    "id": ["1", "2"],
    "external_userid": ["wmFuzz"],
    "customer": ["wmFuzz", "1"],
    "tag_id": ["1"],
}


class ServerThread:
    """The real app (runtime + create_app) on a local port, in a thread with its own event loop."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        self.settings = make_settings(database_url=database_url, port=self.port, admin_token=TOKEN)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from aiohttp import web

        from fulfillment.catalog.services import seed_sample_if_empty
        from fulfillment.orders import services as orders
        from scrm.app.runtime import build_runtime
        from scrm.app.webapp import create_app
        from tests.conftest import make_customer

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        rt = await build_runtime(self.settings, FrozenClock(dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)))
        await rt.jobs.start(rt)
        async with rt.db.write() as conn:
            await seed_sample_if_empty(conn, rt.db.dialect, rt.clock.now())
        cid = await make_customer(rt, "wmFuzz")
        await orders.create_order(rt, customer_id=cid, items=[("WATER-550", 2)], source="api", confirm=True)
        await orders.create_order(rt, customer_id=cid, items=[("COLA-330", 1)], source="api", confirm=False)
        runner = web.AppRunner(create_app(self.settings, runtime=rt), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
            await rt.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database")
        asyncio.run(reset_database(url))
    else:
        target = Path(tmp_path_factory.mktemp("fuzz")) / "scrm.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        url = f"sqlite+aiosqlite:///{target}"
    srv = ServerThread(url)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False
        yield s


@pytest.fixture(scope="module")
def doc(server: ServerThread, http: requests.Session) -> dict[str, Any]:
    resp = http.get(server.base + "/api/openapi.json", timeout=10)
    assert resp.status_code == 200
    return dict(resp.json())


def operations() -> list[tuple[str, str]]:
    """(method, path) of every documented operation, read from a throw-away app (collection time, no I/O)."""
    from scrm.app.webapp import create_app
    from scrm.core.http.openapi import api_document

    app = create_app(make_settings(database_url="sqlite+aiosqlite:///:memory:", admin_token=TOKEN))
    return sorted((m.upper(), p) for p, ops in api_document(app).to_json()["paths"].items() for m in ops)


OPERATIONS = operations()


# ---- JSON Schema → hypothesis --------------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
NASTY_TEXT = st.sampled_from(["", " ", "0", "-1", "'; DROP TABLE customers; --", "<script>", "%", "\\", "😀" * 3, "a" * 300])


def from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return from_schema(components[schema["$ref"].rsplit("/", 1)[-1]], components, depth)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return st.one_of([from_schema(s, components, depth) for s in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object" and depth < 4:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {k: from_schema(v, components, depth + 1) for k, v in props.items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required}, optional={k: v for k, v in fields.items() if k not in required}
        )
    if kind == "array" and depth < 4:
        return st.lists(from_schema(schema.get("items", {}), components, depth + 1), min_size=schema.get("minItems", 0), max_size=3)
    if kind == "integer":
        lo, hi = schema.get("minimum", -5), schema.get("maximum", 10**6)
        return st.integers(lo, hi) | st.sampled_from([lo - 1, hi + 1, 0])
    if kind == "number":
        return st.floats(schema.get("minimum", -1e6), schema.get("maximum", 1e9), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        if schema.get("format") == "date":
            return st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 31)).map(str)
        if schema.get("format") == "date-time":
            return st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2027, 12, 31), timezones=st.just(UTC)).map(lambda d: d.isoformat())
        return (
            st.text(max_size=schema.get("maxLength", 40)) | NASTY_TEXT | st.sampled_from([v for values in KNOWN.values() for v in values])
        )
    return JSON


def body_strategy(op: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[tuple[str, Any]]:
    content = op.get("requestBody", {}).get("content", {})
    raw = st.tuples(st.just("raw"), st.binary(max_size=200) | st.sampled_from([b"", b"{", b"[" * 5000, b'{"a": "\\u0000"}']))
    arbitrary = st.tuples(st.just("json"), JSON)
    if "application/json" in content:
        documented = st.tuples(st.just("json"), from_schema(content["application/json"].get("schema", {}), components))
        return st.one_of(documented, documented, documented, arbitrary, raw)
    if content:  # text/csv etc.
        return st.one_of(st.tuples(st.just("raw"), st.text(max_size=300).map(str.encode)), raw)
    return st.one_of(st.tuples(st.just("none"), st.none()), st.tuples(st.just("none"), st.none()), arbitrary)


def param_strategy(param: dict[str, Any], components: dict[str, Any]) -> st.SearchStrategy[str]:
    known = KNOWN.get(param["name"], [])
    values = from_schema(param.get("schema", {"type": "string"}), components).map(lambda v: v if isinstance(v, str) else json.dumps(v))
    return st.one_of(st.sampled_from(known), st.sampled_from(known), values) if known else values


# ---- checks ------------------------------------------------------------------------------------------------
def check_shape(value: Any, schema: dict[str, Any], components: dict[str, Any], where: str) -> None:
    """The documented shape, loosely: types of the top level and of required properties."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), (where, value)
        for name in schema.get("required", []):
            assert name in value, (where, name, value)
        for name, sub in schema.get("properties", {}).items():
            if name in value and value[name] is not None and sub.get("type") in ("object", "array"):
                check_shape(value[name], sub, components, f"{where}.{name}")
    elif kind == "array":
        assert isinstance(value, list), (where, value)
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), (where, value)
    elif kind == "string":
        assert isinstance(value, str), (where, value)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_answers_as_documented(method: str, path: str, server: ServerThread, http: requests.Session, doc: dict[str, Any]) -> None:
    op = doc["paths"][path][method.lower()]
    components = doc["components"]["schemas"]
    params = op.get("parameters", [])
    path_params = [p for p in params if p["in"] == "path"]
    query_params = [p for p in params if p["in"] == "query"]

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=not RANDOM)
    @given(
        path_values=st.fixed_dictionaries({p["name"]: param_strategy(p, components) for p in path_params}),
        query=st.fixed_dictionaries(
            {p["name"]: param_strategy(p, components) for p in query_params if p.get("required")},
            optional={p["name"]: param_strategy(p, components) for p in query_params if not p.get("required")},
        ),
        body=body_strategy(op, components),
        authorised=st.sampled_from([True, True, True, True, False]),
    )
    def fuzz(path_values: dict[str, str], query: dict[str, str], body: tuple[str, Any], authorised: bool) -> None:
        url = path
        for name, value in path_values.items():
            url = url.replace("{" + name + "}", quote(value, safe="") or "%20")
        headers = {"Authorization": f"Bearer {TOKEN}"} if authorised else {}
        kind, payload = body
        kw: dict[str, Any] = {}
        if kind == "json":
            kw["data"] = json.dumps(payload)
            headers["Content-Type"] = "application/json"
        elif kind == "raw":
            kw["data"] = payload
        resp = http.request(method, server.base + url, params=query, headers=headers, timeout=30, allow_redirects=False, **kw)
        where = f"{method} {url} {query} {kind}:{str(payload)[:200]} -> {resp.status_code} {resp.text[:300]}"
        documented = op["responses"]
        assert str(resp.status_code) in documented, f"undocumented status: {where}"
        assert resp.status_code < 500 or str(resp.status_code) in documented, where
        spec = documented[str(resp.status_code)].get("content", {})
        if "text/csv" in spec and resp.status_code < 300:
            assert resp.headers["Content-Type"].startswith("text/csv"), where
            return
        assert resp.headers.get("Content-Type", "").startswith("application/json"), where
        data = resp.json()
        if resp.status_code >= 400:
            assert isinstance(data, dict) and isinstance(data.get("error"), dict), where
            assert isinstance(data["error"].get("code"), str) and data["error"]["code"], where
            assert isinstance(data["error"].get("message"), str) and data["error"]["message"], where
        elif "application/json" in spec:
            check_shape(data, spec["application/json"].get("schema", {}), components, where)

    fuzz()


def test_the_document_describes_exactly_the_routes(server: ServerThread, doc: dict[str, Any]) -> None:
    from scrm.app.webapp import create_app

    app = create_app(server.settings)
    routed = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource and r.resource.canonical.startswith("/api/v1")}
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert routed - {("HEAD", p) for _, p in routed} == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == {part[1:-1] for part in path.split("/") if part.startswith("{")}, (method, path)
            assert op["operationId"] and op["summary"], (method, path)
            assert any(s.startswith("2") for s in op["responses"]), (method, path)
            assert "401" in op["responses"], (method, path)


def test_every_query_parameter_a_handler_reads_is_documented(doc: dict[str, Any], server: ServerThread) -> None:
    """A static check: ``request.query.get("x")`` (and the filter loops in scrm/app/ops_web.py) in an /api/v1 handler
    means ``x`` is in that operation's parameters."""
    import inspect
    import re

    from scrm.app.webapp import create_app

    app = create_app(server.settings)
    missing = []
    for route in app.router.routes():
        if route.resource is None or not route.resource.canonical.startswith("/api/v1") or route.method == "HEAD":
            continue
        source = inspect.getsource(route.handler)
        used = set(re.findall(r'query\.get\("([a-z_]+)"', source))
        for names in re.findall(r"for name in \(([^)]*)\):\s*\n\s*if value := request\.query\.get\(name\)", source):
            used |= set(re.findall(r'"([a-z_]+)"', names))
        op = doc["paths"][route.resource.canonical][route.method.lower()]
        documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        if used - documented:
            missing.append((route.method, route.resource.canonical, sorted(used - documented)))
    assert not missing, missing
