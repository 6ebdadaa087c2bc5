"""Student benchmarks: `make bench` (merged into bench/results.json, printed as a table).

  .venv/bin/python bench/student.py [--prompts 128] [--new-tokens 128] [--batch 64] [--steps 20]

Measured in one run, torch on one thread, each variant in its own process (so its peak memory is its own):
  1. generation: a tiny student trained for two epochs on coin flips (so its outputs end with EOS, as a real student's
     do) answers the same prompts through `learn_reason.students.evaluate.generate` (sorted, left-padded batches, KV cache,
     finished rows dropped) and through one `model.generate` call per prompt; both greedy (the outputs are compared).
     Goal >= 8x. Also an untrained student on arithmetic prompts, which writes the full `--new-tokens` every time:
     the speed-up of batched decoding alone.
  2. training: the same examples for the same number of steps with length-grouped batches padded to their longest
     (`LengthGroupedSampler` + `Collator`) and with shuffled batches padded to 512 tokens, as the papers' collators do.
     Goal >= 3x real (non-pad) tokens per second. The loss curve: shuffled batches padded to their longest give the
     pad-to-512 curve to float precision (padding changes no real token's loss), and the length-grouped run ends at
     a comparable loss.
"""
import argparse, json, os, platform, resource, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def peak_mb()->float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def _student(path=None):
    import torch
    torch.set_num_threads(1)
    from learn_reason.students.models import load_student
    return load_student(path or 'tiny-gpt2', seed=0)

def _trained(a)->str:
    "A tiny student trained for two epochs on coin flips (its outputs end with EOS, as a real student's do)"
    from learn_reason.data.datasets import load
    from learn_reason.students.train import train
    exs = load('coin_flip', 'train', source='synthetic')
    res = train('tiny-gpt2', [dict(id=e.id, question=e.question, answer=e.answer, rationale=e.rationale) for e in exs], 'ft_cot_token',
                out=Path(a.work)/'coin', epochs=2, learning_rate=2e-3, batch_size=16, progress=False,
                recipe=dict(weight_decay=0.0, lr_scheduler_type='constant', max_grad_norm=1.0))
    return str(res.final)

def gen_variant(kind:str, a)->dict:
    from learn_reason.data.datasets import load
    from learn_reason.students.evaluate import generate
    kind, which = kind.split('-')
    s = _student(a.model if which == 'trained' else None)
    name, kw = ('coin_flip', {}) if which == 'trained' else ('arithmetic', dict(steps=3, digits=3))
    prompts = [e.question + ' ###' for e in load(name, 'test', source='synthetic', n=1000, **kw)[:a.prompts]]
    t0 = time.perf_counter()
    if kind == 'batched': outs = [g['text'] for g in generate(s, prompts, a.new_tokens, batch_size=a.batch)]
    else:
        import torch
        outs = []
        with torch.no_grad():
            for p in prompts:
                enc = s.tok(p, return_tensors='pt')
                g = s.model.generate(**enc, max_new_tokens=a.new_tokens, do_sample=False, pad_token_id=s.tok.pad_token_id,
                                     eos_token_id=s.tok.eos_token_id)[0, enc['input_ids'].shape[1]:]
                outs.append(s.tok.decode(g, skip_special_tokens=True))
    secs = time.perf_counter() - t0
    toks = sum(len(s.tok(o, add_special_tokens=False)['input_ids']) for o in outs)
    return dict(kind=kind, prompts=len(prompts), seconds=round(secs, 2), tokens=toks, tokens_per_second=round(toks / secs, 1),
                peak_mb=round(peak_mb()), outputs=outs)

def train_variant(kind:str, a)->dict:
    import torch
    from learn_reason.data.datasets import load
    from learn_reason.students.formats import FORMATS
    from learn_reason.students.train import features, Collator, LengthGroupedSampler, _forward, token_loss
    s = _student()
    exs = load('arithmetic', 'train', source='synthetic', n=1000, steps=3, digits=3)
    rows = [dict(id=e.id, question=e.question, answer=e.answer, rationale=e.rationale) for e in exs]
    fs = features(s.tok, rows, FORMATS['ft_cot_token'])
    smp = LengthGroupedSampler([len(f['input_ids']) for f in fs], [f['group'] for f in fs], a.train_batch, seed=0)
    if kind != 'grouped': smp.mega = 1  # shuffled batches, not grouped by length
    col = Collator(s.tok.pad_token_id, pad_to=512 if kind == 'pad512' else None)
    opt = torch.optim.AdamW(s.model.parameters(), lr=1e-3)
    s.model.train(); torch.manual_seed(0)
    for m in s.model.modules():  # no dropout: its masks depend on the padded shape, and the curves are compared step by step
        if isinstance(m, torch.nn.Dropout): m.p = 0.0
    losses, real, padded, t0 = [], 0, 0, time.perf_counter()
    for b in smp.batches()[:a.steps]:
        batch = col([fs[i] for i in b])['main']
        loss = token_loss(_forward(s.model, batch, False), batch, False)
        loss.backward(); opt.step(); opt.zero_grad()
        losses.append(round(loss.item(), 5)); real += int(batch['attention_mask'].sum()); padded += batch['input_ids'].numel()
    secs = time.perf_counter() - t0
    return dict(kind=kind, steps=len(losses), seconds=round(secs, 2), real_tokens=real, padded_tokens=padded,
                tokens_per_second=round(real / secs, 1), peak_mb=round(peak_mb()), losses=losses)

