"""The rules table, row by row (pure: no network, no store)."""

import pytest

from dupcheck_plugin.rules.decide import Settings, decide, trace
from dupcheck_plugin.rules.match import matches
from dupcheck_plugin.rules.paths import MISSING, lookup, split_path
from dupcheck_plugin.types import CrmAnswer


def answer(body, status=200, error=None):
    return CrmAnswer(status_code=status, headers={}, body=body, latency_ms=1.0, error=error)


def settings(rules, **kw):
    return Settings.from_config({"connect": "crm", "rules": rules, **kw})


ROW = dict(create_lead=False, add_to_dnc=False, success=False)


# --- key paths ---------------------------------------------------------------

def test_paths_index_lists_and_report_missing():
    body = {"total": 2, "results": [{"properties": {"stage": "customer"}}, {"id": "9"}]}
    assert lookup(body, split_path("results.0.properties.stage")) == "customer"
    assert lookup(body, split_path("results.-1.id")) == "9"
    assert lookup(body, split_path("results.5.id")) is MISSING
    assert lookup(body, split_path("total.x")) is MISSING
    assert lookup(None, split_path("total")) is MISSING
    assert lookup({"0": "zero"}, split_path("0")) == "zero"  # a numeric key of an object


# --- type-aware comparison ---------------------------------------------------

@pytest.mark.parametrize("found,expected,result", [
    (3, 3, True), ("3", 3, True), ("3.0", 3, True), (3, "3", True), (3, 4, False),
    ("abc", "abc", True), ("ABC", "abc", False), (" abc", "abc", False),
    (True, True, True), ("true", True, True), ("TRUE", True, True), (False, True, False),
    (1, True, False),  # a number is not a boolean
    ("0042", "42", False),  # strings compare exactly
    ("0042", 42, True),  # ...but numerically against a number
    (None, "", False), ([1], 1, False), ({"a": 1}, "a", False),
])
def test_equals_is_type_aware(found, expected, result):
    assert matches("equals", found, expected) is result


def test_operators():
    assert matches("not_equals", "lead", "customer")
    assert not matches("not_equals", "customer", "customer")
    assert not matches("not_equals", MISSING, "customer")  # a missing key matches nothing
    assert matches("exists", "", None) and not matches("exists", None, None)
    assert matches("missing", MISSING, None) and matches("missing", None, None)
    assert not matches("missing", 0, None)
    assert matches("regex", "Customer-VIP", "(?i)vip") and not matches("regex", "lead", "^cust")
    assert matches("in", "customer", ["lead", "customer"]) and matches("in", "2", [1, 2])
    assert not matches("in", "x", ["lead"])
    assert matches("contains", ["a", "customer"], "customer") and matches("contains", "foo@bar", "@")
    assert not matches("contains", 5, "5")
    assert matches("gt", 2, 0) and matches("gt", "2", 0) and not matches("gt", 0, 0)
    assert matches("gte", 0, 0) and matches("lt", -1, 0) and matches("lte", "0", 0)
    assert not matches("gt", "many", 0) and not matches("gt", True, 0)


# --- decisions, column by column ---------------------------------------------

def test_disabled_does_not_read_the_answer_and_creates_with_default_status():
    s = settings([{"key": "total", "match": "gt", "value": 0, **ROW}], enabled=False, default_status="FRESH")
    d = decide(s, None)
    assert (d.action, d.status, d.success, d.checked, d.rules_row) == ("created", "FRESH", True, False, None)
    assert d.decided_by == "check_off"


def test_first_matching_row_decides():
    s = settings([
        {"key": "results.0.stage", "value": "customer", **ROW, "add_to_dnc": True},
        {"key": "total", "match": "gt", "value": 0, **ROW},
    ])
    d = decide(s, answer({"total": 1, "results": [{"stage": "customer"}]}))
    assert (d.rules_row, d.decided_by) == (0, "rules_row") and d.add_to_dnc
    d = decide(s, answer({"total": 1, "results": [{"stage": "lead"}]}))
    assert d.rules_row == 1 and not d.add_to_dnc


