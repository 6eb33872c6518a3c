"""The test harness that runs inside the code sandbox: only the tests' own completion counts as a pass.

`llm.verify.code` runs this file as the sandboxed program (`python -I harness.py`). It reads the answer,
the tests, a one-time secret and the result channel's fd from stdin, closes stdin, and only then imports
the answer as the module `solution`; the tests run after it, one top-level statement at a time, in a
namespace of their own (the answer's names, the builtins as they were before the answer ran). When every
statement has run, the harness writes `<secret> pass` to the channel and leaves with `os._exit(0)`;
anything else (an exception, `SystemExit`, `os._exit`, an `atexit` hook, a crash, a kill) leaves no
record, or `<secret> fail <reason>`, and the verdict is wrong. The answer never sees the secret: it is
only in this function's locals, and an audit hook (installed before the answer runs, and not removable)
refuses what reaches a frame or raw memory (`sys._getframe`, `tb_frame`/`gi_frame`, `gc` walks, `ctypes`,
tracing, `/proc`), signal handlers (they receive frames) and new processes; `traceback` still formats
exceptions (its walkers hand out stand-ins with the code and line, not frames). Refused calls raise the
exception their callers expect (`sys._getframe`: ValueError, so `namedtuple` and `typing` still work).

The tests import private copies of the modules loaded before the answer (the ones they import are loaded
then), and those modules' attributes are put back before the tests run: patching `math.isclose` changes
nothing they see. Asserts are checked strictly: `assert a == b` / `!=` compare with the harness's
`same`, which walks lists, tuples, dicts and sets and refuses objects whose equality, truth or length a
class defined (or changed) by the answer decides (an "always equal" object; a dataclass's generated
`__eq__` too), and `assert x` refuses such an object's truth value. Not covered: comparisons outside an
assert's own expression (unittest's `assertEqual`, `if f() != 5: raise`) use the objects' own `__eq__`.
The sandbox, not this harness, is the security boundary; the harness makes the verdict mean what it says.
This file is stdlib only: it runs under the bare interpreter the sandbox exposes.
"""


