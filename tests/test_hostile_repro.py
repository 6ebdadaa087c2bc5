"Hostile sweep specs through the console script: names that would aim a cell's removal elsewhere, wrongly typed fields."
import json
from pathlib import Path
import nbformat, pytest
from conftest import cli
from learn_reason.core.settings import UserError


def tiny_nb(d:Path)->Path:
    "A notebook that runs in seconds and writes `metrics.json`: what a sweep cell needs"
    nb = nbformat.v4.new_notebook()
    body = "import json, pathlib\npathlib.Path(out, 'metrics.json').write_text(json.dumps(dict(rows=[dict(x=x)])))"
    nb.cells = [nbformat.v4.new_code_cell('x = 1\nout = None', metadata=dict(tags=['parameters'])),
                nbformat.v4.new_code_cell(body)]
    nb.metadata['kernelspec'] = dict(name='python3', display_name='Python 3', language='python')
    d.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(d/'tiny.ipynb'))
    return d/'tiny.ipynb'


def spec(tmp_path, body:str)->Path:
    "`tmp_path/spec/t.yaml` beside the tiny notebook"
    tiny_nb(tmp_path/'spec')
    p = tmp_path/'spec'/'t.yaml'
    p.write_text(body)
    return p


def refused(r, *says):
    "Exit 1, one line on stderr naming what is wrong, no traceback"
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and 'Traceback' not in r.stderr, (r.returncode, r.stderr[-2000:])
    assert lines[0].startswith('learn-reason: ') and all(s in lines[0] for s in says), lines


def tree(d:Path)->dict: return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file()}


def test_an_absolute_cell_name_is_refused_and_that_folder_kept(env, tmp_path):
    victim = tmp_path/'victim'
    victim.mkdir(); (victim/'precious.txt').write_text('years of work')
    s = spec(tmp_path, f'name: t\nruns:\n  - {{name: "{victim}", notebook: tiny.ipynb}}\n')
    for extra in ([], ['--dry-run']):
        r = cli('repro', s, '--root', tmp_path/'sweep', '--quiet', *extra, env=env)
        assert (victim/'precious.txt').read_text() == 'years of work', extra
        refused(r, 'runs[0].name', 'is not a plain folder name')
    assert not (tmp_path/'sweep').exists()


@pytest.mark.parametrize('name', ['.', '..'])
def test_a_dot_cell_name_is_refused_and_its_neighbours_kept(env, tmp_path, name):
    "`.` is the sweep folder, with another cell's results in it; `..` the folder of sweeps, with another sweep in it"
    runs = tmp_path/'runs'
    for d in (runs/'t'/'other', runs/'older-sweep'/'cell'):
        d.mkdir(parents=True)
        (d/'metrics.json').write_text(json.dumps(dict(rows=[dict(accuracy=61.5)])))
        (d/'done.json').write_text(json.dumps(dict(status='finished')))
    before = tree(runs)
    s = spec(tmp_path, f'name: t\nruns:\n  - {{name: "{name}", notebook: tiny.ipynb}}\n')
    for extra in ([], ['--dry-run']):
        r = cli('repro', s, '--root', runs/'t', '--quiet', *extra, env=env)
        assert tree(runs) == before, extra
        refused(r, 'runs[0].name', f"'{name}' is not a plain folder name")


@pytest.mark.parametrize('name', ['../outside', '/ABS/elsewhere', '.', '..', 'train'])
def test_a_hostile_sweep_name_is_refused(env, tmp_path, name):
    "The sweep's name is its folder in runs_dir (here tmp_path/runs) when no --root is given"
    name = name.replace('/ABS', str(tmp_path))
    (tmp_path/'runs').mkdir()
    s = spec(tmp_path, f'name: "{name}"\nruns:\n  - {{name: cell, notebook: tiny.ipynb}}\n')
    for extra in ([], ['--dry-run']):
        r = cli('repro', s, '--quiet', *extra, env=env)
        refused(r, 't.yaml: name')
        assert not (tmp_path/'outside').exists() and not (tmp_path/'elsewhere').exists()
        assert sorted(tmp_path.rglob('cell')) == [] and sorted(tmp_path.rglob('done.json')) == [], extra


