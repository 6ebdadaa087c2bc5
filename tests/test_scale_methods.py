"Method runs at scale (issue 16): a budget over the run's teacher requests, the Batch API, tracking, memory knobs."
import json
from pathlib import Path
import pytest

pytest.importorskip('torch')

RUN = dict(methods=['finetune_cot'], teacher='local', dataset='coin_flip', source='synthetic', data=dict(n=20),
           test_limit=2, epochs=1, max_new=8)


@pytest.fixture
def server(monkeypatch, tmp_path):
    "The scripted teacher behind a loopback server in this process, priced, as the `local` teacher section"
    from learn_reason.teachers.serve import TeacherServer
    from learn_reason.teachers.scripted import ScriptedTeacher
    for k, v in dict(CACHE_DIR=tmp_path/'cache', RUNS_DIR=tmp_path/'runs', PRICES_SCRIPTED_CAREFUL='20 80',
                     TEACHER_LOCAL_MODEL='scripted-careful').items():
        monkeypatch.setenv(f'LEARN_REASON_{k}', str(v))
    srv = TeacherServer(ScriptedTeacher('careful')).start()
    monkeypatch.setenv('LEARN_REASON_TEACHER_LOCAL_BASE_URL', srv.url)
    yield srv
    srv.stop()


def _one_request_worst(c)->float:
    "Round 0's stage: the average worst case of one request, from its dry run"
    from learn_reason.methods.pipeline import task, teacher_for, teacher_sampling
    from learn_reason.teachers.stage import stage
    tr = task(c)[0]
    e = stage(teacher_for(c, tr), c.dataset, 'train', 'zs-cot', examples=tr, out=Path(c.out)/'dry.jsonl',
              dry_run=True, **teacher_sampling(c)).estimate
    return e['usd_bound'] / e['requests']


def test_a_budget_refuses_stops_at_the_cap_and_resumes_when_raised(server, tmp_path):
    from learn_reason.methods.pipeline import run, run_usage, make_config
    from learn_reason.teachers.base import BudgetExceeded
    out = tmp_path/'run'
    with pytest.raises(BudgetExceeded, match=r'costs at least \$.*nothing was sent; raise budget_usd'):
        run(**RUN, out=str(out), budget_usd=1e-6)
    assert server.stats()['requests'] == 0 and run_usage(out)['requests'] == 0   # refused: nothing reached the server
    cap = 4 * _one_request_worst(make_config(**RUN, out=str(out)))
    with pytest.raises(BudgetExceeded, match='stopped at the budget.*raise budget_usd and run again'):
        run(**RUN, out=str(out), budget_usd=cap)
    sent, u = server.stats()['requests'], run_usage(out)
    assert 0 < sent < 2 * 14 and u['requests'] == sent and 0 < u['usd'] <= cap   # zs-cot: two requests a row
    r = run(**RUN, out=str(out), budget_usd=10.0)                                 # raised: the same run resumes
    s, u = server.stats(), run_usage(out)
    assert r.rounds[0]['teacher_rows'] == 14 and 'last_strict' in r.rounds[0]
    assert s['duplicates'] == 0 and s['requests'] == s['distinct'] == u['requests'] > sent, (s, u)   # none sent twice


def test_a_method_run_through_the_batch_api(server, tmp_path, monkeypatch):
    import functools
    from learn_reason.methods.pipeline import run
    from learn_reason.teachers import stage, batch
    monkeypatch.setattr(stage, 'abatch', functools.partial(batch.abatch, poll=0.05))   # the loopback server is quick
    r = run(**RUN, out=str(tmp_path/'run'), batch=True, budget_usd=10.0)
    rows = [json.loads(l) for l in (tmp_path/'run'/'r0'/'teacher.jsonl').read_text().splitlines()]
    assert len(rows) == r.rounds[0]['teacher_rows'] == 14
    assert server.stats()['requests'] == 0 and len(server.batches) == 2   # reasoning, then answers: two batches
    assert sum(b['request_counts']['completed'] for b in server.batches.values()) == 28


def test_a_run_reports_its_final_accuracy_to_tensorboard(server, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from learn_reason.methods.pipeline import run
    r = run(**RUN, out=str(tmp_path/'run'), report_to='tensorboard')
    ev = EventAccumulator(str(tmp_path/'run'/'tracking')).Reload()
    assert ev.Scalars('final/last_strict')[0].value == pytest.approx(r.rounds[-1]['last_strict'])
    assert ev.Scalars('teacher/requests')[0].value == 28
    assert b'"report_to": "tensorboard"' in ev.Tensors('config/text_summary')[0].tensor_proto.string_val[0]


def test_a_missing_tracker_is_refused_before_the_run_starts(server, tmp_path):
    import importlib.util
    from learn_reason.methods.pipeline import run
    from learn_reason.core.settings import UserError
    if importlib.util.find_spec('mlflow'): pytest.skip('mlflow is installed')
    with pytest.raises(UserError, match="report_to='mlflow' needs mlflow: pip install mlflow"):
        run(**RUN, out=str(tmp_path/'run'), report_to='mlflow')
    assert not (tmp_path/'run').exists()


def test_lora_with_gradient_checkpointing_in_bf16_trains_on_cpu(server, tmp_path):
    import contextlib, torch
    from learn_reason.methods.pipeline import run
    cpu = not torch.cuda.is_available()
    with pytest.warns(UserWarning, match='no CUDA device, training in fp32') if cpu else contextlib.nullcontext():
        r = run(**RUN, out=str(tmp_path/'run'), lora=True, gradient_checkpointing=True, precision='bf16')
    zero = r.rounds[0]
    assert zero['train_rows'] > 0 and zero['last_epoch'] == 1 and 0 <= zero['last_strict'] <= 1
    student = json.loads((Path(zero['train_dir'])/'final'/'student.json').read_text())
    assert student['lora']['r'] == 16
