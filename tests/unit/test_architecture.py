"""The house rules, read from the code: one owner per table (docs/architecture.md's table), events that are both
published and heard, no import cycle, small functions and modules, few type: ignores, and every broad
``except Exception`` at a boundary that says so. Each rule is also shown to catch a breach."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
CODE = [ROOT / "services", ROOT / "shared"]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "server.py").exists())
#: A write statement in SQL, as this code base writes it (upper case); the target table is group 2.
WRITE = re.compile(r"\b(INSERT INTO|DELETE FROM|COPY|TRUNCATE(?: TABLE)?|UPDATE)\s+([a-z_][a-z0-9_]*)\b")
NOT_TABLES = {"set", "on", "skip", "of", "nowait"}
MAX_FUNCTION_LINES, MAX_MODULE_LINES, MAX_TYPE_IGNORES = 60, 400, 10


def python_files() -> Iterator[Path]:
    for root in CODE:
        for path in sorted(root.rglob("*.py")):
            if "gen" not in path.relative_to(ROOT).parts:
                yield path


def sql_strings(source: str) -> list[str]:
    """The string literals of a module that are not docstrings (f-strings by their literal parts, joined)."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else " {} " for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append(node.value)
    return out


def writes(source: str) -> set[str]:
    """The tables a module's SQL writes."""
    return {m.group(2) for text in sql_strings(source) for m in WRITE.finditer(text) if m.group(2) not in NOT_TABLES}


def owners() -> dict[str, str]:
    """table → owner, from the ownership table of docs/architecture.md."""
    section = DOC.read_text().split("## Tables and their owners", 1)[1].split("\n## ", 1)[0]
    rows = re.finditer(r"^\| ([a-z_]+) \| ([a-z]+) \|", section, re.MULTILINE)
    return {m.group(1): m.group(2) for m in rows if m.group(1) != "table"}


def migration_tables() -> set[str]:
    sql = "\n".join(p.read_text() for p in (ROOT / "shared" / "runtime" / "migrations").glob("*.sql"))
    db = (ROOT / "shared" / "runtime" / "db.py").read_text()
    return set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)", sql + db))


