"Sweeps at scale: a sweep-wide teacher budget, the torchrun launcher and the Batch API reaching method cells, Ray resources per cell, training-memory estimates."
import json, re
from pathlib import Path
import nbformat, pytest
from conftest import ROOT

# A stand-in for a method notebook (a sweep knows one by its name): it spends `cost` dollars on a "teacher", minus
# what its folder's ledgers already record, and stops at `budget_usd` as the pipeline does, keeping what it spent.
FAKE_PARAMS = "cost = 1.0\ntag = 'a'\nbudget_usd = None\nbatch = False\nnproc = 1\nout = None"
FAKE_BODY = """import json, time, pathlib
d = pathlib.Path(out); t0 = time.time()
own = sum(r['usd'] for p in d.rglob('*.ledger.jsonl') for l in p.read_text().splitlines()
          for r in json.loads(l)['ledger'].values())
pay = cost - own if budget_usd is None else min(cost - own, budget_usd - own)
(d/'r0').mkdir(exist_ok=True)
with open(d/'r0'/'teacher.ledger.jsonl', 'a') as f: f.write(json.dumps(dict(ledger=dict(gpt=dict(requests=1, usd=pay)))) + '\\n')
time.sleep(0.3)
assert own + pay >= cost - 1e-9, f'stopped at the budget: budget_usd=${budget_usd} is spent; raise budget_usd and run again'
(d/'metrics.json').write_text(json.dumps(dict(budget_usd=budget_usd, batch=batch, nproc=nproc, t=[t0, time.time()], rows=[])))
"""


def fake_method(folder:Path)->Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(FAKE_PARAMS, metadata=dict(tags=['parameters'])), nbformat.v4.new_code_cell(FAKE_BODY)]
    nb.metadata['kernelspec'] = dict(name='python3', display_name='Python 3', language='python')
    nbformat.write(nb, str(folder/'finetune_cot.ipynb'))
    return folder/'finetune_cot.ipynb'


def spent(root:Path)->float:
    from learn_reason.repro.sweep import sweep_spent
    return round(sweep_spent(root), 6)


def test_a_budget_is_shared_by_the_cells_one_at_a_time_and_a_raised_cap_resumes(tmp_path):
    from learn_reason.repro.sweep import sweep
    fake_method(tmp_path)
    (tmp_path/'b.yaml').write_text('name: b\nbudget_usd: 2.5\nruns:\n  - {name: c, notebook: finetune_cot.ipynb, grid: {tag: [a, b, c]}}\n')
    root = tmp_path/'sweep'
    r1 = sweep(tmp_path/'b.yaml', root=root, jobs=2, report=False, progress=False)
    test = {c['cell']: c for c in r1.cells}
    assert [test[n]['status'] for n in ('c-tag_a', 'c-tag_b', 'c-tag_c')] == ['finished', 'finished', 'failed'], r1.cells
    assert 'stopped at the budget' in test['c-tag_c']['error']
    assert spent(root) == 2.5 and r1.spent_usd == pytest.approx(2.5)        # spent to the cap, not past it
    assert r1.summary().endswith('1 failed; teachers $2.5000 of the $2.5 budget'), r1.summary()
    m = [json.loads((root/n/'metrics.json').read_text()) for n in ('c-tag_a', 'c-tag_b')]
    assert sorted(x['budget_usd'] for x in m) == [1.5, 2.5]                    # each got what the others had left
    a, b = sorted(x['t'] for x in m)
    assert a[1] <= b[0], 'under a cap the cells run one at a time, though jobs=2'
    done = json.loads((root/'c-tag_a'/'done.json').read_text())
    assert 'budget_usd' not in done['params'] and done['run']['budget_usd'] in (1.5, 2.5)   # a knob, not the identity
    # a raised cap (an option now): the finished cells are not run again; the stopped one resumes and pays the rest
    r2 = sweep(tmp_path/'b.yaml', root=root, budget_usd=4.0, resume=True, jobs=2, report=False, progress=False)
    assert [(c['cell'], c['status'], bool(c.get('skipped'))) for c in r2.cells] == [
        ('c-tag_a', 'finished', True), ('c-tag_b', 'finished', True), ('c-tag_c', 'finished', False)]
    assert json.loads((root/'c-tag_c'/'metrics.json').read_text())['budget_usd'] == 2.0   # its own 0.5 and the 1.5 left
    assert spent(root) == 3.0


def test_a_cleared_attempt_still_counts_against_the_cap(tmp_path):
    from learn_reason.repro.sweep import CLEARED, sweep
    fake_method(tmp_path)
    (tmp_path/'b.yaml').write_text('name: b\nruns:\n  - {name: c, notebook: finetune_cot.ipynb, params: {cost: 2.0}}\n')
    root = tmp_path/'sweep'
    r1 = sweep(tmp_path/'b.yaml', root=root, budget_usd=0.75, report=False, progress=False)
    assert r1.failed and spent(root) == 0.75
    # without resume the cell starts again in an empty folder: the 0.75 it spent stays on the sweep's record
    r2 = sweep(tmp_path/'b.yaml', root=root, budget_usd=1.0, report=False, progress=False)
    assert r2.failed and json.loads((root/CLEARED).read_text())['usd'] == 0.75
    assert json.loads((root/'c'/'failed.json').read_text())['run'] == dict(budget_usd=0.25)
    assert spent(root) == 1.0


