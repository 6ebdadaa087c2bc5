"Damaged files are repaired, not a traceback: a garbage or truncated cache, garbage inside a stage file, a lost cache."
import json, random
from pathlib import Path
from conftest import cli, jsonl


def filled_cache(path:Path, n:int)->dict:
    "A cache file holding `n` answers written through the Cache API, its log folded into the file; `{key: text}`"
    from learn_reason.teachers.cache import Cache
    from learn_reason.teachers.base import Request, Completion
    c, out = Cache(path), {}
    for i in range(n):
        r = Request('scripted', [dict(role='user', content=f'question {i}')])
        c.put(r, Completion(f'answer {i} ' + 'x' * 300)); out[r.key()] = f'answer {i} ' + 'x' * 300
    c._db().close()  # the last connection checkpoints the WAL into the file and removes it
    assert not Path(f'{path}-wal').exists()
    return out


def set_aside(path:Path)->list:
    "The damaged copies of cache file `path` beside it (without their -wal/-shm companions)"
    return [p for p in path.parent.iterdir()
            if p.name.startswith(path.name + '.damaged-') and not p.name.endswith(('-wal', '-shm'))]


def assert_one_warning(r):
    assert r.returncode == 0, r.stderr
    assert 'Traceback' not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('warning: '), r.stderr
    assert 'damaged' in lines[0] and 'fresh cache' in lines[0], r.stderr


def test_cache_overwritten_with_garbage_is_set_aside_and_a_fresh_one_started(env, tmp_path):
    f = tmp_path/'teacher.sqlite'
    filled_cache(f, 20)
    garbage = random.Random(0).randbytes(f.stat().st_size)
    f.write_bytes(garbage)
    r = cli('teacher', 'cache', 'stats', '--cache', f, env=env)
    assert_one_warning(r)
    assert json.loads(r.stdout)['completions'] == 0
    assert [p.read_bytes() for p in set_aside(f)] == [garbage]  # nothing deleted: the damaged bytes are kept beside it
    r = cli('teacher', 'cache', 'stats', '--cache', f, env=env)  # the fresh cache is healthy: no second warning
    assert r.returncode == 0 and r.stderr == '' and len(set_aside(f)) == 1


def test_truncated_cache_is_set_aside_and_a_fresh_one_started(env, tmp_path):
    f = tmp_path/'teacher.sqlite'
    filled_cache(f, 300)
    half = f.stat().st_size // 2
    with open(f, 'r+b') as fh: fh.truncate(half)
    r = cli('teacher', 'cache', 'stats', '--cache', f, env=env)
    assert_one_warning(r)
    assert json.loads(r.stdout)['completions'] < 300
    assert [p.stat().st_size for p in set_aside(f)] == [half]


