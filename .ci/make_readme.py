#!/usr/bin/env python
"""Build README.md from nbs/index.ipynb (nbdev_readme needs quarto, which these machines lack).

Markdown cells are copied as they are (image links into nbs/images/ made relative to the top folder); code cells become ```python blocks, without nbdev `#|` directive
lines; cells marked `#| hide` are left out. `--check` exits 1 when README.md is not what index.ipynb gives.
"""
import argparse, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "<!-- Generated from nbs/index.ipynb by .ci/make_readme.py: edit the notebook, not this file. -->\n\n"

def cell_text(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src

def render(nb_path):
    parts = []
    for cell in json.loads(Path(nb_path).read_text(encoding="utf-8"))["cells"]:
        text = cell_text(cell).strip("\n")
        if cell["cell_type"] == "markdown": parts.append(text.replace("](images/", "](nbs/images/"))  # README sits one folder up
        elif cell["cell_type"] == "code":
            lines = text.splitlines()
            directives = [l.strip() for l in lines if l.strip().startswith("#|")]
            if any(d.split()[1:2] == ["hide"] for d in directives if len(d.split()) > 1): continue
            code = "\n".join(l for l in lines if not l.strip().startswith("#|")).strip("\n")
            if code: parts.append(f"```python\n{code}\n```")
    return HEADER + "\n\n".join(p for p in parts if p) + "\n"

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = ap.parse_args()
    want, readme = render(ROOT/"nbs/index.ipynb"), ROOT/"README.md"
    if args.check:
        if not readme.exists() or readme.read_text(encoding="utf-8") != want:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python .ci/make_readme.py`")
        print("README.md matches nbs/index.ipynb")
    else:
        tmp = readme.with_name(".README.md.tmp"); tmp.write_text(want, encoding="utf-8"); tmp.replace(readme)
        print("wrote README.md")

if __name__ == "__main__": main()