def _harness() -> None:
    import ast
    import builtins
    import json
    import os
    import sys

    globals().pop("_harness", None)
    # Everything used after the answer has run is captured now: the answer may rebind module attributes
    # and builtins (os.write, exec, BaseException...), but not these locals.
    write, exit_, close, exec_, compile_ = os.write, os._exit, os.close, exec, compile
    base_exc, type_, id_, isinstance_, len_, zip_, any_ = (
        BaseException, type, id, isinstance, len, zip, any)
    list_, list_like, dict_, set_like, bool_, all_ = list, (list, tuple), dict, (set, frozenset), bool, all
    where = _where
    mro_of, dict_of = type.__dict__["__mro__"].__get__, type.__dict__["__dict__"].__get__
    module_type, sys_modules, set_attribute = type(sys), sys.modules, object.__setattr__
    module_dict = module_type.__dict__["__dict__"].__get__
    data = json.loads(sys.stdin.buffer.read())
    close(0)
    secret, channel = data["secret"], data["channel"]

    def report(ok: bool, detail: str) -> None:
        write(channel, (secret + (" pass " if ok else " fail ") + detail.replace("\n", " ")[:500] + "\n").encode())
        exit_(0)

    memory_error = MemoryError

    def describe(exc: BaseException) -> str:
        """`Type: text`; a real MemoryError (the address-space cap) starts `memory limit:`."""
        try:
            text = f"{type_(exc).__name__}: {exc}".rstrip(": ")
            return f"memory limit: {text}" if type_(exc) is memory_error else text
        except base_exc:  # noqa: BLE001 - an answer's exception whose name or text raises
            return "an exception that cannot be printed"

    # The tests are parsed and compiled before the answer exists: it cannot change how they compile.
    try:
        tree = ast.parse(data["tests"], "tests.py")
    except SyntaxError as exc:
        report(False, f"the tests do not parse: {describe(exc)}")
    statements = []
    for node in tree.body:
        module = _strict(ast.Module(body=[node], type_ignores=[]))
        statements.append((node.lineno, compile_(module, "tests.py", "exec", dont_inherit=True, optimize=0)))
    try:
        answer = compile_(data["answer"], "solution.py", "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError) as exc:
        report(False, f"the answer is not valid Python: {describe(exc)}")
    del data

    # Modules the tests import are loaded now; every module loaded now is restored before the tests run
    # (an answer that sets `math.isclose = lambda *a, **k: True` changes nothing the tests see).
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance_(node, ast.Import) else (
            [node.module] if isinstance_(node, ast.ImportFrom) and node.module and not node.level else [])
        for module_name in names:
            try:
                __import__(module_name)
            except BaseException:  # noqa: BLE001 - the tests will say so when they run
                pass
    modules = {name: (m, type_(m), dict(module_dict(m))) for name, m in list(sys.modules.items())
               if isinstance_(m, module_type)}

    # Classes that exist before the answer runs, with the comparison methods they had then; a class made
    # later is trusted only with the methods of its bases or methods written in the standard library.
    dunders = ("__eq__", "__ne__", "__bool__", "__len__")
    known: dict[int, tuple] = {}
    todo = [object]
    while todo:
        cls = todo.pop()
        if id_(cls) in known:
            continue
        known[id_(cls)] = (cls, tuple(dict_of(cls).get(d) for d in dunders))
        try:
            todo.extend(type.__subclasses__(cls))
        except TypeError:
            pass
    function, stdlib = type_(_strict), os.path.dirname(os.__file__) + os.sep

    def from_stdlib(method) -> bool:
        return type_(method) is function and method.__code__.co_filename.startswith(stdlib)

    def trusted(t: type) -> bool:
        for cls in mro_of(t):
            entry, own = known.get(id_(cls)), dict_of(cls)
            if entry is None or entry[0] is not cls:
                if any_(d in own and not from_stdlib(own[d]) for d in dunders):
                    return False
            elif any_(own.get(d) is not v for d, v in zip_(dunders, entry[1])):
                return False
        return True

    def same(a, b, depth: int = 0) -> bool:
        ta, tb = type_(a), type_(b)
        if depth > 100:
            raise AssertionError("the compared values nest too deep")
        if not (trusted(ta) and trusted(tb)):
            raise AssertionError(f"compares a {ta.__name__} whose equality the answer defines")
        if isinstance_(a, list_like) and isinstance_(b, list_like):
            return (isinstance_(a, list_) == isinstance_(b, list_) and len_(a) == len_(b)
                    and all_(same(x, y, depth + 1) for x, y in zip_(a, b)))
        if isinstance_(a, dict_) and isinstance_(b, dict_):
            for key in list_(a) + list_(b):
                same(key, key, depth + 1)  # keys too: their __eq__/__hash__ decide the lookup
            return a.keys() == b.keys() and all_(same(a[k], b[k], depth + 1) for k in a)
        if isinstance_(a, set_like) and isinstance_(b, set_like):
            for x in list_(a) + list_(b):
                same(x, x, depth + 1)
        return (a == b) is True

    def truth(value) -> bool:
        if not trusted(type_(value)):
            raise AssertionError(f"asserts a {type_(value).__name__} whose truth value the answer defines")
        return bool_(value)

    pristine = dict(builtins.__dict__)
    import_, private = __import__, {}

    def tests_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - __import__'s names
        """The tests' `import`: a private copy of a module as it was before the answer ran (no thread of
        the answer can patch it), or the real import for modules loaded later (and `solution`)."""
        wanted = name if fromlist else name.partition(".")[0]
        if level or wanted not in modules:
            return import_(name, globals, locals, fromlist, level)
        if wanted not in private:
            copy = module_type(wanted)
            module_dict(copy).update(modules[wanted][2])
            private[wanted] = copy
        return private[wanted]

    pristine["__import__"] = tests_import
    _lock_down(os, sys)
    namespace: dict = {"__name__": "solution", "__builtins__": builtins}
    sys.modules["solution"] = type_(sys)("solution")
    sys.modules["solution"].__dict__.update(namespace)
    namespace = sys.modules["solution"].__dict__
    try:
        exec_(answer, namespace)
    except base_exc as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included: the tests never ran
        report(False, where("the answer raised", describe(exc), "before the tests ran"))
    for name, (module, kind, attributes) in modules.items():
        sys_modules[name] = module
        if type_(module) is not kind:
            set_attribute(module, "__class__", kind)
        current = module_dict(module)
        for key, value in attributes.items():
            if current.get(key) is not value:
                current[key] = value
    tests = {k: v for k, v in namespace.items() if not k.startswith("__")}
    tests.update({"__name__": "__main__", "__builtins__": pristine, "__wb_same__": same, "__wb_truth__": truth})
    for lineno, code in statements:
        try:
            exec_(code, tests)
        except base_exc as exc:  # noqa: BLE001 - a test stopped by anything, SystemExit included, failed
            report(False, where(f"tests.py line {lineno}:", describe(exc), ""))
    report(True, "tests passed")


def _where(before: str, what: str, after: str) -> str:
    """A detail that starts `memory limit:` whenever the exception was one."""
    if what.startswith("memory limit: "):
        return f"memory limit: {before} {what.removeprefix('memory limit: ')} {after}".strip()
    return f"{before} {what} {after}".strip()


def _strict(module):
    """`assert a == b` -> `assert __wb_truth__(__wb_same__(a, b))` (and `!=`, `and`/`or`/`not` of them)."""
    import ast

    def name(n: str):
        return ast.Name(id=n, ctx=ast.Load())

    def compare(e):
        if isinstance(e, ast.Compare) and len(e.ops) == 1 and isinstance(e.ops[0], ast.Eq | ast.NotEq):
            call = ast.Call(func=name("__wb_same__"), args=[e.left, e.comparators[0]], keywords=[])
            return call if isinstance(e.ops[0], ast.Eq) else ast.UnaryOp(op=ast.Not(), operand=call)
        if isinstance(e, ast.BoolOp):
            e.values = [compare(v) for v in e.values]
        elif isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.Not):
            e.operand = compare(e.operand)
        return e

    class Strict(ast.NodeTransformer):
        def visit_Assert(self, node):
            self.generic_visit(node)
            node.test = ast.Call(func=name("__wb_truth__"), args=[compare(node.test)], keywords=[])
            return node

    return ast.fix_missing_locations(Strict().visit(module))


