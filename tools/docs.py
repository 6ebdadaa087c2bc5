#!/usr/bin/env python
"""The project's build tooling, kept outside the importable library: build the documentation site from the
notebooks (with Quarto where it is installed, offline with Sphinx everywhere else), render README.md from
`nbs/index.ipynb`, and check that the library, the notebooks and the README agree.

    python tools/docs.py docs [--quarto]   # the site, into _docs/ (`make docs`)
    python tools/docs.py readme            # README.md from nbs/index.ipynb (`make readme`)
    python tools/docs.py sync              # fail, naming the files, if nbdev-export/nbdev-clean/readme would change any
"""

# nbdev renders its sites with Quarto, which cannot be installed on every machine (PyPI's `quarto-cli` downloads its
# binary at install time, so offline and locked-down machines have none). `build_docs` uses `nbdev-docs` when `quarto` is
# on the `PATH`, and otherwise takes an offline route that shares nbdev's first half:
#
# 1. the notebooks are copied to `_exec/` and **run**, so every example on the site shows the output it produces today
#    (cells with a test flag such as `slow`, `gpu` or `api`, and `#| eval: false` cells, are shown but not run);
# 2. nbdev's own processing (`proc_nbs`, the function behind `nbdev-proc-nbs`) turns them into `_proc/`: hidden cells
#    dropped, `#|` directives applied, and a `show_doc` API reference rendered for every exported symbol;
# 3. the processed notebooks are translated for Sphinx: the Quarto front matter becomes the page title and summary,
#    Quarto cell options (`#| echo: false`, `#| include: false`) become `myst-nb` tags, and the option lines go;
# 4. Sphinx with `myst-nb` renders them into `_docs/` with the `furo` theme, whose assets and search index are all
#    local: a page loads nothing from a CDN, so the site works from a laptop on a plane.
#
# We call `proc_nbs` rather than the `nbdev-proc-nbs` command because the command first tries to download and install
# Quarto when it is missing, which is never what an offline build wants.
from __future__ import annotations
import json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path
import yaml


def _cfg(root:Path):
    from nbdev.config import get_config
    return get_config(Path(root)/'pyproject.toml')

def _flags(cfg)->list:
    "The project's test flags (a list in pyproject.toml, a string in old settings files)"
    f = cfg.tst_flags
    return f.split() if isinstance(f, str) else list(f)

def _nbs(folder:Path)->list:
    "Notebooks under `folder` in name order, skipping `_`/`.` folders and files as nbdev does"
    return sorted(p for p in Path(folder).rglob('*.ipynb')
                  if not any(part.startswith(('_', '.')) for part in p.relative_to(folder).parts))

# A page shows what an example prints, not the progress bars and log lines of the libraries it calls: the notebooks run
# with those turned off, and any that still reach a cell's output are taken out before the page is made.
NOISE = re.compile(r'\d+%\|[^\n]*\||\d+(\.\d+)?(it|s)/(s|it)\]|^(INFO|DEBUG|WARNING):[\w.]+:', re.M)

def _quiet():
    "Turn off the progress bars and info logs of tqdm, transformers, datasets and the hub for this process"
    os.environ.update(TQDM_DISABLE='1', HF_HUB_DISABLE_PROGRESS_BARS='1', HF_DATASETS_DISABLE_PROGRESS_BARS='1',
                      TRANSFORMERS_VERBOSITY='error', TRANSFORMERS_NO_ADVISORY_WARNINGS='1')
    try:
        from transformers.utils import logging as tl
        tl.disable_progress_bar(); tl.set_verbosity_error()
    except ImportError: pass

def without_noise(nb:dict)->dict:
    "Notebook `nb` without the stream outputs that are progress bars or library log lines"
    for c in nb['cells']:
        if 'outputs' in c:
            c['outputs'] = [o for o in c['outputs'] if not (o.get('output_type') == 'stream'
                                                             and NOISE.search(''.join(o.get('text', ''))))]
    return nb

