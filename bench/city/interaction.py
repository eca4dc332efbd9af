"""The 2-level interaction mini-app at Hue's size: 1,000,000 answered questions over five years.

Commune and ward officials of the 40 units ask the 10 departments (routed by the mini-app's own field
table); each question has its department's answer, sometimes a follow-up comment and a second answer,
and is answered or settled (the accepted answer marked), 5% internal. The knowledge base is written as
the mini-app writes it (``miniapps.interaction.knowledge``): one ``interaction_search_entry`` per
question with the shown answer's excerpt, and the full text of the folded title and of the question's
text with every reply: FTS5 rows in ``interaction_fts`` and ``interaction_fts_title`` on SQLite; on
PostgreSQL each entry's words in ``interaction_entry_terms``, from which the posting lists are built in
one pass at the end.

The wording is combined from Vietnamese administrative templates whose choices follow a Zipf-like
spread: a few procedures ("đăng ký khai sinh", "cấp giấy chứng nhận quyền sử dụng đất") and words
("hồ sơ", "thủ tục") are in a large share of the base, place names, countries and document numbers in
very few, as in a real knowledge base. Every title and body starts with the ``SYNTHETIC`` mark.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel import Session

from bench.city.base import SYNTHETIC, City
from core.text import fold
from miniapps.interaction import knowledge, postings, routing

QUESTIONS = 1_000_000
YEARS = 5
INTERNAL_SHARE = 0.05
SETTLED_SHARE = 0.55
COMMENT_SHARE = 0.25  # the asker writes back ("đã nhận, cảm ơn", a follow-up)
SECOND_ANSWER_SHARE = 0.08  # the department completes its answer
BATCH = 20_000
QUESTION_COLUMNS = ("id", "title", "body", "field_key", "department_id", "asker_user_id", "asker_unit_id", "status",
                    "internal", "assignee_user_id", "accepted_reply_id", "duplicate_of_id", "created_at", "due_at",
                    "first_answered_at", "escalated_at", "updated_at")
REPLY_COLUMNS = ("id", "question_id", "kind", "body", "author_user_id", "author_name", "author_unit_id", "created_at")
ENTRY_COLUMNS = ("id", "kind", "ref_id", "title", "snippet", "field_key", "department_id", "asker_unit_id", "public",
                 "answered", "updated_at")


# Procedures asked about, per field of the routing table. Fields not listed are asked about by name.
PROCEDURES: dict[str, Sequence[str]] = {
    "land": ("cấp giấy chứng nhận quyền sử dụng đất", "tách thửa đất ở", "hợp thửa đất", "thu hồi đất nông nghiệp",
             "chuyển mục đích sử dụng đất vườn sang đất ở", "tranh chấp ranh giới thửa đất", "bồi thường giải phóng mặt bằng",
             "đăng ký biến động đất đai", "xác nhận nguồn gốc đất khai hoang", "gia hạn thời hạn sử dụng đất"),
    "civil-status": ("đăng ký khai sinh", "đăng ký kết hôn", "đăng ký khai tử", "trích lục hộ tịch", "thay đổi họ tên",
                     "xác định lại dân tộc", "đăng ký nhận cha mẹ con", "ghi chú ly hôn ở nước ngoài",
                     "cấp giấy xác nhận tình trạng hôn nhân", "đăng ký giám hộ"),
    "notarisation": ("chứng thực bản sao từ bản chính", "chứng thực chữ ký", "chứng thực hợp đồng tặng cho",
                     "chứng thực văn bản thỏa thuận phân chia di sản"),
    "judicial-records": ("cấp phiếu lý lịch tư pháp", "xác minh án tích"),
    "legal-aid": ("trợ giúp pháp lý cho người nghèo", "hòa giải ở cơ sở"),
    "construction-permits": ("cấp giấy phép xây dựng nhà ở riêng lẻ", "sửa chữa nhà không thay đổi kết cấu",
                             "xây dựng công trình tạm", "xử lý vi phạm trật tự xây dựng"),
    "urban-planning": ("điều chỉnh quy hoạch chi tiết", "cung cấp thông tin quy hoạch", "cắm mốc giới quy hoạch"),
    "housing": ("hỗ trợ xây nhà cho hộ nghèo", "sửa chữa nhà ở xuống cấp", "nhà ở xã hội"),
    "transport": ("cấp phép đào đường", "đấu nối đường nhánh vào quốc lộ", "sửa chữa cầu dân sinh"),
    "environment": ("thu gom rác thải sinh hoạt", "xử lý nước thải chăn nuôi", "đánh giá tác động môi trường",
                    "phân loại rác tại nguồn"),
    "agriculture": ("hỗ trợ giống lúa sau lũ", "phòng chống dịch tả lợn châu Phi", "chuyển đổi cơ cấu cây trồng",
                    "cấp mã số vùng trồng"),
    "water-resources": ("khai thác nước dưới đất", "cấp phép xả thải vào nguồn nước"),
    "natural-disaster-prevention": ("di dời dân vùng sạt lở", "hỗ trợ khắc phục thiệt hại do lũ",
                                    "gia cố đê bao", "cứu trợ khẩn cấp sau bão"),
    "business-registration": ("đăng ký hộ kinh doanh", "tạm ngừng kinh doanh", "thành lập hợp tác xã"),
    "budget": ("quyết toán kinh phí sự nghiệp", "phân bổ dự toán ngân sách xã", "thanh toán vốn đầu tư"),
    "investment": ("chủ trương đầu tư công trình nhỏ", "lựa chọn nhà thầu"),
    "social-protection": ("trợ cấp xã hội hằng tháng", "hỗ trợ mai táng phí", "xác nhận hộ nghèo",
                          "chế độ cho người có công"),
    "health": ("tiêm chủng mở rộng", "cấp thẻ bảo hiểm y tế cho trẻ em", "phòng chống sốt xuất huyết"),
    "education": ("tuyển sinh lớp một", "miễn giảm học phí", "phổ cập giáo dục"),
    "schools": ("sửa chữa trường mầm non", "sáp nhập điểm trường"),
    "culture": ("tổ chức lễ hội truyền thống", "công nhận gia đình văn hóa", "quản lý karaoke"),
    "heritage": ("tu bổ di tích cấp thành phố", "xây dựng trong khu vực bảo vệ di tích"),
    "tourism": ("đăng ký homestay", "cấp phép kinh doanh lữ hành"),
    "labour": ("giải quyết chế độ cho người lao động", "đưa người lao động đi làm việc ở nước ngoài"),
    "civil-service": ("tuyển dụng công chức cấp xã", "sắp xếp cán bộ sau sáp nhập", "nâng bậc lương trước thời hạn"),
    "digital-transformation": ("chữ ký số cho cán bộ", "dịch vụ công trực tuyến toàn trình", "số hóa hồ sơ hộ tịch"),
    "trade": ("quản lý chợ tạm", "kiểm tra hàng giả"),
    "energy": ("lắp điện mặt trời áp mái", "hành lang an toàn lưới điện"),
}
LEADS = ("", "", "", "Hướng dẫn ", "Thủ tục ", "Hỏi về ", "Xin ý kiến về ", "Vướng mắc khi ", "Thẩm quyền ")
CASES = ("cho hộ gia đình", "cần những giấy tờ gì", "thời hạn giải quyết bao lâu", "có thu phí không",
         "thẩm quyền của cấp xã", "khi hồ sơ thiếu giấy tờ", "sau khi sáp nhập đơn vị", "cho người cao tuổi",
         "đối với người ở xa", "khi có tranh chấp", "cho hộ nghèo", "trong trường hợp đặc biệt",
         "cho người khuyết tật", "khi người dân ủy quyền", "trên dịch vụ công trực tuyến", "cho đồng bào dân tộc thiểu số")
PEOPLE = ("một hộ dân", "ông Nguyễn Văn A", "bà Trần Thị B", "một hộ kinh doanh", "người dân", "một cựu chiến binh",
          "một hộ nghèo", "một doanh nghiệp nhỏ", "một người cao tuổi sống một mình", "một Việt kiều")
SITUATIONS = (
    "Hồ sơ đã nộp trên hệ thống dịch vụ công nhưng còn thiếu bản sao giấy tờ tùy thân",
    "Người đề nghị hiện làm việc xa, muốn ủy quyền cho người thân thực hiện",
    "Giấy tờ gốc bị hư hỏng sau đợt lũ vừa qua",
    "Trước khi sáp nhập, hồ sơ do đơn vị cũ tiếp nhận nhưng chưa giải quyết xong",
    "Các bên chưa thống nhất về ranh giới và diện tích",
    "Người đề nghị không có hộ khẩu thường trú tại địa phương",
    "Văn bản hướng dẫn của thành phố và của bộ có điểm chưa thống nhất",
    "Hồ sơ có giấy tờ do cơ quan nước ngoài cấp",
    "Đơn vị chưa có mẫu biểu mới theo quy định hiện hành",
    "Cán bộ phụ trách lĩnh vực mới được điều động, chưa nắm quy trình",
)
# Rare specifics: the words almost nobody else used.
HAMLETS = ("thôn Vĩ Dạ", "thôn Phú Mậu", "tổ dân phố Kim Long", "thôn Thủy Biều", "thôn La Chữ", "thôn Dương Nổ",
           "thôn Thanh Phước", "tổ dân phố An Cựu", "thôn Bao Vinh", "thôn Hải Nhuận", "thôn Lại Ân", "thôn Triều Sơn")
COUNTRIES = ("Hàn Quốc", "Nhật Bản", "Đài Loan", "Hoa Kỳ", "Úc", "Đức", "Pháp", "Lào", "Thái Lan", "Ca-na-đa")
DOCUMENTS = ("Nghị định 101/2024/NĐ-CP", "Nghị định 123/2015/NĐ-CP", "Thông tư 04/2020/TT-BTP",
             "Luật Đất đai 2024", "Luật Hộ tịch", "Quyết định 25/2025/QĐ-UBND", "Nghị định 20/2021/NĐ-CP",
             "Luật Xây dựng", "Nghị định 45/2020/NĐ-CP", "Luật Nhà ở 2023")
ANSWER_OPENINGS = ("Sở trả lời như sau:", "Về nội dung xã hỏi, Sở có ý kiến như sau:",
                   "Trả lời câu hỏi của đơn vị:", "Căn cứ quy định hiện hành, Sở hướng dẫn:")
ANSWER_RULES = (
    "UBND cấp xã tiếp nhận hồ sơ, kiểm tra thành phần và giải quyết trong thời hạn luật định",
    "thủ tục này đã được phân cấp cho cấp xã từ ngày 01/7/2025",
    "đơn vị lập biên bản hiện trường, lấy ý kiến khu dân cư và niêm yết công khai 15 ngày",
    "hồ sơ chưa đầy đủ thì hướng dẫn người dân bổ sung một lần bằng văn bản",
    "trường hợp có tranh chấp, xã tổ chức hòa giải trước khi chuyển hồ sơ",
    "giấy tờ do nước ngoài cấp phải được hợp pháp hóa lãnh sự và dịch công chứng",
    "người dân được ủy quyền bằng văn bản có chứng thực",
    "thực hiện toàn trình trên hệ thống dịch vụ công trực tuyến của thành phố",
)
ANSWER_DEADLINES = ("Thời hạn giải quyết không quá 5 ngày làm việc kể từ ngày nhận đủ hồ sơ hợp lệ.",
                    "Thời hạn giải quyết là 3 ngày làm việc.", "Không thu phí đối với trường hợp này.",
                    "Lệ phí theo nghị quyết của HĐND thành phố.", "Mẫu văn bản có trong cẩm nang của sở.")
COMMENTS = ("Đơn vị đã nhận được hướng dẫn, cảm ơn sở.", "Xin sở cho biết thêm mẫu biên bản áp dụng.",
            "Trường hợp người dân không có mặt thì xử lý thế nào?", "Đơn vị sẽ triển khai theo hướng dẫn.")
SECOND_ANSWERS = ("Bổ sung: mẫu biên bản theo phụ lục kèm theo cẩm nang.",
                  "Bổ sung: trường hợp vắng mặt, người dân ủy quyền bằng văn bản có chứng thực.",
                  "Bổ sung: đơn vị gửi báo cáo kết quả về sở trước ngày 25 hằng tháng.")


def zipf_weights(count: int, exponent: float = 1.0) -> list[float]:
    """Cumulative Zipf weights for ``count`` ranked choices (rank 1 the most frequent)."""
    return list(itertools.accumulate(1.0 / (rank ** exponent) for rank in range(1, count + 1)))


@dataclass(frozen=True)
class Topic:
    """A procedure of a field, with the department the routing table sends it to."""

    field_key: str
    department_id: str
    procedure: str


@dataclass(frozen=True)
class Asked:
    """One generated question with its replies, before it becomes rows. Texts are kept as their template
    parts, so that folding them for the index costs one dictionary look-up per part (``fold_parts``)."""

    title: tuple[str, ...]
    body: tuple[str, ...]
    topic: Topic
    unit_id: str
    asker_user_id: int | None
    internal: bool
    settled: bool
    created_at: datetime
    replies: tuple[tuple[str, tuple[str, ...], datetime], ...]  # (kind, body parts, created_at)


@functools.lru_cache(maxsize=4096)
def _fold_template(part: str) -> str:
    return fold(part)


def fold_parts(parts: Sequence[str]) -> str:
    """``core.text.fold`` of the joined parts (folding works character by character, so part by part is
    the same), with template parts folded once per run rather than once per question."""
    return "".join(part.lower() if part.isascii() else _fold_template(part) for part in parts)


def _topics(connection) -> list[Topic]:
    rows = connection.execute(text("SELECT key, department_id, name_vi FROM interaction_field ORDER BY key")).all()
    return [Topic(key, department, procedure) for key, department, name in rows
            for procedure in PROCEDURES.get(key, (name.lower(),))]


def _officials(connection, role: str) -> dict[str, int]:
    """One official of each unit in ``role`` (the lowest id), for the askers and authors of the rows."""
    rows = connection.execute(text("SELECT unit_id, MIN(user_id) FROM membership WHERE role = :role GROUP BY unit_id"),
                              {"role": role}).all()
    return {unit: user for unit, user in rows}


def generate(city: City, count: int, topics: list[Topic], units: list[str], askers: dict[str, int]) -> Iterator[Asked]:
    """``count`` answered questions, oldest first, spread evenly over the last ``YEARS`` years."""
    rng = city.rng
    # Topics ranked in a shuffled order so the frequent ones are not all of one field.
    ranked = topics[:]
    rng.shuffle(ranked)
    topic_weights = zipf_weights(len(ranked), 0.9)
    case_weights = zipf_weights(len(CASES), 0.8)
    start = city.now - timedelta(days=365 * YEARS)
    step = (city.now - timedelta(days=7) - start) / count
    for n in range(count):
        topic = rng.choices(ranked, cum_weights=topic_weights)[0]
        case = rng.choices(CASES, cum_weights=case_weights)[0]
        unit = rng.choice(units)
        detail: tuple[str, ...] = ()
        roll = rng.random()
        if roll < 0.08:
            detail = (" tại ", rng.choice(HAMLETS))
        elif roll < 0.12:
            detail = (" có giấy tờ cấp tại ", rng.choice(COUNTRIES))
        elif roll < 0.16:
            detail = (" theo ", rng.choice(DOCUMENTS))
        lead = rng.choice(LEADS)
        opening = (lead, topic.procedure) if lead else (_capitalised(topic.procedure),)
        title = (f"{SYNTHETIC} ", *opening, " ", case, *detail)
        body = (f"{SYNTHETIC} Đơn vị nhận được đề nghị của ", rng.choice(PEOPLE), " về ", topic.procedure, " ", case,
                *detail, ". ", rng.choice(SITUATIONS), ". Đề nghị sở hướng dẫn thủ tục, thẩm quyền và thành phần hồ sơ. Mã hồ sơ ", f"{unit.upper()}-{n + 1:07d}", ".")
        created = start + step * n + timedelta(seconds=rng.randrange(600))
        answered = created + timedelta(hours=rng.randrange(2, 72))
        rule, other = rng.sample(ANSWER_RULES, 2)
        answer = (f"{SYNTHETIC} ", rng.choice(ANSWER_OPENINGS), " đối với việc ", topic.procedure, ", ", rule, "; ",
                  other, ". ", rng.choice(ANSWER_DEADLINES), " Căn cứ ", rng.choice(DOCUMENTS), ".")
        replies = [("answer", answer, answered)]
        if rng.random() < COMMENT_SHARE:
            replies.append(("comment", (f"{SYNTHETIC} ", rng.choice(COMMENTS)), answered + timedelta(hours=rng.randrange(1, 48))))
            if rng.random() < SECOND_ANSWER_SHARE / COMMENT_SHARE:
                replies.append(("answer", (f"{SYNTHETIC} ", rng.choice(SECOND_ANSWERS)), replies[-1][2] + timedelta(hours=2)))
        yield Asked(title=title, body=body, topic=topic, unit_id=unit, asker_user_id=askers.get(unit),
                    internal=rng.random() < INTERNAL_SHARE, settled=rng.random() < SETTLED_SHARE,
                    created_at=created, replies=tuple(replies))


@functools.lru_cache(maxsize=256)
def _capitalised(phrase: str) -> str:
    return phrase[0].upper() + phrase[1:]


def load(city: City) -> dict[str, int]:
    """Write the answered questions, their replies, search entries and full-text rows; rows per table."""
    count = city.size(QUESTIONS)
    with Session(city.engine) as session:
        routing.ensure_fields(session)  # the routing table as the mini-app seeds it when it is empty
    with city.engine.connect() as connection:
        topics = _topics(connection)
        units = [r[0] for r in connection.execute(text(
            "SELECT id FROM org_unit WHERE kind IN ('ward', 'commune') ORDER BY id"))]
        askers = _officials(connection, "commune_official")
        answerers = _officials(connection, "department_official")
        department_names = dict(connection.execute(text("SELECT id, name_vi FROM org_unit WHERE kind = 'department'")).all())
    first_question, first_reply = city.max_id("interaction_question") + 1, city.max_id("interaction_reply") + 1
    first_entry = city.max_id("interaction_search_entry") + 1
    moment = _moment(city)
    questions, replies, entries, index = [], [], [], []
    index_table = postings.ENTRY_TERMS_TABLE if city.postgres else knowledge.FTS_TABLE
    written = {"interaction_question": 0, "interaction_reply": 0, "interaction_search_entry": 0, index_table: 0}
    reply_id = first_reply
    # PostgreSQL: posting lists built as the entries go by (ids ascend), full chunks written with each batch.
    builder = postings.PostingBuilder()
    # Ids are given here so the four tables agree; rows go out in batches so memory stays bounded.
    for offset, asked in enumerate(generate(city, count, topics, units, askers)):
        question_id, entry_id = first_question + offset, first_entry + offset
        reply_ids = list(range(reply_id, reply_id + len(asked.replies)))
        reply_id += len(asked.replies)
        last_reply = asked.replies[-1][2]
        accepted = reply_ids[0] if asked.settled else None
        title = "".join(asked.title)
        questions.append((question_id, title, "".join(asked.body), asked.topic.field_key, asked.topic.department_id,
                          asked.asker_user_id, asked.unit_id, "settled" if asked.settled else "answered", asked.internal,
                          answerers.get(asked.topic.department_id), accepted, None, moment(asked.created_at),
                          moment(asked.created_at + timedelta(days=3)), moment(asked.replies[0][2]), None,
                          moment(last_reply)))
        for rid, (kind, parts, created) in zip(reply_ids, asked.replies, strict=True):
            from_department = kind == "answer"
            unit = asked.topic.department_id if from_department else asked.unit_id
            author = answerers.get(unit) if from_department else asked.asker_user_id
            name = (f"Chuyên viên {department_names.get(unit, unit)}" if from_department else f"Cán bộ {unit}")
            replies.append((rid, question_id, kind, "".join(parts), author, f"{name} ({SYNTHETIC})", unit, moment(created)))
        # What knowledge.index_question writes: the shown answer is the accepted one, else the first answer.
        entries.append((entry_id, "question", question_id, title, knowledge.excerpt(replies[-len(reply_ids)][3]),
                        asked.topic.field_key, asked.topic.department_id, asked.unit_id, not asked.internal, True,
                        moment(last_reply)))
        folded_title = fold_parts(asked.title)
        folded_body = "\n".join([fold_parts(asked.body), *(fold_parts(parts) for _, parts, _ in asked.replies)])
        if city.postgres:
            row = _entry_terms(entry_id, folded_title, folded_body)
            builder.add(*row)
            index.append(row)
        else:
            index.append((entry_id, folded_title, folded_body))
        if len(questions) >= BATCH:
            _flush(city, questions, replies, entries, index, written)
            city.copy(postings.POSTING_TABLE, postings.POSTING_COLUMNS[0], builder.drain())
    _flush(city, questions, replies, entries, index, written)
    if city.postgres:
        chunks, counts = builder.finish()
        city.copy(postings.POSTING_TABLE, postings.POSTING_COLUMNS[0], chunks)
        _add_counts(city, counts)
    for table in ("interaction_question", "interaction_reply", "interaction_search_entry"):
        city.reset_sequence(table)
    _finish_index(city)
    if not city.postgres:
        written[knowledge.TITLE_FTS_TABLE] = written[knowledge.FTS_TABLE]
    return written


def _moment(city: City):
    """How a datetime is written: as it is for COPY; as SQLAlchemy stores it (naive UTC text) on SQLite."""
    if city.postgres:
        return lambda value: value
    return lambda value: value.astimezone(city.now.tzinfo).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _flush(city: City, questions: list, replies: list, entries: list, index: list, written: dict[str, int]) -> None:
    """Write one batch of each table (questions first: replies and accepted answers point at them) and empty it."""
    if not questions:
        return
    written["interaction_question"] += city.copy("interaction_question", QUESTION_COLUMNS, questions)
    written["interaction_reply"] += city.copy("interaction_reply", REPLY_COLUMNS, replies)
    written["interaction_search_entry"] += city.copy("interaction_search_entry", ENTRY_COLUMNS, entries)
    if city.postgres:
        written[postings.ENTRY_TERMS_TABLE] += city.copy(postings.ENTRY_TERMS_TABLE, ("entry_id", "title", "terms"),
                                                          index)
    else:
        written[knowledge.FTS_TABLE] += city.copy(knowledge.FTS_TABLE, ("rowid", "title", "body"), index)
        city.copy(knowledge.TITLE_FTS_TABLE, ("rowid", "title"), ((row[0], row[1]) for row in index))
    for rows in (questions, replies, entries, index):
        rows.clear()


def _entry_terms(entry_id: int, folded_title: str, folded_body: str) -> tuple[int, str, str]:
    """PostgreSQL: the entry's row of ``interaction_entry_terms`` as ``knowledge`` writes it: the title's words in
    order, and every word of title and text once, in byte order."""
    title_words = knowledge.tokens_of(folded_title)
    return entry_id, " ".join(title_words), " ".join(sorted(set(title_words).union(knowledge.tokens_of(folded_body))))


def _add_counts(city: City, counts: list[tuple[str, str, int]]) -> None:
    """PostgreSQL: add the loaded entries' term counts to those of entries already there (COPY, then one upsert)."""
    staging = "bench_city_interaction_term"
    with city.engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {staging}"))
        connection.execute(text(f'CREATE UNLOGGED TABLE {staging} (field char(1), term text COLLATE "C", df int)'))
    city.copy(staging, postings.TERM_COLUMNS[0], counts)
    with city.engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {postings.TERM_TABLE} (field, term, df) SELECT field, term, df FROM {staging} "
                                f"ON CONFLICT (field, term) DO UPDATE SET df = {postings.TERM_TABLE}.df + EXCLUDED.df"))
        connection.execute(text(f"DROP TABLE {staging}"))


def _finish_index(city: City) -> None:
    """A new version token, so searches kept in memory by running servers do not outlive the load."""
    with city.engine.begin() as connection:
        knowledge.bump_version(connection)
    if city.postgres:
        # Set the rows' hint bits and visibility map now, or the first searches after the load rewrite
        # every page they read (measured: 100,000 pages dirtied by one query).
        with city.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in ("interaction_question", "interaction_reply", "interaction_search_entry",
                          postings.ENTRY_TERMS_TABLE, postings.TERM_TABLE, postings.POSTING_TABLE):
                connection.execute(text(f"VACUUM (ANALYZE) {table}"))
