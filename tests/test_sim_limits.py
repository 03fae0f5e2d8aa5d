"""The simulator's vendor limits, batched answers and token endpoints, over real HTTP on loopback.

Every test stops the simulated clock (``time_scale=0``) and moves it by hand,
so windows open and close on the test's word: the tests count answers and
never wait for time to pass.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time

import httpx
import pytest

from dupcheck_plugin.sim import Limits
from dupcheck_plugin.sim.limits import Clock, DailyWindow, RollingWindow, parse_assignments, take_all

SEARCH = "/crm/v3/objects/contacts/search"
SOQL = "/services/data/v62.0/query"
ZOHO = "/crm/v8/Leads/search"
GHL = "/contacts/search/duplicate"
PIPEDRIVE = "/api/v2/persons/search"
KNOWN = ["+15550100003", "+15550100106", "+15550100109"]  # leads stored in E.164 in examples/contacts.csv


@pytest.fixture
def sim(crm_sim):
    """The shared simulator, every vendor's real limits on, the clock stopped."""
    crm_sim.set_limits(Limits.real(time_scale=0))
    crm_sim.reset()
    return crm_sim


@pytest.fixture
def http(sim):
    with httpx.Client(base_url=sim.url, timeout=10, trust_env=False) as client:
        yield client


def hs_search(http, token="tok-a", body=None):
    body = body or {"filterGroups": [{"filters": [{"propertyName": "phone", "operator": "EQ", "value": KNOWN[0]}]}]}
    return http.post(SEARCH, json=body, headers={"Authorization": f"Bearer {token}"})