_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
_REFUSED = {
    # frames, memory and the interpreter's object graph: where the secret could be read
    "sys._getframe": ValueError, "sys._current_frames": PermissionError, "sys._current_exceptions": PermissionError,
    "sys.settrace": PermissionError, "sys.setprofile": PermissionError, "sys.addaudithook": RuntimeError,
    "gc.get_objects": PermissionError, "gc.get_referrers": PermissionError, "gc.get_referents": PermissionError,
    "os.symlink": PermissionError, "os.link": PermissionError,
    # new processes (bwrap's seccomp filter refuses them too; this also holds for --sandbox none)
    "os.fork": PermissionError, "os.forkpty": PermissionError, "os.posix_spawn": PermissionError,
    "os.posix_spawnp": PermissionError, "os.system": PermissionError, "os.exec": PermissionError,
    "os.spawn": PermissionError, "subprocess.Popen": PermissionError, "pty.spawn": PermissionError,
}
# Loaded (and disarmed) before the answer runs, so importing them again only happens to reload them.
_REFUSED_IMPORTS = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "_signal", "signal", "_xxsubinterpreters"})


def _frame_safe_tracebacks() -> list:
    """Make `traceback` (print_exc, format_exc, logging.exception) work without handing out frames: its
    walkers yield stand-ins holding only the code and line. Returns the cell naming the thread allowed to
    read `tb_frame` (a real traceback's, inside these walkers, where no code of the answer runs)."""
    import _thread
    import traceback
    import types

    owner: list = [None]
    ident, tb_type, type_ = _thread.get_ident, types.TracebackType, type
    positions_of = traceback._get_code_position

    class Frame:  # what traceback formatting reads of a frame, and nothing that leads to another frame
        __slots__ = ("f_code", "f_globals", "f_locals", "f_lineno")

        def __init__(self, code, lineno: int) -> None:
            self.f_code, self.f_globals, self.f_locals, self.f_lineno = code, {}, {}, lineno

    def code_of(tb):
        if type_(tb) is not tb_type:
            raise TypeError("expected a traceback")
        owner[0] = ident()
        try:
            return tb.tb_frame.f_code
        finally:
            owner[0] = None

    def walk_tb(tb):
        while tb is not None:
            yield Frame(code_of(tb), tb.tb_lineno), tb.tb_lineno
            tb = tb.tb_next

    def walk_tb_with_full_positions(tb):
        while tb is not None:
            code = code_of(tb)
            positions = positions_of(code, tb.tb_lasti)
            yield Frame(code, tb.tb_lineno), (tb.tb_lineno, *positions[1:]) if positions[0] is None else positions
            tb = tb.tb_next

    traceback.walk_tb, traceback._walk_tb_with_full_positions = walk_tb, walk_tb_with_full_positions
    return owner


