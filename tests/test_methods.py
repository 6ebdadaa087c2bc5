"The methods end to end: MAPD's released data replayed through the pipeline, and a method run killed and resumed."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import BIN
from test_teacher import serve, stats, hold, local   # the loopback server fixture and its controls

pytest.importorskip('torch')


def test_mapd_replay_accepts_what_the_paper_accepted(reference, tmp_path):
    "MAPD's SVAMP mistakes and its three teachers' recorded rationales and reviews, through our round's own steps"
    import random
    from learn_reason.methods.pipeline import method_config, Round, pick, flags, load_steps
    from learn_reason.methods.mapd import recorded_mistakes
    load_steps()
    c = method_config('mapd', dataset='svamp', mistakes='mapd', committee='replay:mapd', comparable=True, out=str(tmp_path/'run'))
    wrong, exs = recorded_mistakes(c)
    r = Round(1, exs, [], tmp_path/'r1', rng=random.Random(0), wrong=wrong)
    for slot, field in [('rationales', 'rats'), ('select', 'rats'), ('feedback', 'feedback'), ('rows', 'rows')]:
        setattr(r, field, pick(slot, flags(c))(c, r))   # the round's steps as a run takes them, without the training
    ok = [x for x in r.rats if x['accepted']]
    assert {t: sum(x['teacher'] == t for x in ok) for t in ('gpt', 'gemini', 'mistral')} == dict(gpt=286, gemini=221, mistral=319)
    assert (len(wrong), len({x['id'] for x in ok}), len(r.rows)) == (387, 365, 365)


SCRIPT = '''
import sys, torch; torch.set_num_threads(1)
from learn_reason.methods.learn_to_reason import learn_to_reason
r = learn_to_reason('coin_flip', rounds=1, teacher='local', source='synthetic', data=dict(n=80), test_limit=8, epochs=2,
                    round_epochs=1, exam_samples=2, max_new=40, out=sys.argv[1])
'''


def _scores(out:Path)->list:
    "Each round's results, without where its files are"
    return [{k: v for k, v in r.items() if k != 'train_dir'} for r in json.loads((out/'results.json').read_text())['rounds']]


def test_a_method_run_killed_anywhere_resumes_to_the_same_results(serve, env, tmp_path):
    port, script = serve(), tmp_path/'run.py'
    script.write_text(SCRIPT)
    e = {**local(env, port), 'OMP_NUM_THREADS': '1', 'TRANSFORMERS_VERBOSITY': 'error'}
    out, cmd = tmp_path/'runs'/'l2r', [sys.executable, str(script), str(tmp_path/'runs'/'l2r')]

    def kill_when(ready):
        p = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.time()
        while not ready():
            assert p.poll() is None and time.time() - t0 < 600, 'the run ended before it could be killed'
            time.sleep(0.05)
        hold(port, True); time.sleep(0.5)   # no teacher answer in flight, unread, at the kill
        p.send_signal(signal.SIGKILL); p.wait(); hold(port, False)

    train_dirs = lambda: list((tmp_path/'runs'/'train').glob('*/checkpoints/checkpoint-*/trainer_state.json'))
    kill_when(lambda: bool(train_dirs()))                                          # in round 0's training, after epoch 1
    kill_when(lambda: (out/'r1'/'exam.jsonl').is_file() and (out/'r1'/'exam.jsonl').stat().st_size > 0)   # in round 1's exam
    r = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = stats(port)
    assert s['duplicates'] == 0 and s['requests'] == s['distinct'] + s['abandoned'], s   # no teacher answer paid for twice

    port2 = serve()   # the same run never interrupted: fresh server, cache and folders
    clean = {**local(env, port2), 'OMP_NUM_THREADS': '1', 'LEARN_REASON_CACHE_DIR': str(tmp_path/'cache2')}
    r = subprocess.run([sys.executable, str(script), str(tmp_path/'clean'/'l2r')], env=clean, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _scores(out) == _scores(tmp_path/'clean'/'l2r')
    assert _scores(out)[1]['mistakes'] > 0 and _scores(out)[1]['train_rows'] > 0


def test_bad_method_parameters_are_one_line(env):
    from conftest import cli
    for args, says in [(['diverse=0'], 'parameter diverse: expected a whole number >= 1, got 0'),
                       (['dataset=gsm9k'], 'parameter dataset: expected one of'),
                       (['epochs=five'], "parameter epochs: expected a whole number >= 1, got 'five'"),
                       (['round=2'], "unknown parameter 'round'"),
                       (['methods=mapdd'], 'parameter methods: expected one or more of the presets finetune_cot')]:
        r = cli('method', *args, env=env)
        assert r.returncode == 1 and says in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr)


