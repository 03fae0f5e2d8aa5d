"""The public host API: everything a program that runs dupcheck needs.

``run``, ``serve``, ``demo`` and ``explain`` are built on this module and
nothing else of the engine; so is any other host (a workflow engine's
worker, a web framework's view). See ``docs/embedding.md``.

One call per lead::

    host = Host.open("hubspot_dupcheck", db="leads.db")
    async with host:
        record = await host.decide({"phone_number": "5551234567", "list_id": "7"})

Or step by step, each step with plain-data inputs and outputs (a workflow
engine runs them as separate activities and keeps their results)::

    workflow = Workflow.load("hubspot_dupcheck")
    intake = workflow.admit(raw)                       # pure; Intake.as_json()
    hit = host.check_local(intake, check_dup=1, check_dnc=True)   # against the store
    answer = await workflow.ask_crm(intake)            # the CRM call; CrmAnswer.as_json()
    decision = workflow.decide(answer)                 # pure
    record = workflow.record(intake, decision, answer) # pure
    stored = await host.commit(record)                 # lead, DNC entry, record: one transaction

A store supplied by a plugin (``dupcheck_make_store``) subclasses
:class:`Store`; what a decision stores is decided by the engine
(:func:`plan_commit`), never by the store.
"""

from __future__ import annotations

from . import codes
from .codes import Code
from .config.problems import ConfigError, Problem
from .engine.explain import Explanation, NoCheck, explain, split_recording
from .engine.intake import NOT_UNICODE, Intake
from .engine.loaded import Workflow
from .engine.local import LocalHit
from .engine.locks import KeyedLocks
from .engine.record import DecisionRecord, plan_commit, row_label
from .engine.resume import changed_row  # run --resume: is the file the one it resumes?
from .engine.runner import DEFAULT_CONCURRENCY, CancelledAfterCommit, Host, Summary
from .engine.sources import LeadFileError, iter_leads, open_source, stream_items
from .engine.workflow import NodeSpec, WorkflowSpec  # the checked workflow file: Workflow.spec
from .errors import DupcheckError
from .plugins import PluginConflict, Registry, default_registry, make_plugin_manager
from .rules.decide import DECIDED_BY, Decision, OnError, RowTrace, RulesRow, trace  # trace: each row against an answer (explain, the console)
from .rules.advice import answer_key_warnings, rule_warnings  # check's rules-table warnings (the console's too)
from .rules.match import OPERATORS  # a rules-table row's ``match`` values
from .rules.paths import MISSING  # what explain shows for a key the answer does not have
from .store.contract import Commit, DncEntry, NewLead, Store, StoreError, StoreOutcomeUnknown, upgrade_record
from .types import CHECK_OUTCOME, CRM_ANSWER, CheckNode, CheckOutcome, CrmAnswer, CrmNode, LeadContext, Node, NodeType

__all__ = [
    "CHECK_OUTCOME", "CRM_ANSWER", "NodeSpec", "WorkflowSpec",
    "CancelledAfterCommit", "DECIDED_BY", "MISSING", "Code", "Commit", "CheckNode", "CheckOutcome", "ConfigError", "CrmAnswer", "CrmNode",
    "DEFAULT_CONCURRENCY", "Decision", "DecisionRecord", "DncEntry", "DupcheckError", "Explanation", "Host", "Intake", "KeyedLocks",
    "LeadContext", "LeadFileError", "LocalHit", "NOT_UNICODE", "NewLead", "NoCheck", "Node", "NodeType",
    "PluginConflict", "Problem", "Registry", "Store", "StoreError", "StoreOutcomeUnknown", "Summary", "Workflow",
    "codes",
    "changed_row", "default_registry", "explain", "iter_leads", "make_plugin_manager", "open_source", "plan_commit",
    "row_label",
    "split_recording", "stream_items", "OPERATORS", "OnError", "RowTrace", "RulesRow", "answer_key_warnings",
    "rule_warnings", "trace",
    "upgrade_record",
]
