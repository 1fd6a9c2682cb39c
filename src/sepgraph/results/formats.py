"""The results formats sepgraph writes and reads (SPEC 12), and how an older row file reads as today's."""

from __future__ import annotations

FORMAT_VERSION = 3
"""3: row files hold :class:`LayerRow`'s attributes, the peer measures (SPEC 13-15) included. Formats 2 (without
them) and 1 (``hist_k``, ``share_below_0.1``, ``lu_q`` keys) are read, their peer measures empty; they cannot be
resumed (their parameters lack ``knn_k`` and ``probe_ridge``)."""
READABLE_FORMATS = (1, 2, 3)


def upgraded_row(row: dict, format_version: int) -> dict:
    """A row file of ``format_version`` under today's names (:meth:`LayerRow.from_json` fills what it lacks)."""
    return _format1_row(row) if format_version == 1 else row


def _format1_row(row: dict) -> dict:
    """A format-1 row file in format 2's names: ``hist_k`` keys, ``share_below_0.1``, ``lu_q`` (the batches)."""
    bins = sum(key.startswith("hist_") for key in row)
    return row | {"hist": [row[f"hist_{b}"] for b in range(bins)], "share_below_0_1": row["share_below_0.1"],
                  "lu_q_batches": row["lu_q"]}


MANIFEST_DEFAULTS = {"probe_ridge": 1.0, "data_sha256": None, "gemm": None}
"""Parameters a manifest of an older format may lack, with the values that describe it: its peer measures
(SPEC 13-15) were never computed (``knn_k``: 10, or fewer than the vertices), and it predates the data digest and
the recorded GEMM engine."""
RUN_DEFAULTS = {"spill_dir": None, "processes": 1, "tile_rows": None, "batch_size": None}
"""What an older manifest's ``run`` may lack: it ran in one process, before tiles were recorded."""
RUN_KEYS = ("device", "max_memory", "spill_dir", "batch_size", "torch_threads", "processes", "tile_rows", "gemm",
            "gemm_threads", "peak_rss_bytes")


def upgraded_manifest(manifest: dict) -> dict:
    """A manifest of any readable format under today's keys (:meth:`Manifest.from_json` reads the result)."""
    parameters = MANIFEST_DEFAULTS | {"knn_k": min(10, manifest["parameters"]["vertices"] - 1)} \
        | manifest["parameters"]
    run = {key: value for key, value in (RUN_DEFAULTS | manifest["run"]).items() if key in RUN_KEYS}
    return {"removable_units": None} | manifest | {"parameters": parameters, "run": run}
