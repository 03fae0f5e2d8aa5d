"""bench_instructions' reading of a callgrind output file (pure)."""

from collections import Counter

from benchmarks.bench_instructions import grouped, per_lead, self_cost_by_object

# two objects, names compressed after their first use; main's call into libc is
# counted in libc's own lines, not again as main's inclusive cost of the call
CALLGRIND = """\
# callgrind format
version: 1
positions: line
events: Ir
summary: 1000

ob=(1) /usr/lib/libpython3.11.so.1.0
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
10 600
+2 100
cob=(2) /usr/lib/x86_64-linux-gnu/libc.so.6
cfi=(2) memcpy.S
cfn=(2) memcpy
calls=3 0
12 250

ob=(2)
fl=(2)
fn=(2)
0 250
ob=(3) /usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6
fl=(3) ???
fn=(3) sqlite3VdbeExec
* 50
"""


def test_each_object_gets_its_own_instructions_not_its_callees():
    total, by_object = self_cost_by_object(CALLGRIND.splitlines())
    assert total == 1000
    assert by_object == {"/usr/lib/libpython3.11.so.1.0": 700, "/usr/lib/x86_64-linux-gnu/libc.so.6": 250,
                         "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6": 50}
    assert grouped(by_object) == {"Python": 700, "libc": 250, "SQLite": 50}


def test_start_up_is_taken_off_per_lead():
    whole = (10_100, Counter({"Python": 8_100, "SQLite": 2_000}))
    one = (100, Counter({"Python": 100}))
    total, by_group = per_lead(whole, one, 101)
    assert total == 100
    assert by_group == {"Python": 80, "SQLite": 20}


def test_an_interpreter_with_libpython_built_in_counts_as_python_and_extensions_do_not():
    """Debian's python3.11 runs the interpreter in the executable; a ``.cpython-311`` extension
    module's name holds "python" too, but it is its library's."""
    by_object = {"/usr/bin/python3.11": 600,
                 "/usr/lib/python3.11/lib-dynload/_sqlite3.cpython-311-x86_64-linux-gnu.so": 30,
                 "/venv/lib/python3.11/site-packages/orjson/orjson.cpython-311-x86_64-linux-gnu.so": 20,
                 "/venv/lib/python3.11/site-packages/yarl/_quoting_c.cpython-311-x86_64-linux-gnu.so": 5}
    assert grouped(by_object) == {"Python": 600, "SQLite": 30, "orjson": 20, "other": 5}