def soql(http, where="Phone = '+15550100003'", token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.get(SOQL, params={"q": f"SELECT Id, Phone, MobilePhone FROM Lead WHERE {where}"}, headers=headers)


def vendor_stats(sim, name):
    return sim.stats()["vendors"][name]


# -- the machinery ----------------------------------------------------------------------------
def test_windows_and_clock_count_exactly():
    w = RollingWindow(2, 1.0)
    assert take_all(0.0, [("P", w, 1)]) is None and take_all(0.5, [("P", w, 1)]) is None
    assert take_all(0.9, [("P", w, 1)]) == "P" and w.used(0.9) == 2
    assert w.reset_in(0.9) == pytest.approx(0.1)
    assert take_all(1.0, [("P", w, 1)]) is None  # the first one left the window at 1.0
    day = DailyWindow(1)
    assert take_all(1.2, [("D", day, 1), ("P", w, 1)]) == "P" and day.used(1.2) == 0  # all or nothing
    assert take_all(86_399.0, [("D", day, 1)]) is None and take_all(86_399.5, [("D", day, 1)]) == "D"
    assert take_all(86_400.0, [("D", day, 1)]) is None  # a new day
    clock = Clock(0)
    assert clock.now() == 0 and clock.advance(5) == 5 and clock.real(10) == 10
    clock.set_scale(60)
    assert clock.real(3600) == 60 and clock.now() >= 5


def test_limits_knobs_parse_and_refuse_nonsense():
    assert Limits.off().salesforce_daily is None and Limits().salesforce_daily == 100_000
    changed = Limits.real(**parse_assignments(["salesforce_daily=500", "zoho_concurrency=off", "time_scale=60"]))
    assert (changed.salesforce_daily, changed.zoho_concurrency, changed.time_scale) == (500, None, 60.0)
    assert Limits.off(zoho_token_lifetime="3").zoho_token_lifetime == 3.0
    for bad in ({"salesforce_daily": "lots"}, {"salesforce_daily": "1.5"}, {"hubspot_daily": -1},
                {"time_scale": "-1"}, {"nope": 1}, {"salesforce_rotate_refresh_tokens": "maybe"}):
        with pytest.raises(ValueError):
            Limits.real(**bad)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_assignments(["salesforce_daily"])


def test_limits_off_enforce_nothing(crm_sim):
    with httpx.Client(base_url=crm_sim.url, trust_env=False) as http:
        assert {hs_search(http).status_code for _ in range(12)} == {200}
        assert "Sforce-Limit-Info" not in soql(http).headers
    assert crm_sim.stats()["vendors"]["hubspot"]["over_limit"] == 0


# -- HubSpot ----------------------------------------------------------------------------------
def test_hubspot_search_is_4_per_second_per_token(sim, http):
    codes = [hs_search(http).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    refused = hs_search(http)
    body = refused.json()
    assert body["status"] == "error" and body["errorType"] == "RATE_LIMIT" and body["policyName"] == "SECONDLY"
    assert "Retry-After" not in refused.headers
    assert not [h for h in refused.headers if h.lower().startswith("x-hubspot-ratelimit")]  # none on search
    assert hs_search(http, token="tok-b").status_code == 200  # per token
    sim.advance(1.0)
    assert hs_search(http).status_code == 200
    hub = vendor_stats(sim, "hubspot")
    assert hub["requests"] == 8 and hub["over_limit"] == 2 and hub["over_limit_by_policy"] == {"SECONDLY": 2}


def test_hubspot_knobs_set_each_limit_and_other_endpoints_send_headers(sim, http):
    sim.set_limits(hubspot_search_per_second=20, hubspot_ten_secondly=3, hubspot_daily=5)
    first = http.get("/crm/v3/objects/contacts/101")
    assert first.status_code == 200 and first.json()["properties"]["phone"] == "+15550100101"
    assert first.headers["X-HubSpot-RateLimit-Max"] == "3" and first.headers["X-HubSpot-RateLimit-Remaining"] == "2"
    assert first.headers["X-HubSpot-RateLimit-Daily"] == "5" and first.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "4"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert [hs_search(http).status_code for _ in range(3)] == [200, 200, 429]
    assert hs_search(http).json()["policyName"] == "TEN_SECONDLY_ROLLING"
    sim.advance(10)
    assert [hs_search(http).status_code for _ in range(3)] == [200, 200, 429]
    assert hs_search(http).json()["policyName"] == "DAILY"
    sim.advance(86_400)
    assert hs_search(http).status_code == 200
    assert http.get("/crm/v3/objects/contacts/ava.stone@example.com", params={"idProperty": "email"}).json()["id"] == "101"


def filt(value, prop="phone"):
    return {"propertyName": prop, "operator": "EQ", "value": value}


def test_hubspot_batched_search_answers_and_its_limits(sim, http):
    sim.set_limits(hubspot_search_per_second=None)
    groups = [{"filters": [filt(p)]} for p in (*KNOWN, "+15559999999", "5550100002")]
    answer = hs_search(http, body={"filterGroups": groups, "properties": ["phone"], "limit": 200}).json()
    assert answer["total"] == 4
    assert {r["properties"]["phone"] for r in answer["results"]} == {*KNOWN, "(555) 010-0002"}  # split per lead
    in_body = {"filterGroups": [{"filters": [{"propertyName": "phone", "operator": "IN", "values": KNOWN}]}]}
    assert {r["properties"]["phone"] for r in hs_search(http, body=in_body).json()["results"]} == set(KNOWN)

    def refused(body, words):
        r = hs_search(http, body=body)
        assert r.status_code == 400 and r.json()["category"] == "VALIDATION_ERROR" and words in r.json()["message"]

    refused({"filterGroups": [{"filters": [filt(p)]} for p in "123456"]}, "at most 5")
    refused({"filterGroups": [{"filters": [filt(str(i)) for i in range(11)]}]}, "at most 10")
    refused({"filterGroups": [{"filters": [filt(str(i)) for i in range(9)]} for _ in range(3)]}, "at most 25")
    refused({"filterGroups": [{"filters": [{"propertyName": "phone", "operator": "IN",
                                            "values": [str(i) for i in range(101)]}]}]}, "at most 100")


# -- Salesforce -------------------------------------------------------------------------------
def test_salesforce_rolling_budget_403_without_retry_after(sim, http):
    sim.set_limits(salesforce_daily=3)
    usage = [soql(http).headers["Sforce-Limit-Info"] for _ in range(3)]
    assert usage == ["api-usage=1/3", "api-usage=2/3", "api-usage=3/3"]
    refused = soql(http)
    assert refused.status_code == 403 and refused.json() == [{"message": "TotalRequests Limit exceeded.",
                                                              "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert "Retry-After" not in refused.headers and refused.headers["Sforce-Limit-Info"] == "api-usage=3/3"
    sim.advance(86_399)
    assert soql(http).status_code == 403  # rolling 24 h: not yet
    sim.advance(1)
    assert soql(http).headers["Sforce-Limit-Info"] == "api-usage=1/3"
    assert vendor_stats(sim, "salesforce")["over_limit_by_policy"] == {"REQUEST_LIMIT_EXCEEDED": 2}


def test_salesforce_in_list_batches_and_the_uri_limit(sim, http):
    quoted = ", ".join(f"'{p}'" for p in (*KNOWN, "+15559999999"))
    answer = soql(http, where=f"Phone IN ({quoted})").json()
    assert answer["totalSize"] == 3 and {r["Phone"] for r in answer["records"]} == set(KNOWN)
    many = ", ".join(f"'+1555{i:07d}'" for i in range(1200))  # ~19 kB once URL-encoded
    r = soql(http, where=f"Phone IN ({many})")
    assert r.status_code == 414 and r.json()[0]["errorCode"] == "URI_TOO_LONG"
    fits = ", ".join(f"'+1555{i:07d}'" for i in range(400))
    assert soql(http, where=f"Phone IN ({fits})").status_code == 200


def token_post(http, path, **form):
    return http.post(path, data=form)


def test_salesforce_token_grants_and_expiring_sessions(sim, http):
    sim.set_limits(salesforce_session_lifetime=300)
    got = token_post(http, "/services/oauth2/token", grant_type="refresh_token", client_id="cid", refresh_token="rt-1")
    body = got.json()
    assert got.status_code == 200 and body["token_type"] == "Bearer" and body["instance_url"] == sim.url
    assert "expires_in" not in body and "refresh_token" not in body  # as Salesforce: the org's session timeout
    assert soql(http, token=body["access_token"]).status_code == 200
    sim.advance(300)
    expired = soql(http, token=body["access_token"])
    assert expired.status_code == 401 and expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    creds = token_post(http, "/services/oauth2/token", grant_type="client_credentials", client_id="c", client_secret="s")
    assert soql(http, token=creds.json()["access_token"]).status_code == 200
    sf = vendor_stats(sim, "salesforce")
    assert sf["expired_token"] == 1 and sf["token_grants"] == 2
    assert sf["token_grants_by_type"] == {"refresh_token": 1, "client_credentials": 1}
    for form, error in (({"grant_type": "password"}, "unsupported_grant_type"),
                        ({"grant_type": "refresh_token", "refresh_token": "x"}, "invalid_client_id"),
                        ({"grant_type": "client_credentials", "client_id": "c"}, "invalid_client")):
        r = token_post(http, "/services/oauth2/token", **form)
        assert r.status_code == 400 and r.json()["error"] == error
    assert vendor_stats(sim, "salesforce")["token_refused"] == 3


def jwt(claims, alg="RS256"):
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': alg})}.{part(claims)}.c2lnbmF0dXJl"


def test_salesforce_jwt_bearer_assertion_is_checked_for_shape(sim, http):
    good = {"iss": "client-id", "sub": "user@example.com", "aud": "https://login.salesforce.com", "exp": time.time() + 180}
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    ok = token_post(http, "/services/oauth2/token", grant_type=grant, assertion=jwt(good))
    assert ok.status_code == 200 and soql(http, token=ok.json()["access_token"]).status_code == 200
    for assertion, why in ((jwt(good, alg="HS256"), "invalid assertion"), ("not.a-jwt", "invalid assertion"),
                           (jwt({**good, "aud": "https://evil.example"}), "audience is invalid"),
                           (jwt({**good, "exp": time.time() - 1}), "expired assertion"),
                           (jwt({k: v for k, v in good.items() if k != "sub"}), "invalid assertion")):
        r = token_post(http, "/services/oauth2/token", grant_type=grant, assertion=assertion)
        assert r.status_code == 400 and r.json() == {"error": "invalid_grant", "error_description": why}


def test_salesforce_rotated_refresh_token_replaces_the_old_one(sim, http):
    sim.set_limits(salesforce_rotate_refresh_tokens=True)
    first = token_post(http, "/services/oauth2/token", grant_type="refresh_token", client_id="c", refresh_token="rt-1")
    new = first.json()["refresh_token"]
    assert new != "rt-1"
    again = token_post(http, "/services/oauth2/token", grant_type="refresh_token", client_id="c", refresh_token="rt-1")
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert token_post(http, "/services/oauth2/token", grant_type="refresh_token", client_id="c",
                      refresh_token=new).status_code == 200


# -- Zoho -------------------------------------------------------------------------------------
def zoho_token(http, refresh_token="rt-z"):
    return token_post(http, "/oauth/v2/token", grant_type="refresh_token", client_id="1000.C", client_secret="s",
                      refresh_token=refresh_token)


def test_zoho_one_hour_tokens_refresh_and_expire(sim, http):
    body = zoho_token(http).json()
    assert body["expires_in"] == 3600 and body["api_domain"] == sim.url and body["token_type"] == "Bearer"
    auth = {"Authorization": f"Zoho-oauthtoken {body['access_token']}"}
    assert http.get(ZOHO, params={"phone": KNOWN[0]}, headers=auth).status_code == 200
    sim.advance(3599)
    assert http.get(ZOHO, params={"phone": KNOWN[0]}, headers=auth).status_code == 200
    sim.advance(1)
    expired = http.get(ZOHO, params={"phone": KNOWN[0]}, headers=auth)
    assert expired.status_code == 401 and expired.json()["code"] == "INVALID_TOKEN"
    fresh = zoho_token(http).json()["access_token"]
    assert http.get(ZOHO, params={"phone": KNOWN[0]}, headers={"Authorization": f"Zoho-oauthtoken {fresh}"}).status_code == 200
    sim.revoke("rt-z")
    refused = zoho_token(http)
    assert refused.status_code == 200 and refused.json() == {"error": "invalid_code"}  # Zoho: errors in a 200
    assert token_post(http, "/oauth/v2/token", grant_type="password").json() == {"error": "unsupported_grant_type"}
    assert token_post(http, "/oauth/v2/token", grant_type="refresh_token", client_id="c",
                      refresh_token="rt-2").json() == {"error": "invalid_client"}
    z = vendor_stats(sim, "zoho")
    assert (z["token_grants"], z["token_refused"], z["expired_token"]) == (2, 3, 1)


def test_hubspot_and_gohighlevel_oauth_tokens_expire_and_refresh(sim, http):
    sim.set_limits(hubspot_search_per_second=None)
    hub = token_post(http, "/oauth/v1/token", grant_type="refresh_token", client_id="c", client_secret="s",
                     refresh_token="hub-rt").json()
    assert hub["expires_in"] == 1800 and hub["refresh_token"] == "hub-rt" and hub["token_type"] == "bearer"
    assert hs_search(http, token=hub["access_token"]).status_code == 200
    sim.advance(1800)
    expired = hs_search(http, token=hub["access_token"])
    assert expired.status_code == 401 and expired.json()["category"] == "EXPIRED_AUTHENTICATION"
    bad = token_post(http, "/oauth/v1/token", grant_type="refresh_token", client_id="c", client_secret="s")
    assert bad.status_code == 400 and bad.json()["status"] == "BAD_REFRESH_TOKEN"

    ghl_token = token_post(http, "/oauth/token", grant_type="refresh_token", client_id="c", client_secret="s",
                           refresh_token="ghl-rt-1").json()
    assert ghl_token["expires_in"] == 86_399 and ghl_token["refresh_token"] != "ghl-rt-1"
    headers = {"Version": "2021-07-28", "Authorization": f"Bearer {ghl_token['access_token']}"}
    params = {"locationId": "loc", "number": KNOWN[0]}
    assert http.get(GHL, params=params, headers=headers).status_code == 200
    spent = token_post(http, "/oauth/token", grant_type="refresh_token", client_id="c", client_secret="s",
                       refresh_token="ghl-rt-1")
    assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"  # refresh tokens are single-use
    sim.advance(86_399)
    assert http.get(GHL, params=params, headers=headers).json() == {"statusCode": 401, "message": "Invalid JWT"}
    assert vendor_stats(sim, "gohighlevel")["expired_token"] == 1 and vendor_stats(sim, "hubspot")["token_grants"] == 1


def test_time_scale_shortens_what_clients_are_told(sim, http):
    sim.set_limits(time_scale=3600, zoho_token_lifetime=7200)
    assert zoho_token(http).json()["expires_in"] == 2  # two simulated hours: two real seconds
    r = http.get(GHL, params={"locationId": "loc", "number": KNOWN[0]}, headers={"Version": "2021-07-28"})
    assert r.headers["X-RateLimit-Interval-Milliseconds"] == "3"  # 10 s / 3600


def test_zoho_concurrency_cap(sim):
    sim.set_limits(zoho_concurrency=2)

    async def main():
        async with httpx.AsyncClient(base_url=sim.url, timeout=10, trust_env=False) as client:
            sim.set_knobs(hold=True)
            held = [asyncio.ensure_future(client.get(ZOHO, params={"phone": KNOWN[i]})) for i in range(2)]
            deadline = time.monotonic() + 60  # wait until both are in flight (a count, not a time window)
            while vendor_stats(sim, "zoho")["in_flight"] < 2:
                assert time.monotonic() < deadline, "the two held requests never reached the simulator"
                await asyncio.sleep(0.01)
            third = await client.get(ZOHO, params={"phone": KNOWN[2]})
            sim.set_knobs(hold=False)
            return third, await asyncio.gather(*held)

    third, held = asyncio.run(main())
    assert third.status_code == 429 and third.json()["code"] == "TOO_MANY_REQUESTS"
    assert [r.status_code for r in held] == [200, 200]
    z = vendor_stats(sim, "zoho")
    assert z["over_limit_by_policy"] == {"CONCURRENCY": 1} and z["in_flight"] == 0


def zoho_criteria(phones):
    return "(" + "or".join(f"(Phone:equals:{p})" for p in phones) + ")"


def test_zoho_criteria_batches_up_to_10_and_credits_run_out(sim, http):
    sim.set_limits(zoho_daily_credits=4)  # every admitted call costs one, a 400 too
    phones = [*KNOWN, *(f"+1555999{i:04d}" for i in range(7))]
    answer = http.get(ZOHO, params={"criteria": zoho_criteria(phones)}).json()
    assert {r["Phone"] for r in answer["data"]} == set(KNOWN)
    too_many = http.get(ZOHO, params={"criteria": zoho_criteria([*phones, "+15550000000"])})
    assert too_many.status_code == 400 and too_many.json()["code"] == "CRITERIA_LIMIT_EXCEEDED"
    many = [f"+1555888{i:04d}" for i in range(90)]
    in_list = http.get(ZOHO, params={"criteria": f"((Phone:in:{','.join([*KNOWN, *many])})or(Mobile:in:+15550100105))"})
    assert {r["Phone"] or r["Mobile"] for r in in_list.json()["data"]} == {*KNOWN, "+15550100105"}
    too_long = http.get(ZOHO, params={"criteria": f"(Phone:in:{','.join([*many, *many[:11]])})"})
    assert too_long.status_code == 400 and too_long.json()["message"] == 'Only 100 values are allowed in "IN" criteria'
    refused = http.get(ZOHO, params={"phone": KNOWN[0]})
    assert refused.status_code == 429 and vendor_stats(sim, "zoho")["over_limit_by_policy"] == {"CREDITS": 1}


# -- GoHighLevel and Pipedrive ----------------------------------------------------------------
def ghl(http, location="loc-1"):
    return http.get(GHL, params={"locationId": location, "number": KNOWN[0]}, headers={"Version": "2021-07-28"})


def test_gohighlevel_burst_daily_and_headers(sim, http):
    sim.set_limits(gohighlevel_burst=3, gohighlevel_daily=4)
    answers = [ghl(http) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["X-RateLimit-Max"] == "3" and answers[0].headers["X-RateLimit-Limit-Daily"] == "4"
    assert answers[2].headers["X-RateLimit-Daily-Remaining"] == "1"
    assert ghl(http, "loc-2").status_code == 200  # per location
    sim.advance(10)
    assert ghl(http).status_code == 200 and ghl(http).status_code == 429  # the daily cap now
    assert vendor_stats(sim, "gohighlevel")["over_limit_by_policy"] == {"BURST": 1, "DAILY": 1}


def test_pipedrive_two_second_burst_and_token_budget(sim, http):
    sim.set_limits(pipedrive_burst=2, pipedrive_daily_tokens=200, pipedrive_search_cost=40)

    def search(token="t1"):
        return http.get(PIPEDRIVE, params={"term": KNOWN[0], "fields": "phone"}, headers={"x-api-token": token})

    answers = [search() for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["1", "0", "0"]
    assert answers[2].headers["x-ratelimit-limit"] == "2" and answers[2].headers["x-ratelimit-reset"] == "2"
    assert search("t2").status_code == 200
    sim.advance(2)
    assert [search().status_code for _ in range(3)] == [200, 200, 429]  # 5 searches x 40 = the 200-token budget
    assert vendor_stats(sim, "pipedrive")["over_limit_by_policy"] == {"BURST": 1, "DAILY_TOKENS": 1}


# -- stats and control ------------------------------------------------------------------------
def test_stats_never_show_the_token_and_control_endpoints_work(sim, http):
    sim.set_knobs(auth="s3cret-token-value")
    assert hs_search(http, token="s3cret-token-value").status_code == 200
    assert hs_search(http, token="wrong").status_code == 401
    for path in ("/_sim/stats", "/_sim/knobs"):
        assert "s3cret-token-value" not in http.get(path).text
    assert http.post("/_sim/limits", json={"salesforce_daily": 7}).json()["salesforce_daily"] == 7
    assert http.post("/_sim/limits", json={"salesforce_daily": "many"}).status_code == 400
    before = http.get("/_sim/clock").json()["now"]
    assert http.post("/_sim/clock", json={"advance": 30}).json()["now"] == pytest.approx(before + 30)
    assert http.post("/_sim/clock", json={"advance": -1}).status_code == 400
    sim.set_limits(salesforce_daily=1)
    assert soql(http, token="s3cret-token-value").status_code == 200
    assert http.post("/_sim/clock", json={"time_scale": 0}).json()["time_scale"] == 0
    assert soql(http, token="s3cret-token-value").status_code == 403  # a new scale keeps what the windows hold
    sim.set_limits(salesforce_daily=7)
    assert http.post("/_sim/oauth/revoke", json={}).status_code == 400
    stats = http.get("/_sim/stats").json()
    assert stats["limits"]["salesforce_daily"] == 7 and stats["vendors"]["hubspot"]["unauthorized"] == 1


# -- the command ------------------------------------------------------------------------------
def _cli(*args):
    return [sys.executable, "-m", "dupcheck_plugin.cli.main", "crm-sim", "--port", "0", *args]


def test_cli_enforces_real_limits_by_default_and_takes_knobs():
    proc = subprocess.Popen(_cli("--time-scale", "0", "--limit", "hubspot_search_per_second=2", "--token", "cli-secret"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        with httpx.Client(base_url=url, trust_env=False) as http:
            assert [hs_search(http, token="cli-secret").status_code for _ in range(3)] == [200, 200, 429]
            stats = http.get("/_sim/stats")
            assert "cli-secret" not in stats.text
            assert stats.json()["limits"]["salesforce_daily"] == 100_000 and stats.json()["clock"]["time_scale"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run(_cli("--limit", "hubspot_daly=5"), capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "hubspot_daly" in bad.stderr and "Traceback" not in bad.stderr


def test_windows_open_on_time_whatever_rounding_the_clock_went_through():
    clock = Clock(0)
    clock.advance(195_477.8918168289)  # a clock that ran for a while; (t + 86399) + 1 - 86400 < t in floats
    w = RollingWindow(1, 86_400.0)
    w.take(clock.now())
    clock.advance(86_399)
    assert not w.fits(clock.now())
    clock.advance(1)
    assert w.fits(clock.now())
