"""The compiled render plan gives, byte for byte, what the reference walk gives (every leaf
by Jinja, then a walk over the request): for every shipped adaptor, the test adaptors and
odd requests, over ordinary and odd leads; and the same error where the walk fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dupcheck_plugin.adaptor.filters import BUILTIN_FILTERS
from dupcheck_plugin.adaptor.render import MASK, RenderError, RequestTemplate, make_environment, plain_function
from dupcheck_plugin.adaptor.sandbox import MAX_TEXT
from dupcheck_plugin.config.adaptors import load_adaptor
from dupcheck_plugin.config.toml import load_toml
from dupcheck_plugin.engine.intake import admit
from dupcheck_plugin.http.wire import full_url
from dupcheck_plugin.plugins import default_registry
from dupcheck_plugin.resources import find_named, shipped_dir

TESTS = Path(__file__).resolve().parent
ADAPTORS = sorted(p.stem for p in shipped_dir("adaptors").glob("*.toml")) + [str(TESTS / "examples" / "valid" / "acme_lookup.toml")]

ORDINARY = [
    {"phone_number": "5550100101", "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
     "list_id": "1000", "date_of_birth": "1990-02-03", "postal_code": "02134", "dob": "1990-02-03"},
    {"phone_number": "(555) 010-0102", "email": "", "first_name": "", "last_name": ""},
    {"phone_number": "+1 555.010.0103"},
    {"phone_number": "+44 20 7946 0958", "phone_code": "44", "email": "a@b.co"},
]
ODD = [
    {"phone_number": "5550100104", "email": "ünï@exämple.com", "first_name": "Zoë 🦊", "last_name": "عربي"},
    {"phone_number": "5550100105", "email": " ", "first_name": "   ", "last_name": "\t"},
    {"phone_number": "5550100106", "email": 'o\'neil"@x.com', "first_name": 'Robert", "x": "y',
     "last_name": "{{ 7*7 }} {% if %} \\ ' \" \n \r end"},
    {"phone_number": "5550100107", "email": "a%b_c\\d(e),f@x.com", "first_name": "?&|!{}[]()^~*:+-"},
    {"phone_number": "5550100108", "email": "x" * (MAX_TEXT // 2 + 10)},  # over the size limit in some requests
    {"phone_number": "12", "email": "bad@phone.com"},  # a filter refuses it
    {"phone_number": "５５５0100109"},
    {"phone_number": "5550100110", "date_of_birth": "not a date"},
]


def outcome(render, variables):
    try:
        real, masked = render(variables)
    except RenderError as exc:
        return ("error", str(exc), exc.path)
    # repr: every key in its order, every byte; the URL as the wire writes it (a plan writes the
    # query as it renders it, the walk's request is written by the wire)
    return ("ok", repr(real), repr(masked), real is masked, wire_url(real), wire_url(masked))


def wire_url(r):
    try:
        return full_url(r)
    except Exception as exc:  # noqa: BLE001 - a URL httpx refuses: refused alike
        return type(exc).__name__


def variables_of(adaptor, lead):
    leads = {**{rule.lead_field: "" for rule in adaptor.fields.rules}, **lead}
    try:
        return adaptor.fields.template_vars(admit(leads, {"phone_code": "1"}).lead)
    except ValueError:  # a lead the field rules refuse never reaches the request
        return None


@pytest.mark.parametrize("name", ADAPTORS)
def test_every_adaptor_renders_by_its_plan_as_the_walk_does(name):
    adaptor = load_adaptor(name)
    bound = adaptor.request.bind({n: f"secret-{n}" for n in adaptor.secret_names})
    assert bound.compiled
    compared = 0
    for lead in ORDINARY:
        variables = variables_of(adaptor, lead)
        if variables is None:
            continue
        # ordinary leads take the plan itself, not its fallback
        assert outcome(bound.render_compiled, variables) == outcome(bound.render_reference, variables)
        compared += 1
    for lead in ODD:
        variables = variables_of(adaptor, lead)
        if variables is not None:
            assert outcome(bound.render, variables) == outcome(bound.render_reference, variables)
            compared += 1
    assert compared >= len(ORDINARY)


@pytest.mark.parametrize("name", ADAPTORS)
def test_a_variable_the_lead_lacks_fails_as_the_walk_fails(name):
    adaptor = load_adaptor(name)
    bound = adaptor.request.bind({n: "s" for n in adaptor.secret_names})
    variables = variables_of(adaptor, ORDINARY[0])
    for missing in list(variables):
        partial = {k: v for k, v in variables.items() if k != missing}
        assert outcome(bound.render, partial) == outcome(bound.render_reference, partial)


ODD_REQUESTS = [
    {"method": "POST", "url": "https://crm.example/{{ phone }}/x",
     "headers": {"X-Key": "{{ secrets.KEY }}", "X-Mixed": "k={{ secrets['KEY'] }};p={{ phone | digits }}", "X-N": 5},
     "query": {"a": "{{ email }}", "b": "", "c": "{{ phone | soql_like }}", "d": True, "e": ["x", "{{ email }}"]},
     "omit_empty_query": ["a", "b"], "body_format": "json",
     "body": {"k": "{{ secrets.KEY }}", "f": "{{ fields['x-y'] }}", "s": "{{ phone | sosl | zoho_criteria }}",
              "lower": "{{ email | lower }}", "loop": "{% for c in phone %}{{ c }}{% endfor %}",
              "nested": [{"$when": "{{ email }}", "v": ["{{ email }}", 1, None, False]}, {"$when": "", "x": 1}],
              "concat": "{{ phone ~ email }}|{{ secrets.KEY }}"}},
    {"method": "POST", "url": "https://crm.example/form", "body_format": "form",
     "query": {"q": "{{ email }}", "r": "{{ phone }}", "s": "{{ email }}"}, "omit_empty_query": True,
     "body": {"phone": "{{ phone | e164 }}", "flag": True, "n": 3, "list": ["{{ email }}", False]}},
    {"method": "GET", "url": "{{ phone }}", "query": {"p": "{{ phone }}"}},
    # a query the plan writes as the URL holds it: keys and fixed values quoted once, a block
    # quoted once however often written, values left out when empty
    {"method": "GET", "url": "https://crm.example/s", "omit_empty_query": ["o", "s", "k y"],
     "query": {"k y": "{% set b %}'{{ phone }}' & {{ email }}{% endset %}{{ b }}+{{ b | length }}{{ b }}",
               "t": True, "n": 7, "s": "a b+c%~", "o": "{{ email }}", "e": "", "u": "ü{{ phone }}"}},
    {"method": "GET", "url": "https://crm.example/s?fixed=1&p=0#f", "query": {"p": "{{ phone }}"}},
    {"method": "POST", "url": "https://crm.example/x", "body": {
        "set_if": "{%- set d = phone | digits -%}{%- set n = d | length -%}"
                  "{% if n == 10 and d.startswith('5') %}A{{ d[:3] ~ '-' ~ d[3:] }}{% elif n > 10 or not d %}B{{ n }}"
                  "{% else %}C{{ d[::2] }}{% endif %}|{{ email[1:] }}",
        "block": "{% set x %}'{{ phone | soql }}'{% if email %},{{ email.endswith('.c') }}{% endif %}{% endset %}{{ x }}({{ x }})",
        "read_before_set": "{{ e }}{% set e = phone %}{{ e }}",
        "set_in_if": "{% if phone %}{% set y = email %}{{ y }}{% endif %}{{ y }}",
        "in": "{{ '@' in email }}{{ 'x' not in phone }}{{ phone == email }}{{ 1 < phone | length <= 10 }}",
        "secret": "{{ secrets.KEY ~ phone }}"}},
]


@pytest.mark.parametrize("request_", ODD_REQUESTS)
@pytest.mark.parametrize("secret", ["s3cret", MASK, ""])
def test_odd_requests_render_by_their_plan_as_the_walk_does(request_, secret):
    tpl, problems = RequestTemplate.compile(make_environment(BUILTIN_FILTERS), request_, {"phone", "email", "x-y", "e", "y"})
    assert problems == []
    bound = tpl.bind({"KEY": secret})
    for phone in ("5550100101", "", "x" * (MAX_TEXT // 3), "a/b?c#d", "12"):
        for email in ("a@b.c", "", " ", "ü'\"\\"):
            variables = {"phone": phone, "email": email, "fields": {"x-y": email}, "e": "lead's e", "y": "lead y"}
            assert outcome(bound.render, variables) == outcome(bound.render_reference, variables)


# A connection's own origin (its `url`, --crm-url, OAuth's instance URL): the bound request
# renders the URL as sent, a fixed one moved once when bound, a rendered one per lead.
SENT_TO = "http://127.0.0.1:8765"


@pytest.mark.parametrize("name", ADAPTORS)
def test_a_request_bound_to_another_origin_renders_there_by_plan_and_walk(name):
    adaptor = load_adaptor(name)
    secrets = {n: "s3cret" for n in adaptor.secret_names}
    moved, own = adaptor.request.bind(secrets, origin=SENT_TO), adaptor.request.bind(secrets)
    rendered = 0
    for lead in ORDINARY + ODD:
        variables = variables_of(adaptor, lead)
        if variables is None:
            continue
        assert outcome(moved.render, variables) == outcome(moved.render_reference, variables)
        try:
            expected = [r.with_origin(SENT_TO) for r in own.render(variables)]
        except RenderError:
            continue
        assert list(moved.render_compiled(variables)) == expected
        assert expected[0].url.startswith(SENT_TO + "/")
        rendered += 1
    assert rendered


@pytest.mark.parametrize("secret", ["s3cret", ""])
def test_a_rendered_url_is_moved_to_the_origin_per_lead(secret):
    tpl, problems = RequestTemplate.compile(make_environment(BUILTIN_FILTERS), ODD_REQUESTS[0],
                                            {"phone", "email", "x-y"})
    assert problems == []
    moved, own = tpl.bind({"KEY": secret}, origin=SENT_TO), tpl.bind({"KEY": secret})
    for phone in ("5550100101", "a/b?c#d"):
        variables = {"phone": phone, "email": "a@b.c", "fields": {"x-y": ""}}
        real, masked = moved.render_compiled(variables)
        assert real.url == f"{SENT_TO}/{phone}/x"
        assert [real, masked] == [r.with_origin(SENT_TO) for r in own.render_reference(variables)]
        assert outcome(moved.render, variables) == outcome(moved.render_reference, variables)


# Several leaves testing the same: the test is computed once, and what a branch computes is
# reused by a later branch under the same test, never where that branch did not run (an else,
# an elif, a leaf outside the if). The plan itself must render these (no walk to fall back to).
SHARED_TESTS = {"method": "POST", "url": "https://crm.example/x", "body": {
    "a": "{%- set d = phone | digits -%}{% if d.startswith('5') and d | length == 10 %}"
         "{{ (d[:3] ~ '-' ~ d[3:]) | soql }}{% if email %}{{ email | soql }}{% endif %}{% else %}{{ d | soql }}{% endif %}",
    "b": "{%- set d = phone | digits -%}{% if d.startswith('5') and d | length == 10 %}<{{ (d[:3] ~ '-' ~ d[3:]) | soql }}{{ d | soql }}>"
         "{% if email %}{{ email | soql }}{% else %}{{ d[::2] }}{% endif %}{% elif email %}{{ email | soql }}"
         "{% else %}{{ d | soql }}|{{ d[::2] }}{% endif %}",
    "c": "{{ (phone | digits)[::2] }}{{ email | soql }}{{ ((phone | digits)[:3] ~ '-' ~ (phone | digits)[3:]) | soql }}",
    "d": "{% if not (phone | digits).startswith('5') %}{{ (phone | digits) | soql }}{% endif %}"}}


def test_leaves_testing_the_same_share_what_they_compute_where_it_ran():
    tpl, problems = RequestTemplate.compile(make_environment(BUILTIN_FILTERS), SHARED_TESTS, {"phone", "email"})
    assert problems == []
    bound = tpl.bind({})
    assert bound.compiled
    for phone in ("5550100101", "4440100101", "555010010", ""):
        for email in ("a'b@c.d", ""):
            variables = {"phone": phone, "email": email}
            assert bound.render_compiled(variables) == bound.render_reference(variables), (phone, email)


def _templates(value):
    if isinstance(value, str):
        if "{" in value:
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _templates(v)
    elif isinstance(value, list):
        for v in value:
            yield from _templates(v)


@pytest.mark.parametrize("name", [n for n in ADAPTORS if "batch" in load_toml(find_named("adaptors", n))])
def test_batch_templates_render_without_jinja_as_jinja_does(name):
    adaptor = load_adaptor(name)
    env = make_environment(default_registry().filters)
    compiled = 0
    for source in _templates(load_toml(find_named("adaptors", name))["batch"]):
        function = plain_function(env, source)
        compiled += function is not None
        for lead in ORDINARY + ODD:
            variables = variables_of(adaptor, lead)
            if function is None or variables is None:
                continue
            try:
                expected = env.from_string(source).render(variables)
            except Exception:  # noqa: BLE001 - Jinja refuses this lead: so must the function (then Jinja says why)
                with pytest.raises(Exception):
                    function(variables)
                continue
            if len(expected) <= MAX_TEXT:
                assert function(variables) == expected
    assert compiled  # the shipped batch templates are plain


# Generated leads: every mapped field present or left out, its value built from what breaks
# hand-written rendering (quotes, backslashes, Jinja's own delimiters, other scripts, a value
# over the size limit), through each shipped adaptor, real and masked, plan against walk.
_pieces = st.sampled_from(list("aZ09 @.+-_'\"\\{}%#/?&=()[]*:~^|!,;<>\n\r\t") + [
    "{{", "{%", "}}", "%}", "{#", "ü", "🦊", "\u200b", "ع", "٣", "５", "İ", "\u00a0", "{{ 7*7 }}", "null", "AND"])
_values = st.one_of(st.tuples(st.sampled_from(["", " ", "\t"]), st.lists(_pieces, max_size=8).map("".join),
                              st.sampled_from(["", " ", "\n"])).map("".join),
                    st.sampled_from(["", " ", "5550100101", "a@b.co", "1990-02-03", "0042", "x" * (MAX_TEXT // 2 + 5)]))
_phones = st.sampled_from(["5550100101", "(555) 010-0102", "+44 20 7946 0958", "12", "５５５0100109", "15550100101"])


@pytest.mark.parametrize("name", ADAPTORS)
def test_generated_leads_render_by_the_plan_as_the_walk_does(name):
    adaptor = load_adaptor(name)
    bound = adaptor.request.bind({n: f"s'\"{{{{x}}}}\\-{n}" for n in adaptor.secret_names})
    names = sorted({rule.lead_field for rule in adaptor.fields.rules} | {"email", "first_name", "last_name"})

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(st.fixed_dictionaries({}, optional={n: _values for n in names}), _phones)
    def check(lead, phone):
        try:
            variables = adaptor.fields.template_vars(admit({**lead, "phone_number": phone}, {"phone_code": "1"}).lead)
        except ValueError:  # a lead the field rules refuse never reaches the request
            return
        assert outcome(bound.render, variables) == outcome(bound.render_reference, variables)

    check()
