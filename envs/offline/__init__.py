"""Offline RL on the task side: D4RL/Minari readers, dataset ids and paths, reference scores.

Only numpy is imported here; h5py is imported inside the functions that read files, and
neither ``algorithms`` nor the harness is imported. See :mod:`envs.offline.datasets` for the
ids, locations and errors, :mod:`envs.offline.d4rl` for the D4RL layout and its
``qlearning_dataset`` semantics (Fu et al. 2020), :mod:`envs.offline.minari` for Minari
directories and :mod:`envs.offline.scores` for the normalised score.
"""
from envs.offline.d4rl import episode_returns, qlearning_dataset, read_hdf5, split_episodes
from envs.offline.datasets import (D4RL_DATASET_IDS, GENERATED_METADATA_KEYS, DatasetError, DatasetInfo,
                                   DatasetNotFound, DatasetUnreadable, OfflineDataset, d4rl_download_url,
                                   data_root, dataset_info, dataset_path, is_d4rl_id, is_generated_id,
                                   is_minari_id, load_dataset)
from envs.offline.minari import read_minari
from envs.offline.scores import REF_MAX_SCORE, REF_MIN_SCORE, normalised_score, reference_scores

__all__ = [
    "D4RL_DATASET_IDS",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFound",
    "DatasetUnreadable",
    "GENERATED_METADATA_KEYS",
    "OfflineDataset",
    "REF_MAX_SCORE",
    "REF_MIN_SCORE",
    "d4rl_download_url",
    "data_root",
    "dataset_info",
    "dataset_path",
    "episode_returns",
    "is_d4rl_id",
    "is_generated_id",
    "is_minari_id",
    "load_dataset",
    "normalised_score",
    "qlearning_dataset",
    "read_hdf5",
    "read_minari",
    "reference_scores",
    "split_episodes",
]
