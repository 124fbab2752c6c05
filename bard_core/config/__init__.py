"""Typed configuration for a whole run: one frozen pydantic section per stage.

Every field is documented once, by the docstring under it; those docstrings are what validation errors
and ``bard config`` print. Settings that only say *how* to execute (``resources``: replicas, CPUs, batch
sizes; shard sizes) are typed ``ExecutionSection`` or marked ``EXECUTION``, and ``Section.fingerprint_dump``
leaves them out of artifact fingerprints: changing them never invalidates an artifact.
"""

from bard_core.config.base import (
    EXECUTION,
    OMIT_DEFAULT,
    ExecutionSection,
    RayConfig,
    ResourcesConfig,
    SamplingConfig,
    Section,
    StoreConfig,
)
from bard_core.config.bridge import AmplifyConfig, BridgeConfig, ScoringConfig, TeacherBudgetConfig
from bard_core.config.engines import (
    EngineConfig,
    HFEngineConfig,
    OpenAIEngineConfig,
    OracleEngineConfig,
    PriceConfig,
    VLLMEngineConfig,
)
from bard_core.config.evaluate import (
    BenchmarkConfig,
    BundledBenchmark,
    EvaluateConfig,
    FileBenchmark,
    IngestedBenchmark,
    TruncationConfig,
)
from bard_core.config.models import (
    BUILT_MODEL_KINDS,
    GGUFPackageModelSpec,
    HubModelSpec,
    ModelSpec,
    PathModelSpec,
    ToyPretrainedModelSpec,
    ToyRandomModelSpec,
)
from bard_core.config.run import RunConfig
from bard_core.config.stages import (
    BudgetConfig,
    BundledSourceConfig,
    CompressConfig,
    FileSourceConfig,
    HFSourceConfig,
    HFTokenizerConfig,
    IngestConfig,
    MaterializeConfig,
    SampleConfig,
    SourceConfig,
    StudentConfig,
    ToyFamilyConfig,
    ToySourceConfig,
    ToyTokenizerConfig,
)
from bard_core.config.training import (
    LoraConfig,
    ProbeConfig,
    RLInit,
    RLStageConfig,
    SFTStageConfig,
    TrainResourcesConfig,
)
from bard_core.config.watch import (
    HFTeacherSource,
    OpenAITeacherSource,
    StoreTeacherSource,
    TeacherSource,
    WatchConfig,
)

__all__ = [
    "BUILT_MODEL_KINDS",
    "EXECUTION",
    "OMIT_DEFAULT",
    "AmplifyConfig",
    "BenchmarkConfig",
    "BridgeConfig",
    "BudgetConfig",
    "BundledBenchmark",
    "BundledSourceConfig",
    "CompressConfig",
    "EngineConfig",
    "EvaluateConfig",
    "ExecutionSection",
    "FileBenchmark",
    "FileSourceConfig",
    "GGUFPackageModelSpec",
    "HFEngineConfig",
    "HFSourceConfig",
    "HFTeacherSource",
    "HFTokenizerConfig",
    "HubModelSpec",
    "IngestConfig",
    "IngestedBenchmark",
    "LoraConfig",
    "MaterializeConfig",
    "ModelSpec",
    "OpenAIEngineConfig",
    "OpenAITeacherSource",
    "OracleEngineConfig",
    "PathModelSpec",
    "PriceConfig",
    "ProbeConfig",
    "RLInit",
    "RLStageConfig",
    "RayConfig",
    "ResourcesConfig",
    "RunConfig",
    "SFTStageConfig",
    "SampleConfig",
    "SamplingConfig",
    "ScoringConfig",
    "Section",
    "SourceConfig",
    "StoreConfig",
    "StoreTeacherSource",
    "StudentConfig",
    "TeacherBudgetConfig",
    "TeacherSource",
    "ToyFamilyConfig",
    "ToyPretrainedModelSpec",
    "ToyRandomModelSpec",
    "ToySourceConfig",
    "ToyTokenizerConfig",
    "TrainResourcesConfig",
    "TruncationConfig",
    "VLLMEngineConfig",
    "WatchConfig",
]
