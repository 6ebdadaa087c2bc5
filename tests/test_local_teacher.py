"""The local transformers teacher answers concurrent greedy requests in batches (issue 16, item 6): a batch gives what
each request gives alone, row by row (text, stop strings, finish reason, token counts), and mixed settings are split."""
import asyncio
import pytest
from learn_reason.teachers.base import Request
from learn_reason.teachers.dispatch import run
from learn_reason.teachers.local import LocalTeacher, generation_groups
from learn_reason.teachers.prompts import zs_cot

torch = pytest.importorskip('torch')
CHAT = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
QS = [f'Q: what is {i} + {i * 7}?{" Think." * (i % 5)}' for i in range(16)]


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "A tiny random GPT-2 (wide initial weights, so greedy text varies) with a byte tokenizer that has a chat template"
    from transformers import GPT2Config, GPT2LMHeadModel, ByT5Tokenizer
    torch.manual_seed(0)
    tok = ByT5Tokenizer(); tok.chat_template = CHAT
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_layer=2, n_embd=64, n_head=2, n_positions=256,
                                    initializer_range=0.3, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    out = tmp_path_factory.mktemp('tiny'); lm.save_pretrained(out); tok.save_pretrained(out)
    return str(out)


def mixed(t:LocalTeacher)->list:
    "16 greedy requests of different lengths: plain prompts and chat messages (through the chat template)"
    return [Request(t.model, prompt=q, max_tokens=24) if i % 2 else t.request(zs_cot(q, max_tokens=24))
            for i, q in enumerate(QS)]


def gather(t:LocalTeacher, rs:list)->list:
    "Send `rs` at once; in a thread of its own, so a loop another test left running in this one cannot interfere"
    from concurrent.futures import ThreadPoolExecutor
    async def go(): return await asyncio.gather(*[t.acomplete(r) for r in rs])
    with ThreadPoolExecutor(1) as ex: return ex.submit(asyncio.run, go()).result()


def test_batched_greedy_answers_equal_one_at_a_time(folder):
    t = LocalTeacher(folder, device='cpu'); t.load()
    rs = mixed(t)
    assert t._tok.chat_template == CHAT and rs[0].messages and rs[1].prompt
    alone = [t._generate(r) for r in rs]
    assert len({c.text for c in alone}) == len(rs)       # sixteen different answers: a real comparison
    t.calls.clear()
    got = run(t, rs, progress=False)                     # the dispatcher, with the teacher's concurrency
    assert got.completions == alone
    assert max(t.calls) > 1 and sum(t.calls.values()) < len(rs), t.calls
    t.calls.clear()
    assert t._generate_batch(rs) == alone and dict(t.calls) == {16: 1}


def test_each_row_ends_at_its_own_eos_with_its_own_stop_strings_and_finish_reason(folder):
    t = LocalTeacher(folder, device='cpu'); t.load()
    rows = [t._tok(q, add_special_tokens=False)['input_ids'] for q in QS]
    raw = [t._lm.generate(input_ids=torch.tensor([x]), max_new_tokens=24, do_sample=False,
                          attention_mask=torch.ones(1, len(x), dtype=torch.long), pad_token_id=0)[0, len(x):].tolist()
           for x in rows]
    # make a token some rows write (at different places) an end-of-sequence token too, so rows end apart
    eos = max(range(3, 384), key=lambda k: sum(k in g for g in raw))
    t._lm.generation_config.eos_token_id = [t._tok.eos_token_id, eos]
    want = [g.index(eos) + 1 if eos in g else 24 for g in raw]
    assert 1 < len(set(want)) and 24 in want, want
    free = [t._generate(Request(t.model, prompt=q, max_tokens=24)) for q in QS]
    stops = [[f.text[3:5]] if i % 3 == 0 and len(f.text) > 5 else None for i, f in enumerate(free)]
    rs = [Request(t.model, prompt=q, max_tokens=24, stop=s) for q, s in zip(QS, stops)]
    alone, batched = [t._generate(r) for r in rs], t._generate_batch(rs)
    assert batched == alone
    assert [c.completion_tokens for c in batched] == want
    assert [c.finish_reason for c in batched] == ['stop' if s or n < 24 else 'length' for s, n in zip(stops, want)]
    cut = [i for i, s in enumerate(stops) if s]
    assert cut and all(len(batched[i].text) < len(free[i].text) and batched[i].text + stops[i][0] in free[i].text
                       for i in cut)


def test_prompt_tokens_per_row_exclude_the_padding(folder):
    t = LocalTeacher(folder, device='cpu'); t.load()
    rs = mixed(t)
    n = [len(t._tok.apply_chat_template(r.messages, add_generation_prompt=True, return_dict=True)['input_ids']) if r.messages
         else len(t._tok(r.prompt, add_special_tokens=False)['input_ids']) for r in rs]
    assert len(set(n)) > 8 and n[1] == len(QS[1])
    assert [c.prompt_tokens for c in t._generate_batch(rs)] == n


def test_a_batch_of_mixed_settings_is_split_into_generate_calls(folder):
    t = LocalTeacher(folder, device='cpu')
    rs = [Request(t.model, prompt=q, max_tokens=8 if i % 2 else 12, temperature=0.8 if i % 5 == 4 else 0.0,
                  top_p=0.9 if i % 3 == 0 else None, stop=['.'] if i % 4 == 0 else None, sample=i % 2)
          for i, q in enumerate(QS[:12])]
    groups = generation_groups(rs)
    assert groups == [[0, 2, 6, 8, 10], [1, 3, 5, 7, 11], [4], [9]]
    alone = [t._generate(r) for r in rs]                 # sampled ones too: seeded by their key, as alone
    t.calls.clear(); t.batch_wait = 0.5                  # let the whole batch gather, so the split is the one above
    assert gather(t, rs) == alone
    assert dict(t.calls) == {5: 2, 1: 2}
    assert [c.completion_tokens for c in alone] == [r.max_tokens for r in rs]


def test_a_model_that_cannot_load_fails_every_waiting_request(tmp_path):
    from learn_reason.teachers.base import TeacherError
    t = LocalTeacher(str(tmp_path/'none'))
    with pytest.raises(TeacherError, match='cannot load'): gather(t, [Request('m', prompt='a'), Request('m', prompt='b')])
