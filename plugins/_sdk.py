"""The host's services re-exported under their SDK names (loaded on first use by ``plugins.__getattr__``).

Implementation module: import these names from ``plugins``, never from here or from ``core``/``push``.
It is loaded lazily because ``core`` imports ``plugins``' contract modules while it starts.
"""

from __future__ import annotations

from core.db import SessionDep
from core.fallback import LocalFallback
from core.feed.events import FeedItemPublished, FeedItemWithdrawn
from core.feed.models import Severity
from core.feed.service import FeedError
from core.http import encoded_answer, if_none_match
from core.identity.authz import Authorizer, require_permission, require_scope
from core.identity.deps import CurrentUser, PrincipalDep
from core.identity.models import Membership as MembershipRow
from core.identity.models import User, UserKind, utcnow
from core.identity.principal import Membership, Principal
from core.identity.service import create_official
from core.limits import allow_body, allow_uploads, json_nesting_exceeds, loads_json
from core.media import FileBatch, MediaStore, PhotoRejected, ProcessedPhoto, all_or_nothing, process_photo
from core.security import public_base_url
from core.seed import DEMO_PASSWORD, DEMO_PASSWORD_ENV
from core.text import fold, slugify
from core.units import places
from core.units.directory import UnitsDirectory
from core.units.models import OrgUnit, UnitKind
from core.units.service import CITY_ID
from core.web import page_locale, render_page
from core.worktime import HUE_TIME, add_working_days, add_working_hours
from push.notifier import NotificationSent, NotifierError, Receipt

__all__ = [
    "LocalFallback",
    "CITY_ID",
    "DEMO_PASSWORD",
    "DEMO_PASSWORD_ENV",
    "HUE_TIME",
    "Authorizer",
    "CurrentUser",
    "FeedError",
    "FeedItemPublished",
    "FeedItemWithdrawn",
    "FileBatch",
    "MediaStore",
    "Membership",
    "MembershipRow",
    "NotificationSent",
    "NotifierError",
    "OrgUnit",
    "PhotoRejected",
    "Principal",
    "PrincipalDep",
    "ProcessedPhoto",
    "Receipt",
    "SessionDep",
    "Severity",
    "UnitKind",
    "UnitsDirectory",
    "User",
    "UserKind",
    "add_working_days",
    "add_working_hours",
    "all_or_nothing",
    "allow_body",
    "allow_uploads",
    "create_official",
    "encoded_answer",
    "fold",
    "if_none_match",
    "json_nesting_exceeds",
    "loads_json",
    "page_locale",
    "places",
    "process_photo",
    "public_base_url",
    "render_page",
    "require_permission",
    "require_scope",
    "slugify",
    "utcnow",
]
