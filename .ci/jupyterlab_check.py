#!/usr/bin/env python
"""Browser check of a notebook in JupyterLab: a MANUAL check, not part of CI (CI has no Chromium).

It starts JupyterLab from the project's virtual environment (token off, a free port, settings, workspaces and
Jupyter config in a temporary folder, autosave off), serving a copy of nbs/ (so nothing it does can change the
checkout), drives it with headless Chromium through Playwright, and checks what a reader sees:

1. metadata every notebook in nbs/ holds the kernelspec and language_info JupyterLab writes for the kernel;
2. open     the notebook (default nbs/05_train.ipynb) opens with its kernel and is not marked modified: JupyterLab
            rewrote none of its metadata (what it holds is printed where it differs from the file);
3. images   the figures embedded in its markdown cells (`![...](images/...)`) render (img loaded, naturalWidth > 0)
            without running anything;
4. save     saved from JupyterLab as it is, then cleaned by nbdev_clean, the file is byte for byte what it was
            (--no-save skips it);
5. close    closing it asks nothing (no "save changes" dialog);
6. run      reopened, its first cells (the imports) run without a warning or any stderr output
            (e.g. `TqdmWarning: IProgress not found` when ipywidgets is missing);
7. widget   a `tqdm.auto` bar in a cell appended to the copy shows as a widget;
8. discard  closing after the run (which did change the notebook: outputs) and discarding leaves the file as it was.

It prints a PASS/FAIL line per check, `RESULT: PASS` or `RESULT: FAIL`, and the screenshot paths; exit status 0 or 1.

Set-up, once (this script installs nothing):

    apt-get install -y chromium                      # the OS package; the browser is /usr/lib/chromium/chromium
    python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
                                                     # Playwright's Python API only: no `playwright install`
                                                     # download, it drives the OS chromium (--chromium)
    pip install -e ".[dev]"                          # in the project's venv: JupyterLab, ipywidgets, ipykernel
    python -m ipykernel install --sys-prefix --name python3 --display-name python3
                                                     # in the project's venv: the kernel's display name is its
                                                     # name, as nbdev_clean writes it into every notebook (else
                                                     # JupyterLab rewrites kernelspec and marks them modified)

Run from the clone with Playwright's Python, naming the project venv's Python (the one JupyterLab and the kernel use):

    /tmp/pw/bin/python .ci/jupyterlab_check.py --python .venv/bin/python
    /tmp/pw/bin/python .ci/jupyterlab_check.py --python .venv/bin/python --notebook nbs/06_evaluate.ipynb --cells 2
    /tmp/pw/bin/python .ci/jupyterlab_check.py --python .venv/bin/python --notebook nbs/08_cli.ipynb --min-images 0

The committed language_info carries the Python version of the project's venv (3.11.7): JupyterLab on another Python
writes its own version and marks the notebooks modified (check 1 names the difference). As root (e.g. in a
container) Chromium runs with --no-sandbox. The kernel imports the package from this checkout
(PYTHONPATH), and every import and run stays offline (NO_ALBUMENTATIONS_UPDATE=1, HF_HUB_OFFLINE=1).
"""
import argparse, hashlib, json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUMS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# JupyterLab settings of the throwaway settings folder: no autosave (a run notebook must never be written back),
# no news or update checks (offline, and no toast over the screenshot)
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}
# nbdev_clean sets kernelspec.display_name to the kernelspec's name; JupyterLab writes the kernel's own display name
KERNEL_HINT = ("; the kernel's display_name differs from its name, which nbdev_clean writes: once per venv run "
               "`python -m ipykernel install --sys-prefix --name python3 --display-name python3`")
TQDM_CELL = "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='widget check'): pass"

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def sha256(path: Path) -> str: return hashlib.sha256(path.read_bytes()).hexdigest()

