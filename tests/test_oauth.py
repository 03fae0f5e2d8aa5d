"""OAuth 2.0 for CRM connections, against the simulator's token endpoints
over real loopback HTTP: Zoho's refresh-token grant with tokens that expire
(time scaled, or on a stopped clock moved by hand), Salesforce's rotated
refresh tokens, client credentials and JWT bearer; secrets from files; no
token in a record or a log line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import stat
import time

import pytest

from dupcheck_plugin.config.problems import ConfigError
from dupcheck_plugin.connection.oauth import RefreshTokenFile
from dupcheck_plugin.connection.secrets import SecretMissing, Secrets
from dupcheck_plugin.engine.runner import aiter_items
from dupcheck_plugin.host import Host
from dupcheck_plugin.sim import Limits, SimulatorThread

from conftest import CONTACTS, write_workflow

ZOHO_ROWS = [{"name": "none", "http_status": 204, "create_lead": True, "add_to_dnc": False, "success": True},
             {"name": "lead", "key": "data.0.id", "match": "exists", "create_lead": False, "add_to_dnc": False,
              "success": False}]
HS_ROW = {"key": "total", "match": "gt", "value": 0, "create_lead": False, "add_to_dnc": False, "success": False}
SF_ROWS = [{"name": "lead", "key": "totalSize", "match": "gt", "value": 0, "create_lead": False,
            "add_to_dnc": False, "success": False}]
ZOHO_ENV = {"ZOHO_CLIENT_ID": "1000.CLIENTID", "ZOHO_CLIENT_SECRET": "zoho-client-secret-xyz",
            "ZOHO_REFRESH_TOKEN": "1000.refresh-token-abc"}
KNOWN = "5550100003"  # a contact of the sample book
ISSUED = re.compile(r"1000\.[0-9a-f]{32}|00D5e000000SIME!AQ[0-9a-f]{32}")  # access tokens the simulator issues


def zoho_workflow(tmp_path, sim, **auth):
    auth = {"type": "oauth2", "grant": "refresh_token", "provider": "zoho", "token_url": sim.url + "/oauth/v2/token",
            "client_id": "ZOHO_CLIENT_ID", "client_secret": "ZOHO_CLIENT_SECRET",
            "refresh_token": "ZOHO_REFRESH_TOKEN", "token_file": str(tmp_path / "zoho-token.json"), **auth}
    return write_workflow(tmp_path, ZOHO_ROWS, adaptor="zoho_leads_search", connect={"url": sim.url, "auth": auth},
                          on_error={"action": "create", "status": "NOTCHECKED"})


def leads(phones):
    return aiter_items((i, {"phone_number": p}, None) for i, p in enumerate(phones))


def phones(start: int, n: int) -> list[str]:
    return [KNOWN if i % 10 == 0 else f"555{4_000_000 + start + i:07d}" for i in range(n)]


def zoho(sim) -> dict:
    return sim.stats()["vendors"]["zoho"]


def assert_all_checked(records):
    assert all(r["checked"] and r["crm"]["error"] is None and r["crm"]["status_code"] in (200, 204) for r in records)


# -- secrets and the refresh-token file ---------------------------------------------

def test_a_secret_file_is_read_again_when_it_changes(tmp_path):
    path = tmp_path / "secret"
    path.write_text("first\n")
    secrets = Secrets({"API_KEY_FILE": str(path), "DIRECT": "d"})
    assert secrets.get("API_KEY") == "first" and secrets.get("DIRECT") == "d"
    path.write_text("second-value\n")
    assert secrets.get("API_KEY") == "second-value"
    with pytest.raises(SecretMissing, match="NOPE"):
        secrets.get("NOPE")
    path.unlink()
    with pytest.raises(SecretMissing, match="API_KEY_FILE") as err:
        secrets.get("API_KEY")
    assert "second-value" not in str(err.value)


def test_the_refresh_token_file_is_private_and_a_new_seed_from_the_operator_wins(tmp_path):
    store = RefreshTokenFile(tmp_path / "state" / "t.json")
    store.save("seed-1", "rotated-1")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert "seed-1" not in store.path.read_text()  # only its hash
    assert store.load("seed-1") == "rotated-1"
    assert store.load("seed-2") is None  # the operator authorised again: their token, not the old file


# -- Zoho: refresh-token grant, one refresh at a time ---------------------------------

@pytest.mark.e2e
def test_200_requests_at_expiry_make_exactly_one_refresh(tmp_path):
    """A stopped simulator clock: tokens expire when the test moves it."""
    with SimulatorThread(CONTACTS, limits=Limits.off(zoho_token_lifetime=3600, time_scale=0)) as sim:
        wf = zoho_workflow(tmp_path, sim)

        async def go():
            async with Host.open(str(wf), db=str(tmp_path / "d.db"), environ=ZOHO_ENV) as host:
                first, second = [], []
                await host.run(leads(phones(0, 200)), concurrency=200, on_record=first.append)
                before = zoho(sim)
                sim.advance(3600)  # every token the simulator issued is now expired
                await host.run(leads(phones(200, 200)), concurrency=200, on_record=second.append)
                return first, before, second, host.health()["crm"]["oauth"]

        first, before, second, oauth = asyncio.run(go())
        after = zoho(sim)
    assert_all_checked(first + second)
    assert before["token_grants"] == 1  # 200 requests waited for the first token: one token request
    assert after["expired_token"] >= 1  # the second batch met the expiry (401 INVALID_TOKEN) ...
    assert after["token_grants"] == 2 and after["token_requests"] == 2  # ... and one refresh served them all
    assert oauth["tokens_obtained"] == 2 and oauth["token_failures"] == 0
    print(f"\n200 leads at expiry: {after['expired_token']} answered 401, {after['token_requests'] - 1} refresh")


@pytest.mark.e2e
def test_a_token_due_is_refreshed_before_it_expires_once_for_200_waiting(tmp_path):
    # a stopped simulator clock: tokens never expire there, so a 401 would be a bug. The first token
    # says it lives 2 seconds (due after 1.6); the second lives an hour, so a third grant would be a bug
    with SimulatorThread(CONTACTS, limits=Limits.off(zoho_token_lifetime=2, time_scale=0)) as sim:
        wf = zoho_workflow(tmp_path, sim)

        async def go():
            async with Host.open(str(wf), db=str(tmp_path / "d.db"), environ=ZOHO_ENV) as host:
                first = await host.decide({"phone_number": KNOWN})
                sim.set_limits(zoho_token_lifetime=3600)
                while host.health()["crm"]["oauth"]["refresh_in_s"] > 0:  # wait until the token is due
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.05)  # refresh_in_s is rounded to 0.1 s: now it is due for sure
                records = []
                await host.run(leads(phones(1000, 200)), concurrency=200, on_record=records.append)
                return [first] + records

        records = asyncio.run(go())
        stats = zoho(sim)
    assert_all_checked(records)
    assert stats["token_grants"] == 2 and stats["expired_token"] == 0  # refreshed ahead of expiry, once


@pytest.mark.e2e
def test_a_long_run_with_tokens_expiring_every_two_seconds_never_fails_a_lead(tmp_path):
    with SimulatorThread(CONTACTS, limits=Limits.off(zoho_token_lifetime=3600, time_scale=1800)) as sim:
        wf = zoho_workflow(tmp_path, sim)

        async def feed():
            # until the token was refreshed 4 times, however fast the machine; bounded in time
            deadline, start = time.monotonic() + 300, 0
            while not start or zoho(sim)["token_grants"] < 5:
                assert time.monotonic() < deadline, "the token was not refreshed 4 times in 300 s"
                for i, phone in enumerate(phones(10_000 + start, 500)):
                    yield start + i, {"phone_number": phone}, None
                start += 500

        async def go():
            async with Host.open(str(wf), db=str(tmp_path / "d.db"), environ=ZOHO_ENV) as host:
                records = []
                await host.run(feed(), concurrency=32, on_record=records.append)
                return records

        records = asyncio.run(go())
        stats = zoho(sim)
    assert stats["token_grants"] >= 5
    assert_all_checked(records)  # no lead went to on_error, none was decided on a 401
    assert sum(r["action"] == "duplicate" for r in records) == len(records) // 10
    print(f"\nlong run: {len(records)} leads, {stats['token_grants']} tokens, {stats['expired_token']} 401s retried")


@pytest.mark.e2e
def test_no_token_or_secret_reaches_a_record_or_a_log_line(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with SimulatorThread(CONTACTS, limits=Limits.off(zoho_token_lifetime=3600, time_scale=0)) as sim:
        wf = zoho_workflow(tmp_path, sim)

        async def go():
            async with Host.open(str(wf), db=str(tmp_path / "d.db"), environ=ZOHO_ENV) as host:
                return [await host.decide({"phone_number": p}) for p in (KNOWN, "5554999999")]

        records = asyncio.run(go())
    assert [r["action"] for r in records] == ["duplicate", "created"]
    assert records[0]["request"]["headers"]["Authorization"] == "Zoho-oauthtoken ****"
    seen = json.dumps(records) + "\n".join(r.getMessage() for r in caplog.records)
    assert "OAuth token for crm obtained" in seen
    assert not ISSUED.search(seen)
    assert not any(secret in seen for secret in ZOHO_ENV.values())


@pytest.mark.e2e
def test_a_refused_refresh_token_sends_leads_to_on_error_as_auth(tmp_path):
    with SimulatorThread(CONTACTS, limits=Limits.off(zoho_token_lifetime=3600, time_scale=0)) as sim:
        sim.revoke(ZOHO_ENV["ZOHO_REFRESH_TOKEN"])
        wf = zoho_workflow(tmp_path, sim)

        async def go():
            async with Host.open(str(wf), db=str(tmp_path / "d.db"), environ=ZOHO_ENV) as host:
                records = []
                await host.run(leads(phones(0, 50)), concurrency=10, on_record=records.append)
                return records, host.health()["crm"]["oauth"]

        records, oauth = asyncio.run(go())
        stats = zoho(sim)
    assert all(r["status"] == "NOTCHECKED" and r["crm"]["error"] == "auth" and not r["crm"]["called"] for r in records)
    assert "invalid_code" in records[0]["crm"]["error_detail"]
    assert stats["requests"] == 0 and stats["token_requests"] < 50  # no search without a token; failures shared
    assert oauth["last_error"] and oauth["token_failures"] >= 1


@pytest.mark.e2e
def test_missing_oauth_secrets_are_a_config_error_naming_them(tmp_path):
    with SimulatorThread(CONTACTS) as sim:
        wf = zoho_workflow(tmp_path, sim)
        with pytest.raises(ConfigError, match="ZOHO_CLIENT_SECRET"):
            Host.open(str(wf), db=str(tmp_path / "d.db"),
                        environ={k: v for k, v in ZOHO_ENV.items() if k != "ZOHO_CLIENT_SECRET"})


# -- Salesforce: rotation, client credentials, JWT bearer --------------------------------

def salesforce_workflow(tmp_path, sim, **auth):
    auth = {"type": "oauth2", "provider": "salesforce", "token_url": sim.url + "/services/oauth2/token",
            "client_id": "SF_CLIENT_ID", **auth}
    return write_workflow(tmp_path, SF_ROWS, adaptor="salesforce_soql", connect={"url": sim.url, "auth": auth},
                          on_error={"action": "create", "status": "NOTCHECKED"})


def decide(wf, tmp_path, environ, phone=KNOWN) -> dict:
    async def go():
        async with Host.open(str(wf), db=str(tmp_path / "d.db"), environ=environ) as host:
            return await host.decide({"phone_number": phone})

    return asyncio.run(go())


@pytest.mark.e2e
def test_a_rotated_refresh_token_is_saved_and_used_after_a_restart(tmp_path):
    env = {"SF_CLIENT_ID": "3MVG9-consumer-key", "SF_REFRESH": "5Aep861-first-refresh-token"}
    token_file = tmp_path / "state" / "sf.json"
    with SimulatorThread(CONTACTS, limits=Limits.off(salesforce_rotate_refresh_tokens=True)) as sim:
        wf = salesforce_workflow(tmp_path, sim, grant="refresh_token", refresh_token="SF_REFRESH",
                                 token_file=str(token_file))
        first = decide(wf, tmp_path, env)
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert env["SF_REFRESH"] not in token_file.read_text()
        again = decide(wf, tmp_path, env)  # a restart: the first refresh token is dead, the saved one works
        token_file.unlink()
        lost = decide(wf, tmp_path, env)  # without the file the restart would have failed
    assert first["checked"] and first["action"] == "duplicate"
    assert again["checked"] and again["action"] == "duplicate"
    assert lost["crm"]["error"] == "auth" and "invalid_grant" in lost["crm"]["error_detail"]


@pytest.mark.e2e
def test_client_credentials_and_a_secret_file(tmp_path):
    secret = tmp_path / "sf-secret"
    secret.write_text("client-secret-value\n")
    env = {"SF_CLIENT_ID": "3MVG9-consumer-key", "SF_SECRET_FILE": str(secret)}
    with SimulatorThread(CONTACTS) as sim:
        wf = salesforce_workflow(tmp_path, sim, grant="client_credentials", client_secret="SF_SECRET")
        record = decide(wf, tmp_path, env)
        grants = sim.stats()["vendors"]["salesforce"]["token_grants_by_type"]
    assert record["checked"] and record["action"] == "duplicate"
    assert grants == {"client_credentials": 1}


@pytest.mark.e2e
def test_jwt_bearer_signs_an_assertion_with_the_private_key(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    (tmp_path / "sf.key").write_text(pem)
    env = {"SF_CLIENT_ID": "3MVG9-consumer-key", "SF_USER": "integration@example.com",
           "SF_KEY_FILE": str(tmp_path / "sf.key")}
    with SimulatorThread(CONTACTS) as sim:
        wf = salesforce_workflow(tmp_path, sim, grant="jwt_bearer", username="SF_USER", private_key="SF_KEY")
        record = decide(wf, tmp_path, env)
        grants = sim.stats()["vendors"]["salesforce"]["token_grants_by_type"]
    assert record["checked"] and record["action"] == "duplicate"
    assert grants == {"urn:ietf:params:oauth:grant-type:jwt-bearer": 1}


def test_the_readme_connection_snippets_are_valid_config():
    """The README's `config = {...}` snippets (breaker, OAuth) pass the convoso_connect schema."""
    import re
    import tomli
    from pathlib import Path

    from dupcheck_plugin.config.schemas import schema_problems, validator_for

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippets = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if not b.startswith("#:schema")]
    configs = [tomli.loads(line)["config"] for b in snippets for line in b.splitlines() if line.startswith("config = ")]
    assert any(c.get("auth", {}).get("type") == "oauth2" for c in configs) and any("breaker" in c for c in configs)
    for config in configs:
        assert schema_problems(validator_for("convoso_connect.schema.json"), config, "README.md") == []


