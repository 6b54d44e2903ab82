"""vLLM's engine client interface, every member passed to a wrapped engine.

`ForcingEngineClient` overrides what forcing changes (generate, abort, shutdown); everything
else vLLM's serving layer calls is declared here, member by member, so the interface the
server relies on is explicit and a unit test can check that nothing of it is left abstract.
"""

from __future__ import annotations

from typing import Any

from server.vllm_compat import EngineClient


class DelegatingEngineClient(EngineClient):
    """An `EngineClient` that hands each call to `engine` (vLLM's AsyncLLM)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine  # vLLM's AsyncLLM
        self.vllm_config = engine.vllm_config
        self.model_config = engine.model_config
        self.renderer = engine.renderer
        self.input_processor = engine.input_processor

    # -- state ---------------------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self.engine.is_running

    @property
    def is_stopped(self) -> bool:
        return self.engine.is_stopped

    @property
    def errored(self) -> bool:
        return self.engine.errored

    @property
    def dead_error(self) -> BaseException:
        return self.engine.dead_error

    def get_kv_event_sources(self) -> Any:
        return self.engine.get_kv_event_sources()

    def check_admission(self, n: int = 1, request_id: str | None = None) -> None:
        self.engine.check_admission(n, request_id)

    # -- requests --------------------------------------------------------------------------------------
    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.engine.generate(*args, **kwargs)

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        return self.engine.encode(*args, **kwargs)

    async def abort(self, request_id: Any) -> None:
        await self.engine.abort(request_id)

    async def notify_kv_transfer_request_rejected(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.notify_kv_transfer_request_rejected(*args, **kwargs)

    def shutdown(self, timeout: float | None = None) -> None:
        self.engine.shutdown(timeout=timeout)

    # -- observability ---------------------------------------------------------------------------------
    async def is_tracing_enabled(self) -> bool:
        return await self.engine.is_tracing_enabled()

    async def do_log_stats(self) -> None:
        await self.engine.do_log_stats()

    async def check_health(self) -> None:
        await self.engine.check_health()

    async def start_profile(self, *args: Any, **kwargs: Any) -> None:
        await self.engine.start_profile(*args, **kwargs)

    async def stop_profile(self) -> None:
        await self.engine.stop_profile()

    async def get_status(self) -> Any:
        return await self.engine.get_status()

    async def get_supported_tasks(self) -> Any:
        return await self.engine.get_supported_tasks()

    # -- caches, sleep, pause ----------------------------------------------------------------------------
    async def reset_mm_cache(self) -> None:
        await self.engine.reset_mm_cache()

    async def reset_encoder_cache(self) -> None:
        await self.engine.reset_encoder_cache()

    async def reset_prefix_cache(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.reset_prefix_cache(*args, **kwargs)

    async def sleep(self, *args: Any, **kwargs: Any) -> None:
        await self.engine.sleep(*args, **kwargs)

    async def release_kv_cache_memory(self) -> None:
        await self.engine.release_kv_cache_memory()

    async def wake_up(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.wake_up(*args, **kwargs)

    async def is_sleeping(self) -> bool:
        return await self.engine.is_sleeping()

    async def pause_generation(self, *args: Any, **kwargs: Any) -> None:
        await self.engine.pause_generation(*args, **kwargs)

    async def resume_generation(self) -> None:
        await self.engine.resume_generation()

    async def is_paused(self) -> bool:
        return await self.engine.is_paused()

    # -- adapters, scaling, RPC, faults ------------------------------------------------------------------
    async def add_lora(self, lora_request: Any) -> bool:
        return await self.engine.add_lora(lora_request)

    async def scale_elastic_ep(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.scale_elastic_ep(*args, **kwargs)

    async def collective_rpc(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.collective_rpc(*args, **kwargs)

    async def handle_fault(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.handle_fault(*args, **kwargs)

    # -- weights ---------------------------------------------------------------------------------------
    async def compute_weight_checksums(self) -> Any:
        return await self.engine.compute_weight_checksums()

    async def init_weight_transfer_engine(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.init_weight_transfer_engine(*args, **kwargs)

    async def shutdown_weight_transfer_engine(self) -> Any:
        return await self.engine.shutdown_weight_transfer_engine()

    async def start_weight_update(self) -> Any:
        return await self.engine.start_weight_update()

    async def start_draft_weight_update(self) -> Any:
        return await self.engine.start_draft_weight_update()

    async def update_weights(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.update_weights(*args, **kwargs)

    async def finish_weight_update(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.finish_weight_update(*args, **kwargs)

    async def update_weight_version(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.update_weight_version(*args, **kwargs)

    async def get_weight_version(self) -> Any:
        return await self.engine.get_weight_version()
