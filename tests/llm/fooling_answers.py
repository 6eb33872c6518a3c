"""Answers that would fool a verifier, and right answers it must still accept: shared by
tests/llm/test_verify.py and bench/fooling_answers.py (which prints each verdict before and after)."""

GSM24 = "She has 4 and buys 20.\n#### 24"
# (response, reference, verdict): every way found to be paid for a wrong or unstated answer is False
FOOLING_MATH = {
    "restates the question": ("4 + 20 = ?", GSM24, False),
    "restates with a wrong result": ("10 + 5 = +25", "#### 15", False),
    "restates the expression": ("4 + 20", GSM24, False),
    "restates the question, gold is its last number": ("What is 0 + 7?", "#### 7", False),
    "the expression as the marked answer": ("#### 4 + 20", GSM24, False),
    "retraction to the gold": ("24, no wait, 23", "#### 23", False),
    "retraction away from the gold": ("24, no wait, 23", GSM24, False),
    "hedge": ("19 or 21", "#### 19", False),
    "hedge in a box": (r"\boxed{19 \text{ or } 21}", "#### 19", False),
    "boxes then corrects": (r"\boxed{24} Hmm, actually \boxed{23}", "#### 23", False),
    "retracted after the answer": ("The answer is 24. Wait, no, it's 23.", GSM24, False),
    "an alternative after the answer": ("The answer is 24. Or maybe 23.", GSM24, False),
    "a correction after the answer": ("#### 24\nHmm, actually, 23.", GSM24, False),
    "the last of two #### lines counts": ("#### 24\n#### 19", GSM24, False),
    "gold inside a larger number": ("#### 240", GSM24, False),
    "gold as a digit of a decimal": ("#### 24.5", GSM24, False),
    "empty": ("", GSM24, False),
    "only reasoning": ("<think>It is 24.</think>", GSM24, False),
    "a rounded third": ("#### 0.333", r"\boxed{\frac{1}{3}}", False),
}
RIGHT_MATH = {
    "####": ("She pays 9 * 2 = 18.\n#### 18", "#### 18", True),
    "the last of two #### lines": ("#### 19\n#### 24", GSM24, True),
    "the answer is": ("The answer is 24.", GSM24, True),
    "final answer:": ("Final answer: 24", GSM24, True),
    "last boxed": (r"First \boxed{3}, so overall $\boxed{24}$.", GSM24, True),
    "result of the last equation": ("4 + 20 = 24", GSM24, True),
    "last number of the last sentence": ("She has 4 and gets 20 more, so 24 in total.", GSM24, True),
    "thousands separator": ("#### 1,200", "#### 1200", True),
    "dollar sign": ("The answer is $18.", "#### 18", True),
    "negative": ("The answer is −3.", "#### -3", True),
    "percentage": ("#### 25%", "#### 25", True),
    "decimal vs fraction": (r"\boxed{0.5}", r"\boxed{\frac{1}{2}}", True),
    "dfrac": (r"\boxed{\dfrac{1}{2}}", "#### 0.5", True),
    "frac without braces": (r"\boxed{\frac12}", "#### 0.5", True),
    "unit in text": (r"\boxed{18 \text{ dollars}}", "#### 18", True),
    "unit in words": ("The answer is 24 dollars", GSM24, True),
    "trailing sentences": ("The answer is 24. Hope this helps! Ask me 3 more.", GSM24, True),
    "a chatty sentence after the answer": ("The answer is 24. Ask if you need 2 more examples or a proof.", GSM24,
                                           True),
    "a marker phrase before the number": ("The answer is as follows: 24", GSM24, True),
    "bold final answer": ("**Final Answer:** 24", GSM24, True),
    "a mixed number": (r"The answer is $137 \frac{1}{2}$.", r"\boxed{137 \frac{1}{2}}", True),
    "an aside in parentheses": ("The answer is 24 (not 23).", GSM24, True),
    "a union of intervals (math-verify)": (r"The answer is: (0,9) \cup (9,36)", r"\boxed{(0,9) \cup (9,36)}", True),
    "a check after the answer": (r"\boxed{24}. Actually, let me check: 4 + 20 = 24.", GSM24, True),
    "a reason after the answer": ("The answer is 24 apples, since 4 + 20 = 24.", GSM24, True),
    "hesitation inside <think>": ("<think>maybe 23</think>The answer is 24.", GSM24, True),
    "trailing zero": ("#### 24.0", GSM24, True),
    "an expression (math-verify)": (r"$\boxed{\frac{\sqrt{3}}{2}}$", r"\boxed{\frac{\sqrt{3}}{2}}", True),
    "a tuple (math-verify)": (r"The answer is $\boxed{(3, 4)}$.", r"\boxed{(3,4)}", True),
}

