"""Local generation of offline-RL datasets in the D4RL HDF5 layout (Fu et al. 2020).

``generate("pendulum-medium-replay-gen")`` writes ``<root>/pendulum-medium-replay-gen.hdf5`` (root:
``$TPO_BENCH_DATA``, else ``~/.cache/tpo-bench/datasets``) and returns its path; the ``bench-data`` command
is the same from a shell. The ids, recipes and settings are in :mod:`envs.offline.generate.specs`; the file
layout in :mod:`envs.offline.generate.writer`. gymnasium, gymnasium-robotics, stable-baselines3 and h5py
(the ``offline`` extra) are imported only when a dataset is generated or read.
"""
from envs.offline.generate.build import Generated, config_record, generate, generate_dataset
from envs.offline.generate.specs import (DATASETS, GENERATOR, GENERATOR_VERSION, QUICK_IDS, DatasetSpec,
                                         Maze2dConfig, SACConfig, UnknownDatasetError, data_root, dataset_ids,
                                         dataset_path, get_spec, make_config)
from envs.offline.generate.writer import CorruptDatasetError, checksum, read_arrays, read_metadata, verify

__all__ = [
    "DATASETS", "GENERATOR", "GENERATOR_VERSION", "QUICK_IDS", "CorruptDatasetError", "DatasetSpec", "Generated",
    "Maze2dConfig", "SACConfig", "UnknownDatasetError", "checksum", "config_record", "data_root", "dataset_ids",
    "dataset_path", "generate", "generate_dataset", "get_spec", "make_config", "read_arrays", "read_metadata",
    "verify",
]
