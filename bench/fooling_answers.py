"""Verdicts on answers that try to fool the math and code verifiers, before and after the fix, side by side.

    python bench/fooling_answers.py [--before REV] [--sandbox bwrap|none] [--repeat 5]

"Before" is `llm/verify/{math,code}.py` at git revision REV (default b13c2bb, the tree these fixes started
from), loaded from `git show`; "after" is the working tree. The cases are tests/llm/fooling_answers.py:
every FOOLING answer is wrong (the right verdict is False), every RIGHT answer is right (True). Then the
bundled GSM8K and MATH-500 items answered by their own question (wrong) and by their reference solution
(right). Last, the
cost of the code harness: seconds per `run_tests` of a plain right answer, before and after, and the ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import llm.verify.math as new_math  # noqa: E402
from llm.verify.code import run_tests  # noqa: E402
from tests.llm.fooling_answers import FOOLING_CODE, FOOLING_MATH, RIGHT_CODE, RIGHT_MATH  # noqa: E402


def load_before(rev: str, path: str, name: str, folder: Path):
    """The module at `path` as of git revision `rev`, imported under `name`."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True,
                            check=True).stdout
    file = folder / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mark(verdict, want: bool) -> str:
    return f"{verdict}" + ("" if verdict is want else " (fooled)" if want is False else " (wrong)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="b13c2bb", help="git revision of the verifiers before the fix")
    parser.add_argument("--sandbox", default="bwrap", choices=["bwrap", "none"])
    parser.add_argument("--repeat", type=int, default=5, help="runs per side for the harness cost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_math = load_before(args.before, "llm/verify/math.py", "before_math", Path(tmp))
        old_code = load_before(args.before, "llm/verify/code.py", "before_code", Path(tmp))
        print(f"| math answer | reference | want | before ({args.before}) | after |\n|---|---|---|---|---|")
        for name, (response, reference, want) in {**FOOLING_MATH, **RIGHT_MATH}.items():
            before, after = old_math.check_math(response, reference)[0], new_math.check_math(response, reference)[0]
            print(f"| {name}: `{response!r}` | `{reference.splitlines()[-1]}` | {want} | {mark(before, want)} | "
                  f"{mark(after, want)} |")
        print("\n| bundled data: the response is ... | items | verified before | after | after, given the question "
              "(as wb distill/eval/prefs and --reward math call it) |\n|---|---|---|---|---|")
        for name in ("gsm8k/test.jsonl", "math500/test.jsonl"):
            rows = [json.loads(line) for line in (ROOT / "examples" / "data" / name).open()]
            for what, field in (("the question (restated)", "question"), ("the reference solution", "answer")):
                before = sum(bool(old_math.check_math(r[field], r["answer"])[0]) for r in rows)
                after = sum(bool(new_math.check_math(r[field], r["answer"])[0]) for r in rows)
                asked = sum(bool(new_math.check_math(r[field], r["answer"], r["question"])[0]) for r in rows)
                print(f"| {name}: {what} | {len(rows)} | {before} | {after} | {asked} |")
        print(f"\n| code answer ({args.sandbox}) | want | before | after | after's detail |\n|---|---|---|---|---|")
        cases = [(n, c, False) for n, c in FOOLING_CODE.items()] + [(n, c, True) for n, c in RIGHT_CODE.items()]
        for name, (answer, tests), want in cases:
            before = old_code.run_tests(answer, tests, timeout=5, sandbox=args.sandbox)[0]
            after, detail = run_tests(answer, tests, timeout=5, sandbox=args.sandbox)
            print(f"| {name} | {want} | {mark(before, want)} | {mark(after, want)} | {detail[:90]} |")
        answer, tests = RIGHT_CODE["plain"]
        seconds = {}
        for side, fn in (("before", old_code.run_tests), ("after", run_tests)):
            started = time.perf_counter()
            for _ in range(args.repeat):
                assert fn(answer, tests, timeout=10, sandbox=args.sandbox)[0]
            seconds[side] = (time.perf_counter() - started) / args.repeat
        print(f"\n| run_tests, plain answer ({args.sandbox}) | before s | after s | after/before |\n|---|---|---|---|")
        print(f"| mean of {args.repeat} | {seconds['before']:.3f} | {seconds['after']:.3f} | "
              f"{seconds['after'] / seconds['before']:.2f}x |")


if __name__ == "__main__":
    main()