def writer_of(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    if rel[0] == "services":
        return rel[1]
    return "migrations" if path.name == "db.py" and rel[:2] == ("shared", "runtime") else "/".join(rel)


def test_every_table_has_one_owner_and_only_the_owner_writes_it() -> None:
    owned = owners()
    tables = migration_tables()
    assert tables, "no tables found in the migrations"
    assert set(owned) == tables, f"tables without an owner in docs/architecture.md: {tables - set(owned)}; " \
                                 f"named there but not in the migrations: {set(owned) - tables}"
    found: dict[str, set[str]] = {}
    for path in python_files():
        for table in writes(path.read_text()):
            found.setdefault(table, set()).add(writer_of(path))
    assert found, "no SQL writes found: the scan is broken"
    wrong = {t: sorted(w - {owned.get(t, "?")}) for t, w in found.items() if w - {owned.get(t, "?")}}
    assert not wrong, f"tables written by a service that does not own them: {wrong}"
    assert {owned[t] for t in found} >= {"ingest", "embed", "search", "chat"}


def test_the_ownership_scan_finds_a_foreign_write() -> None:
    foreign = 'async def f(conn):\n    """UPDATE documents SET x = 1 in a docstring does not count."""\n' \
              '    await conn.execute("UPDATE documents SET embedded = true WHERE id = %s", (1,))\n' \
              '    await conn.execute(f"INSERT INTO query_log (kind) VALUES ({1})")\n' \
              '    await conn.execute("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2")\n' \
              '    await conn.execute("SELECT 1 FROM chunks FOR UPDATE SKIP LOCKED")\n'
    assert writes(foreign) == {"documents", "query_log", "t"}


def test_the_doc_names_only_tables_and_subjects_that_exist() -> None:
    text = DOC.read_text()
    contracts = (ROOT / "shared" / "contracts.py").read_text()
    subjects = set(re.findall(r'_SUBJECT = "([a-z.]+)"', contracts))
    named = set(re.findall(r"\| `(tessera\.[a-z.]+)`", text))
    assert named == subjects, f"subjects in the doc but not in contracts: {named - subjects}; missing from the doc: {subjects - named}"
    tables = migration_tables()
    for table in re.findall(r"`([a-z_]+)`", text.split("## A search", 1)[1]):
        if "_" in table or table in {"documents", "chunks", "postings", "messages", "conversations"}:
            assert table in tables, f"the walk names a table that does not exist: {table}"


def test_every_subject_is_published_and_heard() -> None:
    contracts = (ROOT / "shared" / "contracts.py").read_text()
    names = re.findall(r"^([A-Z_]+_SUBJECT) = ", contracts, re.MULTILINE)
    code = {p: p.read_text() for root in CODE for p in root.rglob("*.py") if "gen" not in p.relative_to(ROOT).parts}
    for name in names:
        published = [p for p, s in code.items() if re.search(rf"(publish|request)\((?:[^()]*, )?{name}\b", s)]
        heard = [p for p, s in code.items() if re.search(rf"(subscribe|WorkQueue)\((?:[^()]*, )?{name}\b", s)]
        assert published and heard, f"{name}: published in {published}, heard in {heard}: an event nobody hears is deleted"


def imports_of(path: Path) -> set[str]:
    """The project modules a module imports (type-checking imports too: a cycle is a cycle)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("services", "shared"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] in ("services", "shared"))
    return out


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle() -> None:
    modules = {module_name(p): p for p in python_files()}
    graph = {m: {i for i in imports_of(p) if i in modules and i != m and not m.startswith(i + ".")} for m, p in modules.items()}
    assert not cycles(graph), cycles(graph)
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def declaration_tables() -> set[str]:
    section = DOC.read_text().split("## Modules over 400 lines", 1)[1]
    return set(re.findall(r"^- `([^`]+)`", section, re.MULTILINE))


def test_functions_and_modules_stay_small() -> None:
    allowed = declaration_tables()
    long_functions, big_modules = [], []
    for path in python_files():
        source = path.read_text()
        rel = str(path.relative_to(ROOT))
        if source.count("\n") > MAX_MODULE_LINES and rel not in allowed:
            big_modules.append(f"{rel} ({source.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(source)):
            n = node.end_lineno - node.lineno + 1 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno else 0
            if n > MAX_FUNCTION_LINES:
                assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                long_functions.append(f"{rel}:{node.lineno} {node.name} ({n} lines)")
    assert not big_modules, f"modules over {MAX_MODULE_LINES} lines (not declaration tables named in docs/architecture.md): {big_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_few_type_ignores() -> None:
    found = [f"{p.relative_to(ROOT)}:{i}" for p in python_files() for i, line in enumerate(p.read_text().splitlines(), 1)
             if "type: ignore" in line]
    assert len(found) <= MAX_TYPE_IGNORES, f"{len(found)} type: ignore comments (at most {MAX_TYPE_IGNORES}): {found}"


def broad_handlers(source: str) -> list[int]:
    """Lines of ``except Exception`` / ``except BaseException`` handlers without a 'boundary' comment saying why. A handler
    that cleans up and raises again catches nothing, and needs none."""
    lines = source.splitlines()
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            names = [e.id for e in (node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]) if isinstance(e, ast.Name)]
            reraises = isinstance(node.body[-1], ast.Raise) and node.body[-1].exc is None
            if {"Exception", "BaseException"} & set(names) and not reraises and "boundary" not in lines[node.lineno - 1]:
                out.append(node.lineno)
    return out


def test_every_broad_except_is_a_boundary_that_says_why() -> None:
    found = [f"{p.relative_to(ROOT)}:{n}" for p in python_files() for n in broad_handlers(p.read_text())]
    assert not found, f"except Exception without '# ... boundary: why' on its line: {found}"
    assert broad_handlers("try:\n    pass\nexcept Exception:\n    pass\n") == [3]
    assert broad_handlers("try:\n    pass\nexcept Exception:  # boundary: a request\n    pass\n") == []
    assert broad_handlers("try:\n    pass\nexcept BaseException:\n    undo()\n    raise\n") == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_has_its_store_and_a_thin_server(service: str) -> None:
    server = ROOT / "services" / service / "server.py"
    assert server.exists()
    assert not re.search(r'"(SELECT|INSERT|UPDATE|DELETE) ', server.read_text()), f"{service}/server.py holds SQL: it belongs in a store"