# -- GoHighLevel: a refresh token that works once ----------------------------------------

GHL_ROWS = [{"name": "known", "key": "contact.id", "match": "exists", "create_lead": False, "add_to_dnc": False,
             "success": False}]
GHL_ENV = {"GHL_CLIENT_ID": "ghl-client", "GHL_CLIENT_SECRET": "ghl-secret", "GHL_REFRESH": "eyJyZWZyZXNo.first",
           "GHL_LOCATION_ID": "loc-1"}


def ghl_workflow(tmp_path, sim, token_file):
    auth = {"type": "oauth2", "grant": "refresh_token", "provider": "gohighlevel", "token_url": sim.url + "/oauth/token",
            "client_id": "GHL_CLIENT_ID", "client_secret": "GHL_CLIENT_SECRET", "refresh_token": "GHL_REFRESH",
            "token_file": str(token_file)}
    return write_workflow(tmp_path, GHL_ROWS, adaptor="gohighlevel_duplicate", connect={"url": sim.url, "auth": auth},
                          on_error={"action": "create", "status": "NOTCHECKED"})


def ghl_rounds(wf, tmp_path, sim, rounds: int) -> list[dict]:
    """``rounds`` batches of 20 leads, every token expiring between two batches."""
    async def go():
        async with Host.open(str(wf), db=str(tmp_path / "d.db"), environ=GHL_ENV) as host:
            records = []
            for r in range(rounds):
                if r:
                    sim.advance(86_400)
                await host.run(leads(phones(20 * r, 20)), concurrency=20, on_record=records.append)
            return records

    return asyncio.run(go())


