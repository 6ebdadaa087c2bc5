"""Each paper's training loss as `DistillTrainer.compute_loss` computes it on one batch, against a hand computation in
plain torch from the logits of each sequence run alone (no padding, no labels, no weights from the collator)."""
import json
import pytest

torch = pytest.importorskip('torch')
torch.set_num_threads(1)

from learn_reason.core.settings import UserError
from learn_reason.data.datasets import load
from learn_reason.students.formats import Format, get_format
from learn_reason.students.models import load_student
from learn_reason.students.train import features, Collator, _trainer_cls, train

TOL = 1e-5


@pytest.fixture(scope='module')
def student():
    return load_student('tiny-gpt2', seed=0)


def rows_of(exs): return [dict(id=e.id, question=e.question, answer=e.answer, rationale=e.rationale) for e in exs]


@pytest.fixture(scope='module')
def rows():
    return rows_of(load('arithmetic', 'train', source='synthetic', n=40)[:4])


def trainer(s, tmp_path, **kw):
    from transformers import TrainingArguments
    args = TrainingArguments(output_dir=str(tmp_path/'tr'), report_to=[], use_cpu=True, remove_unused_columns=False)
    tr = _trainer_cls()(model=s.model, args=args, **kw)
    s.model.eval()  # no dropout: the trainer's forward pass and the hand one must see the same model
    return tr


def run(s, tr, fs):
    "The trainer's loss on one batch of `fs`, its logged terms, and the batch"
    b = Collator(s.tok.pad_token_id, seed=0)(fs)
    with torch.no_grad(): loss = tr.compute_loss(s.model, b)
    return loss.item(), {k: v[-1] for k, v in tr._terms.items()}, b


def fwd(s, ids:list):
    "One sequence alone: its logits and last-layer hidden states, in float64"
    with torch.no_grad(): o = s.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return o.logits[0].double(), o.hidden_states[-1][0].double()


def ce(s, f:dict):
    "Cross-entropy of each token t = 1 .. len-1 of example `f` given the tokens before it (entry t-1 is token t's)"
    logits, _ = fwd(s, f['input_ids'])
    ids = torch.tensor(f['input_ids'])
    return -torch.log_softmax(logits[:-1], -1)[torch.arange(len(ids) - 1), ids[1:]]


def masked_mean(s, fs:list):
    "Hugging Face's causal-LM loss with the prompt masked: the mean over all label tokens of the batch"
    return torch.cat([ce(s, f)[f['n_prompt'] - 1:] for f in fs]).mean().item()


def l2r_mle(s, fs:list, w:float=0.1):
    "Learn-to-Reason's `compute_mle_weighted_loss`: sum(weight * ce) over the batch / sum(valid_length - 1)"
    num, den = 0.0, 0
    for f in fs:
        c = ce(s, f)
        t = torch.arange(1, len(f['input_ids']))
        num += (torch.where(t < f['n_prompt'], w, 1.0).double() * c).sum().item()
        den += len(f['input_ids']) - 1
    return num, den


def test_finetune_cot_is_the_mean_cross_entropy_over_the_label_tokens(student, rows, tmp_path):
    fs = features(student.tok, rows, get_format('ft_cot_token'))
    loss, terms, _ = run(student, trainer(student, tmp_path), fs)
    want = masked_mean(student, fs)
    assert abs(loss - want) < TOL, (loss, want)
    everything = torch.cat([ce(student, f) for f in fs]).mean().item()
    assert abs(everything - want) > 1e-3  # the check tells a masked prompt from an unmasked one


def test_learn_to_reason_weights_the_prompt_and_divides_by_the_token_count(student, rows, tmp_path):
    "methods.md 2.2: prompt tokens weigh 0.1, the sum is divided by sum(valid_length - 1), not by the sum of weights"
    fs = features(student.tok, rows, get_format('l2r'))
    assert all(f['n_prompt'] > 5 for f in fs)  # a prompt long enough for the divisors to differ
    loss, terms, _ = run(student, trainer(student, tmp_path), fs)
    num, den = l2r_mle(student, fs)
    assert abs(loss - num / den) < TOL, (loss, num / den)
    weights = sum(0.1 * (f['n_prompt'] - 1) + len(f['input_ids']) - f['n_prompt'] for f in fs)
    assert abs(num / weights - num / den) > 1e-3  # the check tells the two divisors apart


