"Shared fixtures: the console script, the project's reference data (when it is beside the checkout), a scratch home."
import json, os, subprocess, sys
from pathlib import Path
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # no test ever reaches a model or dataset hub
os.environ.setdefault('OMP_NUM_THREADS', '1')

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tools_module(name:str):
    "A module of the project's build tooling (`tools/<name>.py`, outside the importable library)"
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'tools_{name}', ROOT/'tools'/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='session')
def reference()->Path:
    "The project's reference copy of the benchmark files; tests that need it skip where it is absent"
    from learn_reason.core.settings import reference_data
    p = reference_data()
    if p is None or not (p/'benchmarks').is_dir(): pytest.skip('reference data (../shared/data) not found beside the checkout')
    return p


@pytest.fixture
def env(tmp_path)->dict:
    "An environment for a subprocess: offline hub, a scratch cache, an empty data folder, no reference data"
    e = {k: v for k, v in os.environ.items() if not k.startswith('LEARN_REASON_')}
    (tmp_path/'data').mkdir()
    e.update(HF_HUB_OFFLINE='1', LEARN_REASON_CACHE_DIR=str(tmp_path/'cache'), LEARN_REASON_DATA_DIR=str(tmp_path/'data'),
             LEARN_REASON_RUNS_DIR=str(tmp_path/'runs'), LEARN_REASON_SETTINGS=str(ROOT/'settings.ini'))
    return e


def cli(*args, env=None, cwd=None, input=None)->subprocess.CompletedProcess:
    "Run the `learn-reason` console script"
    return subprocess.run([str(BIN/'learn-reason'), *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, input=input, timeout=600)


def jsonl(text:str)->list: return [json.loads(l) for l in text.splitlines() if l.strip()]
