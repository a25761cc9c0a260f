"""Wrong file versus broken file (scanner.core.content_check): another file is never ok; the node's own
broken file is ok when the server announced its size, so the analysis can call it invalid."""

from __future__ import annotations

from scanner.core.content_check import check_fetched
from tests.fleet import base_world


def test_broken_list_with_announced_size_is_the_nodes_own_file() -> None:
    ctl = base_world().files[("destination", "d1", "CTLFile.tlv")]
    broken = ctl[:700]  # the lab's "truncated" fault: the node serves these 700 bytes
    assert check_fetched("CTLFile.tlv", broken, expected_size=700) is None
    reason = check_fetched("CTLFile.tlv", broken, expected_size=None)
    assert reason is not None and "no size announced" in reason
    assert check_fetched("CTLFile.tlv", broken, expected_size=len(ctl)) is not None  # a short read


def test_another_file_is_refused_whatever_the_size() -> None:
    w = base_world()
    itl = w.files[("source", "s1", "ITLFile.tlv")]
    assert check_fetched("CTLSEP0011223344AA.tlv", itl, expected_size=len(itl)) is not None
    cfg = w.files[("source", "s1", "SEP0011223344AA.cnf.xml.sgn")]
    assert check_fetched("SEP0011223344BB.cnf.xml.sgn", cfg, expected_size=len(cfg)) is not None
    assert check_fetched("ITLFile.tlv", cfg, expected_size=len(cfg)) is not None
    assert check_fetched("SEP0011223344AA.cnf.xml.sgn", cfg, expected_size=len(cfg)) is None