@pytest.mark.e2e
def test_single_use_refresh_tokens_rotate_through_a_run_and_survive_a_restart(tmp_path):
    token_file = tmp_path / "ghl.json"
    with SimulatorThread(CONTACTS, limits=Limits.off(gohighlevel_token_lifetime=86_399, time_scale=0)) as sim:
        wf = ghl_workflow(tmp_path, sim, token_file)
        first = ghl_rounds(wf, tmp_path, sim, 3)  # three tokens, each from the refresh token the last one left
        sim.advance(86_400)
        again = ghl_rounds(wf, tmp_path, sim, 1)  # a restart: the environment's token is long dead, the file's works
        grants = sim.stats()["vendors"]["gohighlevel"]["token_grants"]
    assert_all_checked(first + again)
    assert grants == 4 and stat.S_IMODE(os.stat(token_file).st_mode) == 0o600


@pytest.mark.e2e
def test_a_rotated_token_that_cannot_be_saved_still_serves_this_process(tmp_path, caplog):
    (tmp_path / "not-a-dir").write_text("x")
    with SimulatorThread(CONTACTS, limits=Limits.off(gohighlevel_token_lifetime=86_399, time_scale=0)) as sim:
        wf = ghl_workflow(tmp_path, sim, tmp_path / "not-a-dir" / "ghl.json")
        records = ghl_rounds(wf, tmp_path, sim, 3)
    assert_all_checked(records)
    assert any("rotated but not saved" in r.getMessage() for r in caplog.records)