def test_the_papers_steps_compose_in_one_round(env, tmp_path):
    "Diverse round 0 (Fine-tune-CoT), tailored rationales and self-reflection (Learn-to-Reason), peer review and feedback (MAPD)"
    from learn_reason.methods.pipeline import run
    out = tmp_path/'all'
    r = run(methods=['diverse', 'tailored', 'self_reflection', 'peer_review', 'feedback'], diverse=2, dataset='coin_flip',
            source='synthetic', data=dict(n=30), test_limit=4, epochs=1, round_epochs=1, max_new=32, exam_samples=1,
            comparable=True, out=str(out))
    rows = lambda f: [json.loads(l) for l in (out/'r1'/f).read_text().splitlines()]
    t0 = [json.loads(l) for l in (out/'r0'/'teacher.jsonl').read_text().splitlines()]
    assert {x['sample'] for x in t0} == {0, 1}                                    # D = 2 in round 0
    rats, reviews, fb = rows('rationales.jsonl'), rows('reviews.jsonl'), rows('feedback.jsonl')
    assert {x['prompt'] for x in rats} == {'tailored'} and len({x['teacher'] for x in rats}) == 3   # tailored, by the committee
    assert reviews and all(v['teacher'] != v['of'] for v in reviews)             # each reviewed by the others
    assert fb and r.rounds[1]['train_rows'] > 0
    assert set(r.rounds[1]['accepted']) <= {x['teacher'] for x in rats}
    assert r.config['reflection_weight'] == 0.5 and r.config['alpha'] == 0.5


def test_a_self_taught_round_learns_the_students_own_rationales(env, tmp_path):
    "STaR (Learn-to-Reason's comparison): no teacher after round 0; correct exam rationales and hinted rationalizations"
    from learn_reason.methods.pipeline import run
    out = tmp_path/'star'
    r = run(methods=['self_taught'], dataset='coin_flip', source='synthetic', data=dict(n=40), test_limit=4, epochs=2,
            round_epochs=1, rounds=1, max_new=32, exam_samples=2, comparable=True, out=str(out))
    one = r.rounds[1]
    assert r.config['recipe'] == 'learn_to_reason' and not (out/'r1'/'rationales.jsonl').exists()   # no teacher asked
    exam = [json.loads(l) for l in (out/'r1'/'exam.jsonl').read_text().splitlines()]
    assert one['mistakes'] > 0 and (out/'r1'/'rationalize.jsonl').is_file()
    hinted = {json.loads(l)['id'] for l in (out/'r1'/'rationalize.jsonl').read_text().splitlines()}
    assert hinted == {x['id'] for x in exam if not x['strict_correct']}              # a rationalization per mistaken question
    assert one['accepted'].get('student', 0) == one['rationales'] == one['train_rows']
    assert one['rationales'] >= len({(x['id'], x['text']) for x in exam if x['strict_correct']}) > 0


def test_a_run_on_recorded_mistakes_trains_on_the_first_questions(reference, tmp_path):
    "mistakes='mapd' with train_limit: no round 0, the first N recorded questions, and the test questions left out counted"
    from learn_reason.methods.mapd import mapd_replay
    r = mapd_replay(epochs=1, train_limit=10, test_limit=6, max_new=16, batch_size=16, comparable=True, rationale_max_tokens=48,
                    out=str(tmp_path/'replay'))
    zero, one = r.rounds
    assert zero['skipped'] == 'recorded mistakes' and zero['train_questions'] == 10 and zero['test_questions'] + zero['test_excluded'] == 6
    assert one['mistaken_questions'] == 10 and 0 < one['train_rows'] <= one['mistakes'] and 'last_strict' in one
