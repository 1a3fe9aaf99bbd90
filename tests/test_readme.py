"""The README's Python examples run as written, so they never go stale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hidesync_events import ToolCheckedOut, configure, global_event_bus

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_examples() -> None:
    """The README shows Python examples (the test below would pass vacuously)."""
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{n}" for n in range(len(BLOCKS))])
def test_readme_example_runs(block: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each example runs in eager mode without error."""
    configure(mode="eager")

    exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})

    assert not global_event_bus.dead_letters.list()


def test_the_publishing_example_reaches_its_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first example's handler runs when its event is published."""
    configure(mode="eager")

    exec(compile(BLOCKS[0], str(README), "exec"), {"__name__": "readme_example"})

    assert "reserving for execution 100" in capsys.readouterr().out


def test_the_fastapi_example_takes_the_body_its_curl_sends() -> None:
    """The FastAPI snippet answers the request the README's ``curl`` sends (a JSON
    body), and its endpoint publishes the checkout."""
    from fastapi.testclient import TestClient

    [block] = [b for b in BLOCKS if "FastAPI()" in b]
    curl = re.search(r"curl -X POST localhost:8000(\S+) .*?-d '([^']*)'", _text())
    assert curl is not None
    path, body = curl.groups()
    configure(mode="eager")
    published = []
    global_event_bus.subscribe(ToolCheckedOut, published.append)
    namespace = {"__name__": "readme_example"}
    exec(compile(block, str(README), "exec"), namespace)

    with TestClient(namespace["app"]) as client:
        response = client.post(path, content=body, headers=_JSON)

    assert 201 == response.status_code, response.text
    assert [(1, "Ana")] == [(e.tool_id, e.checked_out_by) for e in published]


_JSON = {"content-type": "application/json"}


def _text() -> str:
    return README.read_text().replace("\\\n", " ")
