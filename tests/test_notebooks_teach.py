"""Notebooks that teach (issue 15): every run of exported cells is short and followed by an example, functions are
short, and a function with many parameters takes a small dataclass instead. Read from the notebooks and the library."""
import ast, json, re
from conftest import ROOT

NBS = sorted(p for p in (ROOT/'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)
MAX_RUN, MAX_LINES, MAX_PARAMS = 3, 50, 8
EXPORT = re.compile(r'^#\|\s*(export|exporti|exports)\b', re.M)


def _kind(c)->str:
    "'export', 'example' (a code cell that runs something: not an import, not hidden) or 'other'"
    if c['cell_type'] != 'code': return 'other'
    src = ''.join(c['source'])
    if EXPORT.search(src): return 'export'
    code = [l for l in src.splitlines() if l.strip() and not l.startswith('#')]
    if not code or re.search(r'^#\|\s*(hide|default_exp)', src, re.M) and not re.search(r'test_eq|assert', src): return 'other'
    if all(l.startswith(('import ', 'from ')) for l in code): return 'other'
    return 'example'


def export_runs(nb:dict)->list:
    "`[(first cell, length)]` of each run of more than MAX_RUN exported cells with no example between them"
    runs, start, n = [], None, 0
    for i, c in enumerate(nb['cells'] + [dict(cell_type='code', source='end()')]):
        k = _kind(c)
        if k == 'export': start, n = (i if n == 0 else start), n + 1
        elif k == 'example':
            if n > MAX_RUN: runs.append((start, n))
            n = 0
    return runs


def test_no_long_runs_of_exported_cells_without_an_example():
    bad = [f'{p.relative_to(ROOT)}: cells {s}-{s + n - 1} ({n} exported cells in a row)'
           for p in NBS for s, n in export_runs(json.loads(p.read_text()))]
    assert not bad, '\n'.join(bad)


def _functions():
    for p in sorted((ROOT/'learn_reason').rglob('*.py')):
        if p.name == '_modidx.py': continue
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)): yield p.relative_to(ROOT), n


def test_no_function_over_50_lines():
    bad = [f'{p}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)' for p, n in _functions()
           if n.end_lineno - n.lineno + 1 > MAX_LINES]
    assert not bad, '\n'.join(bad)


def test_functions_with_many_parameters_take_a_dataclass():
    def count(a): return len([x for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ('self', 'cls')])
    bad = [f'{p}:{n.lineno} {n.name} ({count(n.args)} parameters)' for p, n in _functions() if count(n.args) > MAX_PARAMS]
    assert not bad, '\n'.join(bad)


def mixed_cells(nb:dict)->list:
    "Indices of shown code cells that mix imports with other code (nbdev's docs processing runs such cells apart)"
    out = []
    for i, c in enumerate(nb['cells']):
        src = ''.join(c['source'])
        if c['cell_type'] != 'code' or re.search(r'^#\|\s*hide\b', src, re.M): continue
        code = re.sub(r'^(\s*)await ', r'\1', '\n'.join(l for l in src.splitlines() if not l.startswith(('#|', '%', '!'))),
                      flags=re.M)
        try: body = ast.parse(code).body
        except SyntaxError: continue
        imps = [isinstance(n, (ast.Import, ast.ImportFrom)) for n in body]
        if any(imps) and not all(imps): out.append(i)
    return out


def test_imports_sit_in_cells_of_their_own():
    assert mixed_cells(dict(cells=[dict(cell_type='code', source='import os\nx = 1')])) == [0]
    bad = [f'{p.relative_to(ROOT)}: cell {i}' for p in NBS for i in mixed_cells(json.loads(p.read_text()))]
    assert not bad, '\n'.join(bad)
