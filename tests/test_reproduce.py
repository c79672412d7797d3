"""scripts/reproduce.py: one command per docs figure, every docs figure from one, and the --smoke pipeline."""
import importlib.util
import re
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from .conftest import ROOT

SCRIPT = ROOT / "scripts" / "reproduce.py"
RESULTS = ROOT / "docs" / "results.md"
LINE = re.compile(r"^(\w+)  seeds=(\d+)  generations=(\d+)  n_synthetic=(\S+)  figure=(\S+)  command=(.+)$")


def load():
    """scripts/reproduce.py as a module (registered first: its dataclasses look their module up)."""
    if "reproduce_script" not in sys.modules:
        spec = importlib.util.spec_from_file_location("reproduce_script", SCRIPT)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["reproduce_script"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["reproduce_script"]


def listing(tmp_path) -> list[re.Match]:
    p = subprocess.run([sys.executable, str(SCRIPT), "--list", "--out", str(tmp_path)], capture_output=True,
                       text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    matches = [LINE.match(x) for x in lines]
    assert all(matches), [x for x, m in zip(lines, matches) if not m]
    return matches


def test_list_names_every_figure_with_its_sizes_and_command(tmp_path):
    entries = listing(tmp_path)
    mnist = [m for m in entries if m[1].startswith("mnist_")]
    assert sum(int(m[2]) >= 3 for m in mnist) >= 4
    assert any(m[4] == "20000" and int(m[3]) >= 20 and int(m[2]) >= 3 for m in mnist)
    for m in entries:
        for fig in m[5].split(","):
            assert (ROOT / fig).is_file(), f"{m[1]}: {fig} does not exist"
        cmd = m[6]
        assert cmd.startswith("python train.py -m ") or cmd.startswith("python scripts/"), cmd
        assert str(tmp_path / m[1]) in cmd  # into the chosen folder, one per figure


def test_results_page_shows_every_listed_figure_and_names_its_command(tmp_path):
    text = RESULTS.read_text()
    linked = set(re.findall(r"\]\((figures/[\w.-]+\.png)\)", text))
    listed = set()
    for m in listing(tmp_path):
        assert f"python scripts/reproduce.py {m[1]}" in text, f"docs/results.md does not name {m[1]}'s command"
        listed |= {f.removeprefix("docs/") for f in m[5].split(",")}
    assert listed <= linked, f"listed but not shown in docs/results.md: {sorted(listed - linked)}"
    assert linked <= listed, f"shown in docs/results.md but made by no --list entry: {sorted(linked - listed)}"


def _sweep_values(fig) -> tuple[dict, dict[str, list[str]]]:
    """The entry's composed config (first value of every swept key) and its swept keys' values."""
    single = [o for o in fig.sweep if "," not in o]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=single, return_hydra_config=True)
        swept = {k.lstrip("+"): str(v).split(",") for k, v in (cfg.hydra.sweeper.params or {}).items()}
        swept |= {o.split("=")[0]: o.split("=", 1)[1].split(",") for o in fig.sweep if "," in o}
        first = [f"{'+' if k == 'arm' else ''}{k}={v[0]}" for k, v in swept.items()]
        cfg = compose("config", overrides=single + first)
    return cfg, swept


@pytest.mark.parametrize("name", [f.name for f in load().FIGURES if not f.script])
def test_listed_sizes_are_read_from_the_sweeps_config(name):
    """What --list says (seeds, generations, n_synthetic) is read from the config the sweep composes to (the entry
    restates none of it): checked here by composing it independently."""
    mod = load()
    fig = mod.BY_NAME[name]
    cfg, swept = _sweep_values(fig)
    n = swept.get("policy.n_synthetic", [str(cfg.policy.n_synthetic)])
    if n == ["None"]:
        n = ["20000" if cfg.generator.name == "vae" else ("100" if cfg.generator.name == "linear"
                                                           else str(cfg.data.n_real))]
    assert mod.sweep_facts(fig) == (",".join(swept.get("seed", [str(cfg.seed)])), cfg.generations, ",".join(n))
    assert not hasattr(fig, "seeds") and not hasattr(fig, "generations")


def test_the_long_run_and_the_retained_sizes_as_their_yaml_says():
    mod = load()
    assert mod.sweep_facts(mod.BY_NAME["mnist_longrun"]) == ("0,1,2", 20, "20000")
    assert mod.sweep_facts(mod.BY_NAME["mnist_retained_size"]) == ("0,1,2", 5, "2000,20000")
    assert mod.sweep_facts(mod.BY_NAME["mnist_default"]) == ("0,1,2,3,4", 3, "20000")


@pytest.mark.parametrize("args, says", [(["nope"], "unknown figure(s) nope"), ([], "name a figure"),
                                        (["mnist_default", "--smoke"], "--smoke writes only under --out"),
                                        (["mnist_default", "--out", str(ROOT / "runs")], "inside the work tree")])
def test_bad_requests_are_one_line_errors(args, says):
    p = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_smoke_writes_every_figure_under_out(tmp_path):
    """Every entry's whole pipeline (sweep, summary, paired tables, files) at test size, nothing outside --out."""
    mod = load()
    p = subprocess.run([sys.executable, str(SCRIPT), "all", "--smoke", "--out", str(tmp_path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for fig in mod.FIGURES:
        for dst in fig.figures.values():
            assert (tmp_path / "figures" / dst).stat().st_size > 5000, dst
        if not fig.script:
            table = (tmp_path / "results" / f"{fig.name}.md").read_text()
            assert "mean [95% interval across seeds]" in table
            assert str(tmp_path) not in table  # the table names the sweep as <runs>/NAME
    paired = (tmp_path / "results" / "mnist_longrun.md").read_text()
    assert "| arm=discriminator - arm=replace |" in paired and "paired differences on common seeds" in paired