def test_the_launcher_and_the_batch_api_reach_method_cells_and_leave_their_identity_alone(tmp_path):
    from learn_reason.repro.sweep import sweep
    fake_method(tmp_path)
    (tmp_path/'l.yaml').write_text('name: l\nruns:\n  - {name: one, notebook: finetune_cot.ipynb}\n'
                                   '  - {name: two, notebook: finetune_cot.ipynb, params: {tag: b}, resources: {gpus: 2}}\n')
    root = tmp_path/'sweep'
    r = sweep(tmp_path/'l.yaml', root=root, only='one', report=False, progress=False)
    got = json.loads((root/'one'/'metrics.json').read_text())
    assert (got['budget_usd'], got['batch'], got['nproc']) == (None, False, 1)   # the defaults add nothing
    assert 'run' not in json.loads((root/'one'/'done.json').read_text())
    r = sweep(tmp_path/'l.yaml', root=root, launcher='torchrun', batch=True, report=False, progress=False)
    assert [(c['cell'], bool(c.get('skipped'))) for c in r.cells] == [('one', True), ('two', False)]  # same cell
    got = json.loads((root/'two'/'metrics.json').read_text())
    assert (got['batch'], got['nproc']) == (True, 2)          # the cell's resources.gpus
    assert json.loads((root/'two'/'params.json').read_text())['params']['nproc'] == 1   # params.json: the identity
    (root/'two'/'done.json').unlink()
    sweep(tmp_path/'l.yaml', root=root, launcher='torchrun', nproc=3, report=False, progress=False)
    assert json.loads((root/'two'/'metrics.json').read_text())['nproc'] == 3   # the sweep's nproc wins


def test_spec_resources_reach_the_ray_task(tmp_path):
    ray = pytest.importorskip('ray')
    from learn_reason.core.settings import UserError
    from learn_reason.repro.sweep import sweep
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('out = None', metadata=dict(tags=['parameters'])),
                nbformat.v4.new_code_cell("import pathlib\npathlib.Path(out, 'metrics.json').write_text('{}')")]
    nb.metadata['kernelspec'] = dict(name='python3', display_name='Python 3', language='python')
    nbformat.write(nb, str(tmp_path/'touch.ipynb'))
    (tmp_path/'r.yaml').write_text('name: r\nresources: {cpus: 2}\nruns:\n  - {name: big, notebook: touch.ipynb}\n'
                                   '  - {name: small, notebook: touch.ipynb, resources: {cpus: 0.5}}\n')
    (tmp_path/'g.yaml').write_text('name: g\nresources: {gpus: 64}\nruns:\n  - {name: gpu, notebook: touch.ipynb}\n')
    try:
        r = sweep(tmp_path/'r.yaml', root=tmp_path/'r', executor='ray', jobs=2, report=False, progress=False)
        assert {c['cell']: c['resources'] for c in r.cells} == {'big': {'CPU': 2.0}, 'small': {'CPU': 0.5}}, r.cells
        assert ray.cluster_resources()['CPU'] == 4.0       # started here: room for jobs x the largest cell
        with pytest.raises(UserError, match=r"cell gpu: resources \{'gpus': 64\} exceed this machine's"):
            sweep(tmp_path/'g.yaml', root=tmp_path/'g', executor='ray', report=False, progress=False)
    finally: ray.shutdown()


def test_dry_run_prints_each_cells_training_memory(env, tmp_path, monkeypatch):
    from learn_reason.repro.sweep import dry_run, train_gib, method_config
    from learn_reason.students.models import train_memory
    for k, v in env.items():
        if k.startswith('LEARN_REASON_'): monkeypatch.setenv(k, v)
    (tmp_path/'d.yaml').write_text('name: d\ndefaults: {data: {n: 40}, test_limit: 8, epochs: 1}\nruns:\n'
                                   '  - {name: m, notebook: finetune_cot.ipynb, grid: {batch_size: [4, 8]}}\n')
    import io
    buf = io.StringIO()
    rows = dry_run(tmp_path/'d.yaml', root=tmp_path/'d', file=buf)
    want = [train_memory('tiny-gpt2', per_device_batch=b)['total'] for b in (4, 8)]
    assert [r['train_gib'] for r in rows] == want and want[0] < want[1]
    lines = buf.getvalue().splitlines()
    assert [re.search(r'training ~([0-9.]+) GiB a process', l).group(1) for l in lines[:2]] == [f'{w:g}' for w in want]
    assert train_gib(method_config('finetune_cot', student='tiny-gpt2', batch_size=4)) == want[0]


def test_the_paper_sweeps_fit_their_gpus():
    "Each paper sweep's method cells, with its memory knobs, fit one process on the GPUs its comments name"
    from learn_reason.repro.sweep import expand, load_spec, method_config, notebook_params, train_gib
    fits = dict(paper_finetune_cot=22, paper_tailored=78, paper_mapd=78)   # GiB: a 24 GB GPU, an 80 GB A100, less the context
    for name, gib in fits.items():
        seen, nbp = {}, {}
        for c in expand(load_spec(ROOT/'papers_repro'/'sweeps'/f'{name}.yaml')):
            if c.kind != 'runs': continue
            p = {**nbp.setdefault(c.notebook, notebook_params(c.notebook)), **c.params}; p.pop('out', None)
            key = json.dumps({k: p.get(k) for k in ('student', 'lora', 'precision', 'gradient_checkpointing',
                                                     'per_device_batch', 'batch_size', 'mistakes')}, default=str)
            if key not in seen: seen[key] = train_gib(method_config(c.method, **p))
        assert seen and all(v is not None and v <= gib for v in seen.values()), (name, seen)
