"Sweeps end to end through the console script: failing and bad cells, a sweep killed mid-cell and resumed, the report, Ray."
import csv, json, os, signal, subprocess, sys, time
from pathlib import Path
import nbformat, pytest
from conftest import BIN, ROOT, cli

TINY = "{dataset: coin_flip, source: synthetic, data: {n: 40}, test_limit: 8, epochs: 1, baselines: [], max_new: 40}"


def spec(tmp_path, body:str)->Path:
    p = tmp_path/'t.yaml'
    p.write_text(f'name: t\ndefaults: {TINY}\n' + body)
    return p


def rows(d:Path)->list: return json.loads((d/'metrics.json').read_text())['rows']


def test_bad_cells_fail_alone_in_their_first_cell_and_the_sweep_exits_nonzero(env, tmp_path):
    s = spec(tmp_path, """runs:
  - {name: ok, notebook: finetune_cot.ipynb}
  - {name: bad-dataset, notebook: finetune_cot.ipynb, params: {dataset: gsm9k}}
  - {name: bad-D, notebook: finetune_cot.ipynb, params: {diverse: 0}}
  - {name: bad-type, notebook: finetune_cot.ipynb, params: {learning_rate: fast}}
reports:
  - {notebook: ftcot_diverse_degree.ipynb}
""")
    root = tmp_path/'sweep'
    r = cli('repro', s, '--root', root, '--quiet', env=env)
    assert r.returncode == 1, r.stdout + r.stderr[-3000:]
    assert 't: 5 cells, 5 run, 0 already finished, 3 failed' in r.stdout, r.stdout
    for cell, says in [('bad-dataset', 'parameter dataset: expected one of'), ('bad-D', 'parameter diverse: expected a whole number >= 1, got 0'),
                       ('bad-type', "parameter learning_rate: expected a number above 0, below 1, got 'fast'")]:
        assert f'failed: {cell}: ConfigError: {says}' in r.stderr, r.stderr
        assert f'notebook: {root/cell/"finetune_cot.ipynb"}' in r.stderr
        nb = nbformat.read(str(root/cell/'finetune_cot.ipynb'), as_version=4)
        code = [c for c in nb.cells if c.cell_type == 'code']
        failed = [i for i, c in enumerate(code) if any(o.get('output_type') == 'error' for o in c.get('outputs', []))]
        cfg = next(i for i, c in enumerate(code) if c.source.startswith('cfg = method_config'))
        assert failed == [cfg], (cell, failed, cfg)   # before it: only the parameters and the imports
        assert all({'parameters', 'injected-parameters'} & set(c.metadata.get('tags', [])) or c.source.startswith(('import', 'from')) for c in code[:cfg])
    ok = json.loads((root/'ok'/'done.json').read_text())
    assert ok['status'] == 'finished' and rows(root/'ok')[0]['method'] == 'Fine-tune-CoT'
    assert ok['teacher_usage'] and json.loads((root/'ok'/'versions.json').read_text())['packages']['torch']
    assert (root/'ftcot_diverse_degree'/'diverse_degree.png').is_file() and (root/'ftcot_diverse_degree'/'diverse_degree.svg').is_file()
    page = (root/'report.html').read_text()
    assert '3 failed' in page and 'ok/finetune_cot.ipynb' in page and 'ftcot_diverse_degree/diverse_degree.png' in page


def _writes(d:Path)->float: return max((p.stat().st_mtime for p in d.rglob('*') if p.is_file()), default=0)


