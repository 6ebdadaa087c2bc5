"Training on two processes (torchrun, gloo on CPU) gives what one process gives, and a method run on two sends each teacher request once."
import json, subprocess, sys
from pathlib import Path
import pytest
from test_teacher import serve   # the loopback teacher server fixture

torch = pytest.importorskip('torch')
torch.set_num_threads(1)

from learn_reason.data.datasets import load
from learn_reason.students.train import train


def rows_of(exs): return [dict(id=e.id, question=e.question, answer=e.answer, rationale=e.rationale) for e in exs]


def weights(folder:Path)->dict:
    from safetensors.torch import load_file
    return load_file(str(folder/'model.safetensors'))


def test_two_processes_train_what_one_does(tmp_path):
    "One stage, once on one process and once on two ranks: the same batches, losses, weights and test answers"
    exs = load('coin_flip', 'train', source='synthetic', n=60, flips=2)[:24]
    test = load('coin_flip', 'test', source='synthetic', n=60, flips=2)[:6]
    kw = dict(epochs=2, learning_rate=1e-3, batch_size=8, eval_examples=test, eval_kw=dict(max_new=24), progress=False)
    one = train('tiny-gpt2', rows_of(exs), 'ft_cot_token', out=tmp_path/'one', **kw)
    two = train('tiny-gpt2', rows_of(exs), 'ft_cot_token', out=tmp_path/'two', nproc=2, **kw)
    assert (two.out/'launch.log').is_file() and not (two.out/'launch.pkl').exists()
    l1, l2 = [h['loss'] for h in one.loss], [h['loss'] for h in two.loss]
    assert len(l1) == len(l2) > 1 and max(abs(a - b) for a, b in zip(l1, l2)) < 1e-3, (l1, l2)
    w1, w2 = weights(one.final), weights(two.final)
    assert w1.keys() == w2.keys()
    diff = max((w1[k].float() - w2[k].float()).abs().max().item() for k in w1)
    assert diff < 1e-4, diff   # the same optimisation, up to the order of floating-point sums
    g = lambda r, e: [json.loads(l)['text'] for l in (r.out/'generations'/f'epoch_{e:03d}.jsonl').read_text().splitlines()]
    assert g(one, 2) == g(two, 2)
    assert [m['strict'] for m in one.epochs] == [m['strict'] for m in two.epochs]


METHOD = '''
import sys, torch; torch.set_num_threads(1)
from learn_reason.methods.finetune_cot import finetune_cot
finetune_cot('coin_flip', baselines=(), teacher='local', source='synthetic', data=dict(n=40), test_limit=6, epochs=2,
             max_new=24, nproc=int(sys.argv[2]), out=sys.argv[1])
'''


def test_a_method_run_on_two_processes_asks_the_teacher_once(serve, env, tmp_path):
    "Fine-tune-CoT with nproc=2: the teacher stage runs in the run's own process, once; the results are nproc=1's"
    from test_teacher import stats, local
    port, script = serve(), tmp_path/'run.py'
    script.write_text(METHOD)
    e = {**local(env, port), 'OMP_NUM_THREADS': '1', 'TRANSFORMERS_VERBOSITY': 'error'}
    for n in (2, 1):   # separate run and training folders; one teacher cache
        r = subprocess.run([sys.executable, str(script), str(tmp_path/f'p{n}'/'run'), str(n)], capture_output=True, text=True,
                           env={**e, 'LEARN_REASON_RUNS_DIR': str(tmp_path/f'p{n}')}, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    s = stats(port)
    assert s['duplicates'] == 0 and s['requests'] == s['distinct'] > 0, s   # every request once, by the 2-process run
    res = lambda n: [{k: v for k, v in x.items() if k != 'train_dir'}
                     for x in json.loads((tmp_path/f'p{n}'/'run'/'results.json').read_text())['rounds']]
    assert res(2) == res(1) and res(2)[0]['train_rows'] > 0
    assert list((tmp_path/'p2'/'train').glob('*/launch.log')) and not list((tmp_path/'p1'/'train').glob('*/launch.log'))


def test_the_gpu_check_says_when_there_is_no_gpu(tmp_path):
    "`make gpu-check` on a machine without CUDA: one line, exit 1, no bench/gpu.json written"
    from conftest import ROOT
    if torch.cuda.is_available(): pytest.skip('this machine has a GPU: make gpu-check measures it')
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'gpu.py'), '--out', str(tmp_path/'gpu.json')], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and 'no CUDA GPU' in r.stderr and not (tmp_path/'gpu.json').exists()
