"""The paper's stated numbers live in `sics.paper` only, and a criterion's kind on its registration
is all it takes to join the criteria study's families."""

import io
import re
import tokenize

import numpy as np
import pytest

from sics import paper
from sics.analysis import claims
from sics.paths import REPO
from sics.selection import scorers

STATED = (paper.SMOOTH_ESCAPE, paper.RAW_ESCAPE, paper.CHAOS_ESCAPE)  # 6.6, 2.6, 4.6


def test_the_papers_values_are_typed_in_one_module_only():
    """No number token and no text in sics/ outside sics/paper.py spells +6.6, +2.6 or +4.6."""
    values = "|".join(re.escape(f"{v:g}") for v in STATED)
    spelled = re.compile(rf"(?<![\d.])(?:{values})(?![\d])")
    found = []
    for path in sorted((REPO / "sics").rglob("*.py")):
        if path == REPO / "sics" / "paper.py":
            continue
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            value = tok.string.replace("_", "")
            if tok.type == tokenize.NUMBER and "." in value and any(np.isclose(float(value), v) for v in STATED):
                found.append(f"{path.name}:{tok.start[0]} {tok.string}")
            elif tok.type == tokenize.STRING and spelled.search(tok.string):
                found.append(f"{path.name}:{tok.start[0]} {tok.string[:40]}")
    assert not found, found


def test_the_claims_read_the_papers_numbers_by_name():
    assert claims.CLAIMS["C3"].value == paper.SMOOTH_ESCAPE and claims.CLAIMS["C4"].value == paper.RAW_ESCAPE
    assert claims.CLAIMS["C6"].value == pytest.approx(paper.CHAOS_ESCAPE - paper.BUMP_ESCAPE)
    assert f"+{paper.SMOOTH_ESCAPE}" in claims.CLAIMS["C3"].statement
    assert claims.paper_regime(paper.S_SMOOTH) == ("1", f"smooth escapes, best +{paper.SMOOTH_ESCAPE}")
    assert claims.paper_regime(paper.BOUNDARY_SMOOTH - 0.01)[0] == "0"
    assert claims.paper_regime(paper.BOUNDARY_RAW + 0.01)[0] == "2"
    assert list(claims.PAIRS) == ["C5", "C6"] and set(claims.ALL_CLAIMS) == {f"C{i}" for i in range(1, 8)}
    assert all(c.judge is not None for c in claims.CLAIMS.values())


@pytest.fixture
def new_criterion():
    name = "test_weight_criterion"

    @scorers.register(name, kappa="criterion", batched=True, criterion="weight")
    def _score(block, S, rng):
        return block.need("l1", name)

    yield name
    scorers.SCORERS.pop(name)


def test_a_criterion_joins_c1_and_c7_by_its_kind_alone(new_criterion):
    assert new_criterion in scorers.c1_family() and new_criterion in scorers.published()
    assert scorers.published("weight")[-1] == new_criterion  # weight criteria before the data-aware ones
    assert scorers.published().index(new_criterion) < scorers.published().index("activation")
    assert "lamp" not in scorers.c1_family() and "lamp" in scorers.published("weight")
    assert scorers.published("reference") == ["gradient", "random"]
    with pytest.raises(Exception, match="criterion kind must be one of weight, data, reference"):
        scorers.register("bad_kind", kappa="criterion", criterion="learned")