def execute_nbs(src:Path, # a notebook folder (normally `nbs/`)
                dest:Path, # where to put the executed copies (replaced)
                skip_flags:list|None=None, # cells with these flags are not run (default: the project's `tst_flags`)
               )->list:
    "Copy `src` to `dest` and run every notebook there, saving outputs; returns the executed notebooks"
    from nbdev.test import test_nb
    src, dest = Path(src).resolve(), Path(dest).resolve()
    if skip_flags is None: skip_flags = _flags(_cfg(src.parent))
    if dest.exists(): shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '__pycache__'))
    nbs, failed = _nbs(dest), []
    _quiet()
    for fn in nbs:
        ok, _ = test_nb(fn, skip_flags=skip_flags, save=True, showerr=True)
        if not ok: failed.append(fn.relative_to(dest))
        fn.write_text(json.dumps(without_noise(json.loads(fn.read_text())), indent=1, ensure_ascii=False))
    if failed: raise RuntimeError(f'notebooks failed while building the docs: {", ".join(map(str, failed))}')
    return nbs

def cell_options(src:str)->tuple:
    "`(options, code)`: the leading `#| key: value` lines of a cell as a dict, and the rest of its source"
    opts, lines = {}, src.splitlines()
    while lines and lines[0].startswith('#|'):
        k, _, v = lines.pop(0)[2:].partition(':')
        opts[k.strip()] = v.strip() or True
    return opts, '\n'.join(lines)

def front_matter(nb:dict)->dict:
    "The YAML front matter of a processed notebook (its first raw cell), or `{}`"
    c = next((c for c in nb['cells'] if c['cell_type'] == 'raw'), None)
    src = ''.join(c['source']).strip() if c else ''
    return (yaml.safe_load(src.strip('-\n')) or {}) if src.startswith('---') else {}

def page_name(nb:dict, default:str)->str:
    "The page's file name without extension: the front matter's `output-file`, else `default`"
    return Path(front_matter(nb).get('output-file', default)).stem

def _title_cell(fm:dict)->dict:
    src = f"# {fm.get('title', 'Untitled')}\n\n" + (f"> {fm['description']}\n" if fm.get('description') else '')
    return dict(cell_type='markdown', id='title', metadata={}, source=src)

_CELL_KEYS = {'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count', 'attachments'}

def _anchor(name:str)->str:
    "The id docutils gives a heading (nbdev's anchors are symbol names: `read_predictions` -> `read-predictions`)"
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')

def local_links(site_dir:Path, site:str)->int:
    "Make the built pages' links to the site's own published address (`site`) relative; how many pages changed"
    n, link = 0, re.compile(r'href="' + re.escape(site.rstrip('/')) + r'/([^"#]*)(?:#([^"]*))?"')
    for page in Path(site_dir).rglob('*.html'):
        html = page.read_text()
        up = '../' * (len(page.relative_to(site_dir).parts) - 1)
        new = link.sub(lambda m: f'href="{up}{m[1]}' + (f'#{_anchor(m[2])}' if m[2] else '') + '"', html)
        if new != html: page.write_text(new); n += 1
    return n

def to_sphinx(nb:dict)->dict:
    "A processed (`_proc`) notebook translated for myst-nb"
    cells, fm = [], front_matter(nb)
    nb = {**nb, 'cells': [{k: v for k, v in c.items() if k in _CELL_KEYS} for c in nb['cells']]}
    for c in nb['cells']:
        if c['cell_type'] == 'raw':
            if fm and ''.join(c['source']).strip().startswith('---'): cells.append(_title_cell(fm))
            continue
        if c['cell_type'] != 'code': cells.append({**c, 'metadata': {}}); continue
        opts, code = cell_options(''.join(c['source']))
        if str(opts.get('include', '')).lower() == 'false': continue
        tags = ['remove-input'] if str(opts.get('echo', '')).lower() == 'false' else []
        cells.append({**c, 'source': code, 'metadata': dict(tags=tags) if tags else {}})
    return {**nb, 'cells': cells, 'metadata': dict(kernelspec=dict(name='python3', display_name='Python 3',
                                                                   language='python'))}

