"""Knowledge-base search with 100,000 answered questions, on SQLite and PostgreSQL, against the bare endpoint.

Issue: "100,000 questions with answers: search p95 and requests per second on SQLite and on PostgreSQL,
against the bare endpoint in the same run; similar-question suggestion latency while typing."

Each database is migrated and seeded (``superapp db upgrade``, ``superapp seed demo``), then loaded
with ``--questions`` answered questions (titles, bodies and answers in Vietnamese, 40 communes and
wards, every field of the routing table, 5% internal) and their full-text index, in bulk. The
PostgreSQL database is a fresh one made on ``--pg-url`` (default ``SUPERAPP_BENCH_PG_URL`` or the
local test server) and dropped at the end; without a reachable server its rows are left out.

Part 1, latency as an official feels it (one request at a time, a Kim Long ward official's token):

- ``search``: 60 queries without diacritics (two to five words, common and rare), p50/p95/max;
- ``typing``: the suggestion endpoint called for every prefix of 12 titles, as the ask page does while
  the title is typed (the page waits 250 ms between keystrokes before asking), p50/p95/max;
- ``bare``: ``GET /bare`` the same way, for scale.

Part 2, load (the harness: keep-alive connections, interleaved rounds, medians, ratios to ``/bare``):
``search`` (a three-word query), ``search rare`` (a five-word one) and ``suggest`` (a half-typed title)
on each database.

A report, not a test: exits 0 whatever the figures are.

    python -m bench.bench_interaction [--questions N] [--pg-url URL] [--no-pg] [--seconds S] [--concurrency C] [--rounds R]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from bench.harness import (
    HOST,
    BenchError,
    RunningServer,
    Server,
    Target,
    add_load_arguments,
    compare,
    migrate_and_seed,
    report,
    settings_from,
    start_server,
)

QUESTIONS = 100_000
API = "/api/miniapps/interaction"
OFFICIAL = "kimlong.demo"  # a ward official from core's demo accounts
TOPICS = (
    ("land", "cấp giấy chứng nhận quyền sử dụng đất"), ("land", "tách thửa đất ở"),
    ("land", "thu hồi đất nông nghiệp"), ("land", "chuyển mục đích sử dụng đất vườn"),
    ("land", "tranh chấp ranh giới thửa đất"), ("environment", "thu gom rác thải sinh hoạt"),
    ("environment", "xử lý nước thải chăn nuôi"), ("agriculture", "hỗ trợ giống lúa sau lũ"),
    ("water-resources", "khai thác nước dưới đất"), ("natural-disaster-prevention", "di dời dân vùng sạt lở"),
    ("civil-status", "đăng ký khai sinh"), ("civil-status", "đăng ký kết hôn có yếu tố nước ngoài"),
    ("civil-status", "trích lục hộ tịch"), ("civil-status", "đăng ký khai tử"), ("notarisation", "chứng thực chữ ký"),
    ("judicial-records", "cấp phiếu lý lịch tư pháp"), ("construction-permits", "cấp giấy phép xây dựng nhà ở"),
    ("construction-permits", "sửa chữa nhà không thay đổi kết cấu"), ("urban-planning", "điều chỉnh quy hoạch chi tiết"),
    ("housing", "hỗ trợ xây nhà cho hộ nghèo"), ("transport", "cấp phép đào đường"),
    ("business-registration", "đăng ký hộ kinh doanh"), ("budget", "quyết toán kinh phí sự nghiệp"),
    ("investment", "chủ trương đầu tư công trình nhỏ"), ("social-protection", "trợ cấp xã hội hằng tháng"),
    ("health", "tiêm chủng mở rộng"), ("education", "tuyển sinh lớp một"), ("schools", "sửa chữa trường mầm non"),
    ("culture", "tổ chức lễ hội truyền thống"), ("heritage", "tu bổ di tích cấp thành phố"),
    ("tourism", "đăng ký homestay"), ("labour", "giải quyết chế độ cho người lao động"),
    ("civil-service", "tuyển dụng công chức cấp xã"), ("digital-transformation", "chữ ký số cho cán bộ"),
    ("trade", "quản lý chợ tạm"), ("energy", "lắp điện mặt trời áp mái"),
)
CASES = ("cho hộ gia đình", "cho người cao tuổi", "khi hồ sơ thiếu giấy tờ", "trong trường hợp đặc biệt",
         "sau khi sáp nhập đơn vị", "đối với người ở xa", "khi có tranh chấp", "cho hộ nghèo", "có thu phí không",
         "thời hạn giải quyết bao lâu", "thẩm quyền của cấp xã", "cần những giấy tờ gì")
ANSWERS = (
    ("Theo quy định hiện hành, UBND cấp xã tiếp nhận hồ sơ, kiểm tra thành phần và giải quyết trong thời hạn "
    "luật định. Trường hợp hồ sơ chưa đầy đủ, hướng dẫn người dân bổ sung một lần bằng văn bản."),
    ("Sở đề nghị xã lập biên bản hiện trường, lấy ý kiến khu dân cư, niêm yết công khai và gửi hồ sơ về sở để "
    "tổng hợp, trình UBND thành phố xem xét. Mẫu văn bản có trong cẩm nang của sở."),
    ("Thủ tục này đã được phân cấp cho cấp xã từ ngày 01/7/2025. Xã thực hiện trên hệ thống dịch vụ công trực "
    "tuyến, thời hạn giải quyết không quá 5 ngày làm việc kể từ ngày nhận đủ hồ sơ hợp lệ."),
)
SEARCHES = (
    "dang ky khai sinh", "giay chung nhan quyen su dung dat", "tach thua dat o", "thu hoi dat nong nghiep",
    "trich luc ho tich", "giay phep xay dung nha o", "ho kinh doanh", "tro cap xa hoi", "tuyen sinh lop mot",
    "nuoc thai chan nuoi", "ly lich tu phap", "le hoi truyen thong", "dien mat troi ap mai", "homestay",
    "ket hon yeu to nuoc ngoai thoi han", "sat lo di doi dan", "chung thuc chu ky nguoi o xa",
    "quy hoach chi tiet dieu chinh", "tham quyen cap xa", "ho ngheo xay nha", "rac thai sinh hoat thu gom",
    "quyet toan kinh phi", "dao duong cap phep", "tiem chung mo rong", "chu ky so can bo",
    "mam non sua chua truong", "di tich tu bo", "cong chuc cap xa tuyen dung", "cho tam quan ly", "giong lua sau lu",
)
TITLES_TYPED = (
    "Cấp giấy chứng nhận quyền sử dụng đất cho hộ gia đình", "Đăng ký kết hôn có yếu tố nước ngoài",
    "Tách thửa đất ở khi có tranh chấp", "Trợ cấp xã hội hằng tháng cho người cao tuổi",
    "Giấy phép xây dựng nhà ở cần những giấy tờ gì", "Hỗ trợ giống lúa sau lũ cho hộ nghèo",
    "Đăng ký hộ kinh doanh thời hạn giải quyết", "Trích lục hộ tịch cho người ở xa",
    "Thu gom rác thải sinh hoạt có thu phí không", "Tuyển sinh lớp một sau khi sáp nhập",
    "Lắp điện mặt trời áp mái thẩm quyền của cấp xã", "Xin hướng dẫn chung về thủ tục mới",
)


# --- Loading -------------------------------------------------------------------------------------------


def _questions(count: int, units: list[str], routes: dict[str, str]) -> Iterator[dict]:
    rng = random.Random(20251125)
    now = datetime.now(UTC)
    for n in range(count):
        field, topic = TOPICS[n % len(TOPICS)]
        case = rng.choice(CASES)
        unit = rng.choice(units)
        asked = now - timedelta(minutes=5 * (count - n))
        yield {
            "field": field, "department": routes[field], "unit": unit, "asked": asked,
            "title": f"{topic.capitalize()} {case} (số {n + 1})",
            "body": f"Xã nhận được đề nghị về {topic} {case}. Đề nghị sở hướng dẫn thủ tục, thẩm quyền và "
                    f"thành phần hồ sơ. Mã hồ sơ {unit}-{n + 1}.",
            "answer": f"{rng.choice(ANSWERS)} Áp dụng cho việc {topic}.", "internal": rng.random() < 0.05,
        }


def load_questions(url: str, count: int) -> float:
    """Bulk-load ``count`` answered questions, their answers, search entries and full-text index; returns seconds."""
    from sqlalchemy import text

    from core.db import make_engine
    from core.text import fold
    from miniapps.interaction.models import Question, Reply, SearchEntry

    started = time.monotonic()
    engine = make_engine(url)
    first = 1_000_000  # above the demo's ids
    with engine.begin() as conn:
        units = [r[0] for r in conn.execute(text("SELECT id FROM org_unit WHERE kind IN ('ward', 'commune')"))]
        routes = dict(conn.execute(text("SELECT key, department_id FROM interaction_field")).all())
        rows = list(_questions(count, units, routes))
        questions, replies, entries, index = [], [], [], []
        for offset, row in enumerate(rows):
            qid = first + offset
            answered_at = row["asked"] + timedelta(hours=4 + offset % 90)
            questions.append({"id": qid, "title": row["title"], "body": row["body"], "field_key": row["field"],
                              "department_id": row["department"], "asker_user_id": None,
                              "asker_unit_id": row["unit"], "status": "answered", "internal": row["internal"],
                              "assignee_user_id": None, "accepted_reply_id": None, "duplicate_of_id": None,
                              "created_at": row["asked"], "due_at": row["asked"] + timedelta(days=3),
                              "first_answered_at": answered_at, "escalated_at": None, "updated_at": answered_at})
            replies.append({"id": qid, "question_id": qid, "kind": "answer", "body": row["answer"],
                            "author_user_id": None, "author_name": "Chuyên viên sở",
                            "author_unit_id": row["department"], "created_at": answered_at})
            entries.append({"id": qid, "kind": "question", "ref_id": qid, "title": row["title"],
                            "snippet": row["answer"][:300], "field_key": row["field"],
                            "department_id": row["department"], "asker_unit_id": row["unit"],
                            "public": not row["internal"], "answered": True, "updated_at": answered_at})
            index.append({"id": qid, "title": fold(row["title"]),
                          "body": fold(row["body"] + "\n" + row["answer"])})
        conn.execute(Question.__table__.insert(), questions)
        conn.execute(Reply.__table__.insert(), replies)
        conn.execute(SearchEntry.__table__.insert(), entries)
        if engine.dialect.name == "sqlite":
            conn.execute(text("INSERT INTO interaction_fts (rowid, title, body) VALUES (:id, :title, :body)"), index)
            conn.execute(text("INSERT INTO interaction_fts_title (rowid, title) VALUES (:id, :title)"), index)
        else:
            conn.execute(text("CREATE TEMP TABLE bench_fts (id integer, title text, body text) ON COMMIT DROP"))
            conn.execute(text("INSERT INTO bench_fts (id, title, body) VALUES (:id, :title, :body)"), index)
            conn.execute(text("INSERT INTO interaction_fts (entry_id, doc, title_doc) SELECT id, "
                              "setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', body), 'B'), "
                              "to_tsvector('simple', title) FROM bench_fts"))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()
    return time.monotonic() - started


def _prepare_sqlite(count: int, loaded: dict[str, Path]):
    def prepare(env: dict[str, str], workdir: Path) -> None:
        target = workdir / "bench.db"
        if "sqlite" in loaded:
            shutil.copy(loaded["sqlite"], target)
            return
        migrate_and_seed(env, workdir)
        seconds = load_questions(f"sqlite:///{target}", count)
        print(f"SQLite: loaded {count:,} answered questions in {seconds:.1f} s", file=sys.stderr)
        loaded["sqlite"] = workdir.parent / f"{workdir.name}-loaded.db"
        shutil.copy(target, loaded["sqlite"])
    return prepare


def _prepare_postgres(url: str, count: int, loaded: dict[str, Path]):
    def prepare(env: dict[str, str], workdir: Path) -> None:
        if "postgresql" in loaded:
            return  # the same database serves every start
        migrate_and_seed(env, workdir)
        seconds = load_questions(url, count)
        print(f"PostgreSQL: loaded {count:,} answered questions in {seconds:.1f} s", file=sys.stderr)
        loaded["postgresql"] = Path(url)
    return prepare


@contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    """A new database on ``server_url``, dropped afterwards."""
    from sqlalchemy import text

    from core.db import make_engine

    name = f"bench_interaction_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = server_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def official_bearer(running: RunningServer) -> dict[str, str]:
    """A session of the demo ward official of Kim Long, minted in the server's own database."""
    script = (
        "from sqlmodel import Session, select\n"
        "from config import load_settings\n"
        "from core.db import make_engine\n"
        "from core.identity import service\n"
        "from core.identity.models import User\n"
        "settings = load_settings()\n"
        "engine = make_engine(settings.sqlalchemy_url)\n"
        "with Session(engine, expire_on_commit=False) as db:\n"
        f"    user = db.exec(select(User).where(User.username == {OFFICIAL!r})).one()\n"
        "    pair = service.start_session(db, secret=settings.secret_key, user=user, method='bench',\n"
        "                                 client='bench', address='127.0.0.1')\n"
        "print(pair.access_token)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=running.env, cwd=running.workdir, check=False,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"could not sign in {OFFICIAL}: {done.stderr.strip()}")
    return {"Authorization": f"Bearer {done.stdout.strip().splitlines()[-1]}"}


# --- Part 1: one request at a time ---------------------------------------------------------------------


def _timed(port: int, paths: Sequence[str], headers: dict[str, str]) -> list[float]:
    """Milliseconds of each GET, one after another on one keep-alive connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    spent = []
    try:
        for path in paths:
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            spent.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise BenchError(f"GET {path} answered {response.status}")
    finally:
        conn.close()
    return spent


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, ordered[-1]


def typing_paths() -> list[str]:
    """Every prefix (from three characters) of the typed titles, as the ask page sends them."""
    return [f"{API}/suggestions?q={quote(title[:end])}" for title in TITLES_TYPED for end in range(3, len(title) + 1)]


def latency(servers: dict[str, Server], bare: Server, repeat: int) -> list[tuple[str, str, int, tuple[float, float, float]]]:
    """Part 1: p50/p95/max of searches and typing on each database, and of /bare, one request at a time."""
    rows = []
    with ExitStack() as stack:
        bare_running = stack.enter_context(start_server(bare, Path(stack.enter_context(tempfile.TemporaryDirectory()))))
        spent = _timed(bare_running.port, ["/bare"] * (len(SEARCHES) * repeat), {})
        rows.append(("bare", "GET /bare", len(spent), _percentiles(spent)))
        for name, server in servers.items():
            running = stack.enter_context(start_server(server, Path(stack.enter_context(tempfile.TemporaryDirectory()))))
            headers = official_bearer(running)
            _timed(running.port, [f"{API}/search?q={quote(q)}" for q in SEARCHES[:5]], headers)  # warm up
            spent = _timed(running.port, [f"{API}/search?q={quote(q)}" for q in SEARCHES] * repeat, headers)
            rows.append((name, "search (60 queries)", len(spent), _percentiles(spent)))
            spent = _timed(running.port, typing_paths(), headers)
            rows.append((name, "typing (suggestions)", len(spent), _percentiles(spent)))
    return rows


# --- Main ----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Load both databases, measure latency one request at a time, then load, and print both tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_interaction", description=__doc__.splitlines()[0])
    add_load_arguments(parser)
    parser.add_argument("--questions", type=int, default=QUESTIONS, help="answered questions to load (%(default)s)")
    parser.add_argument("--pg-url", default=os.environ.get("SUPERAPP_BENCH_PG_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/test"),
                        help="a PostgreSQL server to make a throw-away database on")
    parser.add_argument("--no-pg", action="store_true", help="measure SQLite only")
    args = parser.parse_args(argv)
    loaded: dict[str, Path] = {}
    with ExitStack() as stack:
        servers = {"sqlite": Server.product(prepare=_prepare_sqlite(args.questions, loaded))}
        if not args.no_pg:
            try:
                pg = stack.enter_context(fresh_postgres(args.pg_url))
            except Exception as exc:  # noqa: BLE001 - any failure to reach it leaves the PostgreSQL rows out, loudly
                print(f"bench_interaction: PostgreSQL at {args.pg_url} unavailable ({exc.__class__.__name__}); "
                      "SQLite only", file=sys.stderr)
            else:
                servers["postgresql"] = Server.product(env={"SUPERAPP_DATABASE_URL": pg},
                                                       prepare=_prepare_postgres(pg, args.questions, loaded))
                servers["postgresql"].name = "product-pg"
        try:
            typed = latency(servers, Server.bare(), repeat=2)
            targets = []
            for name, server in servers.items():
                short = "sq" if name == "sqlite" else "pg"
                targets += [
                    Target(f"{short} search", server, f"{API}/search?q=dang+ky+khai+sinh", headers=official_bearer),
                    Target(f"{short} rare", server, f"{API}/search?q=ket+hon+yeu+to+nuoc+ngoai",
                           headers=official_bearer),
                    Target(f"{short} suggest", server, f"{API}/suggestions?q={quote('Tách thửa đất ở khi có tr')}",
                           headers=official_bearer),
                ]
            comparison = compare(baseline=Target("bare", Server.bare(), "/bare"), targets=targets,
                                 settings=settings_from(args))
        except BenchError as exc:
            print(f"bench_interaction: could not measure: {exc}", file=sys.stderr)
            return 2
        finally:
            if "sqlite" in loaded:
                loaded["sqlite"].unlink(missing_ok=True)
    print()
    print(f"Part 1: one request at a time, a ward official, {args.questions:,} answered questions")
    print(f"{'database':<12} {'what':<22} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  p95 / bare p95")
    bare_p95 = typed[0][3][1]
    for name, what, count, (p50, p95, top) in typed:
        print(f"{name:<12} {what:<22} {count:>8} {p50:>8.2f} {p95:>8.2f} {top:>8.2f}  {p95 / bare_p95:>8.1f}x")
    print()
    report(comparison, title=f"Part 2: search and suggestions under load ({args.questions:,} answered questions) "
                             "vs bare FastAPI GET /bare")
    print("sq = SQLite (FTS5, bm25), pg = PostgreSQL (tsvector + GIN, ts_rank). 'search': three common words; "
          "'rare': five words, few documents have them all; 'suggest': a half-typed title (last word a prefix), "
          "answered questions only. Every request carries a ward official's token, so the visibility filter "
          "(public or the official's own unit) is part of what is measured.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
