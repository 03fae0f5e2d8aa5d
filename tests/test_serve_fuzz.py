"""Generated and malformed requests against a running ``dupcheck serve``.

Whatever arrives: never a 5xx, never a traceback in the answer, every answer
JSON (``success`` false on 4xx), and no lead or decision without a valid token.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dupcheck_plugin.server.convoso import MAX_BODY_BYTES
from dupcheck_plugin.sim import SimulatorThread
from test_serve import CONTACTS, TOKEN, make_server

ENDPOINTS = ["/v1/leads/insert", "/v1/leads/search", "/v1/dnc/insert", "/v1/dnc/search", "/v1/decisions",
             "/healthz", "/metrics", "/openapi.json"]
KNOWN_KEYS = ["auth_token", "phone_number", "phone_code", "list_id", "check_dup", "check_dnc", "email", "lead_id",
              "campaign_id", "offset", "limit", "phone", "first_name", "reason", "check_dup_archive"]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    with SimulatorThread(CONTACTS) as sim, make_server(sim, tmp_path_factory.mktemp("fuzz") / "fuzz.db") as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield server, client


phones = st.one_of(st.from_regex(r"\+?1?[0-9 ().-]{7,14}", fullmatch=True),
                   st.integers(min_value=2_000_000_000, max_value=9_999_999_999).map(str))
texts = st.text(max_size=40)
scalars = st.one_of(texts, phones, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                    st.sampled_from(["", "0", "1", "3", "true", "-1", "1e999", "9" * 40, TOKEN, "\x00", "\ud800"]),
                    st.just("x" * 20_000))
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                      max_leaves=6).filter(lambda v: isinstance(v, (list, dict)))
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=20), st.sampled_from(["a[b]", "x" * 300, ""]))
# mostly lead-like (so inserts reach the engine and the CRM), plus anything at all
optional = {
    "phone_number": phones, "list_id": st.one_of(st.integers(0, 10**6).map(str), texts),
    "phone_code": st.sampled_from(["1", "+1", "44", "", "x", "9999"]),
    "check_dup": st.sampled_from(["0", "1", "2", "3", "true", "9", ""]), "check_dnc": st.sampled_from(["1", "0", "x"]),
    "email": st.one_of(st.emails(), texts), "phone": phones, "lead_id": st.integers(-1, 10**4).map(str),
    "campaign_id": st.sampled_from(["0", "5", "x"]), "offset": st.sampled_from(["0", "5", "-1", "x"]),
    "limit": st.sampled_from(["1", "100", "5000", "0", "x"])}
valid_lead = st.fixed_dictionaries({"phone_number": st.integers(2_000_000_000, 9_999_999_999).map(str),
                                    "list_id": st.integers(1, 999).map(str)},
                                   optional={k: v for k, v in optional.items() if k not in ("phone_number", "list_id")})
lead_like = st.one_of(valid_lead, st.fixed_dictionaries({}, optional=optional))
params = st.builds(lambda a, b: {**b, **a}, lead_like, st.dictionaries(keys, scalars, max_size=5))


def _as_str(value) -> str:
    if value is None:
        return ""
    return str(value).encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@st.composite
def requests(draw):
    which = draw(st.sampled_from(range(10)))  # mostly the real endpoints
    if which == 0:
        # no leading "//": httpx would read what follows as a host ("//:x" is not a path)
        path = "/" + draw(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=30)
                          ).replace("?", "").replace("#", "").lstrip("/")
    elif which == 1:
        path = draw(st.sampled_from(["/", "/v1/leads", "/v1/leads/insert/", "/v1/%00", "/v1/l%C3%A9ads"]))
    else:
        path = draw(st.sampled_from(ENDPOINTS[:5] * 3 + ENDPOINTS[5:]))
    method = draw(st.sampled_from(["GET", "POST"] * 10 + ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    token = draw(st.sampled_from(["valid", "valid", "none", "wrong", "bearer"]))
    fields = draw(params)
    fields.pop("auth_token", None)
    if token == "valid":
        fields["auth_token"] = TOKEN
    elif token == "wrong":
        fields["auth_token"] = draw(texts)
    kind = draw(st.sampled_from(["query", "form", "json", "json_nested", "raw", "multipart", "oversize", "none"]))
    headers = {}
    if token == "bearer":
        headers["Authorization"] = f"Bearer {TOKEN}"
    if draw(st.booleans()):
        key = draw(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=300))
        headers["Idempotency-Key"] = key.replace("\x7f", "").strip().encode("latin-1")  # what HTTP can carry
    kw: dict = {"headers": headers}
    flat = {k: _as_str(v) for k, v in fields.items()}
    if kind == "query":
        kw["params"] = {k: v[:7000] for k, v in flat.items()}  # httpx refuses a query over 64 KiB
    elif kind == "form":
        kw["content"] = httpx.QueryParams(flat).__str__().encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif kind in ("json", "json_nested"):
        obj = dict(fields)
        if kind == "json_nested":
            obj[draw(keys)] = draw(nested)
        kw["content"] = json.dumps(obj).encode("utf-8", "surrogatepass")
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "application/json; charset=utf-8",
                                                        "text/plain", "application/vnd.api+json", ""]))
    elif kind == "raw":
        kw["content"] = draw(st.binary(max_size=300))
        headers["Content-Type"] = draw(st.sampled_from(["application/x-www-form-urlencoded", "application/json",
                                                        "multipart/form-data; boundary=x", "text/xml", "bogus/"]))
    elif kind == "multipart":
        kw["files"] = {k or "_": (None, v.encode("utf-8", "replace")) for k, v in flat.items()} or {"a": (None, b"")}
    elif kind == "oversize":
        kw["content"] = b"a=" + b"x" * MAX_BODY_BYTES
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if method in ("GET", "HEAD", "OPTIONS", "DELETE") and kind not in ("query", "none") and draw(st.booleans()):
        kw.pop("content", None)  # bodiless methods, mostly
        kw.pop("files", None)
    return method, path, token, kind, kw


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(req=requests())
def test_any_request_gets_a_json_answer_never_a_5xx(fuzz_server, req):
    server, client = fuzz_server
    method, path, token, kind, kw = req
    before = server.api.store.counts()
    response = client.request(method, path, **kw)
    assert response.status_code < 500, response.text[:300]
    assert "Traceback" not in response.text and 'File "' not in response.text
    if method == "HEAD":
        return
    if path == "/metrics" and response.status_code == 200:
        assert "dupcheck_leads" in response.text
        return
    body = response.json()  # every other answer is JSON
    assert isinstance(body, dict)
    if 400 <= response.status_code < 500:
        assert body["success"] is False and isinstance(body["code"], int) and isinstance(body["text"], str)
    elif path.startswith("/v1/"):
        assert isinstance(body["success"], bool)
    if kind == "oversize" and path in ENDPOINTS[:5] and method in ("GET", "POST") and "content" in kw:
        assert response.status_code == 413
    if kind == "json_nested" and path in ENDPOINTS[:5] and method in ("GET", "POST") and "content" in kw \
            and kw["headers"].get("Content-Type", "").startswith("application/json"):
        assert response.status_code == 400
    if token in ("none", "wrong"):
        assert server.api.store.counts() == before, "nothing may be stored without a valid token"