CONF = '''
project = {title!r}
html_title = {title!r}
extensions = ["myst_nb"]
nb_execution_mode = "off"
nb_merge_streams = True
html_theme = "furo"
html_static_path = []
html_show_sourcelink = False
html_copy_source = False
html_show_sphinx = False
html_show_copyright = False
exclude_patterns = ["_build"]
suppress_warnings = ["myst.header", "misc.highlighting_failure", "docutils"]
'''

def _toc(pages:list)->str:
    return '\n\n```{toctree}\n:hidden:\n:maxdepth: 1\n\n' + '\n'.join(pages) + '\n```\n'

def sphinx_project(proc:Path, # the processed notebooks (`_proc`)
                   src:Path, # where to write the Sphinx sources (replaced)
                   title:str='learn_reason')->Path:
    "Write a Sphinx project for the processed notebooks into `src`, one page per notebook under nbdev's page name"
    if src.exists(): shutil.rmtree(src)
    src.mkdir(parents=True)
    nbs = {rel: json.loads((proc/rel).read_text()) for rel in (f.relative_to(proc) for f in _nbs(proc))}
    names = {rel: str(rel.parent/page_name(nb, rel.stem)) for rel, nb in nbs.items()}
    pages = [n for rel, n in names.items() if rel.stem != 'index']
    for rel, nb in nbs.items():
        nb = to_sphinx(nb)
        if rel.stem == 'index':
            nb['cells'].append(dict(cell_type='markdown', id='toc', metadata={}, source=_toc(pages)))
        dest = src/(names[rel] + '.ipynb')
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(nb))
    if not any(rel.stem == 'index' for rel in nbs): (src/'index.md').write_text(f'# {title}\n' + _toc(pages))
    (src/'conf.py').write_text(CONF.format(title=title))
    return src

def _run(*cmd, cwd=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f'{" ".join(map(str, cmd))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}')
    return r

def _bin(name): return str(Path(sys.executable).parent/name) if (Path(sys.executable).parent/name).exists() else name

def _proc(root:Path, nbs:Path)->Path:
    "nbdev's docs processing of the notebooks in `nbs`, into `root/_proc`"
    from nbdev.serve import proc_nbs
    cwd = os.getcwd()
    try:
        os.chdir(root)
        return proc_nbs(str(nbs), n_workers=0, force=True)
    finally: os.chdir(cwd)