# -- HubSpot public apps; the data centres --------------------------------------------------

@pytest.mark.e2e
def test_hubspot_public_app_tokens_refresh_after_expiry_and_a_bad_refresh_token_is_named(tmp_path):
    env = {"HS_CLIENT_ID": "hs-client", "HS_CLIENT_SECRET": "hs-secret", "HS_REFRESH": "hs-refresh-token"}
    with SimulatorThread(CONTACTS, limits=Limits.off(hubspot_token_lifetime=1800, time_scale=0)) as sim:
        auth = {"type": "oauth2", "grant": "refresh_token", "provider": "hubspot", "token_url": sim.url + "/oauth/v1/token",
                "client_id": "HS_CLIENT_ID", "client_secret": "HS_CLIENT_SECRET", "refresh_token": "HS_REFRESH",
                "token_file": str(tmp_path / "hs.json")}
        wf = write_workflow(tmp_path, [HS_ROW], connect={"url": sim.url, "auth": auth},
                            on_error={"action": "create", "status": "NOTCHECKED"})

        async def go():
            async with Host.open(str(wf), db=str(tmp_path / "d.db"), environ=env) as host:
                before = await host.decide({"phone_number": KNOWN})
                sim.advance(1800)  # expired: HubSpot answers 401 EXPIRED_AUTHENTICATION
                after = await host.decide({"phone_number": KNOWN})
                return before, after

        before, after = asyncio.run(go())
        stats = sim.stats()["vendors"]["hubspot"]
        sim.revoke(env["HS_REFRESH"])
        sim.advance(1800)
        refused = decide(wf, tmp_path, env)
    assert before["action"] == after["action"] == "duplicate" and after["checked"]
    assert stats["token_grants"] == 2 and stats["expired_token"] == 1
    assert refused["crm"]["error"] == "auth" and "BAD_REFRESH_TOKEN" in refused["crm"]["error_detail"]


