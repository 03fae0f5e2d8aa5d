"""``dupcheck serve``: the Convoso-compatible lead insert API, over real HTTP.

A uvicorn server runs in a thread against the CRM simulator (HubSpot,
``examples/contacts.csv``); the SIGTERM test runs ``dupcheck serve`` as a
subprocess. Sample contacts: +15550100101 customer (rule "customer": no lead,
DNC), +15550100002 opportunity (rule "opportunity": lead DUPOPP, failure),
+15550100003 lead (rule "known": duplicate). Fresh phones are 555-02x-xxxx.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from dupcheck_plugin.http.client import make_client
from dupcheck_plugin.server import ServeSettings, create_app
from dupcheck_plugin.server.http import MAX_HEAD_BYTES, uvicorn_options
from dupcheck_plugin.server import convoso as cv
from dupcheck_plugin.server.auth import TokenError, Tokens, load_tokens
from dupcheck_plugin import codes
from dupcheck_plugin.host import KeyedLocks
from dupcheck_plugin.server.logs import JsonFormatter, mask_query
from dupcheck_plugin.sim import SimulatorThread
from dupcheck_plugin.store.sqlite import SqliteStore

from conftest import serve_url, unlimited_copy

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = str(ROOT / "workflows" / "hubspot_dupcheck.toml")
CONTACTS = ROOT / "examples" / "contacts.csv"
TOKEN = "test-token-0123456789"
OTHER_TOKEN = "second-token-abcdef"
CUSTOMER, OPPORTUNITY, KNOWN = "+15550100101", "5550100002", "+15550100003"
ENV = {"HUBSPOT_TOKEN": "sim-token"}

_numbers = itertools.count(2_000_000)


def fresh_phone() -> str:
    """A 10-digit number no sample contact has and no other test uses."""
    return f"555{next(_numbers):07d}"


# -- a uvicorn server in a thread -----------------------------------------------

class ServerThread:
    def __init__(self, app):
        self.app = app
        # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so (else 40 ms delayed-ACK stalls)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, backlog=2048, **uvicorn_options())  # as `dupcheck serve`
        logging.getLogger("uvicorn.access").disabled = True  # as `dupcheck serve` does (setup_logging)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def api(self):
        return self.app.state.api


def make_server(sim, db: Path, *, db_url: str | None = None, **settings) -> ServerThread:
    """A server on the SQLite file ``db``, or on ``db_url`` (PostgreSQL; ``db``'s folder holds the workflow)."""
    s = ServeSettings(workflow=str(unlimited_copy(Path(WORKFLOW), db.parent)), tokens=[TOKEN, OTHER_TOKEN],
                      db=db_url or str(db), crm_url=sim.url, environ=ENV, **settings)
    return ServerThread(create_app(s))


@pytest.fixture(scope="module")
def sim():
    with SimulatorThread(CONTACTS) as s:
        yield s


@pytest.fixture(scope="module")
def srv(sim, tmp_path_factory):
    with make_server(sim, tmp_path_factory.mktemp("serve") / "serve.db") as server:
        yield server


@pytest.fixture
def client(srv):
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store_srv(request, sim, tmp_path_factory):
    """The module's server on SQLite, then one on a database of the test PostgreSQL
    cluster (dupcheck_plugin.dev.postgres): the tests that use it must hold on both."""
    if request.param == "sqlite":
        yield request.getfixturevalue("srv")
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = f"serve_{os.getpid()}"
    url = cluster.create_database(name)
    try:
        with make_server(sim, tmp_path_factory.mktemp("serve-pg") / "unused.db", db_url=url) as server:
            assert type(server.api.store).__name__ == "PostgresStore"
            yield server
    finally:
        cluster.drop_database(name)


@pytest.fixture
def store_client(store_srv):
    with httpx.Client(base_url=store_srv.url, timeout=30) as c:
        yield c


def insert(client, token=TOKEN, **params):
    r = client.post("/v1/leads/insert", data={"auth_token": token, "list_id": "100", **params})
    assert r.status_code == 200, r.text
    return r.json()


# -- pure parts -------------------------------------------------------------------

def test_merge_body_wins_over_query_and_last_repeat_wins():
    merged = cv.merge([("a", "q"), ("b", "1"), ("b", "2")], [("a", "body")])
    assert merged == {"a": "body", "b": "2"}


@pytest.mark.parametrize("body", [b'{"a": {"b": 1}}', b'{"a": [1]}', b"[1, 2]", b"{bad", b"\xff\xfe",
                                  b'"just a string"', b'{"a": 1' + b"0" * 5000 + b"}"])
def test_json_bodies_that_are_not_flat_objects_are_400(body):
    with pytest.raises(cv.ApiError) as err:
        cv.json_params(body)
    assert err.value.status == 400 and err.value.code == codes.MISSING_FIELDS.code


def test_json_scalars_flatten_like_convoso_params():
    assert dict(cv.json_params(b'{"list_id": 12, "check_dnc": true, "x": null, "f": 1.5}')) == {
        "list_id": "12", "check_dnc": "true", "f": "1.5"}


@pytest.mark.parametrize("items", [[("lead[name]", "x")], [("a", "\ud800")], [("k" * 201, "v")]])
def test_merge_refuses_php_arrays_lone_surrogates_and_huge_names(items):
    with pytest.raises(cv.ApiError):
        cv.merge(items)


def test_form_body_must_be_utf8():
    assert cv.form_params(b"a=%C3%A9&b=") == [("a", "é"), ("b", "")]
    with pytest.raises(cv.ApiError):
        cv.form_params(b"a=%FF")
    with pytest.raises(cv.ApiError):
        cv.form_params(b"a=\xff")


@pytest.mark.parametrize("body", [b"", b"&", b"a", b"a=", b"=b", b"a=b=c", b"&&a=1&&b&c=", b"a=1;b=2",
                                  b"first_name=F&last_name=L&phone_number=5557000123", "n=\u00e9\u4e2d".encode(),
                                  b"a=x+y&b=%41", b"a+b=1", b"k=%", b" a = b "])
def test_form_params_split_as_parse_qsl_does(body):
    from urllib.parse import parse_qsl  # the authority; form_params skips it when nothing is escaped

    assert cv.form_params(body) == parse_qsl(body.decode(), keep_blank_values=True)


@pytest.mark.parametrize("value,default,expected", [(None, 1, 1), ("", 2, 2), ("0", 1, 0), ("3", 1, 3),
                                                    ("true", 0, 1), ("false", 1, 0), (" 2 ", 1, 2)])
def test_check_dup_values(value, default, expected):
    assert cv.parse_check_dup(value, default) == expected


@pytest.mark.parametrize("value", ["4", "-1", "abc", "1.0", "٣"])
def test_check_dup_out_of_range_is_6023(value):
    with pytest.raises(cv.Refusal) as err:
        cv.parse_check_dup(value, 1)
    assert err.value.code == 6023


@pytest.mark.parametrize("params,code", [({"list_id": "1"}, 6007), ({"phone_number": "5551234567"}, 6007),
                                         ({"phone_number": "5551234567", "list_id": "abc"}, 6002),
                                         ({"phone_number": "5551234567", "list_id": "1", "check_dup": "9"}, 6023)])
def test_parse_insert_refusals(params, code):
    with pytest.raises(cv.Refusal) as err:
        cv.parse_insert(params, 1)
    assert err.value.code == code


def test_parse_insert_strips_token_and_options_from_the_lead():
    req = cv.parse_insert({"auth_token": "t", "phone_number": "5551234567", "list_id": " 0042", "check_dnc": "1",
                           "check_dup_archive": "1", "hopper": "true", "my_custom": "x"}, 1)
    assert req.lead == {"phone_number": "5551234567", "list_id": "42", "my_custom": "x"}
    assert req.check_dup == 1 and req.check_dnc is True


def _rec(**kw):
    base = {"success": True, "code": 200, "text": "Lead created", "lead_id": "7", "rules_row": None,
            "rules_row_name": None, "decided_by": "default_status", "crm_record_id": None, "retryable": False, "action": "created", "api": {}}
    return {**base, **kw}


def test_insert_answers_are_a_function_of_the_record():
    assert cv.insert_answer(_rec()) == {"success": True, "data": {"lead_id": "7"}}
    assert cv.insert_answer(_rec(success=False, code=6009, text="dup", rules_row=1, rules_row_name="opp",
                                 crm_record_id="102")) == {
        "success": False, "code": 6009, "text": "dup", "data": {"lead_id": "7"}, "row": "row 1 (opp)",
        "crm_record_id": "102"}
    assert cv.insert_answer(_rec(success=False, code=6009, text="dup", lead_id=None, rules_row=2,
                                 action="duplicate"))["row"] == "row 2"
    local = cv.insert_answer(_rec(success=False, code=6009, text="dup", lead_id=None, action="duplicate",
                                  decided_by="check_dup", api={"local_check": "check_dup", "existing_lead_id": "3"}))
    assert local == {"success": False, "code": 6009, "text": "dup", "row": "check_dup", "existing_lead_id": "3"}
    detailed = cv.insert_answer(_rec(success=False, code=6008, text="The phone number is invalid", lead_id=None,
                                     action="rejected", detail="not a possible phone number"))
    assert detailed == {"success": False, "code": 6008, "text": "The phone number is invalid",
                        "detail": "not a possible phone number"}
    assert cv.insert_answer(_rec(success=False, code=6503, text="x", lead_id=None, retryable=True,
                                 action="rejected"))["retryable"] is True


def test_mask_query_hides_token_phones_and_personal_data():
    masked = mask_query([("auth_token", TOKEN), ("phone_number", "5551234567"), ("first_name", "Ada"),
                         ("list_id", "100"), ("email", "ada@example.com")])
    assert TOKEN not in masked and "5551234567" not in masked and "Ada" not in masked and "ada@" not in masked
    assert "auth_token=****" in masked and "list_id=100" in masked and "4567" in masked


def test_tokens_compare_against_every_token(monkeypatch):
    tokens = Tokens(["a" * 20, "b" * 20, "c" * 20])
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda x, y: calls.append(1) or real(x, y))
    assert tokens.valid("a" * 20) and not tokens.valid("a" * 19) and not tokens.valid("")
    assert len(calls) == 9  # no early exit on the first match