@pytest.mark.parametrize('how', ['last', 'pool'])
def test_the_self_reflection_triplet_term(student, rows, tmp_path, how):
    "cl_ratio * mean over examples with a positive and a negative of max(0, -cos(a,p) + cos(a,n) + margin)"
    twice = rows + [dict(r, rationale=r['rationale'].replace('starts with', 'begins with')) for r in rows]
    assert twice[4]['rationale'] != twice[0]['rationale']
    neg = {r['id']: [f'It is {k}. The answer is {k}.', f'Add them: {k + 1}. The answer is {k + 1}.']
           for k, r in enumerate(rows[:3])}  # the fourth question has no negative: no triplet for it
    fs = features(student.tok, twice, get_format('l2r'), negatives=neg)[:4]  # one example per question
    ratio, margin = 0.5, 1.0
    loss, terms, b = run(student, trainer(student, tmp_path, cl_ratio=ratio, margin=margin, reflection_repr=how), fs)
    assert b['triplet'] == [0, 1, 2]

    def rep(f, how):
        _, h = fwd(student, f['input_ids'])
        return h[-1] if how == 'last' else h[f['n_prompt']:].mean(0) if how == 'pool' else h.mean(0)

    def drawn(part, j, cands):  # the positive or negative the collator drew for triplet j
        ids = part['input_ids'][j][:int(part['attention_mask'][j].sum())].tolist()
        return next(c for c in cands if c['input_ids'] == ids)

    cos = lambda x, y: (x @ y / (x.norm() * y.norm())).item()

    def triplet(how):
        out = []
        for j, i in enumerate(b['triplet']):
            a = rep(fs[i], how)
            p, n = (rep(drawn(b[k], j, fs[i][k]), how) for k in ('pos', 'neg'))
            out.append(max(0.0, -cos(a, p) + cos(a, n) + margin))
        return sum(out) / len(out)

    want = triplet(how)
    num, den = l2r_mle(student, fs)
    assert abs(terms['triplet'] - want) < TOL, (terms['triplet'], want)
    assert abs(loss - (num / den + ratio * want)) < TOL, (loss, num / den + ratio * want)
    others = {h: triplet(h) for h in ('last', 'pool', 'all') if h != how}
    assert all(abs(v - want) > 10 * TOL for v in others.values()), (want, others)  # the representations differ


@pytest.mark.parametrize('how', ['last', 'pool'])
def test_an_encoder_decoder_student_s_losses(rows, tmp_path, how):
    "For T5 the cross-entropy is the mean over the labels, and the representations come from the decoder's positions"
    s = load_student('tiny-t5', seed=0)
    twice = rows + [dict(r, rationale=r['rationale'].replace('starts with', 'begins with')) for r in rows]
    neg = {r['id']: [f'It is {k}. The answer is {k}.'] for k, r in enumerate(rows)}
    fs = features(s.tok, twice, get_format('ft_cot_token'), seq2seq=True, negatives=neg)[:4]
    loss, terms, b = run(s, trainer(s, tmp_path, seq2seq=True, reflection_repr=how), fs)

    def fwd_s2s(f):
        dec = [s.model.config.decoder_start_token_id] + f['labels'][:-1]
        with torch.no_grad():
            o = s.model(input_ids=torch.tensor([f['input_ids']]), decoder_input_ids=torch.tensor([dec]),
                        output_hidden_states=True)
        return o.logits[0].double(), o.decoder_hidden_states[-1][0].double()

    def rep(f):
        h = fwd_s2s(f)[1]
        return h[-1] if how == 'last' else h.mean(0)

    def drawn(part, j, cands):
        return next(c for c in cands if c['labels'] == [t for t in part['labels'][j].tolist() if t != -100])

    cos = lambda x, y: (x @ y / (x.norm() * y.norm())).item()
    ces = [-torch.log_softmax(fwd_s2s(f)[0], -1)[torch.arange(len(f['labels'])), torch.tensor(f['labels'])] for f in fs]
    ce = torch.cat(ces).mean().item()
    trip = []
    for j, i in enumerate(b['triplet']):
        a, p, n = rep(fs[i]), rep(drawn(b['pos'], j, fs[i]['pos'])), rep(drawn(b['neg'], j, fs[i]['neg']))
        trip.append(max(0.0, -cos(a, p) + cos(a, n) + 1.0))
    assert b['triplet'] == [0, 1, 2, 3]
    assert abs(terms['ce_rationale'] - ce) < TOL, (terms['ce_rationale'], ce)
    assert abs(terms['triplet'] - sum(trip) / len(trip)) < TOL, (terms['triplet'], sum(trip) / len(trip))
    assert abs(loss - (ce + 0.5 * sum(trip) / len(trip))) < TOL