def test_zoho_data_centres_set_the_accounts_server_and_the_api_domain():
    from dupcheck_plugin.connection.oauth import OAuthSettings

    base = {"type": "oauth2", "grant": "refresh_token", "provider": "zoho", "client_id": "A", "refresh_token": "B",
            "token_file": "/tmp/x.json"}
    eu = OAuthSettings.from_config("crm", {**base, "dc": "eu"}, None, {})
    assert (eu.token_url, eu.api_origin, eu.scheme) == (
        "https://accounts.zoho.eu/oauth/v2/token", "https://www.zohoapis.eu", "Zoho-oauthtoken")
    ca = OAuthSettings.from_config("crm", {**base, "dc": "ca"}, None, {})
    assert (ca.token_url, ca.api_origin) == ("https://accounts.zohocloud.ca/oauth/v2/token", "https://www.zohoapis.ca")
    us = OAuthSettings.from_config("crm", base, None, {"DUPCHECK_STATE_DIR": "/state"})
    assert us.token_url == "https://accounts.zoho.com/oauth/v2/token"
    default_file = OAuthSettings.from_config("crm", {k: v for k, v in base.items() if k != "token_file"}, None,
                                             {"DUPCHECK_STATE_DIR": "/state"}).token_file
    assert str(default_file).startswith("/state/oauth-crm-") and str(default_file).endswith(".json")


# -- static secrets from files, read again when they change ----------------------------------

