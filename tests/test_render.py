"""`dupcheck render`: the exact request, secrets masked; hostile lead values stay values."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator

from dupcheck_plugin.config.adaptors import compile_adaptor
from dupcheck_plugin.adaptor.render import RenderError
from dupcheck_plugin.cli.main import main
from dupcheck_plugin.plugins import default_registry

TESTS = Path(__file__).resolve().parent
EXAMPLES = TESTS / "examples"
HUBSPOT_SPEC = TESTS / "vendor_specs" / "hubspot" / "contacts.v3.json"
SHARED_HUBSPOT_SPEC = Path(__file__).resolve().parents[2] / "shared" / "crm-specs" / "hubspot" / "contacts.v3.json"

PHONE = "(555) 123-4567"  # no "49" in any of its forms: the 7*7 check below relies on it
HOSTILE = {
    "first_name": 'Robert", "x": "y',
    "last_name": "{{ 7*7 }} {% if true %}yes{% endif %} {% if %} {' } \\ \" \n end",
    "email": 'Robert", "x": "y{{ 7*7 }}{% if %}\\\n{"@example.com',
}


@pytest.fixture(autouse=True)
def _no_secrets(monkeypatch):
    for name in ("HUBSPOT_TOKEN", "GENERIC_CRM_TOKEN", "GENERIC_CRM_KEY", "ACME_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def render(capsys, adaptor, lead, *options) -> tuple[int, str, str]:
    lead_arg = lead if isinstance(lead, str) else json.dumps(lead)
    code = main(["render", str(adaptor), "--lead", lead_arg, *options])
    out, err = capsys.readouterr()
    return code, out, err


def render_json(capsys, adaptor, lead) -> dict:
    code, out, err = render(capsys, adaptor, lead, "-o", "json")
    assert code == 0, err
    return json.loads(out)


def shape(value):
    """The structure with every string leaf blanked: what a lead value must not change."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


# --- hostile values -------------------------------------------------------------

def test_hubspot_hostile_lead_keeps_the_request_shape(capsys):
    plain = render_json(capsys, "hubspot_contacts_search", {"phone_number": PHONE, "email": "ann@example.com"})
    code, out, _ = render(capsys, "hubspot_contacts_search", {"phone_number": PHONE, **HOSTILE}, "-o", "json")
    assert code == 0
    hostile = json.loads(out)
    assert set(hostile) == {"method", "url", "headers", "body"}
    assert shape(hostile["body"]) == shape(plain["body"])
    email_group = hostile["body"]["filterGroups"][3]["filters"][0]
    assert email_group == {"propertyName": "email", "operator": "EQ", "value": HOSTILE["email"]}
    assert "49" not in out


def test_generic_json_hostile_names_arrive_verbatim(capsys):
    plain = render_json(capsys, "generic_json", {"phone_number": PHONE, "first_name": "Ann", "last_name": "Lee"})
    code, out, _ = render(capsys, "generic_json", {"phone_number": PHONE, **HOSTILE}, "-o", "json")
    hostile = json.loads(out)
    assert shape(hostile["body"]) == shape(plain["body"])
    assert hostile["body"]["name"] == {"first": HOSTILE["first_name"], "last": HOSTILE["last_name"]}
    assert hostile["body"]["email"] == HOSTILE["email"]
    assert "49" not in out


def test_hostile_values_in_text_output(capsys):
    code, out, _ = render(capsys, "generic_json", {"phone_number": PHONE, **HOSTILE})
    assert code == 0
    assert "49" not in out
    body = json.loads(out.split("\n\n", 1)[1])  # the text body is pretty-printed JSON
    assert body["name"]["first"] == HOSTILE["first_name"]


def test_leading_zeros_stay_strings(capsys):
    body = render_json(capsys, "generic_json", {"phone_number": PHONE, "first_name": "0042", "last_name": "007"})["body"]
    assert body["name"] == {"first": "0042", "last": "007"}
    form = render_json(capsys, "generic_form", {"phone_number": PHONE, "list_id": "0042"})["body"]
    assert form["source"] == "0042"


# --- secrets --------------------------------------------------------------------

def test_secret_is_masked_everywhere(capsys, monkeypatch):
    monkeypatch.setenv("HUBSPOT_TOKEN", "sekrit-token-123")
    for options in ((), ("-o", "json")):
        code, out, err = render(capsys, "hubspot_contacts_search", {"phone_number": PHONE}, *options)
        assert code == 0
        assert "sekrit" not in out + err
        assert "Bearer ****" in out
        assert "not set" not in err


