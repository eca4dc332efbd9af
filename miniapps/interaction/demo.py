"""Demo data: officials of Phu Vang commune and of the Department of Agriculture and Environment, a body
of answered questions in Vietnamese, and handbook articles. Idempotent: a second run adds nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

from sqlmodel import select

from miniapps.interaction import knowledge, routing
from miniapps.interaction.models import (
    Article,
    Question,
    QuestionStatus,
    Reply,
    ReplyKind,
    utcnow,
)
from plugins import DEMO_PASSWORD, DEMO_PASSWORD_ENV, User, create_official

DEMO_OFFICIALS = (
    ("phuvang.demo", "Cán bộ xã Phú Vang (demo)", "commune_official", "phu-vang"),
    ("nnmt.demo", "Chuyên viên Sở Nông nghiệp và Môi trường (demo)", "department_official", "so-nnmt"),
    ("yte.demo", "Chuyên viên Sở Y tế (demo)", "department_official", "so-y-te"),
    ("taichinh.demo", "Chuyên viên Sở Tài chính (demo)", "department_official", "so-tai-chinh"),
)
# (asking unit, field, title, question, answer, settled?)
DEMO_QUESTIONS = (
    ("phu-xuan", "civil-status", "Đăng ký hộ tịch cho trẻ sinh ở nước ngoài về cư trú tại phường",
     ("Gia đình có con sinh tại Hàn Quốc, nay về thường trú tại phường Phú Xuân. Phường có thẩm quyền đăng ký "
     "khai sinh không, cần những giấy tờ gì?"),
     ("Theo Luật Hộ tịch, trẻ sinh ở nước ngoài chưa đăng ký khai sinh, về cư trú tại Việt Nam thì UBND cấp xã "
     "nơi cư trú đăng ký khai sinh. Hồ sơ gồm tờ khai, giấy chứng sinh hoặc giấy tờ của nước ngoài xác nhận việc "
     "sinh (đã hợp pháp hóa lãnh sự, dịch công chứng), giấy tờ chứng minh nơi cư trú."), True),
    ("kim-long", "civil-status", "Đăng ký kết hôn khi một bên đã ly hôn ở nước ngoài",
     ("Công dân nữ đã ly hôn tại Nhật Bản, nay đăng ký kết hôn tại phường. Bản án ly hôn nước ngoài có cần ghi "
     "chú vào sổ hộ tịch trước không?"),
     ("Có. Việc ly hôn đã giải quyết ở nước ngoài phải được ghi chú vào sổ hộ tịch trước khi đăng ký kết hôn mới. "
     "Phường hướng dẫn công dân làm thủ tục ghi chú ly hôn, sau đó tiếp nhận hồ sơ đăng ký kết hôn."), True),
    ("huong-tra", "land", "Cấp giấy chứng nhận quyền sử dụng đất cho đất khai hoang trước 2014",
     ("Hộ gia đình sử dụng đất khai hoang từ năm 2010, không tranh chấp, phù hợp quy hoạch. Xã có được xác nhận "
     "để cấp giấy chứng nhận quyền sử dụng đất lần đầu không?"),
     ("Theo Luật Đất đai 2024, hộ gia đình sử dụng đất ổn định trước ngày 01/7/2014, không vi phạm pháp luật đất "
     "đai, phù hợp quy hoạch và được UBND cấp xã xác nhận không tranh chấp thì được xem xét cấp giấy chứng nhận. "
     "Xã lập hồ sơ xác nhận nguồn gốc, thời điểm sử dụng đất và niêm yết công khai 15 ngày."), True),
    ("phu-vang", "land", "Tách thửa đất ở nông thôn: diện tích tối thiểu",
     ("Người dân xã Phú Vang muốn tách thửa đất ở để tặng cho con. Diện tích tối thiểu sau tách thửa ở khu vực "
     "nông thôn là bao nhiêu?"),
     ("Diện tích tối thiểu được tách thửa áp dụng theo quyết định của UBND thành phố Huế về hạn mức và điều kiện "
     "tách thửa; ở khu vực nông thôn thửa đất ở sau tách phải đạt diện tích và chiều rộng mặt tiền tối thiểu "
     "theo quy định, trừ trường hợp hợp thửa đồng thời với thửa liền kề."), False),
    ("thuan-an", "natural-disaster-prevention", "Hỗ trợ hộ dân có nhà bị sạt lở bờ biển",
     ("Sau đợt triều cường, một số nhà ven biển phường Thuận An bị sạt lở. Thủ tục đề nghị hỗ trợ di dời khẩn "
     "cấp thế nào?"),
     ("Phường lập danh sách hộ bị ảnh hưởng, biên bản hiện trường, đề xuất mức hỗ trợ theo chính sách hỗ trợ "
     "khắc phục thiên tai của thành phố và gửi Sở Nông nghiệp và Môi trường tổng hợp trình UBND thành phố."), True),
    ("phong-dien", "agriculture", "Hỗ trợ giống lúa sau lũ cho hộ sản xuất",
     "Lũ cuối năm làm mất trắng nhiều diện tích lúa mới gieo. Xã cần làm gì để hộ dân được hỗ trợ giống?",
     ("Xã thống kê diện tích thiệt hại trên 70% theo mẫu, có xác nhận của thôn và gửi Sở trong 10 ngày sau lũ để "
     "được xem xét hỗ trợ giống theo chính sách hỗ trợ sản xuất nông nghiệp bị thiệt hại do thiên tai."), True),
    ("phu-vang", "environment", "Xử lý rác thải nhựa tại các bến đò",
     ("Rác thải nhựa tồn đọng ở các bến đò trên phá Tam Giang. Xã có được hợp đồng thu gom với đơn vị tư nhân "
     "không?"),
     ("Được. UBND cấp xã có thể ký hợp đồng dịch vụ thu gom, vận chuyển chất thải rắn sinh hoạt với tổ chức, cá "
     "nhân đủ điều kiện theo Luật Bảo vệ môi trường; chi phí theo giá dịch vụ do thành phố ban hành."), False),
    ("an-cuu", "construction-permits", "Giấy phép xây dựng nhà ở riêng lẻ trong khu dân cư hiện hữu",
     "Người dân xây nhà 3 tầng trong kiệt, đất đã có giấy chứng nhận. Phường hay Sở cấp giấy phép xây dựng?",
     ("Nhà ở riêng lẻ do UBND cấp xã cấp giấy phép xây dựng theo phân cấp hiện hành; Sở Xây dựng cấp cho công "
     "trình cấp đặc biệt, cấp I, II và công trình tôn giáo, di tích."), True),
    ("vy-da", "construction-permits", "Sửa chữa nhà không làm thay đổi kết cấu có cần xin phép",
     "Hộ dân thay mái tôn, lát lại nền, không thay đổi kết cấu chịu lực. Có phải xin giấy phép xây dựng không?",
     ("Không. Sửa chữa, cải tạo bên trong hoặc bên ngoài không làm thay đổi kết cấu chịu lực, công năng và kiến "
     "trúc mặt ngoài tiếp giáp đường thuộc trường hợp miễn giấy phép xây dựng."), True),
    ("thuy-xuan", "business-registration", "Đăng ký hộ kinh doanh cho cơ sở làm hương thủ công",
     "Hộ gia đình làm hương ở làng Thủy Xuân muốn đăng ký hộ kinh doanh. Nộp hồ sơ ở đâu?",
     ("Hộ kinh doanh đăng ký tại cơ quan đăng ký kinh doanh cấp xã nơi đặt trụ sở; hồ sơ gồm giấy đề nghị, bản "
     "sao giấy tờ pháp lý của chủ hộ. Có thể nộp trực tuyến qua Cổng dịch vụ công."), True),
    ("huong-thuy", "social-protection", "Trợ cấp xã hội hằng tháng cho người cao tuổi neo đơn",
     "Cụ bà 82 tuổi sống một mình, không có lương hưu. Phường lập hồ sơ trợ cấp thế nào?",
     ("Người từ đủ 80 tuổi không có lương hưu, trợ cấp bảo hiểm xã hội hằng tháng được hưởng trợ cấp xã hội hằng "
     "tháng. Phường tiếp nhận tờ khai, niêm yết và quyết định hưởng theo phân cấp."), True),
    ("kim-tra", "education", "Tuyển sinh lớp 1 cho trẻ tạm trú",
     "Trẻ có cha mẹ tạm trú dài hạn tại phường có được tuyển sinh lớp 1 tại trường tiểu học trên địa bàn không?",
     ("Được. Trẻ cư trú (kể cả tạm trú) trên địa bàn được tuyển sinh vào trường tiểu học theo kế hoạch tuyển "
     "sinh của địa phương."), True),
    ("phu-loc", "water-resources", "Cấp phép khai thác nước dưới đất cho trang trại",
     "Trang trại chăn nuôi khai thác nước giếng khoan khoảng 15 m3/ngày có phải xin giấy phép không?",
     ("Khai thác nước dưới đất với lưu lượng không vượt quá 10 m3/ngày đêm cho hộ gia đình thì không phải xin "
     "phép; trang trại khai thác 15 m3/ngày đêm phải đăng ký hoặc xin giấy phép theo Luật Tài nguyên nước."), True),
    ("duong-no", "notarisation", "Chứng thực bản sao từ bản chính giấy tờ nước ngoài",
     "Phường có chứng thực bản sao từ bản chính giấy tờ do cơ quan nước ngoài cấp không?",
     ("UBND cấp xã chứng thực bản sao từ bản chính giấy tờ do cơ quan có thẩm quyền của Việt Nam cấp; giấy tờ "
     "nước ngoài thì chứng thực tại Phòng Tư pháp hoặc tổ chức hành nghề công chứng theo phân cấp mới."), True),
)
DEMO_ARTICLES = (
    ("so-nnmt", "land", "Quy trình xác nhận nguồn gốc đất tại UBND cấp xã",
     ("Bước 1: tiếp nhận đơn và giấy tờ. Bước 2: kiểm tra hiện trạng, lấy ý kiến khu dân cư. Bước 3: niêm yết "
     "công khai 15 ngày. Bước 4: xác nhận và chuyển hồ sơ về Văn phòng đăng ký đất đai. Mẫu biên bản kèm theo.")),
    ("so-tu-phap", "civil-status", "Cẩm nang đăng ký hộ tịch có yếu tố nước ngoài tại cấp xã",
     ("Từ ngày 01/7/2025 UBND cấp xã tiếp nhận đăng ký khai sinh, kết hôn, khai tử có yếu tố nước ngoài. "
     "Cẩm nang tóm tắt thẩm quyền, thành phần hồ sơ, thời hạn giải quyết và các lỗi thường gặp.")),
    ("so-xay-dung", "construction-permits", "Các trường hợp miễn giấy phép xây dựng",
     ("Danh mục công trình được miễn giấy phép xây dựng: sửa chữa không thay đổi kết cấu chịu lực, nhà ở riêng "
     "lẻ ở nông thôn không thuộc khu bảo tồn, công trình tạm phục vụ thi công...")),
)


def _official(session, username: str, name: str, role: str, unit: str) -> tuple[User, bool]:
    found = session.exec(select(User).where(User.username == username)).first()
    if found is not None:
        return found, False
    password = os.environ.get(DEMO_PASSWORD_ENV, DEMO_PASSWORD)
    return create_official(session, username=username, display_name=name, password=password,
                           memberships=[(role, unit)]), True


def load_demo(host) -> Iterator[str]:
    """Add the demo officials, answered questions and handbook articles once."""
    with host.session() as session:
        added = [username for username, *rest in DEMO_OFFICIALS if _official(session, username, *rest)[1]]
        yield f"demo officials: {len(added)} added ({', '.join(u for u, *_ in DEMO_OFFICIALS)}; " \
              f"password '{os.environ.get(DEMO_PASSWORD_ENV, DEMO_PASSWORD)}')"
        routing.ensure_fields(session)
        titles = set(session.exec(select(Question.title)))
        now = utcnow()
        made = 0
        for age, (unit, field_key, title, body, answer, settled) in enumerate(DEMO_QUESTIONS):
            if title in titles:
                continue
            department = routing.department_for(session, field_key)
            asked = now - timedelta(days=40 - 2 * age)
            question = Question(title=title, body=body, field_key=field_key, department_id=department,
                                asker_unit_id=unit, created_at=asked, due_at=routing.first_answer_due(asked),
                                first_answered_at=asked + timedelta(hours=20 + 7 * age),
                                status=QuestionStatus.settled if settled else QuestionStatus.answered,
                                updated_at=asked + timedelta(hours=20 + 7 * age))
            session.add(question)
            session.flush()
            reply = Reply(question_id=question.id, kind=ReplyKind.answer, body=answer, author_name="Chuyên viên sở",  # type: ignore[arg-type]
                          author_unit_id=department, created_at=question.first_answered_at)  # type: ignore[arg-type]
            session.add(reply)
            session.flush()
            if settled:
                question.accepted_reply_id = reply.id
            knowledge.index_question(session, question, replies=[reply])
            made += 1
        articles = 0
        known_articles = set(session.exec(select(Article.title)))
        for department, field_key, title, body in DEMO_ARTICLES:
            if title in known_articles:
                continue
            article = Article(department_id=department, field_key=field_key, title=title, body=body)
            session.add(article)
            session.flush()
            knowledge.index_article(session, article)
            articles += 1
        session.commit()
    yield f"{made} answered questions and {articles} handbook articles added"
