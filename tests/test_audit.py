"""Archive audit end to end on real SQLite and the real pipeline, with fake detector forward passes."""

from __future__ import annotations

import asyncio
import csv
import runpy
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select

from service.audit import ArchiveFormat, AuditOptions, read_rows, run_audit
from service.audit.fetch import HeadshotFetcher, HeadshotFetchError, HeadshotUrlRefusedError
from service.audit.readers import detect_format
from service.config import Settings
from service.store import Store
from service.store.audit_models import AuditItemRow
from service.store.models import CheckRow
from tests.audit_helpers import articles, read_jsonl, write_ghost, write_jsonl, write_wxr
from tests.fakes import FakeFaceDetector, FakeTextDetector, jpeg_bytes


def detectors() -> dict[str, Any]:
    return {"text": FakeTextDetector(), "face": FakeFaceDetector()}


def audit(settings: Settings, archive: Path, out: Path, **options: Any) -> int:
    return asyncio.run(run_audit(settings, archive, out, options=AuditOptions(**options), detectors=detectors()))


def headshot_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "headshots"
    folder.mkdir()
    shared = jpeg_bytes((225, 60, 60))
    (folder / "bo-bot.jpg").write_bytes(shared)
    (folder / "cy-bot.jpg").write_bytes(shared)
    (folder / "ann-human.jpg").write_bytes(jpeg_bytes((40, 90, 160)))
    return folder