def build_docs(root='.', # the repository root (where pyproject.toml is)
               out:str='_docs', # the site folder, relative to `root`
               quarto:bool|None=None, # use Quarto (`nbdev-docs`); default: when `quarto` is on the PATH
              )->Path:
    "Build the documentation site from the notebooks"
    root = Path(root).resolve()
    if quarto or (quarto is None and shutil.which('quarto')):
        _run(_bin('nbdev-docs'), cwd=root); return root/out
    cfg = _cfg(root)
    execute_nbs(cfg.nbs_path, root/'_exec')
    src = sphinx_project(_proc(root, root/'_exec'), root/'_proc'/'_sphinx', title=cfg.title)
    build = root/'_proc'/'_build'  # myst-nb writes scratch files beside the output folder: keep them in _proc
    if build.exists(): shutil.rmtree(build)
    r = _run(sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-j', '1', str(src), str(build/'html'), cwd=root)
    if r.stderr.strip(): print(r.stderr.strip(), file=sys.stderr)
    local_links(build/'html', f"{cfg.doc_host.rstrip('/')}/{cfg.doc_baseurl.strip('/')}")  # nbdev links to symbols
    if (root/out).exists(): shutil.rmtree(root/out)
    shutil.move(build/'html', root/out)
    return root/out

def _out_text(o:dict)->str|None:
    "The text a reader should see for one cell output, or None"
    if o.get('output_type') == 'stream': return ''.join(o.get('text', ''))
    d = o.get('data', {})
    if 'text/markdown' in d: return None  # rendered below as markdown
    return ''.join(d['text/plain']) if 'text/plain' in d else None

def nb_markdown(nb:dict)->str:
    "A notebook as Markdown: prose, code and text outputs; hidden cells and `#|` lines left out"
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': parts.append(src.strip()); continue
        if c['cell_type'] != 'code': continue
        opts, code = cell_options(src)
        if 'hide' in opts or str(opts.get('include', '')).lower() == 'false' or code.strip().startswith('#| hide'):
            continue
        if code.strip(): parts.append(f'```python\n{code.strip()}\n```')
        for o in c.get('outputs', []):
            if md := o.get('data', {}).get('text/markdown'): parts.append(''.join(md).strip())
            elif (t := _out_text(o)) and t.strip(): parts.append(f'```\n{t.rstrip()}\n```')
    return '\n\n'.join(parts) + '\n'

_README_HEAD = ('<!-- Generated from nbs/index.ipynb by `make readme` (tools/docs.py): '
                'edit the notebook, not this file. -->\n\n')

def render_readme(root='.')->str:
    "README.md's text: `nbs/index.ipynb` run in a scratch folder and rendered as Markdown"
    root = Path(root).resolve()
    cfg = _cfg(root)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        fn = Path(tmp)/'index.ipynb'
        shutil.copy(cfg.nbs_path/'index.ipynb', fn)
        from nbdev.test import test_nb
        if not test_nb(fn, skip_flags=_flags(cfg), save=True)[0]: raise RuntimeError('nbs/index.ipynb failed to run')
        return _README_HEAD + nb_markdown(json.loads(fn.read_text()))

def _snapshot(root:Path, cfg)->dict:
    files = [*Path(cfg.lib_path).rglob('*.py'), *_nbs(cfg.nbs_path), root/'README.md']
    return {p: p.read_bytes() for p in files if p.is_file() and '__pycache__' not in p.parts}

def check_sync(root='.')->list:
    "Files that `nbdev-export`, `nbdev-clean` or the README render would change (every file is left as it was)"
    from nbdev.doclinks import nbdev_export
    from nbdev.clean import nbdev_clean
    root = Path(root).resolve()
    cfg = _cfg(root)
    before, after, cwd = _snapshot(root, cfg), {}, os.getcwd()
    try:
        os.chdir(root)
        nbdev_export.__wrapped__(); nbdev_clean.__wrapped__()
        (root/'README.md').write_text(render_readme(root))
        after = _snapshot(root, cfg)
    finally:
        for p in set(after) - set(before): p.unlink()
        for p, b in before.items():
            if not p.exists() or p.read_bytes() != b: p.write_bytes(b)
        os.chdir(cwd)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    return sorted(str(p.relative_to(root)) for p in changed)


def _root()->Path:
    "The repository root: the folder of the nearest `pyproject.toml` with a `[tool.nbdev]` section"
    from nbdev.config import get_config
    return get_config().config_path


def main(argv=None)->int:
    import argparse
    p = argparse.ArgumentParser(prog='tools/docs.py', description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    sub.add_parser('docs', help='build the documentation site into _docs/').add_argument(
        '--quarto', action='store_true', help='use Quarto (nbdev-docs) even where it is not on the PATH')
    sub.add_parser('readme', help='write README.md from nbs/index.ipynb')
    sub.add_parser('sync', help='fail if the library, the notebooks or README.md are not what the notebooks make')
    a = p.parse_args(argv)
    root = _root()
    if a.cmd == 'docs': print(f'docs: {build_docs(root, quarto=True if a.quarto else None)/"index.html"}')
    elif a.cmd == 'readme':
        (root/'README.md').write_text(render_readme(root))
        print(f'wrote {root/"README.md"}')
    elif changed := check_sync(root):
        print('not in sync; run `nbdev-export`, `nbdev-clean` and `make readme`, then commit. These files would change:'
              '\n  ' + '\n  '.join(changed), file=sys.stderr)
        return 1
    else: print('in sync: learn_reason/ = nbdev-export(nbs/), nbs/ = nbdev-clean(nbs/), README.md = nbs/index.ipynb')
    return 0


if __name__ == '__main__': sys.exit(main())
