"The command line against hostile input: every mistake or expected failure is one line on stderr and a non-zero exit."
import http.server, json, random, signal, socket, subprocess, sys, threading, time
import pytest
from conftest import cli, jsonl, ROOT, BIN


def one_line(r)->str:
    "The single stderr line of a finished command (asserting there is exactly one and no traceback)"
    assert 'Traceback' not in r.stderr + r.stdout, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), r.stderr
    return lines[0]


# --- numbers on the command line -----------------------------------------------------------------------------------

W, BIG = 'whole', 2**31 - 1
# (the command before the flag, the flag, the kind, lowest, highest, lowest excluded). Datasets and files that do not
# exist: were a bad value accepted, the command would stop at once with a different message (and no flag named).
TR, TS = ('teacher', 'run', '--dataset', 'nosuch'), ('teacher', 'serve', '--dataset', 'nosuch')
ST, SE = ('student', 'train', '--rows', 'nosuch.jsonl'), ('student', 'eval', '--dataset', 'nosuch')
DS, RP = ('data', 'show', 'nosuch'), ('repro', 'nosuch.yaml')
FLAGS = [(TR, '-n', W, 1, BIG, False), (TR, '--samples', W, 1, BIG, False), (TR, '--temperature', float, 0, 2, False),
         (TR, '--budget-usd', float, 0, None, False), (TS, '--port', W, 1, 65535, False),
         (TS, '--faults', float, 0, 1, False), (TS, '--latency', float, 0, None, False),
         (ST, '-n', W, 1, BIG, False), (ST, '--epochs', W, 1, BIG, False), (ST, '--lr', float, 0, None, True),
         (ST, '--batch-size', W, 1, BIG, False), (ST, '--max-new', W, 1, BIG, False),
         (SE, '-n', W, 1, BIG, False), (SE, '--samples', W, 1, BIG, False), (SE, '--top-p', float, 0, 1, True),
         (SE, '--temperature', float, 0, None, False), (SE, '--max-new', W, 1, BIG, False),
         (SE, '--batch-size', W, 1, BIG, False),
         (DS, '-n', W, 1, BIG, False), (RP, '--jobs', W, 1, BIG, False), (RP, '--threads', W, 1, BIG, False)]
JUNK = ['abc', '', ' ', 'nan', 'NaN', 'inf', '-inf', '1e999', '-1e999', '0x10', '1,5', '3 4', '--', 'ten']


def bad_values(rng:random.Random, kind, lo, hi, open_lo)->list:
    "Values `kind` must refuse: junk, numbers below `lo` (and `lo` itself if excluded), numbers above `hi`, huge ones"
    out = list(JUNK)
    if kind == W:
        out += [str(rng.randint(-10**6, lo - 1)) for _ in range(3)] + ['0', '2.5', '1e3']
        out.append(str(rng.randint(hi + 1, 10**40)))
    else:
        out += [repr(lo - rng.uniform(1e-6, 1e6)) for _ in range(3)] + ['-0.001']
        if open_lo: out.append(str(lo))
        if hi is not None: out += [repr(hi + rng.uniform(1e-6, 1e6)), repr(hi + 1e-9)]
    return out


def test_every_numeric_flag_refuses_bad_values_in_one_line(capsys):
    from learn_reason.cli import main, parser
    a = parser().parse_args(['student', 'eval', '--dataset', 'x', '--top-p', '1', '--temperature', '0', '-n', '3'])
    assert (a.top_p, a.temperature, a.n) == (1.0, 0.0, 3)   # the edges of each range are still allowed
    a = parser().parse_args(['teacher', 'serve', '--port', '65535', '--faults', '1', '--latency', '0'])
    assert (a.port, a.faults, a.latency) == (65535, 1.0, 0.0)
    rng, n = random.Random(0), 0
    for pre, flag, kind, lo, hi, open_lo in FLAGS:
        for v in bad_values(rng, kind, lo, hi, open_lo):
            args = [f'{flag}={v}'] if v.startswith('-') or not v.strip() or rng.random() < 0.5 else [flag, v]
            code = main([*pre, *args])
            out, err = capsys.readouterr()
            lines = err.strip().splitlines()
            assert code == 2 and not out and len(lines) == 1 and 'Traceback' not in err, (pre, args, code, err)
            assert lines[0].startswith(f'learn-reason: argument {flag}: '), (pre, args, err)
            n += 1
    assert n > 300


@pytest.mark.parametrize('args, flag', [
    (('data', 'show', 'coin_flip', '--source', 'synthetic', '-n', '-5'), '-n'),   # was: every example but the last five
    (('teacher', 'run', '--teacher', 'scripted', '--dataset', 'coin_flip', '--source', 'synthetic', '-n', '3',
      '--samples', '0'), '--samples'),                                                # was: nothing sent, exit 0
    (('teacher', 'run', '--dataset', 'coin_flip', '--temperature', 'nan', '--dry-run'), '--temperature'),
    (('student', 'train', '--rows', 'rows.jsonl', '--epochs', '0'), '--epochs'),
    (('teacher', 'serve', '--port', '70000'), '--port')])
