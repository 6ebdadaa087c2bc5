"""The library's layers, read from its imports (ast): a lower layer never imports a higher one, and no module reaches
into another's private names. A new module must be given a layer here."""
import ast
from pathlib import Path
from conftest import ROOT

PKG = ROOT/'learn_reason'
LAYERS = {  # layer -> its modules, lowest first
    'core': ['config'],
    'data': ['synthetic', 'data', 'answers', 'prompts'],
    'teachers': ['teacher', 'cache', 'doctor', 'run', 'openai_teacher', 'scripted', 'replay', 'local_teacher', 'batch',
                 'serve', 'stage'],
    'students': ['students', 'formats', 'generate', 'train'],
    'methods': ['recipes', 'pipeline', 'finetune_cot', 'learn_to_reason', 'mapd'],
    'repro': ['testbed', 'results', 'repro'],
    'tools': ['docs', 'cli'],
}
RANK = {m: i for i, ms in enumerate(LAYERS.values()) for m in ms}
LAYER = {m: l for l, ms in LAYERS.items() for m in ms}
SIDEWAYS = {('teachers', 'students'), ('students', 'teachers')}  # two layers at one height: neither imports the other


def modules()->dict: return {p.stem: ast.parse(p.read_text()) for p in PKG.glob('*.py') if p.stem not in ('__init__', '_modidx')}


def imports(tree)->list:
    "`[(module imported, name or None, line)]` for every learn_reason import, at any depth (lazy ones too)"
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and (n.level == 1 or (n.module or '').startswith('learn_reason')):
            mod = (n.module or '') if n.level == 1 else (n.module or '').removeprefix('learn_reason').lstrip('.')
            for a in n.names:
                if mod: out.append((mod.split('.')[0], a.name, n.lineno))
                else: out.append((a.name, None, n.lineno))  # from learn_reason import x
        elif isinstance(n, ast.Import):
            out += [(a.name.split('.')[1], None, n.lineno) for a in n.names if a.name.startswith('learn_reason.')]
    return out


def test_every_module_has_a_layer():
    assert sorted(set(modules()) - set(RANK)) == [], 'give each new module a layer in LAYERS'


def test_no_layer_imports_one_above_it_or_beside_it():
    bad = []
    for m, tree in modules().items():
        for dep, _, line in imports(tree):
            if dep not in RANK or dep == m: continue
            up = RANK[dep] > RANK[m] and LAYER[dep] != LAYER[m]
            sideways = (LAYER[m], LAYER[dep]) in SIDEWAYS
            if up and LAYER[m] != 'tools' or sideways: bad.append(f'{m}.py:{line} ({LAYER[m]}) imports {dep} ({LAYER[dep]})')
    assert not bad, '\n'.join(bad)


def test_no_module_uses_another_modules_private_names():
    bad = []
    for m, tree in modules().items():
        aliases = {}  # a module imported whole, by the name it goes by here
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and (n.level == 1 and not n.module or n.module == 'learn_reason'):
                aliases.update({(a.asname or a.name): a.name for a in n.names})
            elif isinstance(n, ast.Import):
                aliases.update({a.asname: a.name.split('.')[1] for a in n.names if a.name.startswith('learn_reason.') and a.asname})
        for dep, name, line in imports(tree):
            if name and name.startswith('_') and not name.startswith('__') and dep != m:
                bad.append(f'{m}.py:{line} imports {dep}.{name}')
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases \
                    and n.attr.startswith('_') and not n.attr.startswith('__'):
                bad.append(f'{m}.py:{n.lineno} uses {aliases[n.value.id]}.{n.attr}')
    assert not bad, '\n'.join(bad)