def test_unset_secret_is_named_on_stderr(capsys):
    code, out, err = render(capsys, "hubspot_contacts_search", {"phone_number": PHONE})
    assert code == 0
    assert "HUBSPOT_TOKEN is not set" in err
    assert "Authorization: Bearer ****" in out.splitlines()


# --- the request as the CRM sees it -------------------------------------------------

def test_text_output_layout(capsys):
    code, out, _ = render(capsys, "hubspot_contacts_search", {"phone_number": PHONE, "email": "ann@example.com"})
    head, body = out.split("\n\n", 1)
    assert head.splitlines() == [
        "POST https://api.hubapi.com/crm/v3/objects/contacts/search",
        "Authorization: Bearer ****",
        "Accept: application/json",
        "Content-Type: application/json",
    ]
    assert json.loads(body)["limit"] == 10


def test_json_output_has_url_with_query(capsys):
    view = render_json(capsys, EXAMPLES / "valid" / "acme_lookup.toml", {"phone_number": PHONE, "email": "Ann@Example.com"})
    assert view["url"] == "https://acme.example.com/api/v2/lookup?source=convoso"
    assert view["headers"] == {"X-Api-Key": "****", "Content-Type": "application/json"}
    assert view["body"]["by_email"] == {"email": "ann@example.com"}


def test_form_adaptor(capsys):
    lead = {"phone_number": PHONE, "email": "a+b@x.y"}
    view = render_json(capsys, "generic_form", lead)
    assert view["headers"] == {"Content-Type": "application/x-www-form-urlencoded"}
    assert view["body"] == {"api_key": "****", "phone": "5551234567", "email": "a+b@x.y",
                            "email_address": "a+b@x.y", "source": "0"}
    code, out, _ = render(capsys, "generic_form", lead)
    assert out.split("\n\n", 1)[1].splitlines() == [
        "api_key=%2A%2A%2A%2A", "phone=5551234567", "email=a%2Bb%40x.y", "email_address=a%2Bb%40x.y", "source=0"]


@pytest.mark.parametrize("lead", [{"phone_number": PHONE}, {"phone_number": PHONE, "email": "   "}])
def test_when_drops_the_email_group_without_email(capsys, lead):
    groups = render_json(capsys, "hubspot_contacts_search", lead)["body"]["filterGroups"]
    assert len(groups) == 3
    assert all(f["propertyName"] != "email" for g in groups for f in g["filters"])


def test_lead_from_file_and_stdin(capsys, tmp_path, monkeypatch):
    f = tmp_path / "lead.json"
    f.write_text(json.dumps({"phone_number": PHONE}), encoding="utf-8")
    assert render_json(capsys, "generic_json", str(f))["body"]["phone"] == "+15551234567"
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"phone_number": "+44 20 7946 0958"})))
    assert render_json(capsys, "generic_json", "-")["body"]["phone"] == "+442079460958"


# --- HubSpot's own request schema -------------------------------------------------------

def hubspot_search_validator() -> Draft202012Validator:
    """PublicObjectSearchRequest as published, plus: no key the schema does not name.

    The published schema requires after, limit, properties and sorts (stricter
    than the live API, see vendor_specs/README.md); our adaptor sends them all.
    """
    components = copy.deepcopy(json.loads(HUBSPOT_SPEC.read_text(encoding="utf-8"))["components"])
    for name in ("PublicObjectSearchRequest", "FilterGroup", "Filter"):
        components["schemas"][name]["additionalProperties"] = False
    schema = {"$ref": "#/components/schemas/PublicObjectSearchRequest", "components": components}
    return Draft202012Validator(schema)


def test_hubspot_published_schema_is_as_expected():
    request = json.loads(HUBSPOT_SPEC.read_text(encoding="utf-8"))["components"]["schemas"]["PublicObjectSearchRequest"]
    assert sorted(request["required"]) == ["after", "filterGroups", "limit", "properties", "sorts"]


def test_hubspot_validator_is_not_vacuous():
    validator = hubspot_search_validator()
    good = {"after": "0", "limit": 10, "properties": [], "sorts": [],
            "filterGroups": [{"filters": [{"propertyName": "phone", "operator": "EQ", "value": "+15551234567"}]}]}
    assert validator.is_valid(good)
    assert not validator.is_valid({k: v for k, v in good.items() if k != "after"})
    assert not validator.is_valid({**good, "limit": "10"})
    assert not validator.is_valid({**good, "filterGroups": [{"$when": "x", "filters": []}]})
    assert not validator.is_valid({**good, "filterGroups": [{"filters": [{"propertyName": "phone", "operator": "EQUALS"}]}]})


