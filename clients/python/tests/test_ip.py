"""The client's address behind proxies answers the cases the Rust rule
(`trailmark_core::TrustedProxies`) answers: one table for both, so the two
statements of the rule cannot drift."""

import json
from pathlib import Path

import pytest

from trailmark._ip import client_ip, networks

TABLE = json.loads((Path(__file__).resolve().parents[3] / "crates/trailmark-core/tests/client-ip.json").read_text())


@pytest.mark.parametrize("case", TABLE["cases"], ids=lambda c: c["name"])
def test_the_client_is_the_one_the_rust_rule_names(case):
    # A WSGI or ASGI server joins a header's lines with ", ".
    joined = lambda key: ", ".join(case[key]) if key in case else None  # noqa: E731
    got = client_ip(case["peer"], joined("x_forwarded_for"), joined("forwarded"), networks(case["trusted"]))
    assert got == case["client"]


@pytest.mark.parametrize("bad", TABLE["bad"])
def test_a_bad_trusted_proxy_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="trusted proxies"):
        networks([bad])
