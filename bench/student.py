"""Student benchmarks: `make bench` (merged into bench/results.json, printed as a table).

  .venv/bin/python bench/student.py [--prompts 128] [--new-tokens 128] [--batch 64] [--steps 20] [--repeats 3]
                                    [--smol-prompts 16] [--smol-new-tokens 48] [--smol-batch 16]

Measured in one run, torch on one thread, each variant in its own process (so its peak memory is its own):
  1. generation, greedy, the same prompts four ways: (a) `learn_reason.students.evaluate.generate(..., continuous=True)`
     (continuous batching: finished rows' slots refilled from the waiting prompts), (b) `generate` as evaluation runs
     it (sorted, left-padded batches, KV cache, finished rows dropped), (c) `model.generate` on the same batches,
     (d) one `model.generate` call per prompt; tokens per second are medians of `--repeats` runs (SmolLM2 one at a
     time: one run), and the outputs are compared. On a tiny student trained for two epochs on coin flips of 2, 4
     and 6 people, asked about 2 to 7 people (completions of different lengths, ending with EOS as a real student's
     do), and on SmolLM2-135M-Instruct when it is already in the cache (skipped otherwise): arithmetic problems of 1
     to 4 steps in the few-shot-CoT format, cut at the next "Q:". Goals: continuous >= 1.5x `model.generate`, >= 8x
     one at a time. Also an untrained student on arithmetic prompts, which writes the full `--new-tokens` every
     time: the speed-up of batched decoding alone.
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
    "A tiny student trained for two epochs on coin flips of 2, 4 and 6 people (its rationales end with EOS, and differ in length)"
    from learn_reason.data.datasets import load
    from learn_reason.students.train import train
    exs = [e for k in (2, 4, 6) for e in load('coin_flip', 'train', source='synthetic', n=300, flips=k)[:150]]
    res = train('tiny-gpt2', [dict(id=e.id, question=e.question, answer=e.answer, rationale=e.rationale) for e in exs], 'ft_cot_token',
                out=Path(a.work)/'coin', epochs=2, learning_rate=2e-3, batch_size=16, progress=False,
                recipe=dict(weight_decay=0.0, lr_scheduler_type='constant', max_grad_norm=1.0))
    return str(res.final)

def _prompts(which:str, a)->tuple:
    "`(prompts, stop strings, new tokens, batch size)` of a generation variant: completions of different lengths, as in evaluation"
    from learn_reason.data.datasets import load
    from learn_reason.students.formats import get_format, render
    if which == 'trained':   # coin flips of 2 to 7 people: rationales of different lengths, each ending with EOS
        exs = [e for k in range(2, 8) for e in load('coin_flip', 'test', source='synthetic', n=300, flips=k)]
        return [e.question + ' ###' for e in exs[::max(1, len(exs) // a.prompts)][:a.prompts]], (), a.new_tokens, a.batch
    if which == 'untrained':  # writes all `--new-tokens` every time: the speed-up of batched decoding alone
        exs = load('arithmetic', 'test', source='synthetic', n=1000, steps=3, digits=3)[:a.prompts]
        return [e.question + ' ###' for e in exs], (), a.new_tokens, a.batch
    # SmolLM2: arithmetic word problems of 1 to 4 steps in the few-shot-CoT format, cut at the next "Q:" or EOS
    fmt = get_format('fs_cot')
    exs = [e for k in (1, 2, 3, 4) for e in load('arithmetic', 'test', source='synthetic', n=200, steps=k, digits=2)[:a.smol_prompts // 4]]
    return [render(fmt, e, False, '', target=False)[0] for e in exs], fmt.stop, a.smol_new_tokens, a.smol_batch

def _hf_batched(s, prompts:list, new:int, batch:int, stop)->list:
    "`model.generate` on the same sorted, left-padded batches `generate` makes (rows kept until the batch's last ends)"
    import torch
    tok, outs = s.tok, [None] * len(prompts)
    ids = [tok(p)['input_ids'] for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    kw = dict(max_new_tokens=new, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    if stop: kw.update(stop_strings=list(stop), tokenizer=tok)
    with torch.no_grad():
        for b in [order[i:i + batch] for i in range(0, len(order), batch)]:
            L = max(len(ids[i]) for i in b)
            x = torch.tensor([[tok.pad_token_id] * (L - len(ids[i])) + ids[i] for i in b])
            m = torch.tensor([[0] * (L - len(ids[i])) + [1] * len(ids[i]) for i in b])
            for i, g in zip(b, s.model.generate(input_ids=x, attention_mask=m, **kw)[:, L:].tolist()): outs[i] = _text(tok, g, stop)
    return outs

def _text(tok, g:list, stop)->str:
    "New ids as `generate` reports them: up to EOS, cut before the first stop string"
    n = next((j for j, t in enumerate(g) if t == tok.eos_token_id), len(g))
    text = tok.decode(g[:n], skip_special_tokens=True)
    return text[:min([text.index(x) for x in stop if x in text], default=len(text))]

def _single(s, prompts:list, new:int, stop)->list:
    import torch
    kw = dict(max_new_tokens=new, do_sample=False, pad_token_id=s.tok.pad_token_id, eos_token_id=s.tok.eos_token_id)
    if stop: kw.update(stop_strings=list(stop), tokenizer=s.tok)
    outs = []
    with torch.no_grad():
        for p in prompts:
            enc = s.tok(p, return_tensors='pt')
            outs.append(_text(s.tok, s.model.generate(**enc, **kw)[0, enc['input_ids'].shape[1]:].tolist(), stop))
    return outs

def gen_variant(kind:str, a)->dict:
    "One generation variant, timed `--repeats` times (the median reported); tokens: the outputs' tokens, EOS not counted"
    import statistics
    from learn_reason.students.evaluate import generate
    kind, which = kind.split('-')
    s = _student(a.model if which == 'trained' else 'smollm2-135m' if which == 'smollm2' else None)
    prompts, stop, new, batch = _prompts(which, a)
    run = dict(continuous=lambda: [g['text'] for g in generate(s, prompts, new, batch_size=batch, stop=stop, continuous=True)],
               static=lambda: [g['text'] for g in generate(s, prompts, new, batch_size=batch, stop=stop)],
               hf=lambda: _hf_batched(s, prompts, new, batch, stop), single=lambda: _single(s, prompts, new, stop))[kind]
    secs = []
    for _ in range(a.repeats if which != 'smollm2' or kind != 'single' else 1):
        t0 = time.perf_counter(); outs = run(); secs.append(time.perf_counter() - t0)
    secs = statistics.median(secs)
    lens = [len(s.tok(o, add_special_tokens=False)['input_ids']) for o in outs]
    return dict(kind=kind, prompts=len(prompts), seconds=round(secs, 2), tokens=sum(lens), tokens_per_second=round(sum(lens) / secs, 1),
                completion_tokens=dict(min=min(lens), median=statistics.median(lens), max=max(lens)), peak_mb=round(peak_mb()), outputs=outs)

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

KINDS = ('continuous', 'static', 'hf', 'single')
LABELS = dict(continuous='continuous batching', static='static batches (our loop)', hf='model.generate, same batches',
              single='one prompt at a time')
SMOL_MISSING = 'no converted SmolLM2-135M-Instruct in the cache (`learn-reason student fetch smollm2` makes one)'

def _smollm2()->bool:
    "Is SmolLM2-135M here already (converted in the cache)? The benchmark never downloads it"
    from learn_reason.core.settings import setting
    return (Path(setting('cache_dir')).expanduser()/'models'/'SmolLM2-135M-Instruct'/'config.json').is_file()

def _compare(r:dict)->dict:
    "The four variants of one model, their outputs compared and their speeds in ratios"
    outs = {k: v.pop('outputs') for k, v in r.items()}
    tps = {k: v['tokens_per_second'] for k, v in r.items()}
    return dict(**r, same_outputs=dict(static=_agree(outs['continuous'], outs['static']), hf=_agree(outs['continuous'], outs['hf']),
                                       single=_agree(outs['continuous'], outs['single'])),
                continuous_vs_hf=round(tps['continuous'] / tps['hf'], 2), continuous_vs_single=round(tps['continuous'] / tps['single'], 1),
                continuous_vs_static=round(tps['continuous'] / tps['static'], 2), static_vs_single=round(tps['static'] / tps['single'], 1))

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
    ap.add_argument('--train-batch', type=int, default=16); ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--smol-prompts', type=int, default=16); ap.add_argument('--smol-new-tokens', type=int, default=48)
    ap.add_argument('--smol-batch', type=int, default=16)
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
    gen = dict(trained=_compare({k: sub('gen', f'{k}-trained', a) for k in KINDS}))
    fb, fsg = sub('gen', 'static-untrained', a), sub('gen', 'single-untrained', a)
    fixed_same = _agree(fb.pop('outputs'), fsg.pop('outputs'))
    smol = _smollm2()
    if smol: gen['smollm2'] = _compare({k: sub('gen', f'{k}-smollm2', a) for k in KINDS})
    else: print(f'SmolLM2-135M skipped: {SMOL_MISSING}', file=sys.stderr)
    tg, tp, tr = sub('train', 'grouped', a), sub('train', 'pad512', a), sub('train', 'shuffled', a)
    curve = max(abs(x - y) for x, y in zip(tp['losses'], tr['losses']))
    res = dict(machine=dict(cpus=os.cpu_count(), torch_threads=1, python=platform.python_version(), platform=platform.platform()),
               generation=dict(**gen, goals=dict(continuous_vs_hf_generate=1.5, continuous_vs_one_at_a_time=8),
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
    rows = []
    for m, r in gen.items():
        for k in KINDS:
            v = r[k]
            rows.append((f'generation {m}, {LABELS[k]}', f"{v['tokens_per_second']:,.0f} tok/s",
                         f"{v['tokens']} tokens in {v['seconds']} s (median), completions {v['completion_tokens']}, peak {v['peak_mb']} MB"))
        rows += [(f'  continuous vs model.generate', f"{r['continuous_vs_hf']}x", 'goal >= 1.5x'),
                 (f'  continuous vs one at a time', f"{r['continuous_vs_single']}x", f"goal >= 8x (static: {r['static_vs_single']}x)"),
                 (f'  continuous vs static loop', f"{r['continuous_vs_static']}x", f"identical greedy texts: {r['same_outputs']}")]
    rows += [('  untrained student, full length', f"{g['untrained']['speedup']}x",
              f"static loop vs one at a time, {fb['tokens_per_second']:,.0f} vs {fsg['tokens_per_second']:,.0f} tok/s, {fb['tokens']} tokens each; identical outputs: {fixed_same}"),
            ('training, length-grouped dynamic', f"{tg['tokens_per_second']:,.0f} tok/s", f"{tg['steps']} steps, {tg['real_tokens']} real of {tg['padded_tokens']} tokens, peak {tg['peak_mb']} MB"),
            ('training, padded to 512', f"{tp['tokens_per_second']:,.0f} tok/s", f"{tp['steps']} steps, {tp['real_tokens']} real of {tp['padded_tokens']} tokens, peak {tp['peak_mb']} MB"),
            ('training speed-up', f"{t['speedup']}x", 'goal >= 3x'),
            ('loss: pad-512 vs same batches dynamic', f"{curve:.1e}", 'max |difference| over the curve'),
            ('loss, mean of last 5 steps', f"{t['mean_loss_last5']['grouped']} vs {t['mean_loss_last5']['pad512']}", 'grouped vs padded to 512')]
    w = max(len(r[0]) for r in rows)
    print(f'student benchmark: {", ".join(gen)}, torch on 1 thread, {os.cpu_count()} CPUs, medians of {a.repeats} runs')
    for r in rows: print(f'  {r[0]:{w}}  {r[1]:>16}  {r[2]}')
    print(f'written to {out} (key "student")')

if __name__ == '__main__': main()