def test_bad_numbers_from_the_console_script(env, tmp_path, args, flag):
    (w := tmp_path/'w').mkdir()
    r = cli(*args, env=env, cwd=w)
    line = one_line(r)
    assert r.returncode == 2 and not r.stdout and line.startswith(f'learn-reason: argument {flag}: must be a'), r.stderr
    assert not any(w.iterdir()) and not (tmp_path/'runs').exists() and not (tmp_path/'cache').exists()  # no output


def test_a_refusal_imports_no_heavy_module(env):
    code = ("import sys; from learn_reason.cli import main; "
            "c = main(['student', 'train', '--rows', 'r', '--lr', '-1']); "
            "print(c, [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules])")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=120)
    assert r.stdout.split('\n')[0] == '2 []', r.stdout + r.stderr
    assert 'argument --lr: must be a number > 0' in one_line(r)


# --- failures of the machine, the network, the provider --------------------------------------------------------------

def test_folders_that_cannot_be_written_are_one_line(env, tmp_path):
    preds = tmp_path/'p.jsonl'; preds.write_text('{"prediction": "7", "answer": "7"}\n')
    for out, why in ((preds/'s.jsonl', 'Not a directory'), (tmp_path/'no'/'s.jsonl', 'No such file or directory')):
        r = cli('score', 'gsm8k', preds, '--out', out, env=env)
        assert r.returncode == 1 and one_line(r) == f'learn-reason: {out}: {why}'
    r = cli('demo', '--out', preds, env={**env, 'LEARN_REASON_SOURCES': 'synthetic'})
    assert r.returncode == 1 and one_line(r) == f'learn-reason: {preds}: File exists'


def test_a_port_in_use_is_one_line(env):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); s.listen()
        port = s.getsockname()[1]
        r = cli('teacher', 'serve', '--teacher', 'scripted', '--port', port, env=env)
    assert r.returncode == 1 and not r.stdout, r.stdout    # it does not claim to be serving
    assert one_line(r) == f'learn-reason: --port {port}: cannot listen on 127.0.0.1:{port} (Address already in use)'


def test_ctrl_c_is_one_line_and_exit_130(env, tmp_path):
    "A stage waiting on a server that never answers, interrupted: no traceback, exit 130"
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); s.listen(); s.settimeout(60)
        e = {**env, 'LEARN_REASON_TEACHER_LOCAL_BASE_URL': f'http://127.0.0.1:{s.getsockname()[1]}/v1'}
        args = ['teacher', 'run', '--teacher', 'local', '--dataset', 'coin_flip', '--source', 'synthetic', '-n', '2',
                '--prompt', 'rationale', '--out', str(tmp_path/'o.jsonl')]
        p = subprocess.Popen([str(BIN/'learn-reason'), *args], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=ROOT)
        conn, _ = s.accept()   # the request is on its way: the stage is running
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        conn.close()
    assert p.returncode == 130 and 'Traceback' not in err, err
    assert err.strip().splitlines()[-1] == 'learn-reason: interrupted', err


class _Refuse(http.server.BaseHTTPRequestHandler):
    "A provider that answers every request with 429"
    def refuse(self):
        self.rfile.read(int(self.headers.get('content-length') or 0))
        body = json.dumps(dict(error=dict(message='Enqueued token limit reached', type='rate_limit_error'))).encode()
        self.send_response(429); self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(body))); self.end_headers(); self.wfile.write(body)
    do_GET = do_POST = refuse
    def log_message(self, *a): pass


@pytest.fixture
def refusing():
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Refuse)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/v1'
    srv.shutdown(); srv.server_close()


def test_a_429_during_a_batch_is_one_line(env, tmp_path, refusing):
    e, out = {**env, 'LEARN_REASON_TEACHER_LOCAL_BASE_URL': refusing}, tmp_path/'b.jsonl'
    args = ('teacher', 'run', '--teacher', 'local', '--dataset', 'coin_flip', '--source', 'synthetic', '-n', 3,
            '--prompt', 'rationale', '--out', out, '--batch')
    r = cli(*args, env=e)
    assert r.returncode == 1 and one_line(r) == (
        f'learn-reason: batch: {refusing} failed while uploading the requests: 429 Enqueued token limit reached; '
        'nothing was submitted: run the same command again later')
    state = out.with_name(out.name + '.local.batch.json')   # as a run killed while its batch was in flight leaves it
    state.write_text(json.dumps(dict(batch_id='batch_abc', input_file_id='file_abc', endpoint='chat', requests=3)))
    r = cli(*args, env=e)
    line = one_line(r)
    assert r.returncode == 1 and 'failed while polling batch batch_abc: 429' in line and 'resume it' in line, line
    assert state.is_file()   # kept: the batch may still finish