def _agree(xs:list, ys:list)->str:
    "How many outputs two runs share (greedy: all but those a float rounding flips, on an untrained model's flat logits)"
    return f'{sum(x == y for x, y in zip(xs, ys))}/{len(xs)}'

def sub(what:str, kind:str, a)->dict:
    "Run one variant in its own process"
    args = [sys.executable, __file__, '--variant', f'{what}:{kind}', *sum(([f'--{k.replace("_", "-")}', str(v)] for k, v in vars(a).items()
                                                                        if k not in ('variant', 'out') and v is not None), [])]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_VERBOSITY': 'error'}
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode: raise SystemExit(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--prompts', type=int, default=128); ap.add_argument('--new-tokens', type=int, default=128)
    ap.add_argument('--batch', type=int, default=64); ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--train-batch', type=int, default=16)
    ap.add_argument('--variant'); ap.add_argument('--out', default=str(ROOT/'bench'/'results.json'))
    ap.add_argument('--model', help='(internal) the trained student the generation variants load'); ap.add_argument('--work')
    a = ap.parse_args()
    if a.variant:
        what, kind = a.variant.split(':')
        if what == 'prep': print(json.dumps(dict(model=_trained(a)))); return
        print(json.dumps((gen_variant if what == 'gen' else train_variant)(kind, a))); return
    import tempfile
    a.work = a.work or tempfile.mkdtemp()
    a.model = sub('prep', 'train', a)['model']
    gb, gs = sub('gen', 'batched-trained', a), sub('gen', 'single-trained', a)
    fb, fsg = sub('gen', 'batched-untrained', a), sub('gen', 'single-untrained', a)
    fixed_same = _agree(fb.pop('outputs'), fsg.pop('outputs'))
    tg, tp, tr = sub('train', 'grouped', a), sub('train', 'pad512', a), sub('train', 'shuffled', a)
    same = _agree(gb.pop('outputs'), gs.pop('outputs'))
    curve = max(abs(x - y) for x, y in zip(tp['losses'], tr['losses']))
    res = dict(machine=dict(cpus=os.cpu_count(), torch_threads=1, python=platform.python_version(), platform=platform.platform()),
               generation=dict(batched=gb, per_example=gs, same_outputs=same, speedup=round(gb['tokens_per_second'] / gs['tokens_per_second'], 1), goal=8,
                               untrained=dict(batched=fb, per_example=fsg, same_outputs=fixed_same,
                                              speedup=round(fb['tokens_per_second'] / fsg['tokens_per_second'], 1))),
               training=dict(grouped_dynamic=tg, shuffled_pad512=tp, shuffled_dynamic=tr,
                             speedup=round(tg['tokens_per_second'] / tp['tokens_per_second'], 1), goal=3,
                             pad512_vs_dynamic_same_batches_max_loss_diff=round(curve, 6),
                             final_loss=dict(grouped=tg['losses'][-1], pad512=tp['losses'][-1]),
                             mean_loss_last5=dict(grouped=round(sum(tg['losses'][-5:]) / 5, 4), pad512=round(sum(tp['losses'][-5:]) / 5, 4))))
    out = Path(a.out)
    allres = json.loads(out.read_text()) if out.is_file() else {}
    allres['student'] = res
    out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(allres, indent=1) + '\n')
    g, t = res['generation'], res['training']
    rows = [('generation, batched (KV cache)', f"{gb['tokens_per_second']:,.0f} tok/s", f"{gb['tokens']} tokens in {gb['seconds']} s, peak {gb['peak_mb']} MB"),
            ('generation, one prompt at a time', f"{gs['tokens_per_second']:,.0f} tok/s", f"{gs['tokens']} tokens in {gs['seconds']} s, peak {gs['peak_mb']} MB"),
            ('generation speed-up', f"{g['speedup']}x", f"goal >= 8x; identical outputs: {same}"),
            ('  untrained student, full length', f"{g['untrained']['speedup']}x",
             f"{fb['tokens_per_second']:,.0f} vs {fsg['tokens_per_second']:,.0f} tok/s, {fb['tokens']} tokens each; identical outputs: {fixed_same}"),
            ('training, length-grouped dynamic', f"{tg['tokens_per_second']:,.0f} tok/s", f"{tg['steps']} steps, {tg['real_tokens']} real of {tg['padded_tokens']} tokens, peak {tg['peak_mb']} MB"),
            ('training, padded to 512', f"{tp['tokens_per_second']:,.0f} tok/s", f"{tp['steps']} steps, {tp['real_tokens']} real of {tp['padded_tokens']} tokens, peak {tp['peak_mb']} MB"),
            ('training speed-up', f"{t['speedup']}x", 'goal >= 3x'),
            ('loss: pad-512 vs same batches dynamic', f"{curve:.1e}", 'max |difference| over the curve'),
            ('loss, mean of last 5 steps', f"{t['mean_loss_last5']['grouped']} vs {t['mean_loss_last5']['pad512']}", 'grouped vs padded to 512')]
    w = max(len(r[0]) for r in rows)
    print(f'student benchmark: tiny-gpt2, torch on 1 thread, {os.cpu_count()} CPUs')
    for r in rows: print(f'  {r[0]:{w}}  {r[1]:>16}  {r[2]}')
    print(f'written to {out} (key "student")')

if __name__ == '__main__': main()
