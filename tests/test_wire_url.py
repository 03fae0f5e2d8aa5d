"""The URL a request is sent to (and recorded with) is httpx's, written without httpx's re-parse (pure)."""

from __future__ import annotations

import itertools

import httpx
import pytest

from dupcheck_plugin.adaptor.render import Rendered
from dupcheck_plugin.http.wire import full_url

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


def test_a_query_that_cannot_be_utf8_fails_as_httpx_does():
    r = Rendered("GET", "https://h/p", {}, {"q": "x\ud800"}, "none", None)
    with pytest.raises(UnicodeEncodeError):
        httpx.URL(r.url).copy_merge_params(r.query)
    with pytest.raises(UnicodeEncodeError):
        full_url(r)


def test_no_query_table_leaves_the_url_as_written():
    assert full_url(Rendered("GET", "https://H/p?a=%7e", {}, {}, "none", None)) == "https://H/p?a=%7e"
