"""Settings for an installed user (issue 16, item 9): the package ships the project's settings.ini as its defaults, a
user's settings.ini (or $LEARN_REASON_SETTINGS) overrides some keys and inherits the rest, `config --init` starts one."""
import os, shutil, subprocess, sys, zipfile
from pathlib import Path
import pytest
from conftest import ROOT, cli
from learn_reason.core.settings import (DEFAULTS_INI, Settings, packaged_settings, read_settings, setting,
                                        SETTINGS_FILE)

KEY = 'sk-live-0123456789abcdefSECRET'


@pytest.fixture
def outside(tmp_path, monkeypatch)->Path:
    "A working folder outside the checkout, with no settings.ini above it and no LEARN_REASON_* variable set"
    for k in [k for k in os.environ if k.startswith('LEARN_REASON_')]: monkeypatch.delenv(k)
    work = tmp_path/'work'; work.mkdir()
    if any((d/SETTINGS_FILE).is_file() for d in [work, *work.parents]): pytest.skip('a settings.ini above the temp folder')
    monkeypatch.chdir(work)
    return work


def no_traceback(r): assert 'Traceback' not in r.stderr + r.stdout, r.stderr


def clean_env(**kw)->dict:
    "The environment without any LEARN_REASON_* variable, plus `kw`"
    return {**{k: v for k, v in os.environ.items() if not k.startswith('LEARN_REASON_')}, 'HF_HUB_OFFLINE': '1', **kw}


def rows(out:str)->dict:
    "`learn-reason config`'s table as `{name: line}`"
    return {l.split()[0]: l for l in out.splitlines()[1:] if l.strip() and not l.startswith(' ')}


def test_the_project_settings_ini_is_the_packaged_text():
    assert (ROOT/SETTINGS_FILE).read_text() == DEFAULTS_INI, 'copy DEFAULTS_INI (nbs/core/00_settings.ipynb) to it'
    assert read_settings(ROOT/SETTINGS_FILE) == packaged_settings()


def test_outside_a_checkout_the_package_defaults_know_the_teachers(outside):
    from learn_reason.teachers.stage import teacher_sections
    from learn_reason.teachers.openai_api import teacher_setting
    s = Settings()
    assert s.path is None and s.where() == '(none found; package defaults)'
    assert {'openai', 'gpt', 'gemini', 'mixtral', 'local'} <= set(teacher_sections())
    assert teacher_setting('openai', 'model') == 'gpt-4o-mini' and s.lookup('prices.gpt-4o').value == '2.50 10.00'
    assert s.lookup('teacher.openai.api_key_env').source == 'package defaults'
    assert setting('runs_dir') == outside.resolve()/'runs' and setting('data_dir') == outside.resolve()/'data'
    assert setting('seed') == 0 and setting('teacher') == 'served:scripted'
    assert s.lookup('pypi_url').source == 'built-in default'


def test_the_command_line_outside_a_checkout(outside):
    r = cli('config', env=clean_env(OPENAI_API_KEY=KEY), cwd=outside)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == 'settings file: (none found; package defaults)'
    t = rows(r.stdout)
    assert t['teacher.openai.model'].split()[1:] == ['gpt-4o-mini', 'package', 'defaults']
    assert t['runs_dir'].split()[1] == str(outside.resolve()/'runs')
    assert KEY not in r.stdout and '****CRET' in r.stdout
    r = cli('teacher', 'run', '--teacher', 'openai', '--dataset', 'coin_flip', '--source', 'synthetic', '-n', '2',
            '--dry-run', env=clean_env(), cwd=outside)
    assert 'unknown teacher' not in r.stderr and r.returncode == 0, r.stderr


def test_settings_variable_beats_the_nearest_file(outside, monkeypatch):
    (outside/SETTINGS_FILE).write_text('[learn_reason]\nstudent = near-student\n')
    other = outside.parent/'elsewhere'/'my.ini'; other.parent.mkdir()
    other.write_text('[learn_reason]\nstudent = env-student\ndata_dir = bench\n')
    assert setting('student') == 'near-student'
    monkeypatch.setenv('LEARN_REASON_SETTINGS', str(other))
    s = Settings()
    assert s('student') == 'env-student' and s.lookup('student').source == f'$LEARN_REASON_SETTINGS ({other})'
    assert s('data_dir') == other.parent.resolve()/'bench'       # relative to the file's folder, not the current one
    assert s('teacher.gemini.model') == 'gemini-2.0-flash'
    r = cli('config', env=clean_env(LEARN_REASON_SETTINGS=str(other)), cwd=outside)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f'settings file: {other} ($LEARN_REASON_SETTINGS)'
    assert '$LEARN_REASON_SETTINGS' in rows(r.stdout)['student'] and 'package defaults' in rows(r.stdout)['seeds']