def test_a_sweep_killed_mid_cell_resumes_to_the_same_results(env, tmp_path):
    s = spec(tmp_path, """runs:
  - {name: one, notebook: finetune_cot.ipynb}
  - {name: two, notebook: finetune_cot.ipynb, params: {diverse: 2, epochs: 2}}
""")
    root = tmp_path/'sweep'
    cmd = [str(BIN/'learn-reason'), 'repro', str(s), '--root', str(root), '--jobs', '1', '--quiet']
    p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = lambda: list((root/'train').glob('*/checkpoints/checkpoint-*/trainer_state.json'))
    t0 = time.time()
    while not ((root/'one'/'done.json').is_file() and (root/'two'/'r0'/'teacher.jsonl').is_file() and ckpt()):  # in two's training, after epoch 1
        assert p.poll() is None and time.time() - t0 < 600, 'the sweep ended before it could be killed'
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    done_one = (root/'one'/'done.json').read_text()
    assert not (root/'two'/'done.json').exists()
    time.sleep(3); before = _writes(root); time.sleep(4)
    assert _writes(root) == before, 'something of the killed sweep is still writing'

    r = cli('repro', s, '--root', root, '--resume', '--quiet', env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '1 run, 1 already finished, 0 failed' in r.stdout, r.stdout
    assert (root/'one'/'done.json').read_text() == done_one   # the finished cell was not run again

    clean = {**env, 'LEARN_REASON_CACHE_DIR': str(tmp_path/'cache2')}
    r = cli('repro', s, '--root', tmp_path/'clean', '--only', 'two', '--quiet', env=clean)
    assert r.returncode == 0, r.stderr[-3000:]
    assert rows(root/'two') == rows(tmp_path/'clean'/'two')
    assert rows(root/'two')[0]['train_rows'] > 0


def test_dry_run_prices_and_runs_nothing(env, tmp_path):
    s = spec(tmp_path, "runs:\n  - {name: d, notebook: finetune_cot.ipynb, grid: {diverse: [1, 2]}}\n")
    r = cli('repro', s, '--root', tmp_path/'sweep', '--dry-run', env=env)
    assert r.returncode == 0, r.stderr
    assert 'd-diverse1' in r.stdout and 'd-diverse2' in r.stdout and 'requests' in r.stdout and 'cost at most $' in r.stdout, r.stdout
    assert not list((tmp_path/'sweep').glob('*/done.json')) and not (tmp_path/'sweep'/'d-diverse1'/'finetune_cot.ipynb').exists()


def test_bad_specs_are_one_line_errors(env, tmp_path):
    for body, says in [("runs:\n  - {notebook: nope.ipynb}\n", "notebook 'nope.ipynb' not found"),
                       ("runs:\n  - {notebook: finetune_cot.ipynb, params: {round: 2}}\n", "has no parameter 'round'"),
                       ("runs:\n  - {notebook: finetune_cot.ipynb, grid: {diverse: 4}}\n", "grid 'diverse' must be a non-empty list"),
                       ("runs:\n  - {notebook: finetune_cot.ipynb}\n  - {notebook: finetune_cot.ipynb}\n", "is not unique")]:
        r = cli('repro', spec(tmp_path, body), '--root', tmp_path/'sweep', env=env)
        assert r.returncode == 1 and says in r.stderr and 'Traceback' not in r.stderr, (body, r.stderr)


def test_ray_executor_gives_the_local_outputs(env, tmp_path):
    pytest.importorskip('ray')
    s = spec(tmp_path, "runs:\n  - {name: d, notebook: finetune_cot.ipynb}\n")
    outs = {}
    for ex in ('local', 'ray'):
        e = {**env, 'LEARN_REASON_CACHE_DIR': str(tmp_path/f'cache-{ex}')}
        r = cli('repro', s, '--root', tmp_path/ex, '--executor', ex, '--jobs', '2', '--quiet', env=e)
        assert r.returncode == 0, r.stderr[-3000:]
        outs[ex] = rows(tmp_path/ex/'d')
    assert outs['local'] == outs['ray']


def test_every_figure_table_and_sample_notebook_runs_before_any_run_exists(env, tmp_path):
    "What a researcher sees opening one in JupyterLab before `make demo`: the paper's numbers alone, no error"
    nbs = sorted(p.name for p in (ROOT/'papers_repro').glob('*.ipynb') if p.stem not in ('finetune_cot', 'tailored_learning', 'mapd'))
    assert len(nbs) >= 15
    s = tmp_path/'empty.yaml'
    s.write_text('name: empty\nreports:\n' + ''.join(f'  - {{notebook: {n}}}\n' for n in nbs))
    r = cli('repro', s, '--root', tmp_path/'empty', '--quiet', env=env)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert f'empty: {len(nbs)} cells, {len(nbs)} run, 0 already finished, 0 failed' in r.stdout
    assert (tmp_path/'empty'/'ftcot_tables'/'tab_performance_gpt2.csv').is_file()


def test_a_demo_shaped_sweep_opens_its_report_with_the_claims(env, tmp_path):
    "The demo's cells (named as the testbed's experiments) at a tiny size: the claims lead the report, from their runs"
    import yaml
    demo = yaml.safe_load((ROOT/'papers_repro'/'sweeps'/'demo.yaml').read_text())
    runs = [dict(e, params=dict(e['params'], rounds=1) if e['name'] == 'l2r' else e['params'])
            for e in demo['runs'] if e['name'] in ('ftcot', 'l2r')]
    tiny = dict(demo['defaults'], data=dict(n=40, names=3), test_limit=8, epochs=1, max_new=40)
    s = tmp_path/'demo.yaml'
    s.write_text(yaml.safe_dump(dict(name='d', defaults=tiny, runs=runs, reports=[dict(notebook='claims.ipynb')])))
    r = cli('repro', s, '--root', tmp_path/'d', '--quiet', env=env)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    claims = {c['claim']: c for c in csv.DictReader(open(tmp_path/'d'/'claims'/'claims_table.csv'))}
    assert set(claims) == {'Fine-tune-CoT beats vanilla fine-tuning', 'tailored round 1 beats round 0'}, claims
    ft = json.loads((tmp_path/'d'/'ftcot'/'results.json').read_text())
    c = claims['Fine-tune-CoT beats vanilla fine-tuning']  # its numbers are the runs' last-epoch accuracies
    assert (float(c['method %']), float(c['baseline %'])) == (round(100 * ft['rounds'][0]['last_strict'], 1),
                                                           round(100 * ft['baselines']['vanilla']['last_strict'], 1)), c
    page = (tmp_path/'d'/'report.html').read_text()
    assert page.index("The papers' claims") < page.index('Fine-tune-CoT beats vanilla') < page.index('<h2>Cells</h2>')
    # each run said where it was as it went, for the sweep's progress bar: its last words are its last stage
    assert json.loads((tmp_path/'d'/'ftcot'/'progress.json').read_text())['stage'] == 'baseline: vanilla'
    assert json.loads((tmp_path/'d'/'l2r'/'progress.json').read_text())['stage'] == 'round 1: train'
