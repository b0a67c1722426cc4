"""docs/compliance-controls.md is generated from the catalogue and must not drift."""

from __future__ import annotations

from fortress.compliance import docgen
from fortress.paths import repo_root


def test_controls_document_matches_the_catalogue() -> None:
    path = repo_root() / docgen.TARGET
    assert path.read_text() == docgen.render(), "run: python -m fortress.compliance.docgen"
    assert docgen.main(["--check"]) == 0