def test_a_partial_settings_ini_overrides_one_key_and_inherits_the_rest(outside, monkeypatch):
    (outside/SETTINGS_FILE).write_text('[teacher.openai]\nmodel = gpt-4o\n')
    deep = outside/'runs'/'sweep'; deep.mkdir(parents=True); monkeypatch.chdir(deep)  # found upwards
    s = Settings()
    assert s.path == outside.resolve()/SETTINGS_FILE
    assert s('teacher.openai.model') == 'gpt-4o' and s.lookup('teacher.openai.model').source == f'settings.ini ({s.path})'
    assert s('teacher.openai.api_key_env') == 'OPENAI_API_KEY'
    assert s.lookup('teacher.openai.api_key_env').source == 'package defaults'
    assert s('teacher.mixtral.model') == 'mistralai/Mixtral-8x7B-Instruct-v0.1' and s('prices.gpt-4o') == '2.50 10.00'
    assert s('data_dir') == outside.resolve()/'data'    # a package default, relative to the file that left it unset
    monkeypatch.setenv('LEARN_REASON_TEACHER_OPENAI_MODEL', 'gpt-4.1')
    assert setting('teacher.openai.model') == 'gpt-4.1' and setting('teacher.openai.model', 'x') == 'x'


def test_config_init_writes_the_defaults_and_refuses_a_second_time(outside):
    env = clean_env(OPENAI_API_KEY=KEY, LEARN_REASON_TEACHER_OPENAI_MODEL='gpt-4o')
    r = cli('config', '--init', env=env, cwd=outside)
    f = outside.resolve()/SETTINGS_FILE
    assert r.returncode == 0 and r.stdout.startswith(f'wrote {f}:'), r.stderr
    assert f.read_text() == DEFAULTS_INI and read_settings(f) == packaged_settings()
    assert KEY not in f.read_text() and 'gpt-4o\n' not in f.read_text()   # neither a secret nor the environment
    f.write_text(f.read_text().replace('student = tiny-gpt2', 'student = mine'))
    r = cli('config', '--init', env=env, cwd=outside)
    assert r.returncode == 1 and f'{f} exists' in r.stderr and '--force' in r.stderr
    no_traceback(r)
    assert 'student = mine' in f.read_text()                              # untouched
    r = cli('config', '--init', 'conf/lr.ini', env=env, cwd=outside)
    assert r.returncode == 0 and (outside/'conf'/'lr.ini').read_text() == DEFAULTS_INI, r.stderr
    r = cli('config', '--init', '--force', env=env, cwd=outside)
    assert r.returncode == 0 and f.read_text() == DEFAULTS_INI, r.stderr


def test_a_wheel_ships_the_defaults(tmp_path):
    "`pip wheel` of the sources (no deps, no isolation): every subpackage is in it, and it alone knows `openai`"
    src = tmp_path/'src'; src.mkdir()
    for f in ('pyproject.toml', 'README.md'): shutil.copy(ROOT/f, src/f)
    shutil.copytree(ROOT/'learn_reason', src/'learn_reason', ignore=shutil.ignore_patterns('__pycache__'))
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w',
                        str(tmp_path/'dist'), str(src)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    whl, = (tmp_path/'dist').glob('*.whl')
    names = set(zipfile.ZipFile(whl).namelist())
    assert {'learn_reason/core/settings.py', 'learn_reason/teachers/stage.py', 'learn_reason/cli.py'} <= names
    site, work = tmp_path/'site', tmp_path/'work'; work.mkdir()
    zipfile.ZipFile(whl).extractall(site)
    code = ('import learn_reason, learn_reason.core.settings as s; '
            'print(learn_reason.__file__); print(s.setting("teacher.openai.model"))')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=work, timeout=60,
                       env=clean_env(PYTHONPATH=str(site)))
    assert r.returncode == 0, r.stderr
    where, model = r.stdout.split()
    assert Path(where).is_relative_to(site) and model == 'gpt-4o-mini'
