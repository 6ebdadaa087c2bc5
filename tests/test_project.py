"The project's own machinery: the sync check, the venv and its Jupyter kernel, papermill, nbdev-clean keeping tags."
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT, BIN

IN_PROJECT_VENV = Path(sys.prefix).resolve() == (ROOT/'.venv').resolve()


@pytest.fixture
def repo(tmp_path)->Path:
    "A scratch copy of the repository's sources"
    for f in ('pyproject.toml', 'settings.ini', 'README.md'): shutil.copy(ROOT/f, tmp_path/f)
    for d in ('nbs', 'learn_reason', 'tools'):
        shutil.copytree(ROOT/d, tmp_path/d, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    return tmp_path


def sync(repo, env)->subprocess.CompletedProcess:
    "`python tools/docs.py sync` (build tooling, outside the library) in the scratch copy, on the venv's python"
    return subprocess.run([str(BIN/'python'), str(repo/'tools'/'docs.py'), 'sync'], capture_output=True, text=True,
                          env=env, cwd=repo, timeout=600)


def test_sync_passes_on_the_repository_and_catches_drift(repo, env):
    env = {**env, 'LEARN_REASON_SETTINGS': str(repo/'settings.ini')}
    r = sync(repo, env)
    assert r.returncode == 0, r.stderr
    lib = repo/'learn_reason'/'data'/'answers.py'
    lib.write_text(lib.read_text() + '\n# edited by hand\n')
    nb = repo/'nbs'/'data/10_synthetic.ipynb'
    d = json.loads(nb.read_text()); d['cells'][1]['metadata']['collapsed'] = True; nb.write_text(json.dumps(d, indent=1))
    readme = repo/'README.md'; readme.write_text(readme.read_text().replace('make demo', 'make dmeo', 1))
    before = {p: p.read_bytes() for p in (lib, nb, readme)}
    r = sync(repo, env)
    assert r.returncode == 1
    for f in ('learn_reason/data/answers.py', 'nbs/data/10_synthetic.ipynb', 'README.md'): assert f in r.stderr
    assert all(p.read_bytes() == b for p, b in before.items()), 'the check reports; it changes nothing'


def test_nbdev_clean_keeps_papermill_parameters_tag(repo):
    nb = repo/'nbs'/'99_params.ipynb'
    nb.write_text(json.dumps(dict(nbformat=4, nbformat_minor=5, metadata={}, cells=[
        dict(cell_type='code', id='p', execution_count=3, outputs=[], source='round = 0',
             metadata=dict(tags=['parameters'], collapsed=True, scrolled=True))])))
    subprocess.run([str(BIN/'nbdev-clean'), '--fname', str(nb)], cwd=repo, check=True, capture_output=True)
    cell = json.loads(nb.read_text())['cells'][0]
    assert cell['metadata'] == {'tags': ['parameters']} and cell['execution_count'] is None


@pytest.mark.skipif(not IN_PROJECT_VENV, reason='runs inside the project .venv that make creates')
def test_second_make_reinstalls_nothing():
    r = subprocess.run(['make', '-q', 'install'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, 'the .venv stamp is up to date, so `make demo`/`make test` go straight to work'


@pytest.mark.skipif(not IN_PROJECT_VENV, reason='runs inside the project .venv that make creates')
def test_kernel_registered_in_the_venv():
    out = subprocess.run([str(BIN/'jupyter'), 'kernelspec', 'list', '--json'], capture_output=True, text=True, check=True).stdout
    spec = json.loads(out)['kernelspecs']['learn-reason']
    assert Path(spec['resource_dir']).resolve().is_relative_to((ROOT/'.venv').resolve())
    assert Path(spec['spec']['argv'][0]).parent == BIN   # the venv's own python, not the one it was made from


@pytest.mark.skipif(not IN_PROJECT_VENV, reason='runs inside the project .venv that make creates')
def test_papermill_runs_a_parameterised_notebook_on_the_kernel(tmp_path, env):
    import papermill as pm
    src, out = tmp_path/'in.ipynb', tmp_path/'out.ipynb'
    cells = [dict(cell_type='code', id='a', metadata=dict(tags=['parameters']), outputs=[], execution_count=None,
                  source="dataset = 'coin_flip'\nn = 2"),
             dict(cell_type='code', id='b', metadata={}, outputs=[], execution_count=None,
                  source="from learn_reason.data.datasets import load\nprint(len(load(dataset, 'all', source='synthetic', n=n)))")]
    src.write_text(json.dumps(dict(nbformat=4, nbformat_minor=5, cells=cells, metadata=dict(
        kernelspec=dict(name='learn-reason', display_name='Python (learn-reason)', language='python')))))
    pm.execute_notebook(str(src), str(out), parameters=dict(n=5), kernel_name='learn-reason', progress_bar=False, cwd=str(tmp_path))
    outs = [o for c in json.loads(out.read_text())['cells'] for o in c.get('outputs', [])]
    assert any(o.get('text', [''])[0].strip() == '5' if isinstance(o.get('text'), list) else o.get('text', '').strip() == '5' for o in outs)