BAD = [  # a spec's text, what the one-line error says
    ('- a\n- b\n', 't.yaml: the spec must be a mapping, got list'),
    ('just words\n', 't.yaml: the spec must be a mapping, got str'),
    ('name: [1]\nruns: [{notebook: tiny.ipynb}]\n', 't.yaml: name must be a string, got list'),
    ('name: 5\nruns: [{notebook: tiny.ipynb}]\n', 't.yaml: name must be a string, got int'),
    ('description: [a]\nruns: [{notebook: tiny.ipynb}]\n', 't.yaml: description must be a string, got list'),
    ('defaults: "x"\nruns: [{notebook: tiny.ipynb}]\n', 't.yaml: defaults must be a mapping, got str'),
    ('defaults: {1: 2, x: 3}\nruns: [{notebook: tiny.ipynb}]\n', 't.yaml: defaults has a key that is not a string: 1'),
    ('runs: {a: 1}\n', 't.yaml: runs must be a list, got dict'),
    ('reports: 3\n', 't.yaml: reports must be a list, got int'),
    ('runs: [5]\n', 't.yaml: runs[0] must be a mapping, got int'),
    ('runs: [{notebook: 7}]\n', 't.yaml: runs[0].notebook must be a string, got int'),
    ('runs: [{notebook: tiny.ipynb, params: 5}]\n', 't.yaml: runs[0].params must be a mapping, got int'),
    ('runs: [{notebook: tiny.ipynb, params: [1, 2]}]\n', 't.yaml: runs[0].params must be a mapping, got list'),
    ('runs: [{notebook: tiny.ipynb, params: {1: 2, x: 3}}]\n', 'runs[0].params has a key that is not a string: 1'),
    ('runs: [{notebook: tiny.ipynb, grid: [a, b]}]\n', 't.yaml: runs[0].grid must be a mapping, got list'),
    ('runs: [{notebook: tiny.ipynb, grid: {x: 3}}]\n', "t.yaml: runs[0] grid 'x' must be a non-empty list, got 3"),
    ('runs: [{notebook: tiny.ipynb, grid: {1: [2, 3], x: [4]}}]\n', 'runs[0].grid has a key that is not a string: 1'),
    ('runs: [{notebook: tiny.ipynb, name: [1]}]\n', 't.yaml: runs[0].name must be a string, got list'),
    ('reports: [{notebook: tiny.ipynb, params: x}]\n', 't.yaml: reports[0].params must be a mapping, got str'),
    ('runs: [{notebook: tiny.ipynb, 3: x, foo: y}]\n', 't.yaml: runs[0] has a key that is not a string: 3'),
    ('runs: [{notebook: tiny.ipynb, foo: y, bar: z}]\n', "t.yaml: runs[0] has unknown key(s) ['bar', 'foo']"),
    ('runs: [{notebook: tiny.ipynb,\n  params: {x: 1}\n', 't.yaml: not valid YAML'),
    ('runs: [{notebook: tiny.ipynb, params: {x: 2020-13-45}}]\n', 't.yaml: not valid YAML'),
    (b'\xff\xfe\x00runs: []\n', 't.yaml: cannot read it'),
]


def test_wrongly_typed_fields_are_one_line_errors_naming_the_field(env, tmp_path):
    s = spec(tmp_path, '')
    for body, says in BAD:
        s.write_bytes(body) if isinstance(body, bytes) else s.write_text(body)
        r = cli('repro', s, '--root', tmp_path/'sweep', '--quiet', env=env)
        refused(r, says)
        assert not (tmp_path/'sweep').exists(), body


def test_sweep_refuses_bad_jobs_and_threads_before_anything_runs(tmp_path):
    from learn_reason.repro.sweep import sweep
    s = spec(tmp_path, 'runs:\n  - {name: cell, notebook: tiny.ipynb}\n')
    for bad in (dict(jobs=0), dict(jobs=-2), dict(jobs=1.5), dict(jobs='2'), dict(jobs=True),
                dict(threads=0), dict(threads=2.0), dict(threads=None)):
        with pytest.raises(UserError, match=next(iter(bad))):
            sweep(s, root=tmp_path/'sweep', report=False, progress=False, **bad)
        assert not (tmp_path/'sweep').exists(), bad
