"Continuous batching (issue 16, item 7): the student's decoder loop refills finished slots and writes what the static loop writes."
import collections
import pytest

torch = pytest.importorskip('torch')
torch.set_num_threads(1)

from learn_reason.data.datasets import load
from learn_reason.students.models import load_student
from learn_reason.students.evaluate import GenOptions, decode, decode_continuous, generate


@pytest.fixture(scope='module')
def student(): return load_student('tiny-gpt2', seed=0)


def mixed_prompts(n=20)->list:
    "Arithmetic questions cut to mixed lengths (4 to about 30 tokens)"
    return [e.question[:10 + 7 * i] + ' ###' for i, e in
            enumerate(load('arithmetic', 'test', source='synthetic', n=200, steps=3, digits=3)[:n])]


def test_generate_continuous_gives_the_static_loops_greedy_texts(student):
    "Mixed prompt lengths, and stop strings that end completions after 8, 16 or 24 tokens: the same texts, either loop"
    qs = mixed_prompts()
    full = generate(student, qs, 24, batch_size=6)
    common = collections.Counter(r['text'][k:k + 2] for r in full for k in range(len(r['text']) - 1)).most_common(3)
    stop = tuple(s for s, _ in common)
    static = generate(student, qs, 24, batch_size=6, stop=stop)
    assert {r['finish_reason'] for r in static} == {'stop', 'length'}, static  # completions of mixed lengths
    for kw in (dict(batch_size=6), dict(batch_size=4, refill=1.0), dict(batch_size=64)):
        assert generate(student, qs, 24, stop=stop, continuous=True, **kw) == static, kw
    assert [r['text'] for r in generate(student, qs, 24, batch_size=5, continuous=True)] == [r['text'] for r in full]


@pytest.mark.parametrize('name', ['tiny-gpt2', 'tiny-llama'])
def test_decode_continuous_matches_decode_token_for_token(name):
    "An early end-of-sequence token and rows ended by `done`: finished slots are refilled, every row's tokens are the same"
    s = load_student(name, seed=0)
    rows = [s.tok(q)['input_ids'] for q in mixed_prompts(16)]
    pad = s.tok.pad_token_id
    eos = collections.Counter(t for r in decode(s.model, rows, 20, pad, -1) for t in r).most_common(1)[0][0]
    done = lambda j, g: j % 3 == 0 and len(g) >= 8 * (1 + j % 2)
    static = decode(s.model, rows, 20, pad, eos, done=done)
    assert len({len(r) for r in static}) >= 3 and max(map(len, static)) == 20
    for o in (GenOptions(batch_size=3), GenOptions(batch_size=5, refill=0.5), GenOptions(batch_size=16)):
        assert decode_continuous(s.model, rows, 20, pad, eos, o, done) == static, o


def test_continuous_sampling_is_reproducible_for_a_seed(student):
    qs = mixed_prompts(12)
    kw = dict(do_sample=True, top_p=0.9, temperature=0.7, batch_size=4, continuous=True)
    a, b = generate(student, qs, 16, seed=3, **kw), generate(student, qs, 16, seed=3, **kw)
    assert a == b and len(a) == len(qs)
    assert all(1 <= r['new_tokens'] <= 16 and r['prompt_tokens'] > 0 for r in a)
    assert [r['text'] for r in generate(student, qs, 16, seed=4, **kw)] != [r['text'] for r in a]


def test_continuous_is_off_by_default_and_encoder_decoders_keep_model_generate():
    assert GenOptions().continuous is False
    t5 = load_student('tiny-t5', seed=0)
    qs = mixed_prompts(4)
    assert generate(t5, qs, 6, continuous=True) == generate(t5, qs, 6)
    assert decode_continuous(t5.model, [], 4, 0, 1) == [] and decode(load_student('tiny-gpt2').model, [[5]], 0, 0, 1) == [[]]
