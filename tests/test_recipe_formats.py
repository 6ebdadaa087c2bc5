"""Each paper's student text as its code wrote it (issue 13): prompt and target strings on one fixed example, and for
training the token labels and loss weights, against the papers' own procedure re-done here by hand.

The papers' code read: Fine-tune-CoT `src/data/format.py`, `src/custom/data_module.py`, `custom_train.py`
(itsnamgyu/reasoning-teacher @ de0a327); Learn-to-Reason `preprocessors.py`, `data.py`, `trainer.py`, `args.py`
(Raibows/Learn-to-Reason @ 2f2cf28); MAPD `data.py`, `all_prompts.py`, `test.py` (zhuochunli/Learn-from-Committee
@ 8ccc069). nbs/students/41_formats.ipynb lists the differences that were found."""
import pytest

from learn_reason.data.datasets import Example
from learn_reason.students.formats import FORMATS, render, encode
from learn_reason.students.models import tiny_tokenizer

Q = 'Tom has 3 apples and buys 2 more. How many apples does he have?'
R = 'Tom starts with 3 apples.\nHe buys 2 more, so 3 + 2 = 5.'
ATTEMPT = 'Tom has 3 + 2 = 6 apples. The answer is 6.'
FEEDBACK = 'The student added 3 and 2 wrongly: 3 + 2 is 5, not 6.'
TOM = dict(id='gsm8k-0', question=Q, answer='5', rationale=R, attempt=ATTEMPT, feedback=FEEDBACK)


@pytest.fixture(scope='module')
def tok():
    return tiny_tokenizer()  # byte-level BPE like GPT-2's: a leading space belongs to the next word's token


def ids(tok, text, special=True): return tok(text, add_special_tokens=special)['input_ids']


def apart(tok, prompt, label):
    "Prompt and label tokenised apart and joined, the label ending with EOS, the prompt masked (MAPD's CustomDataset)"
    p, t = ids(tok, prompt), ids(tok, label, False) + [tok.eos_token_id]
    return dict(input_ids=p + t, labels=[-100] * len(p) + t, weights=[0.0] * len(p) + [1.0] * len(t))


def check(tok, fmt, want, **kw):
    e = encode(tok, FORMATS[fmt], TOM, **kw)
    assert {k: e[k] for k in want} == want


def test_finetune_cot(tok):
    "format.py: decoder `{q} ###` -> ` {rationale} --> {answer}`, T5 `{q}` -> `{rationale} --> {answer}`, ..."
    assert render(FORMATS['ft_cot_token'], TOM) == (f'{Q} ###', f' {R} --> 5')
    assert render(FORMATS['ft_cot_token'], TOM, seq2seq=True) == (Q, f'{R} --> 5')
    assert render(FORMATS['ft_token'], TOM) == (f'{Q} ###', ' 5')
    assert render(FORMATS['ft_token'], TOM, seq2seq=True) == (Q, '5')
    assert render(FORMATS['zs'], TOM, target=False) == (f'Q: {Q}\n\nA:', None)
    assert render(FORMATS['zs'], TOM, seq2seq=True, target=False) == (f'question: {Q}', None)
    assert render(FORMATS['zs_cot'], TOM, target=False) == (f"Q: {Q}\nA: Let's think step by step.", None)
    shots = 'Q: Ann has 1 cat and gets 1 more. How many cats?\nA: 1 + 1 = 2. The answer is 2.'  # the published shape
    assert render(FORMATS['fs_cot'], TOM, shots=shots, target=False) == (f'{shots}\nQ: {Q}\nA:', None)
    # data_module.tokenize with append_eos (GPT-2): label + eos_token tokenised on its own, input ids masked with -100
    label = tok(f' {R} --> 5' + tok.eos_token)['input_ids']
    p = ids(tok, f'{Q} ###')
    check(tok, 'ft_cot_token', dict(input_ids=p + label, labels=[-100] * len(p) + label,
                                    weights=[0.0] * len(p) + [1.0] * len(label)))
    check(tok, 'ft_token', apart(tok, f'{Q} ###', ' 5'))
    # T5: the input ids alone, the label's ids with its end token (T5's tokenizer appends </s> to both texts)
    e = encode(tok, FORMATS['ft_cot_token'], TOM, seq2seq=True)
    assert (e['input_ids'], e['labels']) == (ids(tok, Q), ids(tok, f'{R} --> 5') + [tok.eos_token_id])


def test_zero_shot_cot_second_step_appends_the_reasoning_as_generated(monkeypatch):
    "Step 2 is `{step-1 prompt}{completion}\nTherefore, the answer is`, unstripped as in the paper's GPT-3 runs"
    import learn_reason.students.evaluate as G
    from learn_reason.students.models import load_student
    seen, real = [], G.generate
    def spy(s, prompts, *a, **kw):
        out = real(s, prompts, *a, **kw)
        seen.append((list(prompts), [g['text'] for g in out]))
        return out
    monkeypatch.setattr(G, 'generate', spy)
    G.evaluate(load_student('tiny-gpt2', seed=0), [Example('gsm8k-0', Q, '5')], 'zs_cot', max_new=6)
    (first, texts), (second, _) = seen
    assert first == [f"Q: {Q}\nA: Let's think step by step."]
    assert second == [first[0] + texts[0] + '\nTherefore, the answer is']