def authors_by_name(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return {row["author"]: row for row in csv.DictReader(fh)}


def count_checks(settings: Settings) -> int:
    store = Store(settings.database_url, "x")
    with store.session() as session:
        count = session.scalar(select(func.count()).select_from(CheckRow).where(CheckRow.source == "audit"))
    store.close()
    return int(count or 0)


def test_jsonl_contract_one_row_per_input_row_with_its_id(settings: Settings, tmp_path: Path) -> None:
    archive = write_jsonl(tmp_path / "in.jsonl", articles(4))
    with archive.open("a", encoding="utf-8") as fh:
        fh.write("not json\n")
    assert audit(settings, archive, tmp_path / "out.jsonl") == 5
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == ["post-0", "post-1", "post-2", "post-3", "line-5"]
    assert rows[0]["verdict"] == "likely_human"
    assert rows[1]["verdict"] == "likely_ai"
    assert rows[1]["check_id"].startswith("chk_")
    assert rows[4]["error"]["code"] == "unreadable_row"
    assert (tmp_path / "out.authors.csv").exists()
    assert (tmp_path / "out.report.html").exists()


def test_wxr_audit_flags_authors_sharing_an_ai_headshot(settings: Settings, tmp_path: Path) -> None:
    archive = write_wxr(tmp_path / "export.xml", articles(6))
    assert detect_format(archive) is ArchiveFormat.WXR
    assert audit(settings, archive, tmp_path / "out", headshots=headshot_folder(tmp_path)) == 6
    rows = read_jsonl(tmp_path / "out" / "reports.jsonl")
    assert [r["id"] for r in rows] == [f"post-{i}" for i in range(6)]
    assert rows[0]["published"] == "2023-01-10T09:00:00+00:00"
    assert [len(r["headshots"]) for r in rows] == [1, 1, 1, 0, 0, 0]  # once per author
    authors = authors_by_name(tmp_path / "out" / "authors.csv")
    assert set(authors["Bo Bot"]["reasons"].split(";")) == {"ai_share_high", "headshot_likely_ai", "headshot_reused"}
    assert authors["Bo Bot"]["headshot_reused_with"] == "Cy Bot"
    assert authors["Ann Human"]["flagged"] == "False"
    assert authors["Ann Human"]["articles"] == "2"
    assert authors["Ann Human"]["share_likely_ai"] == "0.0"
    assert authors["Cy Bot"]["first_published"] == "2023-03-12T09:00:00+00:00"
    assert float(authors["Bo Bot"]["energy_j"]) > 0


def test_ghost_export_audits_end_to_end(settings: Settings, tmp_path: Path) -> None:
    archive = write_ghost(tmp_path / "ghost.json", articles(6))
    assert detect_format(archive) is ArchiveFormat.GHOST
    assert audit(settings, archive, tmp_path / "out") == 6
    rows = read_jsonl(tmp_path / "out" / "reports.jsonl")
    assert [r["byline"] for r in rows[:3]] == ["Ann Human", "Bo Bot", "Cy Bot"]
    assert rows[1]["text"]["verdict"] == "likely_ai"
    authors = authors_by_name(tmp_path / "out" / "authors.csv")
    assert authors["Cy Bot"]["reasons"] == "ai_share_high"
    assert "<svg" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_csv_reader_splits_lists(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('id,text,byline,headshots\n1,"Hello, world",Ann,a.jpg; b.jpg\n', encoding="utf-8")
    (row,) = list(read_rows(path))
    assert row["text"] == "Hello, world"
    assert row["headshots"] == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize("writer", [write_jsonl, write_ghost], ids=["jsonl", "ghost"])
def test_rerun_checks_nothing_again_and_resumes_after_lost_checkpoints(settings: Settings, tmp_path: Path,
                                                                        writer: Any) -> None:
    archive = writer(tmp_path / "archive.json", articles(6))
    audit(settings, archive, tmp_path / "out")
    first = read_jsonl(tmp_path / "out" / "reports.jsonl")
    assert count_checks(settings) == 6
    audit(settings, archive, tmp_path / "out")
    assert count_checks(settings) == 6
    store = Store(settings.database_url, "x")
    with store.session() as session:  # a kill after the check was stored, before its checkpoint
        session.execute(delete(AuditItemRow).where(AuditItemRow.item_key.in_(["post-2", "post-5"])))
    store.close()
    audit(settings, archive, tmp_path / "out")
    assert count_checks(settings) == 6
    again = read_jsonl(tmp_path / "out" / "reports.jsonl")
    assert [r["check_id"] for r in again] == [r["check_id"] for r in first]


def test_duplicate_ids_are_kept_apart(settings: Settings, tmp_path: Path) -> None:
    rows = articles(2)
    archive = write_jsonl(tmp_path / "in.jsonl", [rows[0], rows[1], {**rows[1], "text": rows[0]["text"]}])
    audit(settings, archive, tmp_path / "out")
    out = read_jsonl(tmp_path / "out" / "reports.jsonl")
    assert [r["id"] for r in out] == ["post-0", "post-1", "post-1"]
    assert [r["verdict"] for r in out] == ["likely_human", "likely_ai", "likely_human"]


BILLION_LAUGHS = """<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<rss xmlns:wp="http://wordpress.org/export/1.2/"><channel><item><title>&lol2;</title></item></channel></rss>"""
XXE = """<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rss><channel><item><title>&x;</title></item></channel></rss>"""


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE])
def test_hostile_wxr_is_refused_without_expanding(payload: str, tmp_path: Path) -> None:
    path = tmp_path / "evil.xml"
    path.write_text(payload, encoding="utf-8")
    (row,) = list(read_rows(path))
    assert row["_error"] == "WXR could not be read: DTDForbidden"


PUBLIC = "93.184.216.34"


def _fetcher(settings: Settings, status: int = 200, body: bytes = b"\xff\xd8\xffjpeg",
             hosts: tuple[str, ...] = (PUBLIC, "127.0.0.1", "10.0.0.5", "169.254.169.254")) -> HeadshotFetcher:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    return HeadshotFetcher(settings.model_copy(update={"fetch_allow_hosts": list(hosts), "max_image_bytes": 1000}),
                           transport=transport)