def test_create_lead_yes_uses_row_status_or_default():
    s = settings([
        {"key": "a", "value": 1, "create_lead": True, "status": "DUP", "add_to_dnc": False, "success": True},
        {"key": "b", "value": 1, "create_lead": True, "status": "", "add_to_dnc": False, "success": True},
    ], default_status="NEW")
    assert decide(s, answer({"a": 1})).status == "DUP"
    d = decide(s, answer({"b": 1}))
    assert (d.action, d.status) == ("created", "NEW")


def test_create_lead_no_records_a_duplicate_with_no_status():
    d = decide(settings([{"key": "a", "value": 1, **ROW}]), answer({"a": 1}))
    assert (d.action, d.status) == ("duplicate", None)


def test_add_to_dnc_flag_follows_the_row():
    s = settings([{"key": "a", "value": 1, **{**ROW, "add_to_dnc": True}}])
    assert decide(s, answer({"a": 1})).add_to_dnc is True
    assert decide(s, answer({"a": 2})).add_to_dnc is False


def test_success_no_answers_failure_but_still_posts_when_create_lead_yes():
    s = settings([{"key": "a", "value": 1, "create_lead": True, "status": "DUP", "add_to_dnc": False,
                   "success": False}], duplicate_code=6009)
    d = decide(s, answer({"a": 1}))
    assert (d.action, d.success, d.code) == ("created", False, 6009)
    s2 = settings([{"key": "a", "value": 1, **ROW, "success": True}])
    d2 = decide(s2, answer({"a": 1}))
    assert (d2.action, d2.success, d2.code) == ("duplicate", True, 200)


def test_row_code_and_text_override_the_duplicate_answer():
    s = settings([{"key": "a", "value": 1, **ROW, "code": 6100, "text": "Known customer"}])
    d = decide(s, answer({"a": 1}))
    assert (d.code, d.text) == (6100, "Known customer")


def test_no_match_creates_with_default_status_and_success():
    d = decide(settings([{"key": "total", "match": "gt", "value": 0, **ROW}]), answer({"total": 0}))
    assert (d.action, d.status, d.success, d.rules_row, d.checked) == ("created", "NEW", True, None, True)
    assert d.decided_by == "default_status"


def test_missing_key_does_not_match():
    d = decide(settings([{"key": "total", "match": "gt", "value": 0, **ROW}]), answer(None, status=204))
    assert d.action == "created" and d.rules_row is None


@pytest.mark.parametrize("error", ["timeout", "connection", "http_status", "unparsable", "rate_limited"])
def test_crm_errors_follow_on_error_create(error):
    s = settings([{"key": "total", "match": "gte", "value": 0, **ROW}], on_error={"action": "create", "status": "NC"})
    d = decide(s, answer(None, status=503 if error == "http_status" else None, error=error))
    assert (d.action, d.status, d.checked, d.rules_row, d.decided_by) == ("created", "NC", False, None, "on_error")


def test_crm_errors_follow_on_error_reject_as_retryable():
    s = settings([], on_error={"action": "reject"})
    d = decide(s, answer(None, status=None, error="timeout"))
    assert (d.action, d.success, d.retryable, d.code, d.decided_by) == ("rejected", False, True, 6503, "on_error")


def test_unmatched_4xx_is_an_error_not_a_miss():
    s = settings([{"key": "total", "match": "gt", "value": 0, **ROW}], on_error={"action": "reject"})
    d = decide(s, answer({"message": "unauthorized"}, status=401))
    assert d.action == "rejected" and d.text == "Duplicate check unavailable, retry later" and "401" in d.detail


def test_http_status_rows_decide_on_their_status_only():
    s = settings([
        {"http_status": 409, **ROW},
        {"key": "id", "match": "exists", "http_status": [200, 201], "create_lead": True, "status": "X",
         "add_to_dnc": False, "success": True},
    ])
    assert decide(s, answer({"message": "exists"}, status=409)).rules_row == 0
    assert decide(s, answer({"id": 5}, status=201)).rules_row == 1
    # a row without http_status never reads a non-2xx answer
    s2 = settings([{"key": "message", "match": "exists", **ROW}], on_error={"action": "reject"})
    assert decide(s2, answer({"message": "exists"}, status=409)).action == "rejected"


