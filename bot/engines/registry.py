"""The registry of engines: each engine folder's `Engine`, by name. The stages that run every engine
import it; no engine does."""

from __future__ import annotations

from bot.engines.base import Engine


def engines() -> dict[str, Engine]:
    """Return the registered engines by name."""
    from bot.engines.airflow import AirflowEngine
    from bot.engines.cadence import CadenceEngine
    from bot.engines.stepfunctions import StepFunctionsEngine
    from bot.engines.temporal import TemporalEngine

    return {
        "temporal": TemporalEngine(),
        "stepfunctions": StepFunctionsEngine(),
        "cadence": CadenceEngine(),
        "airflow": AirflowEngine(),
    }
