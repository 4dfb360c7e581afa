"""docs/process-designers.md stays true: every fact the generator reads from the code is on the page.

The page is generated (``make docs``); this test fails when the code gained a topic, a result variable,
a property read by name or a BPMN error that the committed page does not show yet.
"""

from __future__ import annotations

import pytest

from exchanger import designers_doc
from exchanger.routing import default_routes

REGENERATE = "docs/process-designers.md is out of date: run `make docs` and commit it"


@pytest.fixture(scope="module")
def page() -> str:
    return designers_doc.PAGE.read_text(encoding="utf-8")


@pytest.mark.parametrize("system", list(default_routes()))
def test_every_fact_of_the_code_is_on_the_page(page: str, system: str) -> None:
    facts = designers_doc.system_facts(system)
    section = page.split(f"\n## {system}\n", 1)[1].split("\n## ", 1)[0]
    expected = {*default_routes()[system], *facts.reads, *facts.results, *facts.errors, *facts.error_settings,
                *facts.error_settings.values()}
    missing = sorted(name for name in expected if f"`{name}`" not in section)
    assert not missing, f"{REGENERATE} ({system}: {missing})"


def test_the_page_reads_facts_from_the_code() -> None:
    """The generator really finds things (a refactoring that hides them would make the page empty)."""
    assert {"op_status", "op_url"} <= designers_doc.system_facts("openproject").results
    assert {"onec_ref_key", "onec_posted"} <= designers_doc.system_facts("1c").results
    bitrix = designers_doc.system_facts("bitrix24")
    assert "bitrix_task_id" in bitrix.results and "BITRIX_TASK_DELETED" in bitrix.errors | set(
        bitrix.error_settings.values())
    assert "http_status" in designers_doc.system_facts("python").results


def test_the_readme_links_the_page() -> None:
    readme = (designers_doc.PAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "docs/process-designers.md" in readme
