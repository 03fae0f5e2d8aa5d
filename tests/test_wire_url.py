"""The URL a request is sent to (and recorded with) is httpx's, written without httpx's re-parse (pure)."""

from __future__ import annotations

import itertools

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dupcheck_plugin.adaptor.render import Rendered
from dupcheck_plugin.http.wire import MAX_URL_CHARS, full_url, sent_url

URLS = ["https://Host.COM", "https://host.com:443/a b/c?x=1&x=2&y=%7e+z&x=3", "http://h/p?", "http://h/p?a",
        "http://h/p#f", "http://h/p?a=1#x%20y", "http://h:80/p/%41/ü", "http://127.0.0.1:8080/x?q=%20&r=+",
        "https://example.my.salesforce.com/services/data/v62.0/query"]
ODD = ["", "a b", "+&=#?/%", "%41%zz", "'\"()[]{}@:;,!$*\\", "tab\tnew\nline\x00\x7f", "é€ü", "😀", "あ",
       "_.-~", "SELECT Id FROM Lead WHERE Phone IN ('+15550100101','(555) 010-0101')"]
QUERIES = ([{"q": v} for v in ODD] + [{v or "k": "1"} for v in ODD]
           + [{"x": "9"}, {"a": []}, {"z": [1, True, None, False, 2.5]}, {"t": ("u", 0)}, {1: {"nested": "v w"}},
              {"x": ["a b", "c"], "q": "d", "y": None}])


@pytest.mark.parametrize("url,query", list(itertools.product(URLS, QUERIES)))
def test_the_url_is_exactly_what_httpx_writes_for_odd_values(url, query):
    r = Rendered("GET", url, {}, query, "none", None)
    assert full_url(r) == str(httpx.URL(url).copy_merge_params(query))


@pytest.mark.parametrize("url,query", list(itertools.product(URLS, QUERIES)))
def test_the_url_sent_is_the_one_httpx_parses_from_that_text(url, query):
    r = Rendered("GET", url, {}, query, "none", None)
    theirs = httpx.URL(full_url(r))
    ours = httpx.Request("GET", sent_url(r)).url
    assert ours == theirs
    for part in ("scheme", "host", "port", "netloc", "raw_path", "query", "fragment", "params"):
        assert getattr(ours, part) == getattr(theirs, part), part


def test_a_url_too_long_for_httpx_is_refused_as_httpx_refuses_it():
    r = Rendered("GET", "https://h/p", {}, {"q": "x" * MAX_URL_CHARS}, "none", None)
    with pytest.raises(httpx.InvalidURL):
        httpx.URL(full_url(r))
    with pytest.raises(httpx.InvalidURL):
        sent_url(r)


def test_a_query_that_cannot_be_utf8_fails_as_httpx_does():
    r = Rendered("GET", "https://h/p", {}, {"q": "x\ud800"}, "none", None)
    with pytest.raises(UnicodeEncodeError):
        httpx.URL(r.url).copy_merge_params(r.query)
    with pytest.raises(UnicodeEncodeError):
        full_url(r)
    with pytest.raises(UnicodeEncodeError):
        sent_url(r)


def test_no_query_table_leaves_the_url_as_written():
    r = Rendered("GET", "https://H/p?a=%7e", {}, {}, "none", None)
    assert full_url(r) == "https://H/p?a=%7e"
    assert sent_url(r) == httpx.URL("https://H/p?a=%7e")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.text(max_size=40), min_size=1, max_size=3))
def test_any_text_is_quoted_as_httpx_quotes_it(query):
    r = Rendered("GET", "https://h/p?a=1", {}, query, "none", None)
    try:
        expected = str(httpx.URL(r.url).copy_merge_params(query))
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            full_url(r)
        return
    assert full_url(r) == expected
    assert str(sent_url(r)) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "Z", "0", " ", "%", "+", "'", "(", ")", ",", "=", "&", "~", "-", "\x00", "\x7f",
                                 "é", "%20"]), max_size=400).map("".join))
def test_long_texts_are_quoted_as_httpx_quotes_them(text):
    # past 64 characters to quote the quoting asks for each unsafe byte rather than making a set
    r = Rendered("GET", "https://h/p", {}, {"q": text, text: "1"}, "none", None)
    assert full_url(r) == str(httpx.URL(r.url).copy_merge_params(r.query))


