"The training stage's run knobs: precision, gradient checkpointing, the batch split and trackers change how it runs, not what it learns."
import json
from pathlib import Path
import pytest

torch = pytest.importorskip('torch')
torch.set_num_threads(1)

from learn_reason.core.settings import UserError
from learn_reason.data.datasets import load
from learn_reason.students.train import train


def rows_of(exs): return [dict(id=e.id, question=e.question, answer=e.answer, rationale=e.rationale) for e in exs]


def weights(folder:Path)->dict:
    from safetensors.torch import load_file
    return load_file(str(next(folder.glob('*.safetensors'))))


def max_diff(a:dict, b:dict)->float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


KW = dict(epochs=2, learning_rate=1e-3, batch_size=8, progress=False)


def test_checkpointing_and_bf16_on_cpu_do_not_change_a_lora_run(tmp_path):
    "LoRA with gradient checkpointing and precision='bf16' on a CPU: fp32 (said so), the weights of the plain run"
    rows = rows_of(load('coin_flip', 'train', source='synthetic', n=60, flips=2)[:20])
    plain = train('tiny-gpt2', rows, 'ft_cot_token', out=tmp_path/'plain', lora=True, **KW)
    with pytest.warns(UserWarning, match="precision='bf16': no CUDA device, training in fp32"):
        gc = train('tiny-gpt2', rows, 'ft_cot_token', out=tmp_path/'gc', lora=True, gradient_checkpointing=True,
                   precision='bf16', **KW)
    state = json.loads((gc.out/'train.json').read_text())
    assert state['precision_used'] == 'fp32' and state['config']['precision'] == 'bf16'
    assert 'precision_used' not in json.loads((plain.out/'train.json').read_text())
    w1, w2 = weights(plain.final), weights(gc.final)
    assert max_diff(w1, w2) < 1e-5
    assert any(k.endswith('lora_B.weight') and w1[k].abs().max() > 0 for k in w1)  # the adapter did train
    assert [h['loss'] for h in plain.loss] == pytest.approx([h['loss'] for h in gc.loss], abs=1e-5)


def test_a_step_cut_into_micro_batches_is_the_same_step(tmp_path):
    "per_device_batch=4 on an effective batch of 8 (two accumulation steps): the plain run's loss curve and weights"
    rows = rows_of(load('coin_flip', 'train', source='synthetic', n=60, flips=2)[:21])  # a short last batch, too
    plain = train('tiny-gpt2', rows, 'ft_cot_token', out=tmp_path/'plain', **KW)
    split = train('tiny-gpt2', rows, 'ft_cot_token', out=tmp_path/'split', per_device_batch=4, **KW)
    assert json.loads((split.out/'train.json').read_text())['config'] == json.loads((plain.out/'train.json').read_text())['config']
    l1, l2 = [h['loss'] for h in plain.loss], [h['loss'] for h in split.loss]
    assert len(l1) == len(l2) > 1 and max(abs(a - b) for a, b in zip(l1, l2)) < 1e-4, (l1, l2)
    assert max_diff(weights(plain.final), weights(split.final)) < 1e-4


def test_mapd_feedback_mix_survives_the_split(tmp_path):
    "MAPD's feedback mix (4 x 2 here) cut into 2 x 4: the losses of the recipe's own split"
    ar = rows_of(load('arithmetic', 'train', source='synthetic', n=40))[:11]
    mapd = [dict(r, attempt='It is 3. The answer is 3.', feedback='Wrong: recompute.') for r in ar]
    kw = dict(epochs=1, learning_rate=1e-3, recipe='mapd', batch_size=4, feedback_alpha=0.5, progress=False)
    a = train('tiny-gpt2', mapd, 'mapd_rationale', out=tmp_path/'m1', **kw)
    b = train('tiny-gpt2', mapd, 'mapd_rationale', out=tmp_path/'m2', per_device_batch=2, **kw)
    assert [h['loss'] for h in a.loss] == pytest.approx([h['loss'] for h in b.loss], abs=1e-4)
    assert [h['ce_feedback'] for h in a.loss] == pytest.approx([h['ce_feedback'] for h in b.loss], abs=1e-4)


def test_triplet_term_survives_the_split(tmp_path):
    "Learn-to-Reason's triplet loss with batches of 8 cut in two: the same pairs drawn, the same losses"
    ar = rows_of(load('arithmetic', 'train', source='synthetic', n=40))[:10]
    twice = ar + [dict(r, rationale=r['rationale'].replace('The answer', 'So the answer')) for r in ar]
    neg = {r['id']: ['It is 7. The answer is 7.'] for r in ar}
    kw = dict(epochs=1, batch_size=8, learning_rate=1e-3, negatives=neg, progress=False)
    c = train('tiny-gpt2', twice, 'l2r', out=tmp_path/'t1', **kw)
    d = train('tiny-gpt2', twice, 'l2r', out=tmp_path/'t2', per_device_batch=4, **kw)
    assert [h['loss'] for h in c.loss] == pytest.approx([h['loss'] for h in d.loss], abs=1e-4)
    assert c.loss[0]['triplet'] > 0
    assert [h['triplet'] for h in c.loss] == pytest.approx([h['triplet'] for h in d.loss], abs=1e-3)


def test_tensorboard_logs_the_training_loss_in_the_stage_folder(tmp_path):
    "report_to='tensorboard': event files under the stage's logs/, with the loss train.json has"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    rows = rows_of(load('coin_flip', 'train', source='synthetic', n=60, flips=2)[:16])
    r = train('tiny-gpt2', rows, 'ft_cot_token', out=tmp_path/'tb', report_to='tensorboard', **KW)
    events = list((r.out/'logs').rglob('events.out.tfevents.*'))
    assert events and not (r.out/'checkpoints').exists()
    acc = EventAccumulator(str(events[0].parent)); acc.Reload()
    logged = [e.value for e in acc.Scalars('train/loss')]
    assert logged == pytest.approx([h['loss'] for h in r.loss], abs=1e-4)


def test_bad_run_knobs_are_refused_before_anything_loads(tmp_path):
    rows = rows_of(load('coin_flip', 'train', source='synthetic', n=20))
    with pytest.raises(UserError, match="precision: expected one of 'fp32', 'bf16', 'fp16' or None, got 'fp8'"):
        train('tiny-gpt2', rows, out=tmp_path/'a', precision='fp8')
    with pytest.raises(UserError, match=r'per_device_batch \(3\) x grad_accum \(2\) x processes \(1\) must be the effective batch 8'):
        train('tiny-gpt2', rows, out=tmp_path/'b', per_device_batch=3)
    with pytest.raises(UserError, match=r'must be the effective batch 16'):
        train('tiny-gpt2', rows, out=tmp_path/'c', recipe='mapd', grad_accum=3)
    with pytest.raises(UserError, match=r'processes \(3\) must be the effective batch 8'):
        train('tiny-gpt2', rows, out=tmp_path/'d', nproc=3)
    with pytest.raises(UserError, match="report_to: expected 'none' or some of"):
        train('tiny-gpt2', rows, out=tmp_path/'e', report_to='comet')
    with pytest.raises(UserError, match='nproc: expected a whole number'):
        train('tiny-gpt2', rows, out=tmp_path/'f', nproc=0)
    assert not any(tmp_path.iterdir())  # nothing was written