def test_sqlite_that_cannot_be_opened_is_one_line(env, tmp_path):
    (tmp_path/'adir').mkdir()
    r = cli('teacher', 'cache', 'stats', '--cache', tmp_path/'adir', env=env)
    assert r.returncode == 1
    assert one_line(r) == f'learn-reason: {tmp_path/"adir"}: unable to open database file (the teacher cache)'
    (tmp_path/'cache'/'teacher.sqlite').mkdir(parents=True)   # where the default cache should be: a folder
    r = cli('teacher', 'run', '--teacher', 'scripted', '--dataset', 'coin_flip', '--source', 'synthetic', '-n', 2,
            '--out', tmp_path/'o.jsonl', env=env)
    assert r.returncode == 1 and one_line(r).startswith('learn-reason: SQLite: unable to open database file')


def test_a_provider_error_that_reaches_the_top_is_one_line(monkeypatch, capsys):
    "No command lets an `openai` error through today; if one ever does, it is one line with the status, not a traceback"
    import httpx2, openai
    from learn_reason import cli as C
    req = httpx2.Request('POST', 'https://api.example.com/v1/chat/completions')
    resp = httpx2.Response(429, request=req, json=dict(error=dict(message='Rate limit reached')))
    for err in (openai.RateLimitError('Error code: 429 - Rate limit reached', response=resp, body=None),
                openai.APIConnectionError(request=req)):
        def boom(a, err=err): raise err
        monkeypatch.setattr(C, 'cmd_config', boom)
        code, (out, text) = C.main(['config']), capsys.readouterr()
        assert code == 1 and text.count('\n') == 1, text
        assert text.startswith('learn-reason: https://api.example.com/v1/chat/completions: '), text
    assert text.strip().endswith('Connection error.')


# --- files -----------------------------------------------------------------------------------------------------------

def test_score_refuses_repeated_ids(env, tmp_path):
    f = tmp_path/'p.jsonl'
    f.write_text(''.join(json.dumps(dict(id=i, prediction='It is 7.', answer='7')) + '\n' for i in ('a', 'b', 'a')))
    r = cli('score', 'gsm8k', f, env=env)
    assert r.returncode == 1 and not r.stdout
    assert one_line(r) == f"learn-reason: {f}:3: id 'a' is also on line 1; each counts once"
    f.write_text(''.join(json.dumps(dict(id='a', sample=k, prediction='7', answer='7')) + '\n' for k in (0, 1)))
    assert cli('score', 'gsm8k', f, env=env).returncode == 0   # samples of one question are different predictions


SVAMP = [dict(ID=f'chal-{i}', Body='Tom has 3 apples.', Question='How many apples does he have?', Equation='( 3.0 )',
              Answer=3.0, Type='Addition') for i in range(6)]
COIN = dict(name='coin_flip', examples=[dict(question=f'A coin is heads up. Ann flips it {i} times. Is it heads up?',
                                              answer='yes') for i in range(6)])


def show(env, data_dir, name):
    return cli('data', 'show', name, '--split', 'all', '--source', 'local', '--data-dir', data_dir, env=env)


@pytest.mark.parametrize('name, rel, text, cut', [
    ('svamp', 'svamp/SVAMP.json', json.dumps(SVAMP, indent=4), lambda t: t[:t.index('},', len(t) // 2) + 2]),
    ('svamp', 'svamp/SVAMP.json', json.dumps(SVAMP, indent=4), lambda t: t[:t.index('}', len(t) // 2) + 1]),
    ('svamp', 'svamp/SVAMP.json', json.dumps(SVAMP, indent=4), lambda t: t[:len(t) // 2]),
    ('coin_flip', 'coin_flip/coin_flip.json', json.dumps(COIN, indent=1), lambda t: t[:t.index('},', len(t) // 2) + 2]),
    ('coin_flip', 'coin_flip/coin_flip.json', json.dumps(COIN, indent=1), lambda t: t[:t.rindex(']') + 1]),  # no }
    ('coin_flip', 'coin_flip/coin_flip.json', json.dumps(COIN, indent=1), lambda t: t[:len(t) // 2])])
def test_a_truncated_upstream_file_is_one_line(env, tmp_path, name, rel, text, cut):
    f = tmp_path/'d'/rel; f.parent.mkdir(parents=True)
    f.write_text(text)
    whole = show(env, tmp_path/'d', name)
    assert whole.returncode == 0 and len(jsonl(whole.stdout)) == 6, whole.stderr
    f.write_text(cut(text))
    r = show(env, tmp_path/'d', name)
    line = one_line(r)
    assert r.returncode == 1 and not r.stdout and line.startswith(f'learn-reason: {f}:') and 'truncated?' in line, line


def test_the_reference_svamp_cut_in_half(env, reference, tmp_path):
    src = (reference/'benchmarks'/'svamp'/'SVAMP.json').read_bytes()
    f = tmp_path/'d'/'svamp'/'SVAMP.json'; f.parent.mkdir(parents=True)
    f.write_bytes(src[:len(src) // 2])
    r = show(env, tmp_path/'d', 'svamp')
    line = one_line(r)
    assert r.returncode == 1 and line.startswith(f'learn-reason: {f}:') and 'truncated?' in line, line