def test_tokens_come_from_env_and_file(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("# comment\n\n  file-token  \n#not-a-token\n")
    assert load_tokens(str(f), {"DUPCHECK_API_TOKENS": " a, ,b "}) == ["a", "b", "file-token"]
    with pytest.raises(TokenError, match="DUPCHECK_API_TOKENS"):
        load_tokens(None, {})
    with pytest.raises(TokenError, match="cannot read"):
        load_tokens(str(tmp_path / "missing"), {"DUPCHECK_API_TOKENS": "a"})


def test_keyed_locks_serialize_one_key_and_forget_it():
    locks = KeyedLocks()
    order = []

    async def work(key, i):
        async with locks.hold(key):
            order.append(("in", key, i))
            await asyncio.sleep(0.01)
            order.append(("out", key, i))

    async def main():
        await asyncio.gather(*(work("k", i) for i in range(5)), work("other", 9))
        assert len(locks) == 0

    asyncio.run(main())
    same = [e for e in order if e[1] == "k"]
    assert all(same[i][0] == "in" and same[i + 1][0] == "out" for i in range(0, len(same), 2))


# -- the rules table through the API -----------------------------------------------

def test_customer_is_refused_with_rule_and_crm_id_and_put_on_dnc(store_client):
    client = store_client
    body = insert(client, phone_number=CUSTOMER, check_dup="0")
    assert body == {"success": False, "code": 6009, "text": "The phone number already exists",
                    "row": "row 0 (customer)", "crm_record_id": "101"}
    dnc = client.get("/v1/dnc/search", params={"auth_token": TOKEN, "phone_number": "5550100101"}).json()
    assert dnc["data"]["total"] == 1 and dnc["data"]["entries"][0]["reason"] == "row 0 (customer)"


def test_opportunity_is_posted_but_answered_failure_with_lead_id(client):
    body = insert(client, phone_number=OPPORTUNITY, check_dup="0")
    assert body["success"] is False and body["code"] == 6009 and body["row"] == "row 1 (opportunity)"
    assert body["crm_record_id"] == "102" and body["data"]["lead_id"]
    found = client.post("/v1/leads/search", data={"auth_token": TOKEN, "lead_id": body["data"]["lead_id"]}).json()
    assert found["data"]["entries"][0]["status"] == "DUPOPP"


def test_known_contact_is_a_duplicate_and_new_phone_is_created(client):
    assert insert(client, phone_number=KNOWN, check_dup="0")["row"] == "row 2 (known)"
    body = insert(client, phone_number=fresh_phone(), first_name="Ada")
    assert body["success"] is True and set(body) == {"success", "data"} and body["data"]["lead_id"].isdigit()


@pytest.mark.parametrize("params,code", [
    ({"list_id": "100"}, 6007), ({"phone_number": "5551112222", "list_id": ""}, 6007),
    ({"phone_number": "5551112222", "list_id": "abc"}, 6002), ({"phone_number": "12", "list_id": "1"}, 6008),
    ({"phone_number": "5551112223", "list_id": "1", "email": "not-an-email"}, 6079),
    ({"phone_number": "5551112224", "list_id": "1", "check_dup": "7"}, 6023),
    ({"phone_number": "5551112225", "list_id": "1", "phone_code": "GB"}, 6026),  # not read as +1
])
def test_convoso_refusals_are_http_200_and_recorded(client, params, code):
    r = client.post("/v1/leads/insert", data={"auth_token": TOKEN, **params})
    assert r.status_code == 200
    assert r.json()["success"] is False and r.json()["code"] == code
    phone = params.get("phone_number")
    if phone and code not in (6008, 6026):  # every answered insert leaves its decision record (no phone: no lookup)
        recs = client.get("/v1/decisions", params={"auth_token": TOKEN, "phone": phone}).json()["data"]["entries"]
        assert recs[-1]["code"] == code and recs[-1]["action"] == "rejected" and recs[-1]["lead_id"] is None


def test_check_dnc_refuses_numbers_on_the_dnc_list(store_client):
    client = store_client
    phone = fresh_phone()
    added = client.post("/v1/dnc/insert", data={"auth_token": TOKEN, "phone_number": phone, "phone_code": "1",
                                                "reason": "asked"}).json()
    assert added["success"] is True and isinstance(added["id"], int)
    body = insert(client, phone_number=phone, check_dnc="1")
    assert body == {"success": False, "code": 6024, "text": "The phone number is on the DNC list", "row": "check_dnc"}
    assert insert(client, phone_number=phone, check_dnc="0")["success"] is True  # not asked: created


def test_check_dup_scopes(store_client):
    client = store_client
    phone = fresh_phone()
    first = insert(client, phone_number=phone, list_id="7")["data"]["lead_id"]
    assert insert(client, phone_number=phone, list_id="8", check_dup="2")["success"] is True
    assert insert(client, phone_number=phone, list_id="9", check_dup="3")["success"] is True  # 3 = same list
    same_list = insert(client, phone_number=phone, list_id="7", check_dup="2")
    assert same_list["code"] == 6009 and same_list["existing_lead_id"] == first
    account = insert(client, phone_number=phone, list_id="10", check_dup="1")
    assert account["code"] == 6009 and account["row"] == "check_dup" and "data" not in account


def test_double_submitted_form_creates_one_lead_and_asks_the_crm_once(store_client, sim):
    client = store_client
    phone = fresh_phone()
    before = sim.stats()["requests"]
    first = insert(client, phone_number=phone)  # no check_dup: --check-dup-default 1
    second = insert(client, phone_number=phone)
    assert first["success"] is True
    assert second["code"] == 6009 and second["existing_lead_id"] == first["data"]["lead_id"]
    assert sim.stats()["requests"] - before == 1


def test_check_dup_default_zero_leaves_duplicates_to_the_crm(sim, tmp_path):
    with make_server(sim, tmp_path / "zero.db", check_dup_default=0) as server, \
            httpx.Client(base_url=server.url) as c:
        phone = fresh_phone()
        assert insert(c, phone_number=phone)["success"] and insert(c, phone_number=phone)["success"]
        assert server.api.store.counts()["leads"] == 2
    assert server.api.closed
    with SqliteStore(tmp_path / "zero.db") as store:  # the shutdown joined the store writer: all landed
        assert store.counts() == {"leads": 2, "dnc": 0, "decisions": 2}


# -- parameters in every shape -----------------------------------------------------

def test_parameters_from_query_form_json_and_multipart(client):
    shapes = [
        dict(params={"auth_token": TOKEN, "list_id": "1", "phone_number": fresh_phone()}),
        dict(data={"auth_token": TOKEN, "list_id": "1", "phone_number": fresh_phone()}),
        dict(json={"auth_token": TOKEN, "list_id": 1, "phone_number": fresh_phone(), "check_dnc": False}),
        dict(files={"auth_token": (None, TOKEN), "list_id": (None, "1"), "phone_number": (None, fresh_phone())}),
        # the body wins over the query string
        dict(params={"auth_token": "wrong", "list_id": "x"}, data={"auth_token": TOKEN, "list_id": "2",
                                                                  "phone_number": fresh_phone()}),
    ]
    for shape in shapes:
        r = client.post("/v1/leads/insert", **shape)
        assert r.status_code == 200 and r.json()["success"] is True, (shape, r.text)


@pytest.mark.parametrize("kwargs,status", [
    (dict(content=b'{"auth_token": "x", "lead": {"a": 1}}', headers={"content-type": "application/json"}), 400),
    (dict(content=b'{"auth_token": ', headers={"content-type": "application/json"}), 400),
    (dict(content=b"hello", headers={"content-type": "text/plain"}), 415),
    (dict(content=b"a=%FF", headers={"content-type": "application/x-www-form-urlencoded"}), 400),
    (dict(content=b"x" * (cv.MAX_BODY_BYTES + 1), headers={"content-type": "application/json"}), 413),
    (dict(content=iter([b"a=" + b"x" * 65536] * 17), headers={"content-type": "application/x-www-form-urlencoded"}), 413),
])
def test_unreadable_bodies_are_4xx_convoso_json(client, kwargs, status):
    r = client.post("/v1/leads/insert", **kwargs)
    assert r.status_code == status
    assert r.json()["success"] is False and isinstance(r.json()["code"], int) and r.json()["text"]


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` on a new connection, return all the server answered until it closed."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_query_string_over_the_limit_is_414_json(srv):
    """httpx will not send a URL this long: a raw socket does. serve's limit on
    the request line and headers sits above ours, so the app answers, in JSON."""
    answer = raw_exchange(srv.url, b"GET /v1/leads/insert?a=" + b"x" * (cv.MAX_BODY_BYTES + 10) +
                          b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414") and json.loads(body)["success"] is False


def test_a_lead_in_a_query_string_over_64_kib_reaches_the_app(srv):
    """httptools parses URLs up to 64 KiB; a longer query is still the app's to read (and refuse)."""
    query = f"auth_token={TOKEN}&list_id=1&phone_number={fresh_phone()}&notes=" + "x" * 70_000
    answer = raw_exchange(srv.url, f"GET /v1/leads/insert?{query} HTTP/1.1\r\nHost: t\r\n"
                                   "Connection: close\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["code"] == 6023 and "longer than 65536" in json.loads(body)["detail"]


def test_request_line_and_headers_over_the_limit_are_400_and_closed(srv):
    """llhttp keeps no limit of its own: headers that never end cannot grow the server's memory."""
    answer = raw_exchange(srv.url, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * MAX_HEAD_BYTES)  # no end
    assert answer.startswith(b"HTTP/1.1 400")

# -- auth ----------------------------------------------------------------------------

def test_auth_missing_401_wrong_403_and_no_lead_without_a_token(client, srv):
    before = srv.api.store.counts()
    phone = fresh_phone()
    r = client.post("/v1/leads/insert", data={"list_id": "1", "phone_number": phone})
    assert r.status_code == 401 and r.json() == {"success": False, "code": 401, "text": "Missing auth_token"}
    r = client.get("/v1/leads/insert", params={"auth_token": TOKEN + "x", "list_id": "1", "phone_number": phone})
    assert r.status_code == 403 and r.json()["success"] is False
    assert srv.api.store.counts() == before
    for endpoint in ("/v1/leads/search", "/v1/dnc/insert", "/v1/dnc/search", "/v1/decisions"):
        assert client.post(endpoint).status_code == 401
    head = client.head("/v1/leads/insert", params={"auth_token": TOKEN, "list_id": "1", "phone_number": phone})
    assert head.status_code == 405 and srv.api.store.counts() == before  # HEAD is safe: never inserts
    r = client.post("/v1/leads/insert", data={"list_id": "1", "phone_number": phone},
                    headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert r.json()["success"] is True


def test_tokens_and_phones_never_reach_the_logs(client, caplog):
    phone = fresh_phone()
    with caplog.at_level(logging.DEBUG):
        client.get("/v1/leads/insert", params={"auth_token": TOKEN, "list_id": "1", "phone_number": phone,
                                               "first_name": "Secretname"})
        client.get("/v1/leads/insert", params={"auth_token": "bad-" + TOKEN, "list_id": "1", "phone_number": phone})
        client.get("/v1/dnc/search", params={"auth_token": TOKEN, "phone_number": phone})
        deadline = time.monotonic() + 2
        while sum(r.name.endswith("access") for r in caplog.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    fmt = JsonFormatter()
    # the server's loggers (the test's own httpx client logs its URLs, token included)
    lines = [fmt.format(r) for r in caplog.records if r.name.startswith(("dupcheck_plugin", "uvicorn"))]
    access = [json.loads(x) for x in lines if '"dupcheck_plugin.server.access"' in x]
    assert len(access) >= 3 and {"ts", "level", "msg", "path", "status", "ms"} <= set(access[0])
    assert access[0]["phone"] == "+1555***" + phone[-4:]
    text = "\n".join(lines)
    assert TOKEN not in text and phone not in text and phone[3:] not in text and "Secretname" not in text


@pytest.mark.parametrize("raw", ["{p}   ", "{p}x123456", "({a}) {b}-{c} ", "+1{p} ext. 99", "1-{a}-{b}-{c}"])
def test_masking_normalises_before_it_masks(raw):
    from dupcheck_plugin.server.logs import masked_phone

    phone = fresh_phone()
    value = raw.format(p=phone, a=phone[:3], b=phone[3:6], c=phone[6:])
    masked = masked_phone(value)
    assert phone[3:] not in masked.replace(" ", "") and phone[:7] not in masked
    masked_q = mask_query([("phone_number", value), ("alt_phone_1", value), ("phone", value)])
    assert phone[3:] not in masked_q and phone[:7] not in masked_q


def test_no_phone_form_reaches_the_logs_whole(client, caplog):
    phone, alt = fresh_phone(), fresh_phone()
    with caplog.at_level(logging.DEBUG):
        client.get("/v1/leads/insert", params={"auth_token": TOKEN, "list_id": "1", "phone_number": phone + "   ",
                                               "alt_phone_1": alt + "x123456"})
        client.get("/v1/leads/insert", params={"auth_token": TOKEN, "list_id": "1",
                                               "phone_number": phone + "x123456"})
        client.get("/v1/decisions", params={"auth_token": TOKEN, "phone": phone + "   "})
        client.get("/v1/decisions", params={"auth_token": TOKEN, "phone": phone + "x123456"})
        client.get("/v1/leads/search", params={"auth_token": TOKEN, "phone_number": phone + "x123456"})
        deadline = time.monotonic() + 2
        while sum(r.name.endswith("access") for r in caplog.records) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    fmt = JsonFormatter()
    text = "\n".join(fmt.format(r) for r in caplog.records if r.name.startswith(("dupcheck_plugin", "uvicorn")))
    assert text.count('"dupcheck_plugin.server.access"') >= 5
    for number in (phone, alt):
        assert number[3:] not in text and number[:7] not in text


# -- concurrency and idempotency ------------------------------------------------------

async def _fire(url: str, requests: list[dict], max_connections: int = 200) -> list[httpx.Response]:
    """All at once. The aiohttp transport: httpx's own pool crawls with 1,000 waiters."""
    async with make_client(transport="aiohttp", max_connections=max_connections, timeout=60) as c:
        return await asyncio.gather(*(c.post(url + "/v1/leads/insert", **r) for r in requests))


def test_fifty_concurrent_inserts_of_one_phone_create_one_lead(store_srv, sim):
    srv = store_srv
    phone = fresh_phone()
    before = sim.stats()["requests"]
    answers = [r.json() for r in asyncio.run(_fire(srv.url, [
        {"data": {"auth_token": TOKEN, "list_id": "1", "phone_number": phone}}] * 50))]
    created = [a for a in answers if a["success"]]
    assert len(created) == 1
    lead_id = created[0]["data"]["lead_id"]
    assert all(a["code"] == 6009 and a["existing_lead_id"] == lead_id for a in answers if not a["success"])
    assert [x["id"] for x in srv.api.store.find_leads("+1" + phone)] == [lead_id]
    assert sim.stats()["requests"] - before >= 1
    assert len(srv.api.store.decisions("+1" + phone)) == 50
    assert len(srv.api.host.phone_locks) == 0  # the lock dict forgets phones nobody waits for


def test_thousand_concurrent_distinct_phones_create_thousand_leads(srv):
    before = srv.api.store.counts()
    phones = [fresh_phone() for _ in range(1000)]
    started = time.perf_counter()
    responses = asyncio.run(_fire(srv.url, [{"data": {"auth_token": TOKEN, "list_id": "1", "phone_number": p}}
                                            for p in phones]))
    elapsed = time.perf_counter() - started
    failed = [(r.status_code, r.text) for r in responses if not (r.status_code == 200 and r.json()["success"])]
    assert not failed, failed[:3]
    assert len({r.json()["data"]["lead_id"] for r in responses}) == 1000
    after = srv.api.store.counts()
    assert after["leads"] - before["leads"] == 1000 and after["decisions"] - before["decisions"] == 1000
    assert len(srv.api.host.phone_locks) == 0
    print(f"\n1000 concurrent inserts over HTTP: {elapsed:.2f}s ({1000 / elapsed:.0f}/s)")


def test_idempotency_key_replays_the_first_answer(store_client, store_srv):
    client, srv = store_client, store_srv
    phone = fresh_phone()
    headers = {"Idempotency-Key": f"order-{phone}"}
    first = client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1", "phone_number": phone},
                        headers=headers)
    again = client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1", "phone_number": phone},
                        headers=headers)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert first.json()["success"] is True  # not a 6009: the retry is the same request, not a duplicate
    assert len(srv.api.store.decisions("+1" + phone)) == 1
    # keys are scoped per token: another client's same key is its own request, never the first's lead_id
    stranger = client.post("/v1/leads/insert", data={"auth_token": OTHER_TOKEN, "list_id": "1", "phone_number": phone},
                           headers=headers)
    assert stranger.status_code == 200 and stranger.content != first.content
    assert stranger.json().get("data", {}).get("lead_id") != first.json()["data"]["lead_id"]
    assert len(srv.api.store.decisions("+1" + phone)) == 2
    other = client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "2", "phone_number": phone},
                        headers=headers)
    assert other.status_code == 422 and other.json()["success"] is False


def test_idempotency_key_holds_for_concurrent_retries_and_refusals(store_srv, sim):
    srv = store_srv
    phone = fresh_phone()
    req = {"data": {"auth_token": TOKEN, "list_id": "1", "phone_number": phone, "check_dup": "0"},
           "headers": {"Idempotency-Key": f"k-{phone}"}}
    before = sim.stats()["requests"]
    responses = asyncio.run(_fire(srv.url, [req] * 20))
    assert len({(r.status_code, r.content) for r in responses}) == 1
    assert len(srv.api.store.find_leads("+1" + phone)) == 1  # check_dup 0: only the key prevents a second lead
    assert sim.stats()["requests"] - before == 1  # the retries waited for the first answer: one CRM call
    refused = {"data": {"auth_token": TOKEN, "phone_number": phone}, "headers": {"Idempotency-Key": f"r-{phone}"}}
    a, b = asyncio.run(_fire(srv.url, [refused, refused]))
    assert a.content == b.content and a.json()["code"] == 6007


REJECT_ON_ERROR = """
name = "reject_on_error"
[[nodes]]
id = "hubspot"
type = "convoso_connect"
config = { adaptor = "hubspot_contacts_search", timeout = 5, limits = false, batch = false, retry = { attempts = 1 } }
[[nodes]]
id = "dupcheck"
type = "api_duplicate_check"
[nodes.config]
connect = "hubspot"
on_error = { action = "reject" }
rules = [ { key = "total", match = "gt", value = 0, create_lead = false, add_to_dnc = false, success = false } ]
"""


def test_a_retryable_answer_does_not_spend_its_idempotency_key(tmp_path):
    """6503 "retry later" (on_error reject) created nothing: the client's retry with the same
    key, as the key is for, is decided again once the CRM is back; before, the stored
    rejection was replayed to it for ever."""
    wf = tmp_path / "reject.toml"
    wf.write_text(REJECT_ON_ERROR, encoding="utf-8")
    with SimulatorThread(CONTACTS) as crm:
        settings = ServeSettings(workflow=str(wf), tokens=[TOKEN], db=str(tmp_path / "s.db"), crm_url=crm.url,
                                 environ=ENV)
        with ServerThread(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
            phone = fresh_phone()
            req = {"data": {"auth_token": TOKEN, "list_id": "1", "phone_number": phone},
                   "headers": {"Idempotency-Key": f"order-{phone}"}}
            httpx.post(crm.url + "/_sim/knobs", json={"error_rate": 1.0}).raise_for_status()
            first = client.post("/v1/leads/insert", **req).json()
            assert first["code"] == 6503 and first["retryable"] is True
            httpx.post(crm.url + "/_sim/knobs", json={"error_rate": 0.0}).raise_for_status()
            retry = client.post("/v1/leads/insert", **req)
            assert retry.json()["success"] is True and retry.json()["data"]["lead_id"], retry.text
            again = client.post("/v1/leads/insert", **req)
            assert again.content == retry.content  # from then on the key replays the lead
            rejected, created = sorted(srv.api.store.decisions("+1" + phone), key=lambda r: r["action"] != "rejected")
            assert rejected["action"] == "rejected" and rejected["idempotency_key"] is None
            assert created["action"] == "created" and created["idempotency_key"].endswith(f"order-{phone}")
            assert rejected["api"]["idempotency_key"] == created["idempotency_key"]  # kept, not spent
            assert len(srv.api.store.find_leads("+1" + phone)) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"])
def test_bad_idempotency_keys_are_400(client, key):
    r = client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1", "phone_number": fresh_phone()},
                    headers={"Idempotency-Key": key.encode()})
    assert r.status_code == 400 and r.json()["success"] is False


# -- search, DNC, evidence ------------------------------------------------------------

def test_leads_search_filters_and_pages(client):
    phone = fresh_phone()
    email = f"p{phone}@example.com"
    ids = [insert(client, phone_number=phone, list_id=str(500 + i), email=email, check_dup="0",
                  my_field="custom")["data"]["lead_id"] for i in range(3)]
    by_phone = client.post("/v1/leads/search", data={"auth_token": TOKEN, "phone_number": phone}).json()["data"]
    assert by_phone["total"] == "3" and [e["id"] for e in by_phone["entries"]] == ids[::-1]
    entry = by_phone["entries"][0]
    assert entry["my_field"] == "custom" and entry["email"] == email and all(isinstance(v, str) for v in entry.values())
    by_email = client.get("/v1/leads/search", params={"auth_token": TOKEN, "email": email.upper(), "limit": "2",
                                                       "offset": "1"}).json()["data"]
    assert by_email["total"] == "3" and [e["id"] for e in by_email["entries"]] == ids[1::-1]
    by_list = client.post("/v1/leads/search", data={"auth_token": TOKEN, "list_id": "501"}).json()["data"]
    assert [e["id"] for e in by_list["entries"]] == [ids[1]]
    both = client.post("/v1/leads/search", data={"auth_token": TOKEN, "phone_number": phone, "list_id": "502"})
    assert [e["id"] for e in both.json()["data"]["entries"]] == [ids[2]]
    for bad, code in (({"limit": "0"}, 7230), ({"limit": "2001"}, 7230), ({"offset": "-1"}, 7231)):
        r = client.post("/v1/leads/search", data={"auth_token": TOKEN, **bad})
        assert r.status_code == 200 and r.json()["code"] == code


def test_dnc_insert_and_search(store_client):
    client = store_client
    phone = fresh_phone()
    ok = client.get("/v1/dnc/insert", params={"auth_token": TOKEN, "phone_number": phone, "phone_code": "1",
                                              "campaign_id": "0", "reason": "DNC"}).json()
    assert ok["success"] is True
    again = client.post("/v1/dnc/insert", data={"auth_token": TOKEN, "phone_number": "+1" + phone, "phone_code": "+1"})
    assert again.json() == {"success": False, "code": 6008, "text": "The phone number already exists."}
    assert client.post("/v1/dnc/insert", data={"auth_token": TOKEN, "phone_number": phone, "phone_code": "1",
                                               "campaign_id": "77"}).json()["success"] is True
    for params, code in (({"phone_number": "12", "phone_code": "1"}, 6007), ({"phone_number": phone}, 6026),
                         ({"phone_number": phone, "phone_code": "x"}, 6026),
                         ({"phone_number": phone, "phone_code": "1", "campaign_id": "abc"}, 6006)):
        assert client.post("/v1/dnc/insert", data={"auth_token": TOKEN, **params}).json()["code"] == code
    found = client.get("/v1/dnc/search", params={"auth_token": TOKEN, "phone_number": phone}).json()["data"]
    assert found["total"] == 2 and {e["campaign_id"] for e in found["entries"]} == {"0", "77"}
    assert found["entries"][0]["phone_number"] == phone and found["entries"][0]["phone_code"] == "1"
    only = client.post("/v1/dnc/search", data={"auth_token": TOKEN, "phone_number": phone, "campaign_id": "77"})
    assert only.json()["data"]["total"] == 1
    page = client.get("/v1/dnc/search", params={"auth_token": TOKEN, "limit": "1"}).json()["data"]
    assert page["limit"] == 1 and len(page["entries"]) == 1 and page["total"] >= 2
    assert client.get("/v1/dnc/search", params={"auth_token": TOKEN, "limit": "1001"}).json()["code"] == 7230


def test_decisions_show_question_crm_rule_and_answer(client):
    insert(client, phone_number=KNOWN, check_dup="0")
    r = client.get("/v1/decisions", params={"auth_token": TOKEN, "phone": "5550100003", "phone_code": "1"})
    rec = r.json()["data"]["entries"][-1]
    assert rec["rules_row_name"] == "known" and rec["crm"]["called"] and rec["crm"]["status_code"] == 200
    assert rec["request"]["headers"]["Authorization"] == "Bearer ****"  # secrets masked
    assert "auth_token" not in rec["lead"] and rec["code"] == 6009 and rec["crm_record_id"] == "103"
    assert client.get("/v1/decisions", params={"auth_token": TOKEN}).json()["code"] == 6007


# -- operations -----------------------------------------------------------------------

def test_healthz_metrics_and_openapi(client):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["ok"] is True
    insert(client, phone_number=fresh_phone())
    metrics = client.get("/metrics").text
    for name in ("dupcheck_leads_total{action=\"created\"}", "dupcheck_crm_latency_seconds_count",
                 "dupcheck_inserts_in_flight", "dupcheck_http_requests_total"):
        assert name in metrics
    count = [line for line in metrics.splitlines() if line.startswith("dupcheck_crm_latency_seconds_count")][0]
    assert float(count.split()[-1]) >= 1
    spec = client.get("/openapi.json").json()
    check_openapi(spec)
    assert {"/v1/leads/insert", "/v1/leads/search", "/v1/dnc/insert", "/v1/dnc/search", "/v1/decisions",
            "/healthz", "/metrics", "/openapi.json"} <= set(spec["paths"])


def _histogram(metrics: str, name: str) -> tuple[float, float]:
    """(count, sum) of histogram ``name`` in a /metrics scrape."""
    values = dict(line.rsplit(" ", 1) for line in metrics.splitlines()
                  if line.startswith((f"{name}_count ", f"{name}_sum ")))
    return float(values[f"{name}_count"]), float(values[f"{name}_sum"])


def test_metrics_own_time_of_an_insert_leaves_the_crm_round_trip_out(client, sim):
    """dupcheck_insert_own_seconds: what serve itself spends on a decided insert. A CRM
    that takes 300 ms shows in the CRM histogram, not in this one; a replayed insert
    (no CRM call of its own) adds its own small time, not less than nothing."""
    own, crm = "dupcheck_insert_own_seconds", "dupcheck_crm_latency_seconds"
    before = client.get("/metrics").text
    phone = fresh_phone()
    sim.set_knobs(latency_ms=300)
    try:
        r = client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "100", "phone_number": phone},
                        headers={"Idempotency-Key": f"own-{phone}"})
    finally:
        sim.set_knobs(latency_ms=0)
    assert r.status_code == 200 and r.json()["success"] is True
    middle = client.get("/metrics").text
    (n0, own0), (n1, own1) = _histogram(before, own), _histogram(middle, own)
    crm_spent = _histogram(middle, crm)[1] - _histogram(before, crm)[1]
    assert n1 == n0 + 1 and crm_spent >= 0.3
    assert 0 < own1 - own0 < 0.3  # the CRM's 300 ms are not counted as serve's own
    replay = client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "100", "phone_number": phone},
                         headers={"Idempotency-Key": f"own-{phone}"})
    assert replay.json() == r.json()
    n2, own2 = _histogram(client.get("/metrics").text, own)
    assert n2 == n1 + 1 and 0 < own2 - own1 < 0.3  # the first call's CRM time is not taken off the replay


def test_a_bug_answers_json_500_without_traceback_and_healthz_sees_a_broken_store(client, srv, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(srv.api.host.workflow, "evaluate", boom)
    r = client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1", "phone_number": fresh_phone()})
    assert r.status_code == 500 and r.json() == {"success": False, "code": 6500, "text": "Internal error, retry later"}
    assert "secret internals" not in r.text
    assert any(rec.exc_info and "secret internals" in str(rec.exc_info[1]) for rec in caplog.records)
    monkeypatch.setattr(srv.api.store, "find_leads", boom)
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json()["ok"] is False


def test_crm_errors_are_counted(sim, tmp_path):
    with make_server(sim, tmp_path / "err.db") as server, httpx.Client(base_url=server.url) as c:
        sim.set_knobs(error_rate=1.0)
        try:
            body = insert(c, phone_number=fresh_phone())
        finally:
            sim.set_knobs(error_rate=0.0)
        assert body["success"] is True  # on_error = create: created NOTCHECKED
        assert 'dupcheck_crm_errors_total{kind="http_status"}' in c.get("/metrics").text


def check_openapi(spec: dict) -> None:
    """Structural check of an OpenAPI 3.1 document (no validator is installed)."""
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] and spec["info"]["version"]
    op_ids = set()
    for path, item in spec["paths"].items():
        assert path.startswith("/")
        for method, op in item.items():
            assert method in {"get", "post", "put", "delete", "patch", "head", "options"}
            assert op["responses"] and all(code.isdigit() or code == "default" for code in op["responses"])
            assert op["operationId"] not in op_ids
            op_ids.add(op["operationId"])
            for p in op.get("parameters", []):
                assert p["in"] in {"query", "header", "path", "cookie"} and p["name"] and "schema" in p

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for v in node.values():
                yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for ref in refs(spec):
        target = spec
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]  # every reference resolves


# -- real Convoso clients' request shapes ------------------------------------------------

def test_walmat_convoso_sdk_requests(client):
    """walmat/convoso-sdk: every call is a GET, parameters and auth_token in the
    query string, booleans as "true", a JSON Content-Type header and no body."""
    h = {"Content-Type": "application/json"}
    phone = fresh_phone()
    r = client.get("/v1/leads/insert", headers=h, params={
        "auth_token": TOKEN, "list_id": 12345, "phone_number": phone, "phone_code": "1", "first_name": "Jane",
        "email": "jane@example.com", "check_dup": 2, "check_dnc": "true", "check_wireless": "true",
        "hopper": "true", "hopper_priority": 50})
    assert r.json()["success"] is True
    r = client.get("/v1/leads/search", headers=h, params={"auth_token": TOKEN, "list_id": 12345, "limit": 100})
    assert r.json()["data"]["entries"][0]["phone_number"] == phone
    r = client.get("/v1/dnc/insert", headers=h, params={"auth_token": TOKEN, "phone_number": phone, "phone_code": "1",
                                                        "campaign_id": "0", "reason": "Customer request",
                                                        "purpose": "Do not contact"})
    assert r.json()["success"] is True
    r = client.get("/v1/dnc/search", headers=h, params={"auth_token": TOKEN, "campaign_id": 0, "limit": 100})
    assert r.json()["success"] is True and r.json()["data"]["limit"] == 100


def test_thornebridge_convoso_js_requests(client):
    """thornebridge/convoso-js: every call is a POST of a form body, auth_token in it."""
    phone = fresh_phone()
    r = client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "333", "phone_number": phone,
                                              "first_name": "Jo", "check_dup": "1", "check_dnc": "false"})
    assert r.json()["success"] is True
    for path, data in (("/v1/leads/search", {"phone_number": phone, "offset": "0", "limit": "100"}),
                       ("/v1/dnc/insert", {"phone_number": phone, "phone_code": "1", "campaign_id": "0"}),
                       ("/v1/dnc/search", {"phone_number": phone, "offset": "0", "limit": "100"})):
        r = client.post(path, data={"auth_token": TOKEN, **data})
        assert r.status_code == 200 and r.json()["success"] is True, (path, r.text)


def test_go_convoso_requests(client):
    """open-function-computers-llc/go-convoso: POST form (auth_token added last)
    to leads/insert, then leads/search by lead_id expecting exactly one entry
    and data.total decoded into a Go string."""
    phone = fresh_phone()
    r = client.post("/v1/leads/insert", content=f"list_id=7&phone_number={phone}&first_name=Al&auth_token={TOKEN}",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    lead_id = r.json()["data"]["lead_id"]
    r = client.post("/v1/leads/search", content=f"lead_id={lead_id}&auth_token={TOKEN}",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    data = r.json()["data"]
    assert isinstance(data["total"], str) and len(data["entries"]) == 1
    assert data["entries"][0]["lead_id"] == data["entries"][0]["id"] == lead_id


def test_php_convoso_requests(client):
    """OnrampLab/php-convoso: Guzzle GET with the lead in the query (phone_code=1)."""
    phone = fresh_phone()
    r = client.get("/v1/leads/insert", params={
        "auth_token": TOKEN, "list_id": "42", "status": "CALLBK", "phone_code": 1, "province": "", "first_name": "A",
        "last_name": "B", "phone_number": phone, "email": "", "postal_code": "", "city": "", "state": "",
        "address1": "", "notes": "hi"})
    assert r.json()["success"] is True
    r = client.get("/v1/leads/search", params={"auth_token": TOKEN, "phone_number": phone})
    assert r.json()["data"]["entries"][0]["notes"] == "hi"


# -- the command line -------------------------------------------------------------------

def _serve_cmd(*args: str, workflow: str = WORKFLOW) -> list[str]:
    return [sys.executable, "-m", "dupcheck_plugin.cli.main", "serve", workflow, *args]


def _started(proc: subprocess.Popen) -> tuple[str, list[str], threading.Thread]:
    """serve's URL once it listens, and its log lines as they come (drained by a thread: a full
    stderr pipe would stall the server)."""
    url = serve_url(proc)
    log_lines: list[str] = []
    drain = threading.Thread(target=lambda: log_lines.extend(proc.stderr), daemon=True)
    drain.start()
    return url, log_lines, drain


def test_serve_refuses_to_start_without_tokens(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DUPCHECK_API_TOKENS"}
    r = subprocess.run(_serve_cmd("--db", str(tmp_path / "x.db"), "--port", "0"), env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "DUPCHECK_API_TOKENS" in r.stderr and "--tokens-file" in r.stderr


def test_sigterm_mid_load_loses_no_answered_decision(sim, tmp_path):
    """SIGTERM while inserts are in flight: uvicorn stops accepting, the
    in-flight inserts finish and are answered, the lifespan joins the store
    writer. Every answered insert has its decision row; no created decision
    lacks its lead; nothing arrives after the doors close."""
    db = tmp_path / "term.db"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# test\n{TOKEN}\n")
    env = {**os.environ, **ENV}
    env.pop("DUPCHECK_API_TOKENS", None)
    proc = subprocess.Popen(_serve_cmd("--db", str(db), "--port", "0", "--crm-url", sim.url,
                                       "--tokens-file", str(tokens),
                                       workflow=str(unlimited_copy(Path(WORKFLOW), db.parent))), env=env, stderr=subprocess.PIPE, text=True)
    try:
        url, log_lines, drain = _started(proc)
        query_phone = fresh_phone()  # clients such as walmat/convoso-sdk put token and lead in the query string
        for params in ({"auth_token": TOKEN, "list_id": "1", "phone_number": query_phone, "first_name": "Zorro"},
                       {"auth_token": "wrong-" + TOKEN, "list_id": "1", "phone_number": query_phone}):
            httpx.get(url + "/v1/leads/insert", params=params)
        early = [fresh_phone() for _ in range(100)]
        late = [fresh_phone() for _ in range(30)]
        sim.set_knobs(hold=True)  # the CRM holds every call: the early inserts stay in flight until released

        def in_flight() -> int:
            return httpx.get(url + "/healthz", timeout=5).json()["inserts_in_flight"]

        def closed() -> bool:
            try:
                httpx.get(url + "/healthz", timeout=5)
                return False
            except httpx.HTTPError:
                return True

        async def load() -> tuple[list, list]:
            async with make_client(transport="aiohttp", max_connections=300, timeout=30) as c:
                async def one(phone):
                    try:
                        r = await c.post(url + "/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1",
                                                                         "phone_number": phone})
                        return phone, r.status_code, r.json()
                    except httpx.HTTPError:
                        return phone, None, None

                first = [asyncio.create_task(one(p)) for p in early]
                await _until(lambda: in_flight() >= len(early), timeout=60)
                proc.send_signal(signal.SIGTERM)
                await _until(closed)  # the listening socket is gone
                second = await asyncio.gather(*(one(p) for p in late))
                sim.set_knobs(hold=False)  # the CRM answers: the inserts in flight finish
                return await asyncio.gather(*first), second

        answered_early, after_close = asyncio.run(load())
        proc.wait(30)
        drain.join(5)
        log = "".join(log_lines)
    finally:
        sim.set_knobs(hold=False)
        if proc.poll() is None:
            proc.kill()
    assert all(status == 200 and body["success"] for _, status, body in answered_early)  # finished, not dropped
    assert all(status is None for _, status, _ in after_close)  # refused once the doors closed
    # the logs: JSON lines; tokens never; phones masked; lead data not written
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    access = [r for r in records if r["msg"] == "request"]
    assert len(access) >= len(early) and {"ts", "level", "path", "status", "ms", "phone"} <= set(access[0])
    assert TOKEN not in log and "Zorro" not in log and "auth_token=****" in log
    assert not any(p[3:] in log for p in [query_phone, *early])  # the digits after the area code
    store = SqliteStore(db)
    try:
        for phone, _, body in answered_early:
            recs = store.decisions("+1" + phone)
            assert len(recs) == 1 and recs[0]["lead_id"] == body["data"]["lead_id"]
        assert not any(store.decisions("+1" + phone) for phone in late)
        conn = sqlite3.connect(db)
        orphans = conn.execute("SELECT COUNT(*) FROM decisions WHERE action = 'created' AND (lead_id IS NULL OR "
                               "lead_id NOT IN (SELECT id FROM leads))").fetchone()[0]
        conn.close()
        assert orphans == 0
    finally:
        store.close()


def test_a_shutdown_past_its_grace_answers_every_insert_in_json_as_the_store_has_it(sim, tmp_path):
    """SIGTERM with --graceful-timeout 1 while ten inserts wait for SQLite's write lock (another
    writer holds it, as a `run` beside serve would): uvicorn cancels them. Before, each got
    uvicorn's text/plain 500, also those whose lead the store then created; and the process died
    in uvicorn's re-raised signal before its log queue was flushed. Now a stored lead is answered
    with its record, one not stored with a JSON 503, and the log ends with uvicorn's last line."""
    db = tmp_path / "grace.db"
    env = {**os.environ, **ENV, "DUPCHECK_API_TOKENS": TOKEN}
    proc = subprocess.Popen(_serve_cmd("--db", str(db), "--port", "0", "--crm-url", sim.url, "--graceful-timeout", "1",
                                       workflow=str(unlimited_copy(Path(WORKFLOW), db.parent))),
                            env=env, stderr=subprocess.PIPE, text=True)
    other = None
    try:
        url, log_lines, drain = _started(proc)
        assert httpx.post(url + "/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1",
                                                          "phone_number": fresh_phone()}).json()["success"]
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the write lock, for less than the store's 5 s busy timeout
        phones = [fresh_phone() for _ in range(10)]

        async def load() -> list[tuple[str, httpx.Response]]:
            async with httpx.AsyncClient(timeout=30) as c:
                async def one(phone):
                    return phone, await c.post(url + "/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "1",
                                                                               "phone_number": phone})
                tasks = [asyncio.create_task(one(p)) for p in phones]
                await _until(lambda: httpx.get(url + "/healthz", timeout=5).json()["inserts_in_flight"] == 10)
                proc.send_signal(signal.SIGTERM)
                await _until(lambda: any("timeout graceful shutdown exceeded" in x for x in log_lines))
                other.execute("ROLLBACK")  # the writer thread now stores what was handed to it
                return await asyncio.gather(*tasks)

        answers = asyncio.run(load())
        assert proc.wait(30) == -signal.SIGTERM  # exits by the signal, as uvicorn does
        drain.join(5)
    finally:
        if other is not None:
            other.close()
        if proc.poll() is None:
            proc.kill()
    store = SqliteStore(db)
    try:
        for phone, r in answers:
            assert r.headers["content-type"].startswith("application/json"), (r.status_code, r.text)
            leads = [x["id"] for x in store.find_leads("+1" + phone)]
            if r.status_code == 200:  # answered as stored
                assert leads == [r.json()["data"]["lead_id"]] and len(store.decisions("+1" + phone)) == 1
            else:
                assert r.status_code == 503 and r.json()["code"] == 6500 and "retry" in r.json()["text"]
                assert leads == [] and store.decisions("+1" + phone) == []
        assert any(r.status_code == 200 for _, r in answers), [r.text for _, r in answers]
    finally:
        store.close()
    assert "Finished server process" in log_lines[-1], log_lines[-3:]  # the log queue was flushed
    assert not [x for x in log_lines if '"unhandled error"' in x]  # a lead giving its phone back after the close


async def _until(condition, timeout: float = 10.0) -> None:
    """Poll a blocking condition from a worker thread (the loop keeps serving the requests in flight)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


class _Wire:
    """A transport that records what is written, as one send() each."""

    def __init__(self):
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sends.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_response_head_goes_out_with_its_body_in_one_send():
    from dupcheck_plugin.server.http import CONTINUE, HeadWithBody

    async def main():
        loop = asyncio.get_running_loop()
        wire = _Wire()
        t = HeadWithBody(wire, loop)
        t.write(CONTINUE)  # an interim answer is not held: the client waits for it to send its body
        assert wire.sends == [CONTINUE]
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        t.write(b"{}")
        assert wire.sends[1:] == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        await asyncio.sleep(0)  # the flush scheduled for the head finds nothing left
        assert len(wire.sends) == 2

        late = _Wire()  # a body that is not written in the same step: the head goes alone at the next turn
        t = HeadWithBody(late, loop)
        t.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        assert late.sends == []
        await asyncio.sleep(0)
        assert late.sends == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
        t.write(b"2\r\n{}\r\n")
        assert late.sends[1:] == [b"2\r\n{}\r\n"]

        failed = _Wire()  # closed after the head (the app failed): the head still goes first
        t = HeadWithBody(failed, loop)
        t.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
        t.close()
        assert failed.sends == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"] and failed.closed

    asyncio.run(main())


@pytest.mark.services
def test_an_insert_whose_commit_answer_postgresql_lost_is_one_lead_or_an_honest_503(sim, pg_cluster, tmp_path):
    """The database connection goes with the COMMIT of an insert without an Idempotency-Key:
    the store asks the server, the insert is answered as stored, and the phone has one lead,
    not two. When the server is out of reach too, the 503 says the lead may be stored."""
    import psycopg

    from dupcheck_plugin.dev.pg_proxy import PgProxy

    def post(client, phone):
        return client.post("/v1/leads/insert", data={"auth_token": TOKEN, "list_id": "100", "phone_number": phone})

    name = f"serve_cut_{os.getpid()}"
    pg_cluster.create_database(name)
    try:
        with PgProxy("127.0.0.1", pg_cluster.port) as proxy, make_server(
                sim, tmp_path / "unused.db", db_url=f"postgresql://dupcheck@127.0.0.1:{proxy.port}/{name}?sslmode=disable"
        ) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            store = server.api.store
            phone = fresh_phone()
            proxy.cut_at_commit("after")
            r = post(client, phone)
            assert proxy.cuts == 1
            assert r.status_code == 200 and r.json()["success"] is True, r.text
            [lead] = store.find_leads("+1" + phone)
            assert r.json()["data"]["lead_id"] == lead["id"]
            assert len(store.decisions("+1" + phone)) == 1

            other = fresh_phone()
            proxy.cut_at_commit("after", then_refuse=True)  # and the database out of reach
            r = post(client, other)
            assert r.status_code == 503
            assert "may or may not have been stored" in r.json()["text"] and "Idempotency-Key" in r.json()["text"]
        with psycopg.connect(pg_cluster.url(name)) as conn:  # it had landed: not written again
            assert conn.execute("SELECT count(*) FROM leads WHERE phone_e164 = %s", ("+1" + other,)).fetchone()[0] == 1
    finally:
        pg_cluster.drop_database(name)
