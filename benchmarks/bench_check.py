"""``dupcheck check`` cold, against ``check-jsonschema`` on the same file.

Both are whole processes started cold (imports included), alternated A B A B,
five times; ``check-jsonschema`` validates the adaptor against the same
schema, which is the part of ``dupcheck check`` a generic tool can do.

Both start from compiled bytecode, as installed packages do (pip compiles
them): ``check-jsonschema``'s is in site-packages, dupcheck's is compiled here
first, since an editable checkout run with ``PYTHONDONTWRITEBYTECODE`` set (as
on the shared machines) would otherwise compile every module on every run.
"""

from __future__ import annotations

import compileall
import shutil
import statistics
import sys
from pathlib import Path

import dupcheck_plugin
from dupcheck_plugin.resources import shipped_dir

from .abtest import Series, alternate, run_process, spread
from .stubbed import DUPCHECK, ENV


def compile_bytecode() -> None:
    """dupcheck's modules compiled once, so that no measured process compiles them."""
    compileall.compile_dir(Path(dupcheck_plugin.__file__).parent, quiet=1)


def main(reps: int = 5) -> None:
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if tool is None:
        print("bench_check: skipped, check-jsonschema is not installed (make bench installs it)")
        return
    compile_bytecode()
    adaptor = shipped_dir("adaptors") / "hubspot_contacts_search.toml"
    schema = shipped_dir("schemas") / "adaptor.schema.json"
    theirs, ours = Series("check-jsonschema", 1), Series("dupcheck check", 1)
    alternate((theirs, lambda: run_process([tool, "--schemafile", str(schema), str(adaptor)])),
              (ours, lambda: run_process(DUPCHECK + ["check", str(adaptor)], env=ENV)), reps)
    walls = lambda s: [x.wall_s * 1000 for x in s.samples]  # noqa: E731
    cpus = lambda s: [x.cpu_s * 1000 for x in s.samples]  # noqa: E731
    print(f"dupcheck check cold vs check-jsonschema, one adaptor, whole processes, A/B alternated x{reps}:")
    print(f"  check-jsonschema  {spread(walls(theirs)):>18} ms  CPU {spread(cpus(theirs)):>14} ms  (load {theirs.load:.1f})")
    print(f"  dupcheck check    {spread(walls(ours)):>18} ms  CPU {spread(cpus(ours)):>14} ms  (load {ours.load:.1f})")
    # on a loaded machine the wall time is mostly waiting for a core; the CPU time is the work
    print(f"  ratio: {1 / ours.rate / (1 / theirs.rate):.2f}x check-jsonschema's wall time, "
          f"{statistics.median(cpus(ours)) / statistics.median(cpus(theirs)):.2f}x its CPU time")


if __name__ == "__main__":
    main()