MAPD_ROW = dict(attempt='It has 3. The answer is 3.', feedback='The first step is wrong: it starts with another one.')
SHORT_FEEDBACK = Format('short_feedback', 'Mistake: {attempt}\nFeedback:', ' {feedback}')


@pytest.mark.parametrize('alpha,fb', [(0.5, 'mapd_feedback'), (0.3, 'mapd_feedback'), (0.5, SHORT_FEEDBACK)])
def test_mapd_mixes_the_feedback_and_rationale_cross_entropies(student, rows, tmp_path, alpha, fb):
    "alpha * CE(feedback) + (1 - alpha) * CE(rationale), each the mean over its label tokens (prompt masked)"
    mapd = [dict(r, **MAPD_ROW) for r in rows]
    fs = features(student.tok, mapd, get_format('mapd_rationale'), feedback=True, feedback_format=fb)
    prompt = fb.prompt if isinstance(fb, Format) else get_format(fb).prompt
    assert student.tok.decode(fs[0]['fb']['input_ids']).startswith(prompt.split('{')[0])
    loss, terms, _ = run(student, trainer(student, tmp_path, alpha=alpha), fs)
    ce_fb, ce_r = masked_mean(student, [f['fb'] for f in fs]), masked_mean(student, fs)
    assert abs(terms['ce_feedback'] - ce_fb) < TOL and abs(terms['ce_rationale'] - ce_r) < TOL
    assert abs(loss - (alpha * ce_fb + (1 - alpha) * ce_r)) < TOL, (loss, alpha * ce_fb + (1 - alpha) * ce_r)


def test_train_refuses_an_unknown_representation_or_feedback_format(tmp_path, rows):
    with pytest.raises(UserError, match="reflection_repr: expected one of 'last', 'pool', got 'mean'"):
        train('tiny-gpt2', rows, 'l2r', out=tmp_path/'a', reflection_repr='mean')
    with pytest.raises(UserError, match="feedback_format: unknown format 'nope'"):
        train('tiny-gpt2', rows, 'mapd_rationale', out=tmp_path/'b', feedback_format='nope', feedback_alpha=0.5)
    with pytest.raises(UserError, match="feedback_format: format 'zs' is for prompting only"):
        train('tiny-gpt2', rows, 'mapd_rationale', out=tmp_path/'c', feedback_format='zs', feedback_alpha=0.5)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_the_choices_reach_training_and_name_new_stages_only(tmp_path):
    "Defaults leave a stage's configuration (and folder) as before; 'pool' or another feedback format is a new stage"
    exs = rows_of(load('arithmetic', 'train', source='synthetic', n=40))
    twice = exs + [dict(r, rationale=r['rationale'].replace('starts with', 'begins with')) for r in exs]
    neg = {r['id']: ['It has 3. The answer is 3.'] for r in exs}
    kw = dict(store=tmp_path/'runs', epochs=1, batch_size=8, learning_rate=1e-3, progress=False)
    last = train('tiny-gpt2', twice, 'l2r', negatives=neg, **kw)
    cfg = json.loads((last.out/'train.json').read_text())['config']
    assert 'reflection_repr' not in cfg and 'feedback_format' not in cfg
    again = train('tiny-gpt2', twice, 'l2r', negatives=neg, reflection_repr='last', feedback_format='mapd_feedback',
                  **kw)
    assert again.out == last.out and again.summary() == last.summary()  # found, not trained again
    pool = train('tiny-gpt2', twice, 'l2r', negatives=neg, reflection_repr='pool', **kw)
    assert pool.out != last.out
    assert json.loads((pool.out/'train.json').read_text())['config']['reflection_repr'] == 'pool'
    assert pool.loss[0]['triplet'] != last.loss[0]['triplet'], (pool.loss[0], last.loss[0])

    mapd = [dict(r, **MAPD_ROW) for r in exs]
    m = train('tiny-gpt2', mapd, 'mapd_rationale', feedback_alpha=0.5, **kw)
    short = train('tiny-gpt2', mapd, 'mapd_rationale', feedback_alpha=0.5, feedback_format=SHORT_FEEDBACK, **kw)
    assert json.loads((short.out/'train.json').read_text())['config']['feedback_format'] == 'short_feedback'
    assert short.train_tokens < m.train_tokens  # its feedback pairs, in the short format, were what it trained on