class Checks:
    "PASS/FAIL lines, printed as they come."
    def __init__(self): self.rows = []
    def add(self, name: str, ok: bool, detail: str = ""):
        self.rows.append((name, ok)); print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        return ok
    @property
    def ok(self) -> bool: return bool(self.rows) and all(ok for _, ok in self.rows)

def start_lab(python: str, lab_root: Path, tmp: Path, port: int) -> subprocess.Popen:
    "JupyterLab on 127.0.0.1:port serving lab_root, with every setting and config folder inside tmp."
    for name, value in LAB_SETTINGS.items():
        path = tmp/"settings"/name; path.parent.mkdir(parents=True, exist_ok=True); path.write_text(json.dumps(value))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp/"config"), JUPYTER_RUNTIME_DIR=str(tmp/"runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp/"settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp/"workspaces"),
               IPYTHONDIR=str(tmp/"ipython"), MPLCONFIGDIR=str(tmp/"mpl"), NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    cmd = [python, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={lab_root}",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={tmp/'settings'}",
           f"--LabApp.workspaces_dir={tmp/'workspaces'}"] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = open(tmp/"jupyterlab.log", "w")
    return subprocess.Popen(cmd, cwd=lab_root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

def wait_for_server(url: str, server: subprocess.Popen, timeout: float):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None: raise RuntimeError(f"JupyterLab exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer at {url} within {timeout:.0f} s")

def stop_lab(server: subprocess.Popen):
    "Stop the server this script started (it shuts its kernels down); its process group if it does not stop."
    if server.poll() is None:
        server.terminate()
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9); server.wait()

# JavaScript run in the page; `jupyterapp` is exposed by --LabApp.expose_app_in_browser
JS_OPEN = """async ([path, timeout]) => {
  const app = window.jupyterapp;
  await app.started; await app.restored;
  let w = app.shell.currentWidget;
  if (!w || !w.context || w.context.path !== path) w = await app.commands.execute('docmanager:open', {path});
  await w.context.ready; await w.sessionContext.ready;
  const t0 = Date.now();
  while (!(w.sessionContext.session && w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle')) {
    if (Date.now() - t0 > timeout) throw new Error('kernel not idle after ' + timeout + ' ms');
    await new Promise(r => setTimeout(r, 200));
  }
  const kernel = w.sessionContext.session.kernel;
  await kernel.info; await kernel.spec;
  await new Promise(r => setTimeout(r, 3000));   // JupyterLab writes kernelspec/language_info once the replies are in
  return {dirty: w.model.dirty, metadata: w.model.toJSON().metadata, kernel: kernel.name,
          tabDirty: document.querySelectorAll('#jp-main-dock-panel .lm-TabBar-tab.jp-mod-dirty').length};
}"""
JS_IMAGES = """async (timeout) => {
  const w = window.jupyterapp.shell.currentWidget, found = [];
  const cells = w.content.widgets;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells[i];
    if (cell.model.type !== 'markdown' || !cell.model.sharedModel.getSource().includes('](images/')) continue;
    await w.content.scrollToItem(i, 'start');
    const t0 = Date.now();
    let imgs = [];
    while (Date.now() - t0 < timeout) {
      imgs = [...cell.node.querySelectorAll('.jp-RenderedMarkdown img')];
      if (imgs.length && imgs.every(im => im.complete && im.getAttribute('src'))) break;
      await new Promise(r => setTimeout(r, 200));
    }
    if (!imgs.length) found.push({cell: i, src: '(no img element)', width: 0, height: 0});
    for (const im of imgs) found.push({cell: i, src: im.getAttribute('src'), width: im.naturalWidth, height: im.naturalHeight});
  }
  return found;
}"""
JS_RUN = """async ([n, timeout]) => {
  const app = window.jupyterapp, w = app.shell.currentWidget, nb = w.content;
  nb.activeCellIndex = 0; nb.deselectAll();
  for (let i = 0; i < n; i++) await app.commands.execute('notebook:run-cell-and-select-next');
  const t0 = Date.now();
  const done = () => nb.widgets.slice(0, n).every(c => c.model.type !== 'code' || c.model.executionCount !== null)
                     && w.sessionContext.session.kernel.status === 'idle';
  while (!done()) {
    if (Date.now() - t0 > timeout) throw new Error('the first ' + n + ' cells did not finish within ' + timeout + ' ms');
    await new Promise(r => setTimeout(r, 250));
  }
  return nb.widgets.slice(0, n).map((c, i) => ({
    cell: i, type: c.model.type, count: c.model.type === 'code' ? c.model.executionCount : null,
    outputs: c.model.type === 'code' ? c.model.outputs.toJSON().map(o => ({type: o.output_type, name: o.name || '',
      text: (Array.isArray(o.text) ? o.text.join('') : (o.text || (o.evalue ? o.ename + ': ' + o.evalue : '') ||
             JSON.stringify(Object.keys(o.data || {})))).slice(0, 400)})) : [],
    stderrShown: c.node.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').length,
  }));
}"""
JS_WIDGET = """async ([code, timeout]) => {
  const app = window.jupyterapp, w = app.shell.currentWidget, nb = w.content;
  nb.activeCellIndex = nb.widgets.length - 1;
  await app.commands.execute('notebook:insert-cell-below');
  const cell = nb.activeCell; cell.model.sharedModel.setSource(code);
  await app.commands.execute('notebook:run-cell');
  const t0 = Date.now();
  while (Date.now() - t0 < timeout) {
    const bar = cell.node.querySelector('.widget-hprogress, .widget-progress, .jp-OutputArea-output .jupyter-widgets');
    if (bar && cell.model.executionCount !== null) break;
    await new Promise(r => setTimeout(r, 250));
  }
  cell.node.scrollIntoView();
  const outputs = cell.model.outputs.toJSON();
  return {bar: !!cell.node.querySelector('.widget-hprogress, .widget-progress'),
          mimes: outputs.flatMap(o => Object.keys(o.data || {})),
          stderr: outputs.filter(o => o.output_type === 'stream' && o.name === 'stderr').map(o => String(o.text).slice(0, 400))};
}"""