WRONG_ADD = "def add(a, b):\n    return 0\n"
ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
# Forge a pass with the harness's secret, found by `steal` (which hands `_forge` the objects to search).
_FORGE = """
import os, re, types
def _forge(objects):
    for obj in objects:
        value = obj.get("secret") if isinstance(obj, dict) else (
            obj.cell_contents if isinstance(obj, types.CellType) and obj.cell_contents is not None else None)
        if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{{32}}", value):
            for fd in range(3, 40):
                try:
                    os.write(fd, (value + " pass tests passed\\n").encode())
                    os._exit(0)
                except OSError:
                    pass
    os._exit(0)
{steal}
"""
# (answer, tests): every answer here is wrong, and each must come back False (the bench shows which of
# them fooled the verifier before the harness).
FOOLING_CODE = {
    "os._exit(0) before the tests": (WRONG_ADD + "import os\nos._exit(0)\n", ADD_TESTS),
    "raise SystemExit(0) before the tests": (WRONG_ADD + "raise SystemExit(0)\n", ADD_TESTS),
    "atexit hook exits 0": (WRONG_ADD + "import atexit, os\natexit.register(lambda: os._exit(0))\n", ADD_TESTS),
    "sys.exit(0) inside the tested function": ("import sys\ndef add(a, b):\n    sys.exit(0)\n", ADD_TESTS),
    "os._exit(0) inside the tested function": ("import os\ndef add(a, b):\n    os._exit(0)\n", ADD_TESTS),
    "KeyboardInterrupt inside the tested function": ("def add(a, b):\n    raise KeyboardInterrupt\n", ADD_TESTS),
    "a thread exits 0 while the tests run": (
        "import os, threading, time\ndef add(a, b):\n    threading.Timer(0.05, lambda: os._exit(0)).start()\n"
        "    time.sleep(5)\n", ADD_TESTS),
    "sys.excepthook swallows AssertionError and exits 0": (
        WRONG_ADD + "import os, sys\nsys.excepthook = lambda *a: os._exit(0)\n", ADD_TESTS),
    "prints 'tests passed'": (WRONG_ADD + "print('tests passed')\n", ADD_TESTS),
    "writes a pass to every fd": (
        WRONG_ADD + "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'pass tests passed\\n')\n"
        "    except OSError:\n        pass\n", ADD_TESTS),
    "patches os.write to turn fail into pass": (
        WRONG_ADD + "import os\n_w = os.write\nos.write = lambda fd, b: _w(fd, b.replace(b' fail ', b' pass '))\n",
        ADD_TESTS),
    "patches builtins.len": ("import builtins\nbuiltins.len = lambda x: 3\ndef triple(x):\n    return []\n",
                             "assert len(triple(1)) == 3\n"),
    "patches builtins.exec": (WRONG_ADD + "import builtins\nbuiltins.exec = lambda *a, **k: None\n",
                                                ADD_TESTS),
    "patches a library the tests use": (
        "import math\nmath.isclose = lambda *a, **k: True\ndef area(r):\n    return 0.0\n",
        "import math\nassert math.isclose(area(1.0), 3.14159, rel_tol=1e-3)\n"),
    "a thread keeps patching a library the tests use": (
        "import math, threading\ndef _patch():\n    while True:\n        math.isclose = lambda *a, **k: True\n"
        "threading.Thread(target=_patch, daemon=True).start()\ndef area(r):\n    time.sleep(0.05)\n"
        "    return 0.0\nimport time\n", "import math\nr = area(1.0)\nassert math.isclose(r, 3.14159, rel_tol=1e-3)\n"),
    "an always-equal object": ("class E:\n    def __eq__(self, other):\n        return True\n"
                               "def add(a, b):\n    return E()\n", ADD_TESTS),
    "an always-equal int": ("class I(int):\n    def __eq__(self, other):\n        return True\n"
                            "    __hash__ = int.__hash__\ndef add(a, b):\n    return I(0)\n", ADD_TESTS),
    "an always-equal object inside a list": (
        "class E:\n    def __eq__(self, other):\n        return True\ndef pair(a):\n    return [E(), E()]\n",
        "assert pair(1) == [1, 2]\n"),
    "an always-true object": ("class T:\n    def __bool__(self):\n        return True\n"
                              "def is_even(n):\n    return T()\n", "assert is_even(3)\n"),
    "a patched __eq__ on a standard class": (
        "import fractions\nfractions.Fraction.__eq__ = lambda self, other: True\n"
        "def half():\n    return fractions.Fraction(1, 3)\n", "from fractions import Fraction\nassert half() == Fraction(1, 2)\n"),
    "defines the harness's comparison helper": (WRONG_ADD + "__wb_same__ = lambda a, b: True\n"
                                                "__wb_truth__ = lambda v: True\n", ADD_TESTS),
    "reads the tests from the program file": (
        "import re\nsrc = ''\nfor p in ['/tmp/program.py', 'program.py']:\n    try:\n        src += open(p).read()\n"
        "    except OSError:\n        pass\nTABLE = {(int(a), int(b)): int(c) for a, b, c in "
        "re.findall(r'add\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)', src)}\n"
        "def add(a, b):\n    return TABLE.get((a, b), 0)\n", ADD_TESTS),
    "steals the secret through sys._getframe": (
        WRONG_ADD + _FORGE.format(steal="import sys\nf = sys._getframe()\nframes = []\nwhile f:\n    "
                                        "frames.append(f.f_locals)\n    f = f.f_back\n_forge(frames)"), ADD_TESTS),
    "steals the secret through a traceback's frames": (
        WRONG_ADD + _FORGE.format(steal="try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    f = e.__traceback__.tb_frame\n"
                                        "frames = []\nwhile f:\n    frames.append(f.f_locals)\n    f = f.f_back\n"
                                        "_forge(frames)"), ADD_TESTS),
    "steals the secret through traceback's walkers": (
        WRONG_ADD + _FORGE.format(steal="import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError as e:\n"
                                        "    frames = [f.f_locals for f, _ in traceback.walk_tb(e.__traceback__)]\n"
                                        "    class Fake:\n        tb_frame = property(lambda s: e.__traceback__.tb_frame)\n"
                                        "        tb_next = None\n        tb_lineno = 1\n"
                                        "    try:\n        frames += [f.f_back.f_locals for f, _ in "
                                        "traceback.walk_tb(Fake())]\n    except TypeError:\n        pass\n"
                                        "_forge(frames)"), ADD_TESTS),
    "steals the secret through gc": (
        WRONG_ADD + _FORGE.format(steal="import gc\n_forge(gc.get_objects())"), ADD_TESTS),
    "steals the secret in a signal handler": (
        WRONG_ADD + _FORGE.format(steal="import signal\ndef h(n, f):\n    frames = []\n    while f:\n"
                                        "        frames.append(f.f_locals)\n        f = f.f_back\n    _forge(frames)\n"
                                        "signal.signal(signal.SIGALRM, h)\nsignal.setitimer(signal.ITIMER_REAL, 0.01)\n"
                                        "import time\ntime.sleep(1)"), ADD_TESTS),
    "steals the secret with a trace function": (
        WRONG_ADD + _FORGE.format(steal="import sys\ndef t(f, e, a):\n    frames = []\n    while f:\n"
                                        "        frames.append(f.f_locals)\n        f = f.f_back\n    _forge(frames)\n"
                                        "sys.setprofile(t)"), ADD_TESTS),
    "reads the secret from stdin": (
        WRONG_ADD + _FORGE.format(steal="chunks = []\nfor p in ['/dev/stdin', '/proc/self/fd/0']:\n    try:\n"
                                        "        chunks.append(open(p).read())\n    except OSError:\n        pass\n"
                                        "_forge(chunks)"), ADD_TESTS),
}
# Right answers that use what the harness must still allow.
RIGHT_CODE = {
    "plain": ("def add(a, b):\n    return a + b\n", ADD_TESTS),
    "a __main__ block and prints": ("def add(a, b):\n    return a + b\nif __name__ == '__main__':\n    print(add(1, 2))\n"
                                    "print('hello')\n", ADD_TESTS),
    "namedtuple and Counter from the standard library": (
        "from collections import Counter, namedtuple\nP = namedtuple('P', 'x y')\n"
        "def count(s):\n    return Counter(s)\ndef point():\n    return P(1, 2)\n",
        "assert count('aab') == {'a': 2, 'b': 1}\nassert point() == (1, 2)\n"),
    "a class with the default equality": ("class Node:\n    def __init__(self, v):\n        self.v = v\n"
                                          "def make(v):\n    return Node(v).v\n", "assert make(3) == 3\n"),
    "exceptions handled inside the answer": ("def safe_div(a, b):\n    try:\n        return a / b\n"
                                            "    except ZeroDivisionError:\n        return None\n",
                                            "assert safe_div(1, 0) is None\nassert safe_div(6, 3) == 2\n"),
    "threads and recursion": ("import sys, threading\nsys.setrecursionlimit(5000)\n"
                              "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
                              "def par(n):\n    out = []\n    t = threading.Thread(target=lambda: out.append(fib(n)))\n"
                              "    t.start()\n    t.join()\n    return out[0]\n", "assert par(15) == 610\n"),
    "a test function calling the answer": ("def add(a, b):\n    return a + b\n",
                                           "def check(candidate):\n    assert candidate(1, 2) == 3\n"
                                           "    assert candidate(0, 0) != 1\ncheck(add)\n"),
    "traceback formatting": ("import logging, traceback\ndef div(a, b):\n    try:\n        return a / b\n"
                             "    except ZeroDivisionError:\n        logging.exception('div')\n"
                             "        return traceback.format_exc()\n",
                             "assert 'ZeroDivisionError' in div(1, 0)\nassert div(4, 2) == 2\n"),
    "enum, typing, dataclasses and the usual modules": (
        "import dataclasses, enum, functools, heapq, json, re, typing\nclass C(enum.Enum):\n    A = 1\n"
        "T = typing.TypeVar('T')\nclass NT(typing.NamedTuple):\n    x: int\n@dataclasses.dataclass\nclass D:\n"
        "    x: int\n@functools.lru_cache(None)\ndef g(n):\n    return n\ndef f():\n"
        "    return [C.A.value, NT(2).x, D(3).x, g(4), heapq.nsmallest(1, [5, 9])[0], json.loads('[6]')[0],"
        " len(re.findall('a', 'a' * 7))]\n", "assert f() == [1, 2, 3, 4, 5, 6, 7]\n"),
    "logging and warnings": ("import logging, warnings\ndef add(a, b):\n    warnings.warn('x')\n"
                             "    logging.getLogger('a').warning('adding')\n    return a + b\n", ADD_TESTS),
}
