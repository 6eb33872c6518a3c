"""The packages depend one way, as the README's layout picture says, and no module imports itself back.

The picture (`floor N  pkg pkg ...`, optionally `-> allowed ...`) is read from the README, so the allowed
directions are written down once. Every import counts, also those inside functions (a cycle or a wrong-way
arrow that only shows at run time is still one): a package may import packages on lower floors, a package
on its own floor only through that package's public names (`from curate import x`), and, where the picture
gives `->`, only the packages it names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_PACKAGES = {"tests", "bench", "examples", "build"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_packages() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name not in NOT_PACKAGES
                  and not p.name.startswith("."))


def read_floors(readme: str) -> tuple[dict[str, int], dict[str, set[str]]]:
    """{package: floor} and {package: the only packages it may import} from the README's layout picture."""
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    floors: dict[str, int] = {}
    only: dict[str, set[str]] = {}
    for m in re.finditer(r"^floor (\d+)\s+([^\n]+)$", section, re.M):
        names, _, allowed = m.group(2).partition("->")
        for name in names.split():
            floors[name] = int(m.group(1))
            if allowed.strip():
                only[name] = set(allowed.split())
    return floors, only


def imports_of(path: Path, name: str) -> list[tuple[str, int]]:
    """(dotted target, line) for every import in the file, relative ones resolved, the names of a
    `from X import a, b` included as `X.a`, `X.b` (they may be submodules)."""
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names] + [(base, node.lineno)]
    return out


def module_graph(packages: list[str]) -> tuple[dict[str, set[str]], list[tuple[str, str, str, int]]]:
    """The module import graph (deepest project module each import names) and every import as
    (importing module, imported module, the import's text target, line)."""
    modules = {module_name(p): p for pkg in packages for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    edges: list[tuple[str, str, str, int]] = []
    for name, path in modules.items():
        graph[name] = set()
        for target, line in imports_of(path, name):
            t = target
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                graph[name].add(t)
                edges.append((name, t, target, line))
    return graph, edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def wrong_way(edges: list[tuple[str, str, str, int]], floors: dict[str, int],
              only: dict[str, set[str]]) -> list[str]:
    """Every import that breaks the picture, as one readable line each."""
    bad = []
    for src, dst, target, line in edges:
        a, b = src.split(".")[0], dst.split(".")[0]
        if a == b:
            continue
        where = f"{src.replace('.', '/')}.py:{line} imports {target}"
        if a in only and b not in only[a]:
            bad.append(f"{where}: {a} may import only {', '.join(sorted(only[a]))}")
        elif floors[b] > floors[a]:
            bad.append(f"{where}: floor {floors[a]} ({a}) imports floor {floors[b]} ({b})")
        elif floors[b] == floors[a] and dst != b:
            bad.append(f"{where}: a stage reaches {b} only through its public names (`from {b} import ...`)")
    return bad


def package_graph(edges: list[tuple[str, str, str, int]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for src, dst, _, _ in edges:
        a, b = src.split(".")[0], dst.split(".")[0]
        if a != b:
            graph.setdefault(a, set()).add(b)
    return graph


def test_the_walker_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_picture_is_read_and_planted_wrong_way_imports_are_named():
    floors, only = read_floors("## Layout\n```\nfloor 3  app -> kern\nfloor 2  s1 s2\nfloor 1  kern\n```\n## Next")
    assert floors == {"app": 3, "s1": 2, "s2": 2, "kern": 1} and only == {"app": {"kern"}}
    planted = [("kern.cli", "s1.api", "s1.api.run", 3),  # the kernel reaching up
               ("s1.api", "s2.internal", "s2.internal.f", 5),  # a stage reaching into another's internals
               ("s1.api", "s2", "s2.f", 6),  # through the public names: fine
               ("app.page", "s1", "s1.f", 7),  # outside app's `->` list
               ("s2.x", "kern.io", "kern.io.read", 9)]  # down: fine
    bad = wrong_way(planted, floors, only)
    assert len(bad) == 3
    assert bad[0].startswith("kern/cli.py:3 imports s1.api.run: floor 1 (kern) imports floor 2 (s1)")
    assert "only through its public names" in bad[1] and "app may import only kern" in bad[2]


def test_every_package_is_in_the_readme_picture():
    floors, _ = read_floors((ROOT / "README.md").read_text())
    missing = [p for p in project_packages() if p not in floors]
    assert not missing, f"packages missing from the README's layout picture: {missing}"
    assert floors["workbench"] == 1 and floors["llm"] == 2


def test_no_import_goes_the_wrong_way():
    floors, only = read_floors((ROOT / "README.md").read_text())
    _, edges = module_graph(project_packages())
    bad = wrong_way(edges, floors, only)
    assert not bad, "imports against the README's layout:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules_or_packages():
    graph, edges = module_graph(project_packages())
    assert "llm.generator" in graph and "trainers.client" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    cycle = find_cycle(package_graph(edges))
    assert cycle is None, "package cycle: " + " -> ".join(cycle)
