"""The suite under hostile use (issue 12): outputs resumed by something else, two writers, damage, interrupts and bad
values. Every case happens for real: real processes, a real SIGINT, real damaged files."""
import dataclasses, json, math, random, signal, subprocess, time
from pathlib import Path
import pytest
from conftest import cli, jsonl, BIN
from test_teacher import serve, local, run_args, stats, _wait   # noqa: F401 (serve is a fixture)


def one_line_error(r, *says):
    "A refusal: non-zero exit, exactly one line on stderr, no traceback, and the words that name the problem"
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode != 0 and len(lines) == 1 and 'Traceback' not in r.stderr + r.stdout, (r.returncode, r.stderr)
    for s in says: assert s in lines[0], (s, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------------------------- identity

def test_a_stage_output_is_not_resumed_by_another_teacher_model(serve, env, tmp_path):
    port = serve()
    out = tmp_path/'rat.jsonl'
    assert cli(*run_args(out, n=10), env=local(env, port)).returncode == 0
    before = out.read_bytes()
    # the `local` section's model comes from the environment: not part of the row key, so once it was resumed silently
    r = cli(*run_args(out, n=20), env=local(env, port, model='scripted-hasty'))
    one_line_error(r, 'teacher stage output was made by something else',
                   "teachers.local.model: 'scripted-hasty' here, 'scripted-careful' in the file")
    assert out.read_bytes() == before and stats(port)['requests'] == 10


def test_a_stage_output_is_not_resumed_at_another_temperature(serve, env, tmp_path):
    port = serve()
    out = tmp_path/'zs.jsonl'
    assert cli(*run_args(out, n=6, prompt='zs-cot', dataset='coin_flip'), env=local(env, port)).returncode == 0
    r = cli(*run_args(out, '--temperature', 0.7, n=6, prompt='zs-cot', dataset='coin_flip'), env=local(env, port))
    one_line_error(r, 'teachers.local.temperature: 0.7 here, 0.0 in the file')


def test_an_evaluation_is_not_resumed_by_another_format_or_student(env, tmp_path):
    out = tmp_path/'ev.jsonl'
    base = ('student', 'eval', '--dataset', 'coin_flip', '--source', 'synthetic', '-n', 3, '--max-new', 4, '--out', out, '--quiet')
    assert cli(*base, '--student', 'tiny-gpt2', env=env).returncode == 0
    before = out.read_bytes()
    one_line_error(cli(*base, '--student', 'tiny-gpt2', '--format', 'ft_token', env=env),
                   "format: 'ft_token' here, 'ft_cot_token' in the file")
    one_line_error(cli(*base, '--student', 'tiny-llama', env=env), "student: 'tiny-llama' here, 'tiny-gpt2' in the file")
    assert out.read_bytes() == before
    other = tmp_path/'results.json'; other.write_text('{"accuracy": 0.5}')   # someone else's file, no newline at its end
    one_line_error(cli(*base[:-3], '--out', other, '--quiet', '--student', 'tiny-gpt2', env=env),
                   "is not an evaluation's JSON-lines file")
    assert other.read_text() == '{"accuracy": 0.5}'


def test_a_method_run_is_not_resumed_with_another_teacher_model(serve, env, tmp_path):
    port = serve()
    args = ('method', 'dataset=coin_flip', 'source=synthetic', "data={'n': 20}", 'test_limit=2', 'epochs=1', 'max_new=4',
            'teacher=local', f'out={tmp_path/"run"}', '--quiet')
    r = cli(*args, env=local(env, port))
    assert r.returncode == 0, r.stderr
    one_line_error(cli(*args, env=local(env, port, model='scripted-hasty')),
                   'method run was made by something else', "teacher.model: 'scripted-hasty' here, 'scripted-careful'")
    # without an explicit out, the run simply gets a folder of its own
    from learn_reason.methods.pipeline import make_config, run_dir
    import os
    old = {k: os.environ.get(k) for k in ('LEARN_REASON_TEACHER_LOCAL_MODEL',)}
    try:
        c = make_config(dataset='coin_flip', teacher='local')
        os.environ['LEARN_REASON_TEACHER_LOCAL_MODEL'] = 'a'; a = run_dir(c)
        os.environ['LEARN_REASON_TEACHER_LOCAL_MODEL'] = 'b'; b = run_dir(c)
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    assert a != b


# ---------------------------------------------------------------------------------------------------- one writer

def test_two_runs_on_one_output_write_and_pay_once(serve, env, tmp_path):
    port = serve('--latency', 0.05)
    out, e = tmp_path/'both.jsonl', local(env, port, concurrency=4)
    ps = [subprocess.Popen([str(BIN/'learn-reason'), *map(str, run_args(out, n=40))], env=e, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True) for _ in range(2)]
    res = [p.communicate(timeout=300) for p in ps]
    assert all(p.returncode == 0 for p in ps), res
    rows = jsonl(out.read_text())
    assert len(rows) == 40 and len({(r['id'], r['sample']) for r in rows}) == 40
    s = stats(port)
    assert s['requests'] == 40 and s['duplicates'] == 0, s


def test_two_outputs_asking_the_same_requests_pay_once(serve, env, tmp_path):
    "Two sweep cells sharing a round-0 stage in different folders: a request in flight in one is not sent by the other"
    port = serve('--latency', 0.2)
    e = local(env, port, concurrency=4)
    ps = [subprocess.Popen([str(BIN/'learn-reason'), *map(str, run_args(tmp_path/f'cell{i}.jsonl', n=24))], env=e,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    res = [p.communicate(timeout=300) for p in ps]
    assert all(p.returncode == 0 for p in ps), res
    assert all(len(jsonl((tmp_path/f'cell{i}.jsonl').read_text())) == 24 for i in range(2))
    s = stats(port)
    assert s['requests'] == 24 and s['duplicates'] == 0, s
    sent = [jsonl(Path(str(tmp_path/f'cell{i}.jsonl') + '.ledger.jsonl').read_text())[-1]['sent'] for i in range(2)]
    assert sum(sent) == 24, sent   # each answer is counted as sent by the process that paid for it, once


# ---------------------------------------------------------------------------------------------------- damaged files

def test_a_damaged_stage_line_is_named_with_the_repair_command(serve, env, tmp_path):
    port = serve()
    out = tmp_path/'rat.jsonl'
    assert cli(*run_args(out, n=8), env=local(env, port)).returncode == 0
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(''.join(lines[:3] + ['\x00\x00garbage{\n'] + lines[3:]))
    one_line_error(cli(*run_args(out, n=8), env=local(env, port)), f'{out}:4: damaged line',
                   f'learn-reason doctor --fix {out}')
    # the command the message names finds the line, sets it aside, and the stage goes on
    r = cli('doctor', out, env=env)
    assert r.returncode == 1 and f'{out}:4: not a JSON object' in r.stdout, (r.stdout, r.stderr)
    r = cli('doctor', '--fix', out, env=env)
    assert r.returncode == 0 and '(fixed)' in r.stdout, (r.stdout, r.stderr)
    assert b'garbage' in Path(str(out) + '.damaged').read_bytes() and len(jsonl(out.read_text())) == 8
    r = cli(*run_args(out, n=12), env=local(env, port))
    assert r.returncode == 0 and len(jsonl(out.read_text())) == 12, r.stderr


def test_an_out_that_is_another_json_file_is_left_alone(serve, env, tmp_path):
    port = serve()
    for name, text in (('results.json', '{\n "accuracy": 0.5,\n "n": 200\n}'), ('one.json', '{"accuracy": 0.5}'),
                       ('rows.jsonl', '{"id": 1, "prediction": "4"}\n{"id": 2, "prediction": "5"}')):
        f = tmp_path/name; f.write_text(text)
        one_line_error(cli(*run_args(f, n=4), env=local(env, port)), "is not a teacher stage's JSON-lines file")
        assert f.read_text() == text, name   # not cut, not appended to
    d = tmp_path/'folder'; d.mkdir()
    one_line_error(cli(*run_args(d, n=4), env=local(env, port)), 'is a folder')
    assert stats(port)['requests'] == 0


# ---------------------------------------------------------------------------------------------------- interrupts, budgets

def test_ctrl_c_leaves_a_ledger_that_counts_what_was_paid(serve, env, tmp_path):
    port = serve('--latency', 0.2)
    out, e = tmp_path/'int.jsonl', local(env, port, concurrency=4)
    p = subprocess.Popen([str(BIN/'learn-reason'), *map(str, run_args(out, n=80))], env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _wait(lambda: out.exists() and out.read_text().count('\n') >= 12)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err.strip().splitlines() == ['learn-reason: interrupted'], (p.returncode, err)
    rows = jsonl(out.read_text())
    led = jsonl(Path(str(out) + '.ledger.jsonl').read_text())[-1]
    assert 12 <= len(rows) < 80 and led['written'] == len(rows)
    assert led['sent'] == sum(not r['cached'] for r in rows) == led['ledger']['scripted-careful']['requests'] > 0, led
    # the rest is sent by the rerun, nothing twice
    r = cli(*run_args(out, n=80), env=e)
    assert r.returncode == 0 and len(jsonl(out.read_text())) == 80
    assert stats(port)['duplicates'] == 0


def test_a_cumulative_budget_counts_earlier_runs(serve, env, tmp_path):
    port = serve()
    e = {**local(env, port), 'LEARN_REASON_PRICES_SCRIPTED_CAREFUL': '20 80'}
    out = tmp_path/'b.jsonl'
    def spent():
        return [sum(m['usd'] for m in l['ledger'].values()) for l in jsonl(Path(str(out) + '.ledger.jsonl').read_text())]
    r = cli(*run_args(out, '--budget-usd', 0.3, n=100), env=e)
    assert r.returncode == 3 and spent()[0] > 0, r.stderr
    first, sent = spent()[0], stats(port)['requests']
    cap = first + 0.04   # what is left of it (0.04) is less than one request's worst case here (about 0.046)
    r = cli(*run_args(out, '--budget-usd', cap, '--cumulative-budget', n=100), env=e)
    assert r.returncode == 3 and stats(port)['requests'] == sent, r.stdout
    # the same cap per run lets this run spend up to all of it again
    r = cli(*run_args(out, '--budget-usd', cap, n=100), env=e)
    assert r.returncode == 3 and stats(port)['requests'] > sent and 0 < spent()[-1] <= cap, spent()
    # a raised cumulative cap resumes, and all runs together stay under it
    r = cli(*run_args(out, '--budget-usd', sum(spent()) + 0.3, '--cumulative-budget', n=100), env=e)
    assert spent()[-1] > 0, spent()


# ---------------------------------------------------------------------------------------------------- bad values

NAN, INF = float('nan'), float('inf')
WHOLE1 = [0, -5, 1.5, 'abc', True, None, [1], NAN]
KNOB1 = [0, -5, 1.5, 'abc', True, [1], NAN]   # None is no error there: it takes the recipe's value
BAD = dict(  # for every Config parameter, values that must be refused (dataset coin_flip)
    dataset=['gsm9k', '', 5, None, ['coin_flip']], methods=[[], 'nope', ['finetune_cot', 'x'], 5, None, [5]],
    source=['web', 5, ''], data=['n=5', [1], {'flps': 2}, {'n': -5}, {'n': 'x'}, {'n': 2.5}],
    train_limit=[0, -5, 2.5, 'x', True], test_limit=[0, -1, 'x', False], teacher=[5, '', [1]],
    committee=[5, '', None], student=[5, '', [1]], rationale_format=['nope', 'zs', 5], feedback_format=['zs', 7, ''],
    recipe=['nope', 5, ['mapd']], comparable=['yes', 1, None], prefix_weight=[-0.1, 2, 'x', NAN],
    reflection_weight=[-1, 11, 'x'], reflection_margin=[-1, 3, 'x', INF], reflection_repr=['first', 5, ''],
    teacher_temperature=[-0.5, 3, 'hot', NAN], teacher_max_tokens=[0, -1, 2.5, 'x'], eval_temperature=[-1, 3, 'x', NAN],
    eval_top_p=[0, 1.5, 'x'], eval_samples=[0, -2, 1.5, 'x'], few_shot=['yes', 1, 0], rationale_max_tokens=[0, -5, 'x', 2.5],
    schedule=['nope', 5, ['mapd']], diverse=WHOLE1,
    filter=['all', 5, None], round_filter=['all', 5, ''], rounds=[-1, 1.5, 'x', True], exam_samples=KNOB1,
    exam_temperature=[0, -1, 2.5, 'hot', NAN, INF, True], exam_top_p=[0, 5, -0.1, 'x', NAN],
    review_threshold=[-1, 6, 'x', NAN], alpha=[-0.1, 1.5, 'half', NAN],
    feedback_teacher=[5, '', None], epochs=KNOB1, round_epochs=WHOLE1, learning_rate=[0, -1, 1, 'fast', NAN, INF],
    batch_size=KNOB1, max_new=[0, -5, 2.5, 'x'], baselines=['vanilla', ['x'], 5, None],
    mistakes=[5, '', [1]], seed=[-1, 1.5, 'x', True, None], out=[5, '', [1]],
    split_rule=['random', 5, None], lora=['yes', 1, None], lora_r=WHOLE1, lora_alpha=WHOLE1,
    round_learning_rate=[0, -1, 1, 'fast', NAN, INF],
    lora_targets=['', 5, [], ['q_proj', ''], [5]], precision=['fp8', 'BF16', 5, True], gradient_checkpointing=['yes', 1, None],
    grad_accum=[0, -1, 1.5, 'x', True], per_device_batch=[0, -3, 2.5, 'x'], nproc=[0, -2, 1.5, 'x', None],
    report_to=['web', 5, None, ''], budget_usd=[-1, 'ten', NAN, True], batch=['yes', 1, None])


def test_every_config_parameter_has_bad_values_to_try():
    from learn_reason.methods.pipeline import Config
    assert set(BAD) == {f.name for f in dataclasses.fields(Config)}


def test_random_bad_values_for_every_parameter_are_one_line_errors(capsys, tmp_path, monkeypatch):
    "Property-style: random bad values, for every parameter, through `make_config` and through the command line"
    from learn_reason.methods.pipeline import make_config, ConfigError
    from learn_reason.cli import main
    monkeypatch.setenv('LEARN_REASON_RUNS_DIR', str(tmp_path/'runs'))
    rng = random.Random(0)
    for name, pool in BAD.items():
        for v in rng.sample(pool, min(3, len(pool))):
            kw = dict(dataset='coin_flip', **{name: v}) if name != 'dataset' else {name: v}
            with pytest.raises(ConfigError) as e: make_config(**kw)
            assert f'parameter {name}' in str(e.value) and '\n' not in str(e.value), (name, v, e.value)
            if isinstance(v, float) and not math.isfinite(v): continue   # no literal spells nan on a command line
            args = ['method', *(f'{k}={x!r}' for k, x in kw.items()), '--quiet']
            capsys.readouterr()
            assert main(args) != 0, (name, v)
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and name in err[0] and 'Traceback' not in err[0], (name, v, err)
    assert not (tmp_path/'runs').exists()   # nothing ran


def test_a_feedback_teacher_that_is_no_member_is_refused_before_any_work(env, tmp_path):
    r = cli('method', 'dataset=coin_flip', 'source=synthetic', 'methods=mapd', 'feedback_teacher=gpt4',
            f'out={tmp_path/"m"}', env=env)
    one_line_error(r, 'parameter feedback_teacher', 'scripted:careful')
    assert not (tmp_path/'m').exists()


def test_library_stages_refuse_bad_values():
    from learn_reason.students.train import train
    from learn_reason.students.evaluate import evaluate
    from learn_reason.teachers.stage import stage
    from learn_reason.core.settings import UserError
    for kw, says in ((dict(epochs=0), 'epochs'), (dict(learning_rate=-1), 'learning_rate'), (dict(batch_size=0), 'batch_size')):
        with pytest.raises(UserError, match=says): train('tiny-gpt2', [], **kw)
    for kw, says in ((dict(samples=0), 'samples'), (dict(temperature=-1), 'temperature'), (dict(top_p=5), 'top_p'),
                     (dict(max_new=-5), 'max_new'), (dict(batch_size=0), 'batch_size')):
        with pytest.raises(UserError, match=says): evaluate(None, [], **kw)
    for kw, says in ((dict(samples=0), 'samples'), (dict(limit=-5), 'limit'), (dict(temperature=9), 'temperature')):
        with pytest.raises(UserError, match=says): stage('scripted', 'coin_flip', source='synthetic', **kw)
    with pytest.raises(UserError, match='out of range'): stage('scripted:hasty,wrong_step=2', 'coin_flip', source='synthetic')
