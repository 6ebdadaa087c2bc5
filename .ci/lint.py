"""`make lint`: ruff over the exported library (pyproject.toml's [tool.ruff]: 120 columns, no unused imports).

Every finding fails, except a too-long line that nbdev-export writes itself and no notebook cell can shorten: a
module's docstring (the notebook's one-line description) and its `__all__` list (nbdev wraps the list at 120 columns,
then puts `__all__ = ` in front). Those lines are read from each module's syntax tree, not guessed from their text.
"""
import ast, json, subprocess, sys
from pathlib import Path

def nbdev_lines(path:Path)->set:
    "Line numbers of the module docstring and of the `__all__` assignment"
    tree, out = ast.parse(path.read_text()), set()
    for n in tree.body:
        doc = isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str) and n is tree.body[0]
        names = [t.id for t in getattr(n, 'targets', []) if isinstance(t, ast.Name)]
        if doc or '__all__' in names: out |= set(range(n.lineno, n.end_lineno + 1))
    return out

def main()->int:
    r = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--output-format', 'json', '--exit-zero', 'learn_reason'],
                       capture_output=True, text=True)
    if r.returncode: print(r.stderr, file=sys.stderr); return r.returncode
    found = json.loads(r.stdout or '[]')
    keep = [f for f in found if not (f['code'] == 'E501' and f['location']['row'] in nbdev_lines(Path(f['filename'])))]
    for f in keep: print(f"{Path(f['filename']).relative_to(Path.cwd())}:{f['location']['row']}: {f['code']} {f['message']}")
    print(f'lint: {len(keep)} problems ({len(found) - len(keep)} long lines that nbdev-export writes itself, allowed)')
    return 1 if keep else 0

if __name__ == '__main__': sys.exit(main())