def test_a_rotated_secret_file_is_used_from_the_next_lead_on(tmp_path, crm_sim):
    """The adaptor's secrets.HUBSPOT_TOKEN from HUBSPOT_TOKEN_FILE, and a
    connection's bearer secret from TOK_FILE: each rotated between two leads."""
    adaptor_secret, auth_secret = tmp_path / "hubspot-token", tmp_path / "tok"
    adaptor_secret.write_text("first-token\n")
    auth_secret.write_text("first-token\n")
    env = {"HUBSPOT_TOKEN_FILE": str(adaptor_secret), "TOK_FILE": str(auth_secret)}
    by_adaptor = write_workflow(tmp_path, [HS_ROW], name="by_adaptor")
    by_auth = write_workflow(tmp_path, [HS_ROW], name="by_auth", connect={"auth": {"type": "bearer", "secret": "TOK"}})
    for wf, path in ((by_adaptor, adaptor_secret), (by_auth, auth_secret)):
        crm_sim.set_knobs(auth="first-token")

        async def go():
            async with Host.open(str(wf), db=str(tmp_path / f"{wf.stem}.db"), crm_url=crm_sim.url, environ=env) as host:
                first = await host.decide({"phone_number": KNOWN})
                crm_sim.set_knobs(auth="second-token")  # the CRM now wants the new token...
                path.write_text("second-token\n")  # ... and the secret file has it
                return first, await host.decide({"phone_number": KNOWN})

        first, second = asyncio.run(go())
        assert first["checked"] and second["checked"] and second["action"] == "duplicate", wf.stem
        assert "second-token" not in json.dumps(second)


@pytest.mark.e2e
def test_two_connections_sharing_a_refresh_token_file_take_turns_rotating_it(tmp_path):
    """Two hosts (a reloaded workflow next to the old one, or two processes) with one
    single-use refresh token: each refresh starts from the token the other saved."""
    token_file = tmp_path / "ghl.json"
    with SimulatorThread(CONTACTS, limits=Limits.off(gohighlevel_token_lifetime=86_399, time_scale=0)) as sim:
        wf = ghl_workflow(tmp_path, sim, token_file)

        async def go():
            async with Host.open(str(wf), db=str(tmp_path / "a.db"), environ=GHL_ENV) as a, \
                       Host.open(str(wf), db=str(tmp_path / "b.db"), environ=GHL_ENV) as b:
                out = []
                for host in (a, b, a, b):
                    out.append(await host.decide({"phone_number": KNOWN}))
                    sim.advance(86_400)
                return out

        records = asyncio.run(go())
        grants = sim.stats()["vendors"]["gohighlevel"]["token_grants"]
    assert_all_checked(records)
    assert grants == 4


@pytest.mark.parametrize("transport", ["h1", "aiohttp", "httpx"])
def test_an_access_token_no_request_can_carry_is_an_auth_failure_not_the_leads(tmp_path, transport):
    from dupcheck_plugin.testing import CrmStub
    from dupcheck_plugin.testing.crm_stub import CannedAnswer

    # a token endpoint that answers a token with a control character in it
    bad = CannedAnswer({"access_token": "s3cr\x01et-value", "token_type": "Bearer", "expires_in": 3600})
    with CrmStub(default=bad) as tokens, CrmStub() as crm:
        auth = {"type": "oauth2", "grant": "refresh_token", "provider": "zoho", "token_url": tokens.url + "/token",
                "client_id": "ZOHO_CLIENT_ID", "client_secret": "ZOHO_CLIENT_SECRET",
                "refresh_token": "ZOHO_REFRESH_TOKEN", "token_file": str(tmp_path / "zoho-token.json")}
        wf = write_workflow(tmp_path, ZOHO_ROWS, adaptor="zoho_leads_search",
                            connect={"url": crm.url, "auth": auth, "transport": transport},
                            on_error={"action": "create", "status": "NOTCHECKED"})

        async def go():
            async with Host.open(str(wf), db=str(tmp_path / "d.db"), environ=ZOHO_ENV) as host:
                records = []
                await host.run(leads(phones(0, 30)), concurrency=5, on_record=records.append)
                return records

        records = asyncio.run(go())
        token_requests, crm_requests = len(tokens.requests), len(crm.requests)
    # on_error decides every lead (created, NOTCHECKED), as for any token failure. Before: h1 rejected
    # every lead (6023, as if its value were at fault), aiohttp 6500, httpx sent the token to the CRM
    assert {(r["action"], r["status"], r["crm"]["error"], r["crm"]["called"]) for r in records} == {
        ("created", "NOTCHECKED", "auth", False)}
    detail = records[0]["crm"]["error_detail"]
    assert "access_token no request can carry" in detail and "control character" in detail
    assert "s3cr" not in detail and "et-value" not in detail  # a token is never written out
    assert crm_requests == 0
    assert token_requests == 1  # the refusal is held: not one token request per lead
