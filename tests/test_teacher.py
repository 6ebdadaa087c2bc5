"Teachers end to end through the real openai client: a hostile loopback server, SIGKILL and resume, the budget, keys."
import json, os, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import cli, jsonl, ROOT, BIN

KEY = 'sk-test-DO-NOT-LEAK-0123456789abcdef'


def free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def stats(port:int)->dict: return json.loads(urllib.request.urlopen(f'http://127.0.0.1:{port}/stats', timeout=5).read())


def hold(port:int, on:bool):
    "Hold (or release) every answer the server has not sent yet"
    urllib.request.urlopen(urllib.request.Request(f'http://127.0.0.1:{port}/control/hold', data=json.dumps(dict(hold=on)).encode(),
                                                  method='POST', headers={'Content-Type': 'application/json'}), timeout=5)


@pytest.fixture
def serve(env):
    "Start `learn-reason teacher serve` in its own process (so its counts survive a killed client); returns the port"
    procs = []
    def start(*args, extra_env=None):
        port = free_port()
        p = subprocess.Popen([str(BIN/'learn-reason'), 'teacher', 'serve', '--teacher', 'scripted', '--port', str(port), *map(str, args)],
                             env={**env, **(extra_env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        for _ in range(200):
            try: stats(port); return port
            except OSError: time.sleep(0.05)
        raise RuntimeError(p.stderr.read())
    yield start
    for p in procs: p.terminate(); p.wait(10)


def local(env, port, **kw)->dict:
    "The environment that points the `local` teacher section at the loopback server on `port`"
    e = {**env, 'LEARN_REASON_TEACHER_LOCAL_BASE_URL': f'http://127.0.0.1:{port}/v1', 'LEARN_REASON_TEACHER_LOCAL_MODEL': 'scripted-careful'}
    return {**e, **{f'LEARN_REASON_TEACHER_LOCAL_{k.upper()}': str(v) for k, v in kw.items()}}


def run_args(out, *extra, n=60, prompt='rationale', dataset='arithmetic'):
    return ('teacher', 'run', '--teacher', 'local', '--dataset', dataset, '--source', 'synthetic', '-n', n, '--prompt', prompt, '--out', out, *extra)


def keys(rows): return [(r['id'], r['teacher'], r['prompt'], r['sample'], r['input']) for r in rows]


def test_hostile_server_every_result_arrives_nothing_failed_is_cached(serve, env, tmp_path):
    port = serve('--faults', 0.6)
    out = tmp_path/'rat.jsonl'
    r = cli(*run_args(out, n=150), env=local(env, port, timeout=1, max_retries=8))
    assert r.returncode == 0, r.stderr
    rows = jsonl(out.read_text())
    assert len(rows) == 150 and len(set(keys(rows))) == 150 and all(row['text'] for row in rows)
    s = stats(port)
    assert set(s['faults']) == {'429', '500', '503', 'stall', 'drop', 'malformed', 'empty'}, s['faults']
    assert s['duplicates'] == 0 and s['answered'] == 150
    exp = tmp_path/'cache.jsonl'
    assert cli('teacher', 'cache', 'export', exp, env=env).returncode == 0
    cached = jsonl(exp.read_text())
    assert len(cached) == 150 and all(c['completion']['text'].strip() and c['completion']['finish_reason'] == 'stop' for c in cached)


def _wait(cond, timeout=60):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout: raise TimeoutError
        time.sleep(0.05)


def test_sigkill_then_resume_exactly_once_and_no_duplicate_requests(serve, env, tmp_path):
    port = serve('--latency', 0.15)
    out, e = tmp_path/'zs.jsonl', local(env, port, concurrency=6)
    args = [str(BIN/'learn-reason'), *map(str, run_args(out, n=80, prompt='zs-cot', dataset='coin_flip')), '--samples', '2']
    # first kill: during the reasoning calls (no row written yet); second: while rows are being written. Each time the
    # server is held first, so no answer sits unread in a socket when the client dies: the requests in flight then are
    # exactly the ones whose answers the client never had (counted `abandoned`), and any other resend is a duplicate.
    def kill_mid_stage(ready):
        p = subprocess.Popen(args, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(ready); hold(port, True); time.sleep(1.0)
        assert p.poll() is None, 'the stage finished before it could be killed'
        p.send_signal(signal.SIGKILL); p.wait(); hold(port, False)
    kill_mid_stage(lambda: stats(port)['answered'] >= 40)
    assert not out.exists() or out.read_text().count('\n') == 0
    kill_mid_stage(lambda: out.exists() and out.read_text().count('\n') >= 25)
    partial = out.read_text().count('\n')
    assert 25 <= partial < 160
    r = subprocess.run(args, env=e, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = jsonl(out.read_text())
    assert len(rows) == 160 and len(set(keys(rows))) == 160, 'every row exactly once'
    s = stats(port)
    assert s['duplicates'] == 0 and s['answered'] == s['distinct'], s   # no answer delivered twice
    assert s['requests'] == s['distinct'] + s['abandoned'], s          # resent: only what was in flight when killed
    assert 160 < s['distinct'] <= 320   # two calls a row; greedy answer steps with the same reasoning are one request
    # the same output as a run that was never interrupted (fresh cache, fresh server)
    port2 = serve()
    clean = tmp_path/'clean.jsonl'
    r = cli(*run_args(clean, n=80, prompt='zs-cot', dataset='coin_flip'), '--samples', '2',
            env={**local(env, port2), 'LEARN_REASON_CACHE_DIR': str(tmp_path/'other-cache')})
    assert r.returncode == 0, r.stderr
    text = lambda rows: {k: (row['reasoning'], row['text']) for k, row in zip(keys(rows), rows)}
    assert text(rows) == text(jsonl(clean.read_text()))


def test_budget_is_never_exceeded(serve, env, tmp_path):
    port = serve()
    e = {**local(env, port), 'LEARN_REASON_PRICES_SCRIPTED_CAREFUL': '20 80'}   # dear: half a dollar buys a few dozen answers
    out, spent = tmp_path/'b.jsonl', []
    for _ in range(2):
        r = cli(*run_args(out, '--budget-usd', 0.5, n=100), env=e)
        assert r.returncode == 3 and 'stopped by the budget' in r.stderr, r.stderr
        led = jsonl(Path(str(out) + '.ledger.jsonl').read_text())[-1]
        spent.append(sum(m['usd'] for m in led['ledger'].values()))
        assert 0 < led['written'] < 100
    assert all(0 < s <= 0.5 for s in spent), spent
    # through the Batch API too: the batch holds what fits, and its answers are charged in the ledger
    rb = cli(*run_args(tmp_path/'bb.jsonl', '--batch', '--budget-usd', 0.5, n=100), env=e)
    assert rb.returncode == 3 and 'stopped by the budget' in rb.stderr, rb.stderr
    led = jsonl(Path(str(tmp_path/'bb.jsonl') + '.ledger.jsonl').read_text())[-1]
    usd, sent, cached = (sum(m[k] for m in led['ledger'].values()) for k in ('usd', 'requests', 'cached'))
    assert 0 < usd <= 0.5 and sent > 0 and sent + cached == led['written'], led   # earlier runs' answers come from the cache
    dry = cli(*run_args(out, '--dry-run', n=100), env=e)
    assert dry.returncode == 0 and 'dry run, nothing sent' in dry.stdout and 'cost at most $' in dry.stdout


def test_dry_run_sends_nothing(serve, env, tmp_path):
    port = serve()
    r = cli(*run_args(tmp_path/'d.jsonl', '--dry-run', n=30), env=local(env, port))
    assert r.returncode == 0 and '30 requests to send' in r.stdout, r.stdout
    assert stats(port)['requests'] == 0 and not (tmp_path/'d.jsonl').exists()


def test_the_api_key_is_written_nowhere(serve, env, tmp_path):
    port = serve('--api-key-env', 'SERVER_KEY', extra_env={'SERVER_KEY': KEY})
    e = {**local(env, port), 'LOCAL_TEACHER_KEY': KEY}
    assert cli(*run_args(tmp_path/'k.jsonl', n=20), env=e).returncode == 0
    assert cli(*run_args(tmp_path/'kb.jsonl', '--batch', n=20, prompt='zs-cot'), env=e).returncode == 0
    assert cli('teacher', 'cache', 'export', tmp_path/'export.jsonl', env=e).returncode == 0
    assert 'LOCAL_TEACHER_KEY' in cli('config', env=e).stdout and KEY not in cli('config', env=e).stdout
    written = [p for p in tmp_path.rglob('*') if p.is_file()]
    assert len(written) >= 5
    assert not [p for p in written if KEY.encode() in p.read_bytes()]
    wrong = cli(*run_args(tmp_path/'w.jsonl', n=2, dataset='coin_flip'), env={**e, 'LOCAL_TEACHER_KEY': 'wrong'})
    assert wrong.returncode == 1 and 'refused the API key in $LOCAL_TEACHER_KEY (401)' in wrong.stderr


def test_batch_through_the_loopback_server(serve, env, tmp_path):
    port = serve()
    out = tmp_path/'batch.jsonl'
    r = cli(*run_args(out, '--batch', n=40, prompt='zs-cot', dataset='coin_flip'), env=local(env, port))
    assert r.returncode == 0, r.stderr
    assert len(jsonl(out.read_text())) == 40
    again = cli(*run_args(out, '--batch', n=40, prompt='zs-cot', dataset='coin_flip'), env=local(env, port))
    assert ' 0 requests sent' in again.stdout and stats(port)['requests'] == 0   # everything went through two batches, once


def test_a_finished_stage_sends_nothing_again(serve, env, tmp_path):
    port = serve()
    out = tmp_path/'f.jsonl'
    assert cli(*run_args(out, n=50), env=local(env, port)).returncode == 0
    before = stats(port)['requests']
    out.unlink()
    r = cli(*run_args(out, n=50), env=local(env, port))
    assert r.returncode == 0 and stats(port)['requests'] == before and '50 answered from the cache' in r.stdout


def no_traceback(r): assert 'Traceback' not in r.stderr + r.stdout, r.stderr


def test_user_errors_are_one_clear_line(env, tmp_path):
    e = {k: v for k, v in env.items() if k != 'OPENAI_API_KEY'}
    r = cli(*run_args(tmp_path/'x.jsonl', n=2)[:3], 'openai', *run_args(tmp_path/'x.jsonl', n=2)[4:], env=e)
    assert r.returncode == 1 and 'set the environment variable OPENAI_API_KEY' in r.stderr
    no_traceback(r)
    r = cli(*run_args(tmp_path/'x.jsonl', n=2), env=local(env, 9, max_retries=1, timeout=2))
    assert r.returncode == 1 and 'gave up after 2 tries: cannot connect to http://127.0.0.1:9/v1' in r.stderr
    no_traceback(r)
    r = cli('teacher', 'run', '--teacher', 'gpt-17', '--dataset', 'coin_flip', env=env)
    assert r.returncode == 2 and "unknown teacher 'gpt-17'; valid: scripted" in r.stderr and 'openai' in r.stderr
    no_traceback(r)
    r = cli('teacher', 'run', '--teacher', 'scripted:hasty,foo=1', '--dataset', 'coin_flip', '--source', 'synthetic', env=env)
    assert r.returncode == 1 and "unknown rate 'foo'" in r.stderr and 'wrong_step' in r.stderr
    no_traceback(r)
    r = cli('teacher', 'run', '--teacher', 'scripted', '--dataset', 'coin_flip', '--source', 'synthetic', '--prompt', 'review', env=env)
    assert r.returncode == 1 and 'the review prompt needs inputs' in r.stderr


def test_cache_export_import_roundtrip(serve, env, tmp_path):
    port = serve()
    assert cli(*run_args(tmp_path/'a.jsonl', n=10), env=local(env, port)).returncode == 0
    assert cli('teacher', 'cache', 'export', tmp_path/'x.jsonl', env=env).returncode == 0
    r = cli('teacher', 'cache', 'import', tmp_path/'x.jsonl', '--cache', tmp_path/'other.sqlite', env=env)
    assert r.returncode == 0 and "'added': 10" in r.stdout
    st = json.loads(cli('teacher', 'cache', 'stats', '--cache', tmp_path/'other.sqlite', env=env).stdout)
    assert st['completions'] == 10 and 'scripted-careful' in st['models']


def test_mapd_replay_committee(reference):
    "MAPD's recorded teachers answer MAPD's own prompts with their recorded texts"
    from learn_reason.teachers.replay import mapd_committee, mapd_mistakes
    from learn_reason.teachers.prompts import mapd_feedback
    from learn_reason.teachers.dispatch import run
    folder = reference/'teacher_outputs'/'mapd'
    com, m = mapd_committee(folder), mapd_mistakes(folder)[0]
    for t in com:
        res = run(t, [t.request(mapd_feedback(m['question'], m['attempt'], m['gold']))], progress=False)
        assert res.done == 1 and res.completions[0].text and res.ledger.total('usd') in (0, 0.0, None)


def test_the_openai_teacher_follows_the_official_clients_variables(serve, env, tmp_path):
    "`--teacher openai` with no base_url in settings.ini goes where $OPENAI_BASE_URL says, with $OPENAI_API_KEY"
    port = serve('--api-key-env', 'SERVE_KEY', extra_env={'SERVE_KEY': 'sk-loopback-test-key-123'})
    out, e = tmp_path/'o.jsonl', {**env, 'OPENAI_BASE_URL': f'http://127.0.0.1:{port}/v1',
                                  'LEARN_REASON_TEACHER_OPENAI_MODEL': 'scripted-careful'}
    args = ('teacher', 'run', '--teacher', 'openai', '--dataset', 'arithmetic', '--source', 'synthetic', '-n', 5,
            '--prompt', 'rationale', '--out', out)
    r = cli(*args, env={**e, 'OPENAI_API_KEY': 'sk-a-wrong-key-000000'})
    assert r.returncode != 0 and stats(port)['answered'] == 0          # the server refused the wrong key
    r = cli(*args, env={**e, 'OPENAI_API_KEY': 'sk-loopback-test-key-123'})
    assert r.returncode == 0, r.stderr
    assert len(jsonl(out.read_text())) == 5 and stats(port)['answered'] == 5
    assert 'sk-loopback-test-key-123' not in r.stdout + r.stderr + out.read_text()
