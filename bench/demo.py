"""The demo sweep's wall time: `make bench` (merged into bench/results.json).

  .venv/bin/python bench/demo.py [--jobs 2]

Runs papers_repro/sweeps/demo.yaml from nothing (a fresh sweep folder and a fresh teacher cache) through the same
`learn_reason.repro.sweep.sweep` that `make demo` uses, and records the wall time, the time of each cell and whether any
failed. The goal is at most 10 minutes on 2 CPU cores.
"""
import argparse, json, os, platform, statistics, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--jobs', type=int, default=2); ap.add_argument('--out', default=str(ROOT/'bench'/'results.json'))
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix='demo-bench-'))
    os.environ['LEARN_REASON_CACHE_DIR'] = str(work/'cache')  # nothing answered before: the teacher requests count too
    os.environ.setdefault('TRANSFORMERS_VERBOSITY', 'error')
    from learn_reason.repro.sweep import sweep
    t0 = time.perf_counter()
    r = sweep(ROOT/'papers_repro'/'sweeps'/'demo.yaml', root=work/'demo', jobs=a.jobs)
    wall = time.perf_counter() - t0
    runs = [c['seconds'] for c in r.cells if c['kind'] == 'runs']
    reps = [c['seconds'] for c in r.cells if c['kind'] == 'reports']
    res = dict(machine=dict(cpus=os.cpu_count(), python=platform.python_version(), platform=platform.platform()), jobs=a.jobs,
               wall_seconds=round(wall, 1), goal_seconds=600, cells=len(r.cells), failed=[c['cell'] for c in r.failed],
               run_cells=dict(n=len(runs), total_seconds=round(sum(runs), 1), median_seconds=round(statistics.median(runs), 1) if runs else None,
                              slowest={c['cell']: c['seconds'] for c in sorted(r.cells, key=lambda c: -c['seconds'])[:3]}),
               report_cells=dict(n=len(reps), total_seconds=round(sum(reps), 1)), report=str(r.report))
    out = Path(a.out)
    allres = json.loads(out.read_text()) if out.is_file() else {}
    allres['demo'] = res
    out.write_text(json.dumps(allres, indent=1) + '\n')
    print(f"demo sweep: {wall / 60:.1f} min wall for {len(r.cells)} cells ({len(r.failed)} failed) with {a.jobs} jobs; goal <= 10 min")
    print(f"  run cells: {len(runs)}, {sum(runs):.0f} s of cell time (median {res['run_cells']['median_seconds']} s); report cells: {len(reps)}, {sum(reps):.0f} s")
    return 1 if r.failed else 0


if __name__ == '__main__':
    sys.exit(main())