def _lock_down(os, sys) -> None:
    """Install the audit hook and disarm signal handlers; from here on the answer's code may run."""
    import _posixsubprocess
    import _signal
    import _thread
    import re
    import signal
    import subprocess  # noqa: F401 - loaded now so that `import subprocess` works; it cannot start anything

    proc = re.compile(r"(^|/)(proc|fd)(/|$)")
    default = signal.signal
    # the hook's own view: the answer may change the module's globals and builtins, not these cells
    refused, frame_attributes, refused_imports = dict(_REFUSED), _FRAME_ATTRIBUTES, _REFUSED_IMPORTS
    isinstance_, text_types, permission, attribute, import_error = (
        isinstance, (str, bytes), PermissionError, AttributeError, ImportError)
    ident = _thread.get_ident

    def refuse_handler(signum, handler):
        if callable(handler):
            raise PermissionError("signal handlers are disabled in the sandbox")
        return default(signum, handler)

    signal.signal = _signal.signal = refuse_handler

    def refuse_process(*args, **kwargs):
        raise PermissionError("new processes are disabled in the sandbox")

    _posixsubprocess.fork_exec = refuse_process
    owner = _frame_safe_tracebacks()

    def hook(event: str, args: tuple) -> None:
        if event in refused:
            raise refused[event](f"{event} is disabled in the sandbox")
        if event.startswith("ctypes."):
            raise permission("ctypes is disabled in the sandbox")
        if event == "object.__getattr__" and args[1] in frame_attributes and not (
                args[1] == "tb_frame" and owner[0] == ident()):
            raise attribute(f"{args[1]} is disabled in the sandbox")
        if event == "import" and args[0] in refused_imports:
            raise import_error(f"importing {args[0]} is disabled in the sandbox")
        if event in ("open", "os.chdir", "os.listdir", "os.scandir") and args and isinstance_(args[0], text_types):
            path = args[0] if isinstance_(args[0], text_types[0]) else args[0].decode("utf-8", "replace")
            if proc.search(path) or path.startswith("/dev/std"):
                raise permission(f"{path} is not readable in the sandbox")

    sys.addaudithook(hook)


if __name__ == "__main__":
    _harness()