@pytest.mark.parametrize("text", ["".join(map(chr, range(128))) * 2, " ".join(map(chr, range(33, 128))) + "é"])
def test_every_ascii_character_is_quoted_as_httpx_quotes_it(text):
    r = Rendered("GET", "https://h/p", {}, {"q": text}, "none", None)
    assert full_url(r) == str(httpx.URL(r.url).copy_merge_params(r.query))


def test_a_batch_sized_soql_query_is_quoted_as_httpx_quotes_it():
    phones = ",".join(f"'+1555{n:07d}','555{n:07d}','(555) {n // 10000:03d}-{n % 10000:04d}'" for n in range(100))
    q = f"SELECT Id FROM Lead WHERE Phone IN ({phones}) OR Email IN ('a+b%c@x.io') LIMIT 2000"
    r = Rendered("GET", "https://example.my.salesforce.com/services/data/v62.0/query", {}, {"q": q}, "none", None)
    assert full_url(r) == str(httpx.URL(r.url).copy_merge_params(r.query))
    assert str(sent_url(r)) == full_url(r)


def test_a_plans_written_query_is_taken_only_for_the_table_it_was_written_with():
    from dataclasses import replace

    from dupcheck_plugin.adaptor.filters import BUILTIN_FILTERS
    from dupcheck_plugin.adaptor.render import RequestTemplate, make_environment

    tpl, problems = RequestTemplate.compile(make_environment(BUILTIN_FILTERS), {
        "method": "GET", "url": "https://H/p", "query": {"q": "{{ phone }} x", "k": "v w"}}, {"phone"})
    assert problems == []
    real, _ = tpl.bind({}).render({"phone": "a+b"})
    assert real.written is not None and real.written[0] is real.query  # the plan wrote it
    assert full_url(real) == str(sent_url(real)) == "https://h/p?q=a%2Bb+x&k=v+w"  # httpx lowers the host
    # a copy whose table changed (a batch's query, an auth parameter) is written from its table
    changed = replace(real, query={**real.query, "q": "other"})
    assert changed.written == real.written
    assert full_url(changed) == str(sent_url(changed)) == "https://h/p?q=other&k=v+w"
    # the same table under a URL with a query of its own: the wire merges the two
    merged = replace(real, url="https://H/p?z=1&k=0")
    assert full_url(merged) == str(sent_url(merged)) == str(httpx.URL(merged.url).copy_merge_params(merged.query))
    assert full_url(replace(real, url="http://other:8080/p")) == "http://other:8080/p?q=a%2Bb+x&k=v+w"


def test_texts_leaving_the_same_unsafe_characters_are_each_quoted_as_httpx_quotes_them():
    # a template's leads leave the same unsafe characters in the same order: their replacements are kept
    blocks = [f"'+1555{n:07d}', '555{n:07d}', '({n % 1000:03d}) {n % 10000:04d}'" for n in range(0, 5_000_000, 99_991)]
    blocks += ["a%b+c d", "x%y+z w", "%+ ", "+% "]  # % before + whatever their order in the text
    blocks += ["a b", "a(b", "a@b", "a&b=c", "a=b&c"]  # as many unsafe characters, other ones
    for text in blocks * 2:
        r = Rendered("GET", "https://h/p", {}, {"q": text}, "none", None)
        assert full_url(r) == str(httpx.URL(r.url).copy_merge_params(r.query))


def test_the_replacements_kept_are_bounded_and_long_residues_are_not_kept():
    from dupcheck_plugin.adaptor import urlquote

    for spaces, parens in itertools.product(range(60), range(20)):  # 1,200 distinct residues
        assert urlquote.quote_plus("a" + " " * spaces + "b" + "(" * parens) == "a" + "+" * spaces + "b" + "%28" * parens
        assert len(urlquote._replacements_of) <= urlquote._RESIDUES
    long = " ,".join(["x"] * 40)  # 78 unsafe characters: a batch's query, not kept
    assert urlquote.quote_plus(long) == "+%2C".join(["x"] * 40)
    assert long.encode().translate(None, urlquote._SAFE_BYTES) not in urlquote._replacements_of
