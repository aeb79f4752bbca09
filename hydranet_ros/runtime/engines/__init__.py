"""Inference backends behind one small interface (base.py); one module per runtime."""

from hydranet_ros.runtime.engines.base import ENGINE_MODULES, Engine, EngineError, create_engine

__all__ = ["ENGINE_MODULES", "Engine", "EngineError", "create_engine"]