@pytest.mark.parametrize("lead", [{"phone_number": PHONE, "email": "ann@example.com"},
                                  {"phone_number": PHONE}, {"phone_number": PHONE, **HOSTILE}])
def test_hubspot_body_matches_hubspots_request_schema(capsys, lead):
    body = render_json(capsys, "hubspot_contacts_search", lead)["body"]
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in hubspot_search_validator().iter_errors(body)]
    assert errors == []
    assert len(body["filterGroups"]) <= 6  # "Up to 6 groups of filters"


@pytest.mark.skipif(not SHARED_HUBSPOT_SPEC.is_file(), reason="the shared crm-specs folder is not next to the repository")
def test_vendored_hubspot_spec_equals_the_shared_copy():
    assert HUBSPOT_SPEC.read_bytes() == SHARED_HUBSPOT_SPEC.read_bytes()


# --- errors ---------------------------------------------------------------------

def test_required_field_missing(capsys):
    code, out, err = render(capsys, "hubspot_contacts_search", {"email": "ann@example.com"})
    assert (code, out) == (1, "")
    assert "lead field 'phone_number' is required" in err
    assert "Traceback" not in err


def test_missing_template_variable(capsys, tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('[fields]\nphone_number = "phone"\n[request]\nmethod = "POST"\nurl = "https://x.example.com/"\n'
                 '[request.body]\nk = "{{ fields[\'crm-name\'] }}"\n', encoding="utf-8")
    code, out, err = render(capsys, f, {"phone_number": PHONE})
    assert (code, out) == (1, "")
    assert "request.body.k" in err and "'crm-name'" in err


def test_bad_phone_is_a_message(capsys):
    code, _, err = render(capsys, "generic_json", {"phone_number": "12"})
    assert code == 1 and "request.body.phone: '12'" in err


def test_invalid_adaptor_lists_its_problems(capsys):
    bad = EXAMPLES / "invalid" / "adaptor_undeclared_variable.toml"
    code, out, err = render(capsys, bad, {"phone_number": PHONE})
    assert (code, out) == (1, "")
    assert "request.body.zip: template variable 'zip_code' is not provided" in err


@pytest.mark.parametrize("lead, message", [
    ("[1, 2]", "must be a JSON object"),
    ("42", "must be a JSON object"),
    ('{"phone_number": ', "not valid JSON"),
])
def test_lead_not_an_object(capsys, lead, message):
    code, out, err = render(capsys, "generic_json", lead)
    assert (code, out) == (1, "") and message in err


@pytest.mark.parametrize("argv", [
    ["render", "no_such_adaptor", "--lead", "{}"],
    ["render", "generic_json", "--lead", "no/such/lead.json"],
])
def test_usage_errors(capsys, argv):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("dupcheck render: ")


def test_lead_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["render", "generic_json"])
    assert exc.value.code == 2


# --- the URL's origin ---------------------------------------------------------------

def compile_doc(url: str, fields: dict):
    doc = {"fields": fields, "request": {"method": "GET", "url": url}}
    adaptor, problems = compile_adaptor(doc, "test.toml", default_registry().filters)
    assert problems == []
    return adaptor


def test_static_host_cannot_be_changed_by_a_lead_value():
    adaptor = compile_doc("https://x.example.com/{{ path }}", {"p": "path"})
    assert adaptor.request.origin == "https://x.example.com"
    for value in ("@evil.example.com/x", "../../evil.example.com", "//evil.example.com", ":8080@evil.example.com"):
        _, masked = adaptor.bind({}, preview=True).render({"p": value})
        assert urlsplit(masked.url).hostname == "x.example.com", value


def test_origin_guard_rejects_a_url_that_left_its_origin():
    adaptor = compile_doc("https://x.example.com/{{ path }}", {"p": "path"})
    adaptor.request.origin = "https://y.example.com"  # as if the rendered URL had left it
    with pytest.raises(RenderError, match="left its origin https://y.example.com"):
        adaptor.bind({}, preview=True).render({"p": "a"})


def test_templated_host_compiles_but_is_not_guarded():
    # `dupcheck check` warns about it (dynamic_origin); rendering cannot know the intended host
    adaptor = compile_doc("https://{{ host }}/x", {"crm_host": "host"})
    assert adaptor.request.origin is None
    _, masked = adaptor.bind({}, preview=True).render({"crm_host": "evil.example.com"})
    assert urlsplit(masked.url).hostname == "evil.example.com"
