"""Dynamics models: the D / P / DE / PE ensemble, its training and its files (§model)."""

from pets_core.config.variants import MODEL_TYPES, ModelType
from pets_core.models.cohort import train_cohort
from pets_core.models.ensemble import EnsembleModel, make_model
from pets_core.models.io import export_original, load_model, load_original, save_model
from pets_core.models.mlp import MLPWeights
from pets_core.models.normalizer import Normalizer
from pets_core.models.training import ModelTrainer, TrainStats

__all__ = [
    "MODEL_TYPES",
    "EnsembleModel",
    "MLPWeights",
    "ModelTrainer",
    "ModelType",
    "Normalizer",
    "TrainStats",
    "export_original",
    "load_model",
    "load_original",
    "make_model",
    "save_model",
    "train_cohort",
]
