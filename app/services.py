"""What the routes share: settings, the run cache (with its run store and build pool), the
trace store and the renderer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.builds import BuildPool
from app.rendering import Renderer
from app.requesters import ClientBuildLimit
from app.run_store import RunStore
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

    builds: BuildPool

    @classmethod
    def create(cls, settings: Settings) -> Services:
        builds = BuildPool(
            workers=settings.build_workers,
            max_in_flight=settings.builds_in_flight or 2 * settings.build_workers,
            cpu_limit_s=settings.build_cpu_s,
            max_memory=settings.build_memory_mb << 20,
        )
        run_store = RunStore(settings.runs_dir, max_bytes=settings.run_store_mb << 20)
        runs = RunCache(
            max_entries=settings.run_cache_size, byte_budget=settings.run_cache_mb << 20,
            pool=builds, store=run_store, max_events=settings.max_events,
            client_limit=ClientBuildLimit(settings.builds_per_client_minute),
        )
        return cls(settings=settings, runs=runs, store=TraceStore(settings.db_path),
                   renderer=Renderer(settings.templates_dir), builds=builds)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
