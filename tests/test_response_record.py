"""What a decision record keeps of a CRM answer's body (pure): masked, bounded."""

from __future__ import annotations

import json

import pytest

from dupcheck_plugin.http.wire import response_json


def test_a_json_body_is_kept_as_compact_json_text():
    body = {"total": 1, "results": [{"id": "7", "name": "Zoë"}]}
    out = response_json(body)
    assert json.loads(out["body"]) == body and out == {"body": out["body"], "truncated": False,
                                                        "bytes": len(out["body"].encode())}
    assert response_json(None) is None
    assert response_json("<html>Bad gateway</html>")["body"] == "<html>Bad gateway</html>"  # a text body as it is


@pytest.mark.parametrize("secret", ["s3cr3t-token", 'p"w\\d/1', "naïve-ключ"])
def test_every_secret_value_is_masked_also_as_it_reads_inside_json(secret):
    out = response_json({"echo": f"Bearer {secret}", "list": [secret]}, [secret, "no"])
    assert secret not in out["body"] and json.dumps(secret)[1:-1] not in out["body"]
    assert json.loads(out["body"]) == {"echo": "Bearer ****", "list": ["****"]}


def test_short_values_are_not_masked_they_would_hide_ordinary_text():
    assert json.loads(response_json({"total": 1, "ok": "yes"}, ["1", "yes"])["body"]) == {"total": 1, "ok": "yes"}


def test_the_cut_keeps_whole_characters_and_never_half_a_secret():
    body = "é" * 10 + "SECRET-VALUE"
    out = response_json(body, ["SECRET-VALUE"], limit=25)  # 20 bytes of é, then the masked secret
    assert out == {"body": "é" * 10 + "****", "truncated": False, "bytes": 24}
    out = response_json(body, ["SECRET-VALUE"], limit=7)
    assert out["body"] == "ééé" and out["truncated"] is True and out["bytes"] == 24  # 7 bytes: 3 characters and a half


def test_what_a_store_cannot_hold_is_escaped():
    out = response_json("a\x00b\ud800c")
    assert out["body"] == "a\\x00b\\ud800c"
    out["body"].encode("utf-8")  # a lone surrogate would make this raise
