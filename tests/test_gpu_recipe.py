"""The GPU recipe resolves on paper: the ``vllm`` extra, scripts/setup.sh and the README agree
with what the pinned vLLM itself requires (recorded below from its wheel's METADATA), and with
fdd's own install_requires. Needs no GPU and no network."""

from __future__ import annotations

import configparser
import re

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.conftest import ROOT

# Requires-Dist / Requires-Python of vllm wheels, read with
#   pip download --no-deps vllm==0.33.0 -d /tmp/x; unzip -p /tmp/x/vllm-*.whl '*/METADATA'
VLLM_METADATA = {
    "0.33.0": {"torch": "==2.14.0", "transformers": "<5.21.0,>=5.16.1", "python": "<3.15,>=3.11"},
}


def _reqs(block: str):
    return {r.name: r for r in (Requirement(line.strip()) for line in block.strip().splitlines() if line.strip())}


def _setup_cfg():
    cp = configparser.ConfigParser()
    cp.read(ROOT / "setup.cfg")
    return cp


def _pinned(req: Requirement) -> Version:
    (spec,) = list(req.specifier)
    assert spec.operator == "==", f"{req} must be an exact pin"
    return Version(spec.version)


def test_vllm_extra_matches_what_vllm_requires():
    cp = _setup_cfg()
    extra = _reqs(cp["options.extras_require"]["vllm"])
    core = _reqs(cp["options"]["install_requires"])
    vllm_version = str(_pinned(extra["vllm"]))
    assert vllm_version in VLLM_METADATA, f"vllm {vllm_version}: record its METADATA pins in VLLM_METADATA"
    meta = VLLM_METADATA[vllm_version]
    torch = _pinned(extra["torch"])
    assert torch in SpecifierSet(meta["torch"]) and torch in core["torch"].specifier
    # transformers: the extra's range is vllm's range, and fdd's own floor (transformers 5) admits it
    assert extra["transformers"].specifier == SpecifierSet(meta["transformers"])
    floor = min(Version(s.version) for s in SpecifierSet(meta["transformers"]) if s.operator == ">=")
    assert floor in core["transformers"].specifier and floor.major >= 5
    # Python: fdd's floor is below vllm's, so the recipe names vllm's
    assert Version("3.11") in SpecifierSet(meta["python"])


def test_setup_script_and_readme_install_the_same_pins():
    cp = _setup_cfg()
    extra = _reqs(cp["options.extras_require"]["vllm"])
    torch, vllm = _pinned(extra["torch"]), _pinned(extra["vllm"])
    script = (ROOT / "scripts" / "setup.sh").read_text()
    assert re.search(rf'^VLLM_TORCH="torch=={re.escape(str(torch))}"$', script, re.M)
    assert '*,vllm,*) default_torch="$VLLM_TORCH"' in script
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## GPU machines", 1)[1].split("\n## ", 1)[0]
    assert "bash scripts/setup.sh vllm,dev" in section
    assert f"torch=={torch}" in section and f"vllm=={vllm}" in section
    lo, hi = sorted(extra["transformers"].specifier, key=lambda s: s.operator != ">=")
    assert f"transformers{lo},{hi}" in section
