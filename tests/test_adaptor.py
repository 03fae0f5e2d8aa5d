"""Adaptor features beyond the shipped files: omitted query parameters,
several record-id paths, field defaults and dates, the fields namespace."""

from __future__ import annotations

import pytest

from dupcheck_plugin.http.wire import full_url, request_json
from dupcheck_plugin.config.adaptors import compile_adaptor
from dupcheck_plugin.adaptor.render import RenderError
from dupcheck_plugin.http.call import find_record_id
from dupcheck_plugin.plugins import default_registry


def build(request: dict, fields: dict | None = None, **top):
    doc = {"fields": fields or {"phone_number": "phone", "email": "email"}, "request": request, **top}
    adaptor, problems = compile_adaptor(doc, "test.toml", default_registry().filters)
    return adaptor, problems


def test_omit_empty_query_drops_only_the_named_empty_parameters():
    adaptor, problems = build({"method": "GET", "url": "https://crm.example.com/find",
                               "query": {"phone": "{{ phone }}", "email": "{{ email }}", "k": ""},
                               "omit_empty_query": ["email"]})
    assert problems == []
    real, _ = adaptor.bind({}).render({"phone_number": "5550100101"})
    assert real.query == {"phone": "5550100101", "k": ""}
    real, _ = adaptor.bind({}).render({"phone_number": "5550100101", "email": "a@b.co"})
    assert real.query == {"phone": "5550100101", "email": "a@b.co", "k": ""}


def test_omit_empty_query_names_must_exist():
    _, problems = build({"method": "GET", "url": "https://x.example.com/", "query": {"phone": "{{ phone }}"},
                         "omit_empty_query": ["emial"]})
    assert [(p.path, p.code) for p in problems] == [(("request", "omit_empty_query"), "unknown_query")]


def test_query_written_in_the_url_is_kept():
    adaptor, _ = build({"method": "GET", "url": "https://crm.example.com/find?api=2", "query": {"p": "{{ phone }}"}})
    real, _ = adaptor.bind({}).render({"phone_number": "5550100101"})
    assert full_url(real) == "https://crm.example.com/find?api=2&p=5550100101"


def test_record_id_paths_are_tried_in_order():
    assert find_record_id({"contact": {"@id": "7"}}, ["contact.@id", "contact.0.@id"]) == "7"
    assert find_record_id({"contact": [{"@id": "8"}, {"@id": "9"}]}, ["contact.@id", "contact.0.@id"]) == "8"
    assert find_record_id({"contact": None}, "contact.id") is None
    assert find_record_id({"results": [{"id": {"nested": 1}}]}, "results.0.id") is None


def test_defaults_several_names_and_date_formats():
    adaptor, problems = build(
        {"method": "POST", "url": "https://crm.example.com/x",
         "body": {"a": "{{ phone }}", "b": "{{ tel }}", "dob": "{{ dob }}", "src": "{{ src }}",
                  "raw": "{{ fields['first-name'] }}"}},
        fields={"phone_number": "phone, tel", "date_of_birth": {"mapped_to": "dob", "date_format": "m/d/Y"},
                "source": {"mapped_to": "src", "default": "web"}, "first_name": "first-name"})
    assert problems == []
    real, _ = adaptor.bind({}).render({"phone_number": "0042", "date_of_birth": "1980-05-17", "first_name": "Zoë"})
    assert real.body == {"a": "0042", "b": "0042", "dob": "05/17/1980", "src": "web", "raw": "Zoë"}
    with pytest.raises(RenderError, match="not a date"):
        adaptor.bind({}).render({"phone_number": "1", "date_of_birth": "yesterday"})


def test_a_lead_value_never_becomes_template_source():
    adaptor, _ = build({"method": "POST", "url": "https://crm.example.com/x", "body": {"q": "{{ phone }}"}})
    for hostile in ("{{ 7*7 }}", "{% for x in range(9) %}x{% endfor %}", '", "x": "y', "{{ secrets }}"):
        real, _ = adaptor.bind({}).render({"phone_number": hostile})
        assert real.body == {"q": hostile}


def test_an_attribute_escape_is_a_problem_before_anything_runs():
    adaptor, problems = build({"method": "POST", "url": "https://crm.example.com/x",
                               "body": {"q": "{{ phone.__class__.__mro__[1].__subclasses__() }}"}})
    assert adaptor is None
    assert [(p.path, p.code, p.token) for p in problems] == [(("request", "body", "q"), "sandbox", "__class__")]