def test_learn_to_reason_text():
    "preprocessors.py: `{demos}\nQuestion: {q}\nReasoning: ` + `{rationale}\nAnswer: {final}` + ' ' + eos"
    line = 'Tom starts with 3 apples. He buys 2 more, so 3 + 2 = 5.'
    assert render(FORMATS['l2r'], TOM) == (f'Question: {Q}\nReasoning: ', f'{line}\nAnswer: 5 ')
    # fewshot_demos.py's shape: demos a blank line apart, the string ending with a newline
    demos = ('Question: Ann has 1 cat and gets 1 more. How many cats?\nReasoning: 1 + 1 = 2.\nAnswer: 2\n\n'
             'Question: Bo has 2 pens and loses 1. How many pens?\nReasoning: 2 - 1 = 1.\nAnswer: 1\n')
    assert render(FORMATS['l2r'], TOM, shots=demos)[0] == f'{demos}\nQuestion: {Q}\nReasoning: '
    # answer.replace('\n', ' ').strip().replace('  ', '').strip(): a blank line leaves two spaces, which are deleted
    two = dict(TOM, rationale='Tom starts with 3 apples.\n\nHe buys 2 more, so 3 + 2 = 5.')
    assert render(FORMATS['l2r'], two)[1] == 'Tom starts with 3 apples.He buys 2 more, so 3 + 2 = 5.\nAnswer: 5 '
    assert render(FORMATS['l2r_answer'], TOM) == (f'Question: {Q}\nAnswer:', ' 5 ')  # f"{prefix} {final}" + ' ' + eos
    sqa = dict(TOM, answer='no')  # SQAProcessor writes the answer "Yes" or "No"
    assert render(FORMATS['l2r'], sqa)[1].endswith('\nAnswer: No ') and render(FORMATS['l2r_answer'], sqa)[1] == ' No '
    assert FORMATS['l2r'].stop == FORMATS['l2r_answer'].stop == ('\n\n',)


def paper_l2r(tok, prefix, text, w=0.1):
    """data.py + trainer.compute_mle_weighted_loss: the whole text tokenised at once, its labels the ids themselves, and
    weights[:prefix_length] = w on the shifted labels, prefix_length being the prompt tokenised alone"""
    full = ids(tok, prefix + text + ' ' + tok.eos_token)
    pl = len(ids(tok, prefix))
    shifted = [w if j < pl else 1.0 for j in range(len(full) - 1)]  # entry j weighs the prediction of token j + 1
    return dict(input_ids=full, labels=full, weights=[w] + shifted)  # token 0 is never predicted


def test_learn_to_reason_tokens_and_weights(tok):
    line = 'Tom starts with 3 apples. He buys 2 more, so 3 + 2 = 5.'
    check(tok, 'l2r', paper_l2r(tok, f'Question: {Q}\nReasoning: ', f'{line}\nAnswer: 5'))
    check(tok, 'l2r_answer', paper_l2r(tok, f'Question: {Q}\nAnswer:', ' 5'))  # --mle weight is the default for it too
    pl, e = len(ids(tok, f'Question: {Q}\nReasoning: ')), encode(tok, FORMATS['l2r'], TOM)
    # the prompt's last token, a lone space, is joined to ' Tom' in the whole text: 0.1 reaches the rationale's tokens
    assert tok.decode(e['input_ids'][pl - 1:pl + 2]) == ' Tom' and e['weights'][pl - 1:pl + 2] == [0.1, 0.1, 1.0]


def test_mapd_text_and_tokens(tok):
    "data.py: instruction `.strip()`ped, then the response's ids (no special tokens) and EOS, nothing between them"
    rationale = ("### Instruction:\nAnswer the following question. Let's think step by step.\n### Input:\n"
                 f"{Q}\n### Response:")
    assert render(FORMATS['mapd_rationale'], TOM) == (rationale, R)
    feedback = ("### Instruction:\nImagine you are a teacher, I will give you one student's incorrect answer to a "
                "question. You should point out the mistakes in the student's answer.\n### Input:\n"
                f"Question: {Q}\nStudent's Answer: {ATTEMPT}\nHint: The correct answer should be 5.\n\n### Response:")
    assert render(FORMATS['mapd_feedback'], TOM) == (feedback, FEEDBACK)
    check(tok, 'mapd_rationale', apart(tok, rationale, R))
    check(tok, 'mapd_feedback', apart(tok, feedback, FEEDBACK))


def test_the_students_mapd_instruction_is_the_first_line_of_the_teachers_feedback_prompt():
    "students.formats writes the instruction out (a student imports no teacher): it must stay the teachers' text"
    from learn_reason.students.formats import MAPD_FEEDBACK_INSTRUCTION
    from learn_reason.teachers.prompts import MAPD_FEEDBACK
    assert MAPD_FEEDBACK_INSTRUCTION == MAPD_FEEDBACK.split('\n')[0]
    assert FORMATS['mapd_feedback'].prompt.startswith(f'### Instruction:\n{MAPD_FEEDBACK_INSTRUCTION}\n### Input:')


def test_mapd_tests_the_student_on_its_template_unstripped(monkeypatch):
    "test.py formats `train_rationale_prompt` unstripped: newlines before `### Instruction:` and after `### Response:`"
    import learn_reason.students.evaluate as G
    from learn_reason.students.models import load_student
    seen, real = [], G.generate
    def spy(s, prompts, *a, **kw):
        seen.append(list(prompts))
        return real(s, prompts, *a, **kw)
    monkeypatch.setattr(G, 'generate', spy)
    G.evaluate(load_student('tiny-gpt2', seed=0), [Example('gsm8k-0', Q, '5')], 'mapd_rationale', max_new=4)
    assert seen == [[f"\n### Instruction:\nAnswer the following question. Let's think step by step.\n### Input:\n{Q}\n"
                     "### Response:\n"]]
