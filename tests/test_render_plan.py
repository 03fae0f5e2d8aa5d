"""The compiled render plan gives, byte for byte, what the reference walk gives (every leaf
by Jinja, then a walk over the request): for every shipped adaptor, the test adaptors and
odd requests, over ordinary and odd leads; and the same error where the walk fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from dupcheck_plugin.adaptor.filters import BUILTIN_FILTERS
from dupcheck_plugin.adaptor.render import MASK, RenderError, RequestTemplate, make_environment
from dupcheck_plugin.adaptor.sandbox import MAX_TEXT
from dupcheck_plugin.config.adaptors import load_adaptor
from dupcheck_plugin.engine.intake import admit
from dupcheck_plugin.resources import shipped_dir

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
    return ("ok", repr(real), repr(masked), real is masked)  # repr: every key in its order, every byte


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
]


@pytest.mark.parametrize("request_", ODD_REQUESTS)
@pytest.mark.parametrize("secret", ["s3cret", MASK, ""])
def test_odd_requests_render_by_their_plan_as_the_walk_does(request_, secret):
    tpl, problems = RequestTemplate.compile(make_environment(BUILTIN_FILTERS), request_, {"phone", "email", "x-y"})
    assert problems == []
    bound = tpl.bind({"KEY": secret})
    for phone in ("5550100101", "", "x" * (MAX_TEXT // 3), "a/b?c#d", "12"):
        for email in ("a@b.c", "", " ", "ü'\"\\"):
            variables = {"phone": phone, "email": email, "fields": {"x-y": email}}
            assert outcome(bound.render, variables) == outcome(bound.render_reference, variables)
