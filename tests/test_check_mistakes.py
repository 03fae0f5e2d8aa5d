"""Each authoring mistake, written into a copy of a shipped config, gives
exactly one problem at the right line and column, and a typo gets the name
it was meant to be."""

from __future__ import annotations

import json

import pytest

from dupcheck_plugin.config.checker import check_paths
from dupcheck_plugin.plugins import default_registry
from dupcheck_plugin.resources import shipped_dir

# (shipped file, text to replace (its first occurrence), replacement, the word the caret must be on,
#  path of the problem, code, suggestion)
MISTAKES = {
    "unknown filter": ("adaptors/hubspot_contacts_search.toml", "phone | e164(", "phone | e165(", "e165",
                       "request.body.filterGroups[0].filters[0].value", "unknown_filter", "e164"),
    "variable typo": ("adaptors/hubspot_contacts_search.toml", "{{ phone | national", "{{ phnoe | national", "phnoe",
                      "request.body.filterGroups[1].filters[0].value", "undeclared_variable", "phone"),
    "field typo": ("adaptors/generic_json.toml", 'dob = "{{ dob }}"', "dob = \"{{ fields['dbo'] }}\"", "dbo",
                   "request.body.dob", "undeclared_variable", "dob"),
    "unknown key": ("adaptors/hubspot_contacts_search.toml", 'method = "POST"', 'methd = "POST"', "methd",
                    "request.methd", "schema.additionalProperties", "method"),
    "unknown table": ("adaptors/zoho_leads_search.toml", "[request.headers]", "[request.header]",
                                               "[request.header]", "request.header", "schema.additionalProperties",
                                               "headers"),
    "rule key typo": ("workflows/hubspot_dupcheck.toml", "value = 0, create_lead = false, add_to_dnc",
                      "value = 0, create_lead = false, add_to_dcn", "add_to_dcn",
                      "nodes[1].config.rules[2].add_to_dcn", "schema.additionalProperties", "add_to_dnc"),
    "match operator typo": ("workflows/gohighlevel_dupcheck.toml", 'match = "contains"', 'match = "containz"',
                            '"containz"', "nodes[1].config.rules[1].match", "schema.enum", "contains"),
    "node id typo": ("workflows/hubspot_dupcheck.toml", 'connect = "hubspot"', 'connect = "hubsopt"', '"hubsopt"',
                     "nodes[1].config.connect", "unknown_node", "hubspot"),
    "adaptor typo": ("workflows/hubspot_dupcheck.toml", 'adaptor = "hubspot_contacts_search"',
                     'adaptor = "hubspot_contacts_serch"', '"hubspot_contacts_serch"', "nodes[0].config.adaptor",
                     "semantic", "hubspot_contacts_search"),
    "node type typo": ("workflows/hubspot_dupcheck.toml", 'type = "convoso_connect"', 'type = "convoso_conect"',
                       '"convoso_conect"', "nodes[0].type", "unknown_node_type", "convoso_connect"),
    "connection key typo": ("workflows/hubspot_dupcheck.toml", "timeout = 10", "timout = 10", "timout",
                            "nodes[0].config.timout", "schema.additionalProperties", "timeout"),
    "control character in a fixed header": ("adaptors/hubspot_contacts_search.toml", 'Accept = "application/json"',
                                            'Accept = "application/json\\u0001"', '"application',
                                            "request.headers.Accept", "unsendable_header", None),
    "non-ASCII letter in a fixed header": ("adaptors/hubspot_contacts_search.toml", 'Accept = "application/json"',
                                           'Accept = "application/jsön"', '"application', "request.headers.Accept",
                                           "unsendable_header", None),
    "nan as a rule's value": ("workflows/hubspot_dupcheck.toml", "value = 0, create_lead = false, add_to_dnc",
                              "value = nan, create_lead = false, add_to_dnc", "nan",
                              "nodes[1].config.rules[2].value", "semantic", None),
    "answer cap too small": ("workflows/hubspot_dupcheck.toml", "max_connections = 64",
                             "max_answer_bytes = 1000, max_connections = 64", "1000",
                             "nodes[0].config.max_answer_bytes", "schema.minimum", None),
    "answer cap not a number": ("workflows/hubspot_dupcheck.toml", "max_connections = 64",
                                'max_answer_bytes = "16 MiB", max_connections = 64', '"16 MiB"',
                                "nodes[0].config.max_answer_bytes", "schema.type", None),
    "wrong type": ("workflows/hubspot_dupcheck.toml", "timeout = 10", 'timeout = "10"', '"10"',
                   "nodes[0].config.timeout", "schema.type", None),
    # a misspelt or misplaced directive would reach the CRM as a key of the request
    "$when typo": ("adaptors/hubspot_contacts_search.toml", '{ "$when" = "{{ email }}"', '{ "$whenn" = "{{ email }}"',
                   '"$whenn"', "request.body.filterGroups[3].$whenn", "unknown_directive", "$when"),
    "$each in a single request": ("adaptors/hubspot_contacts_search.toml", "limit = 10\nafter",
                                  'limit = { "$each" = "10" }\nafter', '"$each"', "request.body.limit.$each",
                                  "batch_directive", None),
    "$each typo in a batch": ("adaptors/hubspot_contacts_search.toml", 'values = [ { "$each" = "{{ phone | e164(',
                              'values = [ { "$eahc" = "{{ phone | e164(', '"$eahc"',
                              "batch.body.filterGroups[1].filters[0].values[0].$eahc", "unknown_directive", "$each"),
    "$omit_if_empty typo": ("adaptors/hubspot_contacts_search.toml", '{ "$omit_if_empty" = true',
                            '{ "$omit_if_empyt" = true', '"$omit_if_empyt"', "batch.body.filterGroups[2].$omit_if_empyt",
                            "unknown_directive", "$omit_if_empty"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_one_mistake_one_problem_at_its_line(shipped_copy, mistake):
    file, old, new, caret, path, code, suggestion = MISTAKES[mistake]
    target = shipped_copy / file
    text = target.read_text(encoding="utf-8")
    assert old in text, f"{file} no longer holds {old!r}: update this test"
    text = text.replace(old, new, 1)
    target.write_text(text, encoding="utf-8")
    at = text.index(new) + new.index(caret)
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1

    [result] = check_paths([target], default_registry())
    assert len(result.problems) == 1, [str(p) for p in result.problems]
    [problem] = result.problems
    assert (problem.line, problem.column, problem.code, problem.suggestion) == (line, column, code, suggestion), str(problem)
    if path is not None:
        from dupcheck_plugin.config.problems import format_path

        assert format_path(problem.path) == path
    assert result.excerpt(problem)[1].index("^") - result.excerpt(problem)[0].index("|") == column + 1


def test_a_crms_own_dollar_keys_are_not_directives(shipped_copy, capsys):
    """OData's $filter and $top, a query language's $in: sent as written, nothing reported."""
    target = shipped_copy / "adaptors/hubspot_contacts_search.toml"
    text = target.read_text(encoding="utf-8")
    assert "limit = 10\nafter" in text
    target.write_text(text.replace("limit = 10\nafter", 'limit = 10\n"$top" = 5\nwhere = { "$in" = ["{{ email }}"] }\n'
                                   'after', 1), encoding="utf-8")
    [result] = check_paths([target], default_registry())
    assert result.problems == []
    from dupcheck_plugin.cli.main import main

    assert main(["render", str(target), "--lead", '{"phone_number": "5550100101", "email": "a@example.com"}',
                 "-o", "json"]) == 0
    body = json.loads(capsys.readouterr().out)["body"]
    assert body["$top"] == 5 and body["where"] == {"$in": ["a@example.com"]}


def test_a_lead_field_a_typo_from_convosos_is_a_warning_and_a_custom_one_is_fine(shipped_copy):
    target = shipped_copy / "adaptors/generic_json.toml"
    text = target.read_text(encoding="utf-8")
    assert "\nfirst_name = { mapped_to" in text and "\nlast_name = { mapped_to" in text
    text = (text.replace("\nfirst_name = { mapped_to", "\nfrist_name = { mapped_to", 1)
            .replace("\nlast_name = { mapped_to", "\nfavourite_colour = { mapped_to", 1))
    target.write_text(text, encoding="utf-8")
    [result] = check_paths([target], default_registry())
    assert result.problems == []
    [warning] = result.warnings
    assert (warning.code, warning.path, warning.suggestion) == ("unknown_lead_field", ("fields", "frist_name"), "first_name")
    assert text.splitlines()[warning.line - 1][warning.column - 1:].startswith("frist_name = {")


@pytest.mark.parametrize(("record_id", "path", "says"), [
    ('"results..id"', ("record_id",), "an empty part"),
    ('["results.0.id", "results.0.properties.hs_object_id "]', ("record_id", 1), "spaces around"),
])
def test_a_record_id_path_no_answer_has_is_a_warning(shipped_copy, record_id, path, says):
    target = shipped_copy / "adaptors/hubspot_contacts_search.toml"
    text = target.read_text(encoding="utf-8")
    assert 'record_id = "results.0.id"' in text
    target.write_text(text.replace('record_id = "results.0.id"', f"record_id = {record_id}", 1), encoding="utf-8")
    [result] = check_paths([target], default_registry())
    assert result.problems == []
    [warning] = result.warnings
    assert (warning.code, warning.path) == ("odd_record_id", path) and warning.message.startswith(says)


def test_a_get_request_with_a_body_is_a_warning(shipped_copy):
    target = shipped_copy / "adaptors/hubspot_contacts_search.toml"
    text = target.read_text(encoding="utf-8")
    assert 'method = "POST"' in text
    target.write_text(text.replace('method = "POST"', 'method = "GET"', 1), encoding="utf-8")
    [result] = check_paths([target], default_registry())
    assert result.problems == []
    [warning] = result.warnings
    assert (warning.code, warning.path) == ("body_ignored", ("request", "body"))
    assert "GET request with a body" in warning.message


@pytest.mark.parametrize(("workflow", "connection", "setting", "code", "says", "at"), [
    ("salesforce_dupcheck", "max_connections = 64,", "batch = { max_leads = 500 },", "batch_capped",
     "sends at most 200 leads a request", "500 }"),
    ("pipedrive_dupcheck", "max_connections = 16,", "batch = { max_leads = 50 },", "batch_unused",
     "has no [batch] request", "{ max_leads = 50 }"),
    # milliseconds where seconds are read: a CRM call (and its lead) could hang for 83 minutes
    ("hubspot_dupcheck", "max_connections = 64,", "connect_timeout = 5000,", "long_timeout",
     "connect_timeout is in seconds: 5000 s is 83 minutes", "5000"),
])
def test_a_connection_setting_the_run_cannot_follow_as_written_is_a_warning(shipped_copy, workflow, connection, setting,
                                                                           code, says, at):
    target = shipped_copy / f"workflows/{workflow}.toml"
    text = target.read_text(encoding="utf-8")
    assert connection in text
    text = text.replace(connection, f"{connection} {setting}", 1)
    target.write_text(text, encoding="utf-8")
    [result] = check_paths([target], default_registry())
    assert result.problems == []
    [warning] = result.warnings
    assert warning.code == code and says in warning.message
    assert text.splitlines()[warning.line - 1][warning.column - 1:].startswith(at)


def test_a_batch_set_value_a_typo_from_a_fill_is_a_problem(shipped_copy):
    # before: '$totl' was set as text for every lead, so `total gt 0` never matched a batched lead
    target = shipped_copy / "adaptors/hubspot_contacts_search.toml"
    text = target.read_text(encoding="utf-8")
    assert 'set = { total = "$total" }' in text
    text = text.replace('set = { total = "$total" }', 'set = { total = "$totl", origin = "batch" }', 1)
    target.write_text(text, encoding="utf-8")
    [result] = check_paths([target], default_registry())
    [problem] = result.problems  # the literal "batch" is set as written
    assert (problem.code, problem.path) == ("unknown_fill", ("batch", "set", "total"))
    assert "(did you mean '$total'?)" in problem.message
    assert text.splitlines()[problem.line - 1][problem.column - 1:].startswith('"$totl"')


def test_a_secret_a_typo_from_one_this_environment_has_is_a_warning(shipped_copy, monkeypatch):
    target = shipped_copy / "adaptors/hubspot_contacts_search.toml"
    target.write_text(target.read_text(encoding="utf-8").replace("secrets.HUBSPOT_TOKEN", "secrets.HUBSPOT_TOKN", 1),
                      encoding="utf-8")
    monkeypatch.delenv("HUBSPOT_TOKN", raising=False)
    monkeypatch.delenv("HUBSPOT_TOKEN", raising=False)
    [result] = check_paths([target], default_registry())
    assert result.problems == [] and result.warnings == []  # unset everywhere: normal where check runs (CI)
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-na1-0000")
    [result] = check_paths([target], default_registry())
    [warning] = result.warnings
    assert (warning.code, warning.suggestion) == ("unknown_secret", "HUBSPOT_TOKEN")
    assert "secrets.HUBSPOT_TOKN is not set in this environment, HUBSPOT_TOKEN is" in warning.message
    assert "pat-na1" not in warning.message


@pytest.mark.parametrize(("header", "warned"), [
    ('Content-Type = "application/xml"', True),  # a JSON body labelled XML: the CRM may refuse or misread it
    ('content-type = "application/json; charset=utf-8"', False),
    ('Content-Type = "application/vnd.api+json"', False),
])
def test_a_fixed_content_type_the_body_is_not_sent_as_is_a_warning(shipped_copy, header, warned):
    target = shipped_copy / "adaptors/hubspot_contacts_search.toml"
    text = target.read_text(encoding="utf-8")
    assert 'Accept = "application/json"\n' in text
    text = text.replace('Accept = "application/json"\n', f'Accept = "application/json"\n{header}\n', 1)
    target.write_text(text, encoding="utf-8")
    [result] = check_paths([target], default_registry())
    assert result.problems == []
    assert [w.code for w in result.warnings] == (["content_type_mismatch"] if warned else [])
    if warned:
        [warning] = result.warnings
        assert warning.path == ("request", "headers", "Content-Type")
        assert "sent as json (application/json)" in warning.message
        assert text.splitlines()[warning.line - 1][warning.column - 1:].startswith('"application/xml"')


def test_unknown_filter_names_the_filters_that_exist(shipped_copy):
    target = shipped_copy / "adaptors/hubspot_contacts_search.toml"
    target.write_text(target.read_text(encoding="utf-8").replace("e164(", "e165(", 1), encoding="utf-8")
    [problem] = check_paths([target], default_registry())[0].problems
    assert "unknown filter 'e165'" in problem.message and "e164" in problem.message and "soql" in problem.message
    assert "internal error" not in problem.message and "_dupcheck" not in problem.message


# --- names find only files of their kind ----------------------------------------------

def workflow_using(adaptor: str) -> str:
    text = (shipped_dir("workflows") / "generic_json_dupcheck.toml").read_text(encoding="utf-8")
    assert 'adaptor = "generic_json"' in text
    return text.replace('adaptor = "generic_json"', f'adaptor = "{adaptor}"')


def test_an_adaptor_name_never_finds_a_workflow(shipped_copy):
    # the close_b64: a workflow of that name sits next to the workflow that names the adaptor
    (shipped_copy / "workflows" / "close_b64.toml").write_text(workflow_using("generic_json"), encoding="utf-8")
    target = shipped_copy / "workflows" / "close_dupcheck.toml"
    target.write_text(workflow_using("close_b64"), encoding="utf-8")
    [problem] = check_paths([target], default_registry())[0].problems
    assert problem.message.startswith("no adaptor named 'close_b64'"), problem.message
    assert "unknown key" not in problem.message


def test_a_name_two_adaptors_answer_to_is_an_error_naming_both(shipped_copy):
    adaptor = (shipped_dir("adaptors") / "generic_json.toml").read_text(encoding="utf-8")
    (shipped_copy / "workflows" / "acme.toml").write_text(adaptor, encoding="utf-8")
    (shipped_copy / "adaptors" / "acme.toml").write_text(adaptor, encoding="utf-8")
    target = shipped_copy / "workflows" / "acme_dupcheck.toml"
    target.write_text(workflow_using("acme"), encoding="utf-8")
    [problem] = check_paths([target], default_registry())[0].problems
    assert "'acme' names several adaptors" in problem.message
    assert "workflows/acme.toml" in problem.message and "adaptors/acme.toml" in problem.message


def test_a_local_adaptor_may_shadow_a_shipped_one(shipped_copy):
    (shipped_copy / "adaptors" / "generic_json.toml").write_text(
        (shipped_dir("adaptors") / "generic_json.toml").read_text(encoding="utf-8"), encoding="utf-8")
    [result] = check_paths([shipped_copy / "workflows" / "generic_json_dupcheck.toml"], default_registry())
    assert result.problems == []


def test_render_of_a_workflow_file_as_an_adaptor_says_what_it_is(shipped_copy, capsys):
    from dupcheck_plugin.cli.main import main

    code = main(["render", "workflows/hubspot_dupcheck.toml", "--lead", '{"phone_number": "5550100101"}'])
    err = capsys.readouterr().err
    assert code == 2 and "is a workflow, not an adaptor" in err, err


@pytest.mark.parametrize("text, why", [
    # the typo is in the very line that tells a workflow: its syntax error says what is wrong
    ('name = "x"\n[[nodes]\nid = "a"\n', "TOML syntax error at line 2, column 8: Expected ']]'"),
    ('name = "x"\n', "no [[nodes]] as a workflow has, no [request] as an adaptor has"),
])
def test_a_file_of_no_kind_says_why(shipped_copy, capsys, text, why):
    from dupcheck_plugin.cli.main import main

    (shipped_copy / "mine.toml").write_text(text, encoding="utf-8")
    (shipped_copy / "leads.csv").write_text("phone_number\n5550100101\n", encoding="utf-8")
    code = main(["run", "mine.toml", "--leads", "leads.csv", "--db", str(shipped_copy / "x.db"), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and "mine.toml is neither an adaptor nor a workflow (" + why in err, err
    code = main(["render", "mine.toml", "--lead", '{"phone_number": "5550100101"}'])
    err = capsys.readouterr().err
    assert code == 2 and why in err and "not an adaptor" in err, err
    assert not (shipped_copy / "x.db").exists()


@pytest.mark.parametrize("value, message, column", [
    # the object branch of a field's oneOf took it: its error, at the key, not "valid under none"
    ('{ mapped_to = "dob", date_format = "Y-m-q" }',
     "'Y-m-q' does not match '^(epoch|[YymdHis/: .T-]+)$' (Y-m-d H:i:s, m/d/Y, Ymd ... or epoch.)", 52),
    ('{ mapped_to = "dob", requird = true }', "unknown key 'requird'", 38),
    ("5", "5 is not valid under any of the given schemas", 17),  # no branch has its type
])
def test_a_field_mistake_is_reported_inside_the_form_it_is_written_in(shipped_copy, value, message, column):
    target = shipped_copy / "adaptors" / "generic_json.toml"
    text = target.read_text(encoding="utf-8")
    old = 'date_of_birth = { mapped_to = "dob", date_format = "Y-m-d" }'
    assert old in text
    target.write_text(text.replace(old, f"date_of_birth = {value}")
                      .replace('method = "POST"', 'method = "PSOT"'), encoding="utf-8")  # an error before it
    problems = check_paths([target], default_registry())[0].problems
    [problem] = [p for p in problems if p.path[:2] == ("fields", "date_of_birth")]
    assert problem.message == message and problem.column == column, problem


@pytest.mark.parametrize("written, meant", [(">=", "gte"), ("greater than", "gt"), ("==", "equals"),
                                             ("!=", "not_equals"), ("Less-Than", "lt"), ("matches", "regex"),
                                             ("equls", "equals"), ("above", None)])
def test_a_rules_operator_spelt_as_elsewhere_suggests_ours(shipped_copy, written, meant):
    from dupcheck_plugin.config.suggest import SPELLED_OTHERWISE
    from dupcheck_plugin.rules.match import OPERATORS

    assert set(SPELLED_OTHERWISE.values()) <= set(OPERATORS)  # every spelling stands for an operator there is
    target = shipped_copy / "workflows" / "hubspot_dupcheck.toml"
    text = target.read_text(encoding="utf-8")
    old = 'match = "gt"'
    assert old in text
    target.write_text(text.replace(old, f"match = {json.dumps(written)}", 1), encoding="utf-8")
    [problem] = check_paths([target], default_registry())[0].problems
    assert problem.path[-1] == "match" and problem.suggestion == meant, problem


def test_a_jinja_error_in_a_multi_line_template_points_at_its_line(shipped_copy):
    target = shipped_copy / "adaptors" / "generic_json.toml"
    text = target.read_text(encoding="utf-8")
    old = 'dob = "{{ dob }}"'
    assert old in text
    text = text.replace(old, 'dob = """\n{{ dob }}\n{{ dob | }}\n"""')
    target.write_text(text, encoding="utf-8")
    [problem] = check_paths([target], default_registry())[0].problems
    assert problem.code == "jinja_syntax"
    line = text[: text.index("{{ dob | }}")].count("\n") + 1
    assert (problem.line, problem.column) == (line, 1)


@pytest.mark.parametrize(("file", "old", "new", "code", "problem", "says"), [
    # before: both passed check, and every lead went to on_error (created NOTCHECKED) at run
    ("adaptors/pipedrive_persons_search.toml", 'url = "https://api.pipedrive.com/', 'url = "https://api.pipedrive .com/',
     "bad_url", True, "holds ' '"),
    ("adaptors/pipedrive_persons_search.toml", 'url = "https://api.pipedrive.com/',
     'url = "https://api.pipedrive.com:99999/',
     "bad_url", True, "is not a number from 1 to 65535"),
    ("workflows/pipedrive_dupcheck.toml", "timeout = 10,", 'timeout = 10, url = "https://crm.example.com:99999",',
     "bad_url", True, "is not a number from 1 to 65535"),
    # before: silently sent to the adaptor's path, the sandbox's path dropped
    ("workflows/pipedrive_dupcheck.toml", "timeout = 10,", 'timeout = 10, url = "https://crm.example.com/sandbox",',
     "url_path_ignored", False, "its path and query are not sent"),
    # before: no word from check; render, the decision records and the store showed the token as written
    ("adaptors/pipedrive_persons_search.toml", "{{ secrets.PIPEDRIVE_TOKEN }}", "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
     "inline_secret", False, "x-api-token is written out in the file"),
    ("adaptors/pipedrive_persons_search.toml", 'x-api-token = "{{ secrets.PIPEDRIVE_TOKEN }}"',
     'Authorization = "Bearer sk_live_abcdef123456"', "inline_secret", False, "Authorization is written out"),
    # a connection's own headers: sent as written, so a credential there is inline, and a template is not rendered
    ("workflows/pipedrive_dupcheck.toml", "timeout = 10,", 'timeout = 10, headers = { x-api-token = "9f8e7d6c5b4a" },',
     "inline_secret", False, "give the connection an auth table instead"),
    ("workflows/pipedrive_dupcheck.toml", "timeout = 10,",
     'timeout = 10, headers = { x-api-token = "{{ secrets.PIPEDRIVE_TOKEN }}" },',
     "header_not_rendered", False, "a connection's headers are sent as written, not rendered"),
    # before: passed, and every lead was stored with a list id serve's search could never name
    ("workflows/pipedrive_dupcheck.toml", 'list_id = "1000"', 'list_id = "web-leads"', "schema.pattern", True,
     "an integer, as Convoso's list ids are"),
])
def test_a_url_no_call_can_reach_and_an_inline_credential_are_reported(shipped_copy, file, old, new, code, problem,
                                                                        says):
    target = shipped_copy / file
    text = target.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    [result] = check_paths([target], default_registry())
    [found] = [p for p in (result.problems if problem else result.warnings) if p.code == code]
    assert says in found.message
    if not problem:
        assert result.problems == []


def test_a_templated_secret_and_a_short_scheme_word_are_not_inline_credentials(shipped_copy):
    results = check_paths([shipped_copy / "adaptors"], default_registry())
    assert results and not [p for r in results for p in r.warnings if p.code == "inline_secret"]


@pytest.mark.parametrize("url, says", [
    ("https://crm.example.com/api", None), ("https://bücher.example/api", None),  # a host in another script: IDNA
    ("https://[::1]:8443/x", None), ("https://{{ secrets.HOST }}/x", None),  # judged per lead
    ("https://crm.example.com:0/x", "is not a number from 1 to 65535"), ("https://crm.exa mple.com/x", "holds ' '"),
    ("https:///x", "names no host"),
])
def test_origin_problem_names_what_no_call_could_reach(url, says):
    from dupcheck_plugin.adaptor.targets import origin_problem

    problem = origin_problem(url)
    assert (problem is None) if says is None else (says in problem)


def test_a_key_misspelt_in_a_field_table_is_named_when_it_is_the_only_mistake(shipped_copy):
    """The first error of a file went through best_match, which stops at a oneOf whose two
    branches' errors tie: "{'maped_to': 'email'} is not valid under any of the given schemas"."""
    target = shipped_copy / "adaptors" / "hubspot_contacts_search.toml"
    text = target.read_text(encoding="utf-8")
    old = 'email = { mapped_to = "email" }'
    assert old in text
    target.write_text(text.replace(old, 'email = { maped_to = "email" }'), encoding="utf-8")
    [problem] = check_paths([target], default_registry())[0].problems
    assert (problem.path, problem.message, problem.suggestion) == (("fields", "email", "maped_to"),
                                                                   "unknown key 'maped_to'", "mapped_to")


def test_an_auth_type_misspelt_is_reported_once(shipped_copy):
    """Refused by the auth table's enum and again by its else branch's: one problem, with
    every type there is (oauth2 included)."""
    target = shipped_copy / "workflows" / "hubspot_dupcheck.toml"
    text = target.read_text(encoding="utf-8")
    old = "timeout = 10,"
    assert old in text
    target.write_text(text.replace(old, 'timeout = 10, auth = { type = "Bearer", secret = "HUBSPOT_TOKEN" },', 1),
                      encoding="utf-8")
    [problem] = check_paths([target], default_registry())[0].problems
    assert problem.path[-2:] == ("auth", "type") and problem.suggestion == "bearer"
    assert "['bearer', 'header', 'query', 'basic', 'oauth2']" in problem.message
