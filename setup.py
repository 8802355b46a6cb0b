"Package set-up driven by settings.ini (nbdev 2 style, without pkg_resources)."
import shlex, shutil
from configparser import ConfigParser
from pathlib import Path

import setuptools
from setuptools.command.build_py import build_py

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

expected = ('version description keywords author author_email license min_python '
            'lib_name user branch copyright status git_url'.split())
missing = [o for o in expected if o not in cfg]
if missing: raise ValueError(f"settings.ini is missing: {', '.join(missing)}")

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable',
            '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()
min_python = cfg['min_python']
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))

requirements = shlex.split(cfg.get('requirements', ''))
# extras: `[onnx]` for ONNX export; `[dev]` for tests and notebooks, a superset of every other extra
extras = {'onnx': shlex.split(cfg.get('onnx_requirements', ''))}
extras['dev'] = sorted({r for reqs in extras.values() for r in reqs} | set(shlex.split(cfg.get('dev_requirements', ''))))
console_scripts = [s for s in cfg.get('console_scripts', '').split() if s]

# `marine-unet pipeline` runs these notebooks with papermill; a non-editable install has no nbs/ folder,
# so the build copies them into the built package (build_lib/marine_unet/notebooks/), never into the
# source marine_unet/ folder, which nbdev generates.
PIPELINE_NOTEBOOKS = ('05_train.ipynb', '06_evaluate.ipynb', '07_infer.ipynb')

class BuildPyWithNotebooks(build_py):
    "build_py that also copies the pipeline notebooks into the built package."
    def run(self):
        super().run()
        dest = Path(self.build_lib) / cfg['lib_name'] / 'notebooks'
        for name in PIPELINE_NOTEBOOKS:
            src = Path('nbs') / name
            if src.is_file():
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)

def _version_tuple(v): return tuple(int(p) for p in v.split('.'))

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title()]
                + ([f'License :: {lic[1]}'] if lic[1] else [])
                + ['Programming Language :: Python :: ' + v for v in py_versions
                   if _version_tuple(v) >= _version_tuple(min_python)],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    install_requires=requirements,
    extras_require=extras,
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': console_scripts, 'nbdev': [f"{cfg['lib_name']}={cfg['lib_name']}._modidx:d"]},
    description=cfg['description'],
    author=cfg['author'],
    author_email=cfg['author_email'],
    keywords=cfg['keywords'],
    cmdclass={'build_py': BuildPyWithNotebooks},
)
