"""Feed API (being built)."""

from fastapi import APIRouter

router = APIRouter(tags=["feed"])