def test_doctor_finds_garbage_inside_a_stage_file_and_repairs_it(env, tmp_path, monkeypatch):
    from learn_reason.repro.doctor import doctor, report
    monkeypatch.setenv('LEARN_REASON_CACHE_DIR', str(tmp_path/'no-cache'))  # no default cache to look at
    out = tmp_path/'runs'/'rat.jsonl'
    r = cli('teacher', 'run', '--teacher', 'scripted', '--dataset', 'arithmetic', '--source', 'synthetic', '-n', 8,
            '--prompt', 'rationale', '--out', out, env=env)
    assert r.returncode == 0, r.stderr
    lines = out.read_bytes().splitlines(keepends=True)
    assert len(lines) == 8
    # a crash that left a block of zeros where line 4 was (as a file system can after a power cut)
    damaged = b''.join(lines[:3]) + b'\x00' * (len(lines[3]) - 1) + b'\n' + b''.join(lines[4:])
    out.write_bytes(damaged)
    found = doctor(tmp_path/'runs')
    assert [(Path(x.file), x.line, x.fixed, x.harmless) for x in found] == [(out, 4, False, False)], report(found)
    assert out.read_bytes() == damaged  # a check changes nothing
    found = doctor(tmp_path/'runs', fix=True)
    assert [(Path(x.file), x.line, x.fixed) for x in found] == [(out, 4, True)], report(found)
    assert out.read_bytes() == b''.join(lines[:3] + lines[4:])  # the good rows, in their order
    assert Path(f'{out}.damaged').read_bytes() == b'\x00' * (len(lines[3]) - 1) + b'\n'
    assert doctor(tmp_path/'runs') == []
    # a last line cut short (a kill in the middle of a write) is harmless: reported as such, and left to the readers
    cut = out.read_bytes() + lines[3][:len(lines[3]) // 2]
    out.write_bytes(cut)
    found = doctor(tmp_path/'runs', fix=True)
    assert [(x.line, x.fixed, x.harmless) for x in found] == [(8, False, True)] and 'harmless' in found[0].problem
    assert out.read_bytes() == cut


def test_rebuild_puts_back_answers_that_stage_rows_record(tmp_path):
    from learn_reason.teachers.cache import Cache
    from learn_reason.teachers.prompts import zs_cot, zs_cot_answer
    from learn_reason.teachers.base import make_request
    step1 = make_request(zs_cot('What is 2 + 3?'), 'm', dataset='t', id='t-0')
    step2 = make_request(zs_cot_answer('What is 2 + 3?', ' 2 + 3 = 5.'), 'm', dataset='t', id='t-0')
    rows = [dict(dataset='t', split='train', id='t-0', teacher='m', prompt='zs-cot', sample=0, input='', text=' 5',
                 finish_reason='stop', model='m-1', prompt_tokens=40, completion_tokens=12, request_key=step2.key(),
                 reasoning=' 2 + 3 = 5.', reasoning_finish_reason='stop', reasoning_key=step1.key())]
    (tmp_path/'stage.jsonl').write_text(json.dumps(rows[0]) + '\n')
    c = Cache(tmp_path/'teacher.sqlite')
    assert c.rebuild(tmp_path) == dict(files=1, added=2, present=0, skipped=0)
    assert c.get(step2.key()).text == ' 5' and c.get(step1.key()).text == ' 2 + 3 = 5.'
    assert c.export(tmp_path/'export.jsonl.txt') == 2  # export and import carry rebuilt answers too
    other = Cache(tmp_path/'other.sqlite')
    assert other.import_(tmp_path/'export.jsonl.txt') == dict(added=2, present=0, rejected=0)
    assert other.get(step1.key()).text == ' 2 + 3 = 5.'


def test_a_lost_cache_is_rebuilt_from_the_stage_files_and_nothing_is_asked_twice(env, tmp_path):
    from learn_reason.teachers.cache import Cache
    from learn_reason.repro.doctor import doctor, report
    runs, f = tmp_path/'runs', tmp_path/'cache'/'teacher.sqlite'
    args = ('teacher', 'run', '--teacher', 'scripted', '--dataset', 'arithmetic', '--source', 'synthetic', '-n', 12)
    stage = lambda prompt, out, *a: cli(*args, '--prompt', prompt, '--out', out, *a, env=env)
    for prompt, extra in (('zs-cot', ('--samples', 2)), ('rationale', ())):
        r = stage(prompt, runs/f'{prompt}.jsonl', *extra)
        assert r.returncode == 0, r.stderr
    db = Cache(f)
    paid = {k: c['text'] for k, c in ((d['key'], d['completion']) for d in _export(db, tmp_path/'before.jsonl.txt'))}
    db._db().close()
    assert len(paid) == 12 * 2 * 2 + 12  # two zs-cot steps for each of two samples, one rationale
    f.write_bytes(random.Random(1).randbytes(f.stat().st_size))  # the cache is lost
    found = doctor(runs, fix=True, cache=f)
    assert all(x.fixed for x in found) and len(set_aside(f)) == 1, report(found)
    c = Cache(f)
    assert {k: c.get(k).text for k in paid} == paid
    for prompt, extra in (('zs-cot', ('--samples', 2)), ('rationale', ())):  # the same stages again, into new files
        r = stage(prompt, runs/f'again-{prompt}.jsonl', *extra)
        assert r.returncode == 0 and ': 0 requests sent' in r.stdout, r.stdout + r.stderr
        again = {(x['id'], x['sample']): x['text'] for x in jsonl((runs/f'again-{prompt}.jsonl').read_text())}
        assert again == {(x['id'], x['sample']): x['text'] for x in jsonl((runs/f'{prompt}.jsonl').read_text())}


def _export(c, path)->list:
    c.export(path)
    return jsonl(path.read_text())
