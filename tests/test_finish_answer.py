"""A lead's answer (``finish_answer``): every value in its own field, for an answer the rules
read and for a failed call; the record parts made once for a batch's shared body are the ones
it would make itself."""

from __future__ import annotations

from dupcheck_plugin.http.call import Interpreted, answer_parts, finish_answer
from dupcheck_plugin.types import CrmAnswer


def masked(body):
    return {"body": f"masked {sorted(body)}", "truncated": False, "bytes": 1}


def test_every_value_lands_in_its_own_field_of_the_answer():
    body = {"hit": {"id": 7}, "n": 1}
    answer = finish_answer(status=201, headers={"h": "v"}, it=Interpreted(body, None, None, retry_after=12.5),
                           error=None, detail=None, latency_ms=3.14159, request={"url": "u"}, attempts=2,
                           response_key=None, record_id_key="hit.id", batch_size=5, response_of=masked)
    assert answer == CrmAnswer(status_code=201, headers={"h": "v"}, body=body, latency_ms=3.142, error=None,
                               error_detail=None, request={"url": "u"}, attempts=2, record_id="7", batch_size=5,
                               cached=False, retry_after=12.5, response=masked(body))


def test_a_failed_call_keeps_its_error_and_no_record_id():
    answer = finish_answer(status=503, headers=None, it=Interpreted({"hit": {"id": 7}}, "http_status", "busy"),
                           error="http_status", detail="busy", latency_ms=1.0, request=None, attempts=3,
                           response_key=None, record_id_key="hit.id", response_of=masked)
    assert (answer.error, answer.error_detail, answer.record_id, answer.headers, answer.attempts) == (
        "http_status", "busy", None, {}, 3)
    assert answer.response == masked({"hit": {"id": 7}})


def test_parts_made_once_are_the_parts_the_answer_makes_itself():
    body = {"data": {"id": "x1"}, "other": 2}
    made = answer_parts(body, "data", "data.id", masked)
    assert made == (body["data"], "x1", masked(body["data"]))
    common = dict(status=200, headers={}, error=None, detail=None, latency_ms=1.0, request=None, attempts=1,
                  response_key="data", record_id_key="data.id", response_of=masked)
    it = Interpreted(body, None, None)
    assert finish_answer(it=it, parts=made, **common) == finish_answer(it=it, **common)


def test_a_lead_not_called_has_batch_size_0():
    """README: crm.batch_size is 0 when not called (a circuit_open lead of a batch: called
    false, attempts 0); it read the batch's size, 1 to 10."""
    answer = finish_answer(status=None, headers={}, it=None, error="circuit_open", detail="open", latency_ms=0.0,
                           request=None, attempts=0, response_key=None, record_id_key=None, batch_size=10)
    assert answer.batch_size == 0
