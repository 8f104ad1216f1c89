"""What the routes share: settings, the run cache, the trace store and the renderer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.rendering import Renderer
from app.runs import RunCache
from app.settings import Settings
from app.store import TraceStore

__all__ = ["Services", "ServicesDep", "get_services"]


@dataclass(frozen=True)
class Services:
    settings: Settings
    runs: RunCache
    store: TraceStore
    renderer: Renderer

    @classmethod
    def create(cls, settings: Settings) -> Services:
        return cls(
            settings=settings,
            runs=RunCache(max_entries=settings.run_cache_size),
            store=TraceStore(settings.db_path),
            renderer=Renderer(settings.templates_dir),
        )


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