def test_render_error_rejects_the_lead_without_retry():
    d = decide(settings([]), CrmAnswer(None, {}, None, 0.0, error="render", error_detail="email is required"))
    assert (d.action, d.code, d.retryable, d.decided_by) == ("rejected", 6023, False, "intake")
    assert d.text == "Required fields are missed" and "email is required" in d.detail


def test_trace_stops_at_first_match():
    s = settings([
        {"key": "a", "value": 1, **ROW},
        {"key": "b", "value": 1, **ROW},
        {"key": "c", "value": 1, **ROW},
    ])
    rows = trace(s, answer({"b": 1, "c": 1}))
    assert [(r.index, r.matched) for r in rows] == [(0, False), (1, True)]
    assert rows[0].found is MISSING and rows[1].found == 1


def test_create_lead_yes_without_a_status_uses_the_default_status():
    from dupcheck_plugin.config.schemas import validator_for

    row = {"key": "a", "value": 1, "create_lead": True, "add_to_dnc": False, "success": True}
    config = {"connect": "crm", "rules": [row], "default_status": "NEW"}
    assert list(validator_for("api_duplicate_check.schema.json").iter_errors(config)) == []
    assert list(validator_for("api_duplicate_check.schema.json").iter_errors(
        {**config, "rules": [{**row, "status": 5}]}))  # not a string: refused
    d = decide(Settings.from_config(config), answer({"a": 1}))
    assert (d.action, d.status) == ("created", "NEW")


def test_lookup_out_of_range_indexes_are_missing():
    body = {"results": [{"id": "a"}, {"id": "b"}]}
    for path, want in [("results.1.id", "b"), ("results.-2.id", "a"), ("results.2.id", MISSING),
                       ("results.-3.id", MISSING), ("results.x", MISSING)]:
        assert lookup(body, split_path(path)) is want, path  # the same str object, or MISSING
    assert lookup({"results": []}, split_path("results.0.properties.lifecyclestage")) is MISSING


def test_the_schema_offers_exactly_the_operators_the_code_implements():
    from dupcheck_plugin.config.schemas import shipped_schemas
    from dupcheck_plugin.rules.match import OPERATORS

    rule = shipped_schemas()["api_duplicate_check.schema.json"]["$defs"]["rules_row"]
    assert set(rule["properties"]["match"]["enum"]) == set(OPERATORS)


# --- regex rules run on RE2 ----------------------------------------------------

def test_a_catastrophic_regex_answers_at_once():
    # (a+)+$ backtracks for ever in Python's re on 'aaa...a!'; RE2 answers in linear time
    assert matches("regex", "a" * 5000 + "!", "(a+)+$") is False
    assert matches("regex", "a" * 5000, "(a+)+$") is True


@pytest.mark.parametrize("pattern, says", [
    (r"(a)\1", "RE2 has no backreferences"), (r"(?=a)a", "RE2 has no lookaround"),
    (r"(?<!x)a", "RE2 has no lookaround"),
    # a typo is not told about what RE2 lacks (it was: "(Old" got the backreferences hint)
    ("(Old", "not a regular expression RE2 can run (missing ): (Old)"),
])
def test_check_refuses_a_regex_re2_cannot_run(pattern, says):
    from dupcheck_plugin.nodes.api_duplicate_check import check
    from dupcheck_plugin.types import WorkflowView

    rules = [dict(ROW, key="stage", match="regex", value=pattern)]
    problems = check({"connect": "crm", "rules": rules}, WorkflowView(base_dir=".", node_types={}, resolve_adaptor=lambda name: (None, [])))
    assert [path for path, _ in problems] == [("rules", 0, "value")]
    assert says in problems[0][1]
    assert ("lookaround" in problems[0][1] or "backreferences" in problems[0][1]) == pattern.startswith(("(a", "(?"))
