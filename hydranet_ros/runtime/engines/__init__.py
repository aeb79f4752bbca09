"""Inference backends behind one small interface (base.py); one module per runtime, named in
runtime/choices.ENGINES."""

from hydranet_ros.runtime.engines.base import Engine, EngineError, create_engine

__all__ = ["Engine", "EngineError", "create_engine"]
