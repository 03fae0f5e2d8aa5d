"""The shipped JSON Schemas, resolved from local files only (never the network).

A file is first checked with jsonschema-rs (a compiled validator: ~5 ms to
import where jsonschema and referencing take ~90 ms, most of a cold
``dupcheck check``). Only when it finds the file invalid, or cannot take it
(a TOML date is no JSON type), is jsonschema imported, and it alone says
what is wrong: every problem and message comes from it, as before. The fast
path may only say "valid" where jsonschema says so too:
tests/test_schema_fast_path.py holds the two to that on every shipped config
and thousands of broken ones.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..resources import shipped_dir
from .problems import Problem
from .secret_names import NAME_PATTERN, looks_like_credential, not_a_name
from .suggest import did_you_mean, did_you_mean_option

if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError
    from referencing import Registry

BASE_ID = "https://dupcheck.dev/schemas/"


@lru_cache(maxsize=1)
def shipped_schemas() -> dict[str, dict[str, Any]]:
    """Every ``schemas/*.schema.json`` by file name (``adaptor.schema.json``)."""
    out = {}
    for path in sorted(shipped_dir("schemas").glob("*.schema.json")):
        out[path.name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _retrieve_nothing(uri: str):
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # refuse to fetch anything not registered


def make_registry(extra: Iterable[Mapping[str, Any]] = ()) -> Registry:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resources = []
    for schema in list(shipped_schemas().values()) + list(extra):
        if "$id" in schema:
            resources.append((schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012)))
    return Registry(retrieve=_retrieve_nothing).with_resources(resources)


@lru_cache(maxsize=None)
def validator_for(name: str) -> jsonschema.protocols.Validator:
    """A validator for a shipped schema by file name, e.g. ``adaptor.schema.json``."""
    import jsonschema

    schema = shipped_schemas()[name]
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=make_registry(), format_checker=cls.FORMAT_CHECKER)


def validator_for_schema(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    """A validator for any schema (a plugin's node config), with the shipped ones resolvable."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, registry=make_registry([schema]), format_checker=cls.FORMAT_CHECKER)


def _refuse_retrieval(uri: str):
    raise LookupError(f"{uri}: not a shipped schema (nothing is fetched)")


@lru_cache(maxsize=None)
def _fast_validator(name: str):
    """jsonschema-rs's validator for a shipped schema, the shipped ones resolvable."""
    import jsonschema_rs

    registry = jsonschema_rs.Registry([(s["$id"], s) for s in shipped_schemas().values() if "$id" in s],
                                      retriever=_refuse_retrieval)
    return jsonschema_rs.validator_for(shipped_schemas()[name], registry=registry, retriever=_refuse_retrieval,
                                       validate_formats=True)


def surely_valid(name: str, instance: Any) -> bool:
    """True when ``instance`` is valid against the shipped schema ``name`` by
    the fast validator; False means "ask jsonschema" (invalid, or a value the
    fast one cannot judge)."""
    try:
        return _fast_validator(name).is_valid(instance)
    except Exception:  # a TOML date or time, a number out of its range...: jsonschema decides
        return False


def shipped_schema_problems(name: str, instance: Any, file: str, prefix: tuple = ()) -> list[Problem]:
    """:func:`schema_problems` against the shipped schema ``name``; jsonschema is
    loaded only for an instance the fast validator does not find valid."""
    if surely_valid(name, instance):
        return []
    return schema_problems(validator_for(name), instance, file, prefix)


def sorted_errors(validator: jsonschema.protocols.Validator, instance: Any) -> list[ValidationError]:
    """All errors, best match first, then by location."""
    from jsonschema.exceptions import best_match, relevance

    errors = list(validator.iter_errors(instance))
    if not errors:
        return []
    best = best_match(errors, key=relevance)
    rest = sorted((e for e in errors if e is not best), key=lambda e: [str(p) for p in e.absolute_path])
    # best_match may descend into a context error that is not in the list itself, and stops at a
    # oneOf whose branches' errors tie (a table's misspelt key against its string shorthand)
    return [_within_branch(best)] + [_within_branch(e) for e in rest if e is not best]


def _within_branch(error: ValidationError) -> ValidationError:
    """For a oneOf/anyOf that no branch takes, the most relevant error of the one branch
    of the value's type (``{ mapped_to = "dob", date_format = "Y-m-q" }``: its date format,
    not "is not valid under any of the given schemas"); the oneOf's own error when no
    branch, or more than one, has the value's type."""
    from jsonschema.exceptions import best_match, relevance

    while error.validator in ("oneOf", "anyOf") and error.context:
        # the branches the value has the type of: those that fail it for something else
        typed = {e.relative_schema_path[0] for e in error.context} - {
            e.relative_schema_path[0] for e in error.context
            if e.validator == "type" and len(e.absolute_path) == len(error.absolute_path)}
        if len(typed) != 1:  # none, or two branches to choose from: the oneOf's own error
            break
        [branch] = typed
        error = best_match([e for e in error.context if e.relative_schema_path[0] == branch], key=relevance)
    return error


def error_message(error: ValidationError) -> str:
    """A shorter message than jsonschema's default for the common cases."""
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key(s)")
    if error.validator == "unevaluatedProperties":
        return error.message.replace("Unevaluated properties are not allowed", "unknown key(s)")
    if _is_secret_name(error):  # the value is not quoted: it may be the credential itself
        key = str(error.absolute_path[-1]) if error.absolute_path else "secret"
        return not_a_name(key, looks_like_credential(error.instance))
    if error.validator == "pattern" and isinstance(error.schema, dict) and error.schema.get("description"):
        return f"{error.message} ({error.schema['description']})"  # what the pattern stands for
    return error.message


def _is_secret_name(error: ValidationError) -> bool:
    return error.validator == "pattern" and error.validator_value == NAME_PATTERN and isinstance(error.instance, str)


def _known_keys(schema: Any) -> set[str]:
    """The property names a (sub)schema allows, through allOf/anyOf/oneOf/if-then-else."""
    if not isinstance(schema, Mapping):
        return set()
    keys = set(schema.get("properties", {}))
    for word in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(word, ()):
            keys |= _known_keys(sub)
    for word in ("then", "else"):
        keys |= _known_keys(schema.get(word))
    return keys


def _unknown_keys(error: ValidationError) -> list[str]:
    if not isinstance(error.instance, Mapping):
        return []
    known = _known_keys(error.schema)
    patterns = list(error.schema.get("patternProperties", {}))
    return [k for k in error.instance if k not in known and not any(re.search(p, k) for p in patterns)]


def _missing(error: ValidationError) -> list[str]:
    if error.validator != "required" or not isinstance(error.instance, Mapping):
        return []
    return [k for k in error.validator_value if k not in error.instance]


def schema_problems(validator: jsonschema.protocols.Validator, instance: Any, file: str,
                    prefix: tuple = ()) -> list[Problem]:
    """Every schema error as a :class:`Problem`, best match first, duplicates dropped.

    An unknown key is reported at the key itself, with the closest allowed
    key as a suggestion; a required key that the typo was meant to be is
    then not reported a second time as missing."""
    meant: set[tuple] = set()  # (object path, the allowed key an unknown key is likely a typo of)
    found: list[tuple[Problem, list[str]]] = []  # each with the required keys it says are missing
    errors = sorted_errors(validator, instance)
    # one value refused by two enums (auth's type: by the table's, then by the branch its if/else took):
    # the one with the most options says it once
    widest: dict[tuple, ValidationError] = {}
    for err in errors:
        if err.validator == "enum" and isinstance(err.validator_value, list):
            at = tuple(err.absolute_path)
            if at not in widest or len(err.validator_value) > len(widest[at].validator_value):
                widest[at] = err
    for err in errors:
        path = prefix + tuple(err.absolute_path)
        if err.validator == "enum" and widest.get(tuple(err.absolute_path), err) is not err:
            continue
        unknown = _unknown_keys(err) if err.validator in ("additionalProperties", "unevaluatedProperties") else []
        if unknown:
            known = _known_keys(err.schema)
            for key in unknown:
                suggestion = did_you_mean(key, known)
                meant.add((path, suggestion))
                found.append((Problem(file, path + (key,), f"unknown key {key!r}", f"schema.{err.validator}",
                                      suggestion=suggestion, at_key=True), []))
        elif err.validator in ("enum", "const"):
            options = err.validator_value if err.validator == "enum" else [err.validator_value]
            found.append((Problem(file, path, error_message(err), f"schema.{err.validator}",
                                  suggestion=did_you_mean_option(err.instance, options)), []))
        else:
            found.append((Problem(file, path, error_message(err), f"schema.{err.validator}",
                                  at_key=err.validator == "required", secret=_is_secret_name(err)), _missing(err)))
    out: list[Problem] = []
    seen = set()
    for problem, missing in found:
        if missing and all((problem.path, k) in meant for k in missing):
            continue
        key = (problem.path, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out