def close_current(page, discard: bool) -> str|None:
    "Close the current document's tab; the text of the dialog that came up (answered 'Discard' when asked), or None."
    page.click("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current .lm-TabBar-tabCloseIcon")
    try: page.wait_for_selector(".jp-Dialog", timeout=3000)
    except Exception: return None
    text = " ".join(page.inner_text(".jp-Dialog").split())
    if discard: page.click(".jp-Dialog button:has-text('Discard')")
    else: page.click(".jp-Dialog button:has-text('Cancel')")
    return text

def metadata_diff(on_disk: dict, in_lab: dict) -> list[str]:
    return [f"{k}: file {json.dumps(on_disk.get(k))} -> JupyterLab {json.dumps(in_lab.get(k))}"
            for k in sorted(set(on_disk) | set(in_lab)) if on_disk.get(k) != in_lab.get(k)]

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--python", default=str(ROOT/".venv/bin/python"), help="the project venv's Python (JupyterLab, ipykernel, ipywidgets)")
    ap.add_argument("--chromium", default=next((c for c in CHROMIUMS if Path(c).exists()), ""), help="the browser binary")
    ap.add_argument("--notebook", default="nbs/05_train.ipynb", help="notebook to check, relative to the clone")
    ap.add_argument("--cells", type=int, default=3, help="how many cells from the top to run")
    ap.add_argument("--min-images", type=int, default=1, help="markdown images the notebook must show (0 for a notebook without)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for the server, the kernel and the run each")
    ap.add_argument("--save", action=argparse.BooleanOptionalAction, default=True,
                    help="save the opened notebook from JupyterLab (the copy) and check that it, after nbdev_clean, is the file as it was")
    ap.add_argument("--out", default="", help="folder for screenshots and the JupyterLab log; '' makes one in /tmp")
    args = ap.parse_args()
    try: from playwright.sync_api import sync_playwright
    except ImportError: sys.exit("needs Playwright's Python API: python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright; run with /tmp/pw/bin/python")
    if not Path(args.python).exists(): sys.exit(f"--python {args.python}: not found (the project venv's Python, with JupyterLab)")
    if not args.chromium or not Path(args.chromium).exists(): sys.exit("no Chromium found: apt-get install -y chromium, or pass --chromium")
    notebook = (ROOT/args.notebook).resolve()
    if not notebook.is_file() or notebook.parent != ROOT/"nbs": sys.exit(f"--notebook {args.notebook}: not a notebook in nbs/")

    out = Path(args.out or tempfile.mkdtemp(prefix="jupyterlab_check_")); out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="jupyterlab_check_lab_"))
    lab_root = tmp/"root"; (lab_root/"nbs").mkdir(parents=True)      # a copy of nbs/: notebooks and images
    for nb in (ROOT/"nbs").glob("*.ipynb"): shutil.copy2(nb, lab_root/"nbs"/nb.name)
    if (ROOT/"nbs"/"images").is_dir(): shutil.copytree(ROOT/"nbs"/"images", lab_root/"nbs"/"images")
    rel, copy = f"nbs/{notebook.name}", lab_root/"nbs"/notebook.name
    before, on_disk = sha256(copy), json.loads(copy.read_text(encoding="utf-8"))
    timeout_ms = int(args.timeout * 1000)
    checks, shots = Checks(), []
    kernelspec = subprocess.run([args.python, "-m", "jupyter", "kernelspec", "list", "--json"], capture_output=True, text=True,
                                env=dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp/"config")))
    wanted = on_disk.get("metadata", {}).get("kernelspec", {}).get("name", "")
    try: spec = json.loads(kernelspec.stdout)["kernelspecs"].get(wanted, {}).get("spec", {})
    except (ValueError, KeyError): spec = {}
    print(f"notebook: {args.notebook} (copy served from {lab_root})\nkernelspec '{wanted}' "
          f"of {args.python}: display_name {spec.get('display_name')!r}", flush=True)
    # every notebook: the metadata JupyterLab writes on open is the kernel's spec and language_info
    info = subprocess.run([args.python, "-c", "import json; from ipykernel.ipkernel import IPythonKernel as K; print(json.dumps(K.language_info))"],
                          capture_output=True, text=True)
    expected = {"kernelspec": {"name": wanted, "display_name": spec.get("display_name"), "language": spec.get("language")},
                "language_info": json.loads(info.stdout) if info.returncode == 0 else None}
    differ = []
    for nb in sorted((ROOT/"nbs").glob("*.ipynb")):
        metadata = json.loads(nb.read_text(encoding="utf-8")).get("metadata", {})
        keys = [k for k, v in expected.items() if metadata.get(k) != v]
        if keys: differ.append(f"{nb.name} ({', '.join(keys)})")
    checks.add("metadata: every notebook as JupyterLab writes it", not differ,
               "kernelspec and language_info equal the kernel's in all of nbs/" if not differ else
               f"differ: {'; '.join(differ)}; JupyterLab writes {json.dumps(expected)}" + (KERNEL_HINT if spec.get("display_name") != wanted else ""))
    port = free_port(); url = f"http://127.0.0.1:{port}"
    server = start_lab(args.python, lab_root, tmp, port)
    try:
        wait_for_server(url, server, args.timeout)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.set_default_timeout(timeout_ms)
            page.goto(f"{url}/lab/tree/{rel}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=timeout_ms)

            opened = page.evaluate(JS_OPEN, [rel, timeout_ms])
            diff = metadata_diff(on_disk.get("metadata", {}), opened["metadata"])
            checks.add("open: not modified", not opened["dirty"] and not opened["tabDirty"] and not diff,
                       f"kernel {opened['kernel']}; " + ("JupyterLab kept the metadata as committed" if not diff else
                       "JupyterLab changed the metadata: " + "; ".join(diff) + (KERNEL_HINT if spec.get("display_name") != wanted else "")))
            images = page.evaluate(JS_IMAGES, timeout_ms)
            bad = [im for im in images if im["width"] <= 0]
            checks.add("images: embedded figures render", len(images) >= args.min_images and not bad,
                       f"{len(images) - len(bad)} of {len(images)} loaded" + (f" (at least {args.min_images} expected)" if len(images) < args.min_images else "") +
                       "".join(f", {Path(im['src'].split('?')[0]).name} {im['width']}x{im['height']}" for im in images))
            if images: page.screenshot(path=str(out/"1_figure.png")); shots.append(out/"1_figure.png")
            if args.save:   # JupyterLab's own save of the opened notebook, then nbdev_clean: the file as committed
                mtime = copy.stat().st_mtime_ns
                page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')"); time.sleep(2)
                same, saved = sha256(copy) == before, copy.stat().st_mtime_ns != mtime
                cleaned = subprocess.run([str(Path(args.python).parent/"nbdev_clean"), "--fname", str(copy)], cwd=ROOT,
                                         capture_output=True, text=True)
                checks.add("save: JupyterLab's save, nbdev_clean, no change", saved and sha256(copy) == before and cleaned.returncode == 0,
                           ("not saved: " if not saved else "") + ("saved bytes identical to the file" if same else "saved bytes differ, ") +
                           ("" if same else "identical after nbdev_clean" if sha256(copy) == before else "still different after nbdev_clean"))
            dialog = close_current(page, discard=False)
            checks.add("close: no save dialog", dialog is None, "closed without a question" if dialog is None else f"dialog: {dialog}")

            page.evaluate(JS_OPEN, [rel, timeout_ms])      # reopened, kernel idle
            ran = page.evaluate(JS_RUN, [args.cells, timeout_ms])
            noisy = [(r["cell"], o) for r in ran for o in r["outputs"]
                     if o["type"] == "error" or o["name"] == "stderr" or "Warning" in o["text"]] + \
                    [(r["cell"], {"type": "stderr shown", "text": ""}) for r in ran if r["stderrShown"]]
            checks.add(f"run: first {args.cells} cells without warnings", not noisy,
                       f"cells {[r['count'] for r in ran]} ran, no warning or stderr" if not noisy else
                       "; ".join(f"cell {c} {o['type']}: {o['text'][:200]!r}" for c, o in noisy))
            page.evaluate("() => window.jupyterapp.shell.currentWidget.content.scrollToItem(0, 'start')"); time.sleep(1)
            page.screenshot(path=str(out/"2_run.png")); shots.append(out/"2_run.png")
            widget = page.evaluate(JS_WIDGET, [TQDM_CELL, 60_000])
            checks.add("widget: tqdm.auto shows a widget bar", widget["bar"] and not widget["stderr"],
                       f"outputs {widget['mimes']}" + (f"; stderr {widget['stderr']}" if widget["stderr"] else ""))
            page.screenshot(path=str(out/"3_widget.png")); shots.append(out/"3_widget.png")
            dialog = close_current(page, discard=True)
            time.sleep(1)
            checks.add("discard: the run changed nothing on disk", sha256(copy) == before,
                       f"closing after the run asked {dialog!r}, answered Discard" if dialog else "closed without a question")
            browser.close()
    except Exception as e:
        checks.add("browser session", False, f"{type(e).__name__}: {e}")
    finally:
        stop_lab(server)
        shutil.copy2(tmp/"jupyterlab.log", out/"jupyterlab.log"); shutil.rmtree(tmp, ignore_errors=True)
    print(f"RESULT: {'PASS' if checks.ok else 'FAIL'} ({sum(ok for _, ok in checks.rows)} of {len(checks.rows)} checks passed)")
    for shot in shots: print(f"screenshot: {shot}")
    print(f"JupyterLab log: {out/'jupyterlab.log'}")
    sys.exit(0 if checks.ok else 1)

if __name__ == "__main__": main()
