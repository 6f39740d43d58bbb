"""Class names for the 1001-way ImageNet logits (index 0 is slim's "background" class).

The project does not ship the label list (it ships no data files). Names come from, in order: an explicit
file, the labels stored in a weight file (``mobilenet-np convert --labels``), ``$MOBILENET_NP_LABELS``, or
``$MOBILENET_NP_HOME/imagenet_labels.txt``; failing all of them classes are named ``class_<index>``.
"""
import os
from pathlib import Path

from .errors import MobileNetError


def default_home():
    return Path(os.environ.get("MOBILENET_NP_HOME", Path.home() / ".cache" / "mobilenet_np"))


def read_labels(path):
    """One label per line (the ``ImageNetLabels.txt`` format)."""
    try:
        with open(path, encoding="utf-8") as f:
            labels = [line.rstrip("\r\n") for line in f]
    except OSError as e:
        raise MobileNetError(f"cannot read labels file {path}: {e}") from e
    while labels and not labels[-1]:
        labels.pop()
    return labels


def find_labels(num_classes, explicit=None, stored=None):
    """The label list for a model with ``num_classes`` outputs (see the module docstring for the order)."""
    if explicit:
        labels = read_labels(explicit)
    elif stored:
        labels = list(stored)
    else:
        labels = None
        for candidate in (os.environ.get("MOBILENET_NP_LABELS"), default_home() / "imagenet_labels.txt"):
            if candidate and Path(candidate).is_file():
                labels = read_labels(candidate)
                break
    if labels is None:
        return [f"class_{i}" for i in range(num_classes)]
    if len(labels) == num_classes - 1:  # a 1000-line list without "background"
        labels = ["background"] + labels
    if len(labels) != num_classes:
        raise MobileNetError(f"the labels list has {len(labels)} entries but the model has {num_classes} classes")
    return labels


def top_k(scores, labels, k=5):
    """``[[{"index", "label", "score"}, ...] per row]`` of the ``k`` highest scores (ties: lower index first)."""
    import numpy as np

    rows = []
    for row in np.asarray(scores):
        order = np.argsort(-row, kind="stable")[:k]
        rows.append([dict(index=int(i), label=labels[i], score=float(row[i])) for i in order])
    return rows
