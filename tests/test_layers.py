"""The library's layers, read from its imports (ast). Each subpackage is a layer; a layer imports only the layers
below it, teachers and students (two layers at one height) never import each other, and no module reaches into
another's private (`_name`) functions. The CLI (`learn_reason/cli.py`) sits on top and calls public names only."""
import ast
from conftest import ROOT

PKG = ROOT/'learn_reason'
# layer -> the layers it may import (besides itself)
ALLOWED = {
    'core': set(),
    'data': {'core'},
    'teachers': {'core', 'data'},
    'students': {'core', 'data'},
    'methods': {'core', 'data', 'teachers', 'students'},
    'repro': {'core', 'data', 'teachers', 'students', 'methods'},
    'cli': {'core', 'data', 'teachers', 'students', 'methods', 'repro'},
}


def modules()->dict:
    "`{dotted name under learn_reason: ast}` for every module nbdev exports"
    out = {}
    for p in PKG.rglob('*.py'):
        if p.name in ('__init__.py', '_modidx.py'): continue
        out['.'.join(p.relative_to(PKG).with_suffix('').parts)] = ast.parse(p.read_text())
    return out


def layer(mod:str)->str: return mod.split('.')[0]


def imports(mod:str, tree)->list:
    "`[(module imported, name or None, line)]` for every learn_reason import in `mod`, at any depth (lazy ones too)"
    pkg, out = mod.split('.')[:-1], []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            if n.level: base = pkg[:len(pkg) - n.level + 1] + ([n.module] if n.module else [])
            elif (n.module or '').startswith('learn_reason'): base = n.module.split('.')[1:]
            else: continue
            base = '.'.join(p for b in base for p in b.split('.'))
            for a in n.names:
                sub = f'{base}.{a.name}' if base else a.name
                if sub.replace('.', '/') and (PKG/(sub.replace('.', '/') + '.py')).exists(): out.append((sub, None, n.lineno))
                else: out.append((base, a.name, n.lineno))
        elif isinstance(n, ast.Import):
            out += [(a.name.removeprefix('learn_reason.'), None, n.lineno) for a in n.names if a.name.startswith('learn_reason.')]
    return out


def test_every_module_sits_in_a_layer():
    assert sorted(m for m in modules() if layer(m) not in ALLOWED) == [], 'a new subpackage needs a place in ALLOWED'


def test_no_layer_imports_one_above_it_or_beside_it():
    bad = [f'{m}:{line} ({layer(m)}) imports {dep} ({layer(dep)})'
           for m, tree in modules().items() for dep, _, line in imports(m, tree)
           if dep and layer(dep) != layer(m) and layer(dep) not in ALLOWED[layer(m)]]
    assert not bad, '\n'.join(bad)


def test_imports_resolve_to_modules():
    "The test reads every import: each names a module of the library (so a rule above cannot pass by misreading one)"
    mods = set(modules())
    bad = [f'{m}:{line} imports {dep}' for m, tree in modules().items() for dep, _, line in imports(m, tree)
           if dep not in mods]
    assert not bad, '\n'.join(bad)


def test_no_module_uses_another_modules_private_names():
    bad = []
    for m, tree in modules().items():
        whole = {}  # modules imported whole, by the name they go by here
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and n.level: whole.update({(a.asname or a.name): a.name for a in n.names})
            elif isinstance(n, ast.Import):
                whole.update({a.asname: a.name for a in n.names if a.name.startswith('learn_reason.') and a.asname})
        mods = {d for d, name, _ in imports(m, tree) if name is None}
        for dep, name, line in imports(m, tree):
            if name and name.startswith('_') and not name.startswith('__') and dep != m:
                bad.append(f'{m}:{line} imports {dep}.{name}')
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in whole \
                    and n.attr.startswith('_') and not n.attr.startswith('__') and mods:
                bad.append(f'{m}:{n.lineno} uses {whole[n.value.id]}.{n.attr}')
    assert not bad, '\n'.join(bad)


def test_the_rules_catch_a_breach(tmp_path):
    "The rules on a made-up module: a data module importing a teacher's private helper breaks two of them"
    tree = ast.parse('from ..teachers.cache import _key\nfrom ..core import settings as S\nS._convert')
    deps = imports('data.fake', tree)
    assert ('teachers.cache', '_key', 1) in deps and ('core.settings', None, 2) in deps
    assert 'teachers' not in ALLOWED['data']
