"""The request is assembled by code compiled once per adaptor: it gives what a
walk over the request gives, ``$when`` objects included, and masks secrets."""

from __future__ import annotations

from dupcheck_plugin.adaptor.filters import BUILTIN_FILTERS
from dupcheck_plugin.adaptor.render import RequestTemplate, make_environment

REQUEST = {
    "method": "POST",
    "url": "https://crm.example/search",
    "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}", "X-Lead": "{{ phone }}"},
    "query": {"q": "{{ phone }}", "static": "yes"},
    "body": {
        "limit": 10,
        "fixed": [{"a": "b"}, {"$when": "", "never": "there"}],
        "groups": [
            {"filters": [{"value": "{{ phone }}"}]},
            {"$when": "{{ email }}", "filters": [{"value": "{{ email }}"}]},
            {"$when": "{{ email }}", "nested": {"$when": "{{ phone }}", "deep": ["{{ email }}", 3, True]}},
        ],
        "maybe": {"$when": "{{ email }}", "email": "{{ email }}"},
        "signed": "{{ secrets.TOKEN }}:{{ phone }}",
    },
}


def _bound():
    tpl, problems = RequestTemplate.compile(make_environment(BUILTIN_FILTERS), REQUEST, {"phone", "email"})
    assert problems == []
    return tpl.bind({"TOKEN": "s3cret"})


def test_when_objects_are_kept_or_dropped_per_lead():
    real, masked = _bound().render({"phone": "555", "email": "a@b.c"})
    assert real.body == {
        "limit": 10, "fixed": [{"a": "b"}],
        "groups": [{"filters": [{"value": "555"}]}, {"filters": [{"value": "a@b.c"}]},
                   {"nested": {"deep": ["a@b.c", 3, True]}}],
        "maybe": {"email": "a@b.c"}, "signed": "s3cret:555"}
    assert masked.body == {**real.body, "signed": "****:555"}
    assert real.headers == {"Authorization": "Bearer s3cret", "X-Lead": "555"}
    assert masked.headers == {"Authorization": "Bearer ****", "X-Lead": "555"}
    assert real.query == masked.query == {"q": "555", "static": "yes"}

    real, masked = _bound().render({"phone": "777", "email": " "})
    assert real.body == {"limit": 10, "fixed": [{"a": "b"}], "groups": [{"filters": [{"value": "777"}]}],
                         "signed": "s3cret:777"}
    assert masked.body["signed"] == "****:777"


def test_leads_do_not_share_what_they_render():
    bound = _bound()
    first, _ = bound.render({"phone": "1", "email": "x@y.z"})
    second, _ = bound.render({"phone": "2", "email": ""})
    assert first.body["groups"][0] == {"filters": [{"value": "1"}]}
    assert second.body["groups"] == [{"filters": [{"value": "2"}]}]
    assert first.body["fixed"] is second.body["fixed"]  # what holds no lead value is built once


def test_a_request_nested_deeper_than_the_compiler_takes_still_renders():
    body: dict = {"value": "{{ phone }}"}
    for _ in range(300):
        body = {"k": body}
    tpl, problems = RequestTemplate.compile(make_environment(BUILTIN_FILTERS),
                                            {"url": "https://crm.example/", "body": body}, {"phone"})
    assert problems == []
    real, _ = tpl.bind({}).render({"phone": "42"})
    inner = real.body
    for _ in range(300):
        inner = inner["k"]
    assert inner == {"value": "42"}
