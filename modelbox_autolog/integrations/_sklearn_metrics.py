"""Cheap training metrics and data fingerprints for the scikit-learn integration.

Plain numpy on a row sample: the usual sklearn metric functions validate their inputs at length
and cost milliseconds each, which is more than many fits take. Nothing here imports sklearn.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

FINGERPRINT_ROWS = 16  # rows hashed for a data fingerprint: enough to tell datasets apart, never a copy


# ---------------------------------------------------------------------- data
def rereadable(data: Any) -> bool:
    """Data we may look into without changing it: arrays, sparse matrices, data frames, lists and
    tuples. An iterator or generator (``MultiLabelBinarizer().fit(iter(...))``) is read once, by
    the user's fit: we never iterate over it."""
    return data is not None and (getattr(data, "shape", None) is not None or isinstance(data, (list, tuple, range)))


def n_rows(data: Any) -> int | None:
    shape = getattr(data, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    try:
        return len(data)
    except TypeError:
        return None


def shape_of(data: Any) -> list[int] | None:
    shape = getattr(data, "shape", None)
    if shape is not None:
        return [int(s) for s in shape]
    if not rereadable(data):
        return None
    rows = n_rows(data)
    if rows is None:
        return None
    try:
        first = data[0]
        return [rows, len(first)] if hasattr(first, "__len__") and not isinstance(first, str) else [rows]
    except Exception:
        return [rows]


def rows_every(data: Any, step: int) -> Any:
    """Every ``step``-th row: a view for arrays and sparse matrices, a small copy otherwise."""
    if step <= 1:
        return data
    iloc = getattr(data, "iloc", None)
    if iloc is not None:
        return iloc[::step]
    if hasattr(data, "tocsr") and not hasattr(data, "indptr"):  # COO/DOK/... sparse: not sliceable by rows
        data = data.tocsr()
    return data[::step]


def fingerprint(data: Any) -> str:
    """Shape, dtype and a few evenly spaced rows, hashed: no copy of the data. Data that can be
    read only once is described by its type alone."""
    if not rereadable(data):
        return hashlib.blake2b(repr(("once", type(data).__module__, type(data).__qualname__)).encode(),
                               digest_size=10).hexdigest()
    if type(data) is np.ndarray and data.ndim and not data.dtype.hasobject:  # the common case, without probing
        rows = data.shape[0]
        digest = hashlib.blake2b(repr(("ndarray", list(data.shape), str(data.dtype))).encode(), digest_size=10)
        digest.update(np.ascontiguousarray(data[:: max(1, math.ceil(rows / FINGERPRINT_ROWS))]).tobytes())
        return digest.hexdigest()
    digest = hashlib.blake2b(digest_size=10)
    digest.update(repr((type(data).__name__, shape_of(data), str(getattr(data, "dtype", "")))).encode())
    rows = n_rows(data) or 0
    step = max(1, math.ceil(rows / FINGERPRINT_ROWS))
    sample = rows_every(data, step)
    columns = getattr(data, "columns", None)
    if columns is not None:
        digest.update(repr(list(columns)).encode())
        sample = sample.to_numpy()
    if hasattr(sample, "tocsr"):  # scipy.sparse
        sample = sample.tocsr()
        digest.update(np.ascontiguousarray(sample.data).tobytes())
        digest.update(np.ascontiguousarray(sample.indices).tobytes())
    elif isinstance(sample, np.ndarray):
        if sample.dtype.hasobject:
            digest.update(repr(sample.tolist()).encode())
        else:
            digest.update(np.ascontiguousarray(sample).tobytes())
    else:
        digest.update(repr(list(sample)[:FINGERPRINT_ROWS]).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------- metrics
def _weights(sample_weight: Any, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    return np.asarray(sample_weight, dtype=float).reshape(-1)


def classification(y_true: Any, y_pred: Any, proba: Any = None, classes: Any = None, sample_weight: Any = None) -> dict[str, float]:
    """Accuracy, weighted precision/recall/F1, log loss and ROC-AUC (as sklearn defines them)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim > 1 or y_pred.ndim > 1:  # multilabel / multioutput: subset accuracy only
        hits = np.all(y_true.reshape(len(y_true), -1) == y_pred.reshape(len(y_pred), -1), axis=1)
        w = _weights(sample_weight, len(hits))
        return {"training_accuracy_score": float(np.average(hits, weights=w)), "training_score": float(np.average(hits, weights=w))}
    w = _weights(sample_weight, len(y_true))
    labels, encoded = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    k = len(labels)
    t, p = encoded[: len(y_true)], encoded[len(y_true):]
    accuracy = float(np.average(t == p, weights=w))
    out = {"training_accuracy_score": accuracy, "training_score": accuracy}
    confusion = np.bincount(t * k + p, weights=w, minlength=k * k).reshape(k, k)
    true_pos = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_pos / predicted, 0.0)
        recall = np.where(support > 0, true_pos / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = support.sum()
    if total > 0:
        out["training_precision_score"] = float((precision * support).sum() / total)
        out["training_recall_score"] = float((recall * support).sum() / total)
        out["training_f1_score"] = float((f1 * support).sum() / total)
    if proba is not None and classes is not None:
        out.update(_probabilistic(y_true, np.asarray(proba, dtype=float), np.asarray(classes), sample_weight))
    return out


def _probabilistic(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray, sample_weight: Any) -> dict[str, float]:
    if proba.ndim != 2 or proba.shape[1] != len(classes) or len(classes) < 2:
        return {}
    index = np.searchsorted(classes, y_true) if np.all(classes[:-1] <= classes[1:]) else None
    if index is None or np.any(index >= len(classes)) or np.any(classes[np.minimum(index, len(classes) - 1)] != y_true):
        return {}
    out = {}
    w = _weights(sample_weight, len(y_true))
    picked = np.clip(proba[np.arange(len(y_true)), index], 1e-15, 1.0)
    out["training_log_loss"] = float(-np.average(np.log(picked), weights=w))
    if sample_weight is None and len(classes) <= 20:
        if len(classes) == 2:
            auc = roc_auc(index == 1, proba[:, 1])
        else:  # one-vs-rest, macro average (sklearn's roc_auc_score(multi_class="ovr") default)
            aucs = [roc_auc(index == c, proba[:, c]) for c in range(len(classes))]
            aucs = [a for a in aucs if a is not None]
            auc = float(np.mean(aucs)) if aucs else None
        if auc is not None:
            out["training_roc_auc"] = auc
    return out


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties get average ranks)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(len(score))
    # average ranks over ties: positions where the sorted score changes delimit tie groups
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(score)]])
    group_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(group_rank, ends - starts)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def regression(y_true: Any, y_pred: Any, sample_weight: Any = None) -> dict[str, float]:
    """MSE, RMSE, MAE and R2 (uniform average over outputs, as sklearn's defaults)."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float).reshape(y_true.shape)
    y_true2 = y_true.reshape(len(y_true), -1)
    y_pred2 = y_pred.reshape(len(y_pred), -1)
    w = _weights(sample_weight, len(y_true2))
    error = y_true2 - y_pred2
    mse = np.average(error**2, axis=0, weights=w)
    mae = np.average(np.abs(error), axis=0, weights=w)
    mean = np.average(y_true2, axis=0, weights=w)
    total = np.average((y_true2 - mean) ** 2, axis=0, weights=w)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(total > 0, 1.0 - mse / total, np.where(mse == 0, 1.0, 0.0))
    return {
        "training_mean_squared_error": float(mse.mean()),
        "training_root_mean_squared_error": float(np.sqrt(mse).mean()),
        "training_mean_absolute_error": float(mae.mean()),
        "training_r2_score": float(r2.mean()),
        "training_score": float(r2.mean()),
    }
