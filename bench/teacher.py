"""Teacher throughput benchmark: `make bench` (merged into bench/results.json, printed as a table).

  .venv/bin/python bench/teacher.py [--requests 2000] [--latency 0.1] [--concurrency 64] [--sequential 100]

The loopback server runs in its own process (`learn-reason teacher serve`) with a fixed latency per answer, standing in
for a remote API; the client is the real `openai` client inside `learn_reason.teachers.dispatch.arun`. Measured in one run:
  1. one request at a time, over the first `--sequential` requests (their rate stands for the whole set),
  2. `--concurrency` requests in flight over all `--requests`, against the concurrency-limited ideal: the requests go
     in ceil(requests / concurrency) waves of one latency each (2000 at 64 in flight: 32 waves, 3.2 s, 625 req/s),
  3. the finished stage again, from the cache: requests the server saw (goal 0) and cached completions read per second.
"""
import argparse, json, math, os, platform, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def server_stats(port): return json.loads(urllib.request.urlopen(f'http://127.0.0.1:{port}/stats').read())

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--requests', type=int, default=2000); ap.add_argument('--latency', type=float, default=0.1)
    ap.add_argument('--concurrency', type=int, default=64); ap.add_argument('--sequential', type=int, default=100)
    ap.add_argument('--out', default=str(ROOT/'bench'/'results.json'))
    a = ap.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from learn_reason.teachers.prompts import zs_cot
    from learn_reason.teachers.openai_api import OpenAITeacher
    from learn_reason.teachers.dispatch import run
    from learn_reason.teachers.cache import Cache
    from learn_reason.data.synthetic import generate

    port, tmp = free_port(), Path(tempfile.mkdtemp())
    srv = subprocess.Popen([str(Path(sys.executable).parent/'learn-reason'), 'teacher', 'serve', '--teacher', 'scripted', '--port', str(port),
                            '--latency', str(a.latency)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try: server_stats(port); break
            except OSError: time.sleep(0.1)
        qs = [e['question'] for e in generate('coin_flip', n=a.requests, seed=1)]
        mk = lambda c: OpenAITeacher('bench', base_url=f'http://127.0.0.1:{port}/v1', model='scripted-careful', concurrency=c, timeout=30)
        reqs = [mk(1).request(zs_cot(q)) for q in qs]

        t0 = time.perf_counter(); seq = run(mk(1), reqs[:a.sequential], progress=False); t_seq = time.perf_counter() - t0
        cache = Cache(tmp/'bench.sqlite')
        t0 = time.perf_counter(); conc = run(mk(a.concurrency), reqs, cache=cache, progress=False); t_conc = time.perf_counter() - t0
        before = server_stats(port)['requests']
        t0 = time.perf_counter(); again = run(mk(a.concurrency), reqs, cache=cache, progress=False); t_cache = time.perf_counter() - t0
        sent_again = server_stats(port)['requests'] - before
        keys = [r.key() for r in reqs] * 10
        t0 = time.perf_counter(); hits = sum(len(cache.get_many(keys[i:i + 2000])) for i in range(0, len(keys), 2000)); t_read = time.perf_counter() - t0
    finally:
        srv.terminate(); srv.wait()

    rate_seq, rate_conc = a.sequential / t_seq, a.requests / t_conc
    ideal = a.requests / (math.ceil(a.requests / a.concurrency) * a.latency)  # no request can start before a slot frees
    res = dict(machine=dict(cpus=os.cpu_count(), python=platform.python_version(), platform=platform.platform()),
               settings=vars(a) | dict(out=None),
               sequential=dict(requests=a.sequential, seconds=round(t_seq, 3), per_second=round(rate_seq, 2), done=seq.done),
               concurrent=dict(requests=a.requests, seconds=round(t_conc, 3), per_second=round(rate_conc, 1), done=conc.done,
                               failed=len(conc.failed), ideal_per_second=ideal, of_ideal=round(rate_conc / ideal, 3)),
               speedup=round(rate_conc / rate_seq, 1),
               cached_rerun=dict(seconds=round(t_cache, 3), requests_sent=sent_again, completions_per_second=round(a.requests / t_cache)),
               cache_reads=dict(reads=hits, seconds=round(t_read, 3), per_second=round(hits / t_read)),
               goals=dict(speedup_at_least=50, of_ideal_at_least=0.85, cached_requests=0, cached_reads_per_second_at_least=20000))
    out = Path(a.out)
    allres = json.loads(out.read_text()) if out.is_file() else {}
    allres['teacher'] = res  # the student benchmark writes its own key beside this one
    out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(allres, indent=1) + '\n')
    rows = [('one at a time', f'{rate_seq:.1f} req/s', f'{a.sequential} requests in {t_seq:.1f} s'),
            (f'{a.concurrency} in flight', f'{rate_conc:.0f} req/s', f'{a.requests} requests in {t_conc:.2f} s; ideal {ideal:.0f} req/s'),
            ('speed-up', f'{rate_conc / rate_seq:.0f}x', 'goal >= 50x'),
            ('of the concurrency-limited ideal', f'{rate_conc / ideal:.0%}', 'goal >= 85%'),
            ('finished stage again', f'{sent_again} requests', f'{a.requests} completions from the cache in {t_cache:.2f} s (goal 0 requests)'),
            ('cache reads', f'{hits / t_read:,.0f} /s', f'{hits} reads in {t_read:.2f} s (goal >= 20,000/s)')]
    w = max(len(r[0]) for r in rows)
    print(f'teacher benchmark: latency {a.latency * 1000:.0f} ms per answer, server in its own process, {os.cpu_count()} CPUs')
    for r in rows: print(f'  {r[0]:{w}}  {r[1]:>14}  {r[2]}')
    print(f'written to {a.out} (key "teacher")')

if __name__ == '__main__': main()