def test_fetcher_fetches_only_allow_listed_public_hosts(settings: Settings) -> None:
    assert _fetcher(settings).fetch(f"https://{PUBLIC}/a.jpg").startswith(b"\xff\xd8")
    with pytest.raises(HeadshotUrlRefusedError, match="allow-list"):
        _fetcher(settings).fetch("https://198.51.100.7/a.jpg")
    for private in ("127.0.0.1", "10.0.0.5", "169.254.169.254"):
        with pytest.raises(HeadshotUrlRefusedError, match="private"):
            _fetcher(settings).fetch(f"http://{private}/a.jpg")
    with pytest.raises(HeadshotUrlRefusedError):
        _fetcher(settings).fetch("file:///etc/passwd")
    with pytest.raises(HeadshotFetchError, match="larger"):
        _fetcher(settings, body=b"x" * 5000).fetch(f"https://{PUBLIC}/a.jpg")
    with pytest.raises(HeadshotUrlRefusedError, match="404"):
        _fetcher(settings, status=404).fetch(f"https://{PUBLIC}/a.jpg")
    with pytest.raises(HeadshotFetchError, match="302"):
        _fetcher(settings, status=302).fetch(f"https://{PUBLIC}/a.jpg")


def test_archive_paths_cannot_leave_the_archive_folder(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "secret.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "arch").mkdir()
    archive = write_jsonl(tmp_path / "arch" / "in.jsonl", [{**articles(1)[0], "headshots": ["../secret.jpg"]}])
    audit(settings, archive, tmp_path / "out")
    (row,) = read_jsonl(tmp_path / "out" / "reports.jsonl")
    assert row["error"]["code"] == "unreadable_headshot"
    assert "outside the archive" in row["error"]["message"]


REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="module")
def sample_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (DATASETS / "text" / "reuters21578_news.jsonl").exists():
        pytest.skip("needs ../shared/datasets")
    build = runpy.run_path(str(REPO / "scripts" / "make_sample_archive.py"))["build"]
    return Path(build(DATASETS, tmp_path_factory.mktemp("sample"))).parent


@pytest.mark.parametrize("name", ["archive.xml", "archive.jsonl"])
def test_sample_archive_flags_the_bylines_sharing_one_face(settings: Settings, tmp_path: Path, name: str,
                                                           sample_archive: Path) -> None:
    assert audit(settings, sample_archive / name, tmp_path / "out") == 36
    authors = authors_by_name(tmp_path / "out" / "authors.csv")
    flagged = {a for a, row in authors.items() if row["flagged"] == "True"}
    assert flagged == {"Drew Ortiz", "Sora Tanaka", "Elena Marsh"}
    assert "headshot_reused" in authors["Drew Ortiz"]["reasons"]


def test_ghost_profile_images_are_fetched_from_allow_listed_hosts_only(settings: Settings, tmp_path: Path) -> None:
    shared = f"https://{PUBLIC}/shared.jpg"
    archive = write_ghost(tmp_path / "ghost.json", articles(6),
                          images={"Bo Bot": shared, "Cy Bot": shared, "Ann Human": "https://198.51.100.7/ann.jpg"})
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=jpeg_bytes((225, 60, 60)))

    fetcher = HeadshotFetcher(settings.model_copy(update={"fetch_allow_hosts": [PUBLIC]}),
                              transport=httpx.MockTransport(answer))
    asyncio.run(run_audit(settings, archive, tmp_path / "out", detectors=detectors(), fetcher=fetcher))
    fetcher.close()
    assert seen == [shared, shared]
    authors = authors_by_name(tmp_path / "out" / "authors.csv")
    assert "headshot_reused" in authors["Cy Bot"]["reasons"]
    assert authors["Ann Human"]["headshot_verdicts"] == ""


def test_mapping_file_names_headshots_per_byline(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "face.jpg").write_bytes(jpeg_bytes((225, 60, 60)))
    mapping = tmp_path / "heads.csv"
    mapping.write_text("byline,headshot\nBo Bot,face.jpg\n", encoding="utf-8")
    archive = write_jsonl(tmp_path / "in.jsonl", articles(3))
    audit(settings, archive, tmp_path / "out", headshots=mapping)
    rows = read_jsonl(tmp_path / "out" / "reports.jsonl")
    assert [len(r["headshots"]) for r in rows] == [0, 1, 0]
    assert rows[1]["headshots"][0]["verdict"] == "likely_ai"
