"""The package's import structure: no module imports another that (directly or through others) imports it back,
the SageMaker job does not reach into the command-line module, and the SOG codec stands below its readers and
writers. Read from the sources (``ast``), every import
counted, the ones inside functions too: a lazy import still ties two modules together."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sogs_compressor"


def module_name(path: Path) -> str:
    parts = ["sogs_compressor", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from P import name`` counts P.name when that is a module)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            for target in targets:
                if target in modules and target != name and not target.startswith(name + "."):
                    graph[name].add(target)  # a package importing its own submodules is its registry, not a tie
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_job_does_not_import_the_command_line_module():
    graph = import_graph()
    job = [name for name in graph if name.startswith("sogs_compressor.job")]
    assert job and not [name for name in job if "sogs_compressor.cli" in graph[name]]


def test_the_renderer_does_not_reach_into_the_quantizers():
    """Whether a Triton kernel can run is one module's answer (triton_support.py), not the k-means module's."""
    graph = import_graph()
    render = [name for name in graph if name.startswith("sogs_compressor.render")]
    assert render and not [(name, sorted(graph[name])) for name in render
                           if any(t.startswith("sogs_compressor.quantize") for t in graph[name])]


def test_the_sog_codec_does_not_reach_into_its_readers_writers_or_callers():
    """``sog/`` is the format, both ways; ``read/``, ``write/``, the job and the command line are built on it."""
    graph = import_graph()
    callers = ("sogs_compressor.read", "sogs_compressor.write", "sogs_compressor.job", "sogs_compressor.cli",
               "sogs_compressor.pipeline", "sogs_compressor.steps")
    codec = [name for name in graph if name.startswith("sogs_compressor.sog")]
    assert codec and not [(name, sorted(graph[name])) for name in codec
                          if any(t == c or t.startswith(c + ".") for t in graph[name] for c in callers)]
